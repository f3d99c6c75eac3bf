// The file that keeps one cached prefix page on disk (docs/design.md, KvCache: save/restore of
// prefix pages): a header naming what the bytes are — the model, the page geometry, the page's
// place in the prefix hash chain with its token ids — then the payload (the page's rows and the
// state snapshot at its end, spec §4.4) with its checksum. Nothing is loaded unless every header
// field matches what the running engine expects and the payload checksum holds.
//
// Layout, little-endian, no padding:
//   magic "V4KVPAG1" (8) | header_bytes u32 | model_identity u64 | geometry_digest u64 |
//   page_tokens u32 | storage u32 | page_bytes u64 | snapshot_bytes u64 | hash u64 | parent u64 |
//   n_past u64 | n_tokens u32 | tokens i32 × n_tokens | payload_checksum u64 | header_checksum u64
//   then payload_bytes = page_bytes + snapshot_bytes of payload.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace v4 {

// What defines the bytes of a page and of its snapshot: two engines agreeing on all of it read
// each other's pages identically.
struct KvPageGeometry {
  uint32_t page_tokens = 0;
  uint32_t storage = 0;         // KvStorage
  uint64_t page_bytes = 0;      // rows of one page
  uint64_t snapshot_bytes = 0;  // the state snapshot kept with it
  uint64_t digest = 0;          // of the full layout (per-layer offsets, row sizes, carry widths)

  bool operator==(const KvPageGeometry&) const = default;
};

struct KvPageFileHeader {
  uint64_t model_identity = 0;
  KvPageGeometry geometry;
  uint64_t hash = 0, parent = 0;
  uint64_t n_past = 0;  // positions the snapshot covers: the page's end
  std::vector<int32_t> tokens;
  uint64_t payload_checksum = 0;

  uint64_t payload_bytes() const { return geometry.page_bytes + geometry.snapshot_bytes; }
};

inline constexpr char kKvPageMagic[8] = {'V', '4', 'K', 'V', 'P', 'A', 'G', '1'};
// Bytes before the header's variable part: enough to learn how long the whole header is.
inline constexpr size_t kKvPageFixedHeaderBytes = 8 + 4;

// A fast 64-bit checksum (four independent multiply-mix lanes over 8-byte words) of the payload.
uint64_t kv_page_checksum(std::span<const uint8_t> bytes);

// The header's bytes; `payload_checksum` must already be set.
std::vector<uint8_t> encode_kv_page_header(const KvPageFileHeader& header);
// Reads the header at the start of `bytes` (which must hold all of it); errors name the field.
Result<KvPageFileHeader> decode_kv_page_header(std::span<const uint8_t> bytes);
// Total header length announced by the first kKvPageFixedHeaderBytes, or an error.
Result<uint32_t> kv_page_header_bytes(std::span<const uint8_t> prefix);

// Why `header` cannot be used by an engine of `model_identity` and `geometry`, or ok. Also checks
// that the hash is the chain hash of (parent, tokens): a header that lies about its place in the
// chain is refused.
Status check_kv_page_header(const KvPageFileHeader& header, uint64_t model_identity,
                            const KvPageGeometry& geometry);

}  // namespace v4
