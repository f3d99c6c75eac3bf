#include "worker/kv_disk/kv_page_file.h"

#include <cstring>

#include "scheduler/prefix_cache.h"

namespace v4 {
namespace {

constexpr uint64_t kPrime1 = 0x9e3779b185ebca87ull, kPrime2 = 0xc2b2ae3d27d4eb4full;
// Header fields after the magic and the length, before the tokens.
constexpr size_t kFixedFields = 8 + 8 + 4 + 4 + 8 + 8 + 8 + 8 + 8 + 4;
// A page holds at most this many tokens (page_tokens is a multiple of 128 of modest size); a
// larger count is a corrupt header, not a reason to allocate.
constexpr uint32_t kMaxTokens = 1u << 20;

uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t mix_lane(uint64_t lane, uint64_t word) {
  return rotl(lane + word * kPrime2, 31) * kPrime1;
}

class Writer {
 public:
  template <class T>
  void put(T value) {
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof value);
    std::memcpy(bytes_.data() + at, &value, sizeof value);
  }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  template <class T>
  bool get(T& value) {
    if (at_ + sizeof value > bytes_.size()) return false;
    std::memcpy(&value, bytes_.data() + at_, sizeof value);
    at_ += sizeof value;
    return true;
  }
  size_t at() const { return at_; }

 private:
  std::span<const uint8_t> bytes_;
  size_t at_ = 0;
};

}  // namespace

uint64_t kv_page_checksum(std::span<const uint8_t> bytes) {
  uint64_t lanes[4] = {kPrime1 + kPrime2, kPrime2, 0, 0 - kPrime1};
  size_t i = 0;
  for (; i + 32 <= bytes.size(); i += 32) {
    for (int l = 0; l < 4; ++l) {
      uint64_t word;
      std::memcpy(&word, bytes.data() + i + 8 * l, 8);
      lanes[l] = mix_lane(lanes[l], word);
    }
  }
  uint64_t h = rotl(lanes[0], 1) + rotl(lanes[1], 7) + rotl(lanes[2], 12) + rotl(lanes[3], 18);
  for (; i < bytes.size(); ++i) h = rotl(h ^ (bytes[i] * kPrime1), 11) * kPrime2;
  h ^= bytes.size();
  h = (h ^ (h >> 33)) * kPrime2;
  return h ^ (h >> 29);
}

std::vector<uint8_t> encode_kv_page_header(const KvPageFileHeader& h) {
  Writer w;
  for (char c : kKvPageMagic) w.put(c);
  const uint32_t length =
      static_cast<uint32_t>(kKvPageFixedHeaderBytes + kFixedFields + 4 * h.tokens.size() + 8 + 8);
  w.put(length);
  w.put(h.model_identity);
  w.put(h.geometry.digest);
  w.put(h.geometry.page_tokens);
  w.put(h.geometry.storage);
  w.put(h.geometry.page_bytes);
  w.put(h.geometry.snapshot_bytes);
  w.put(h.hash);
  w.put(h.parent);
  w.put(h.n_past);
  w.put(static_cast<uint32_t>(h.tokens.size()));
  for (int32_t t : h.tokens) w.put(t);
  w.put(h.payload_checksum);
  w.put(kv_page_checksum(w.bytes()));
  return std::move(w.bytes());
}

Result<uint32_t> kv_page_header_bytes(std::span<const uint8_t> prefix) {
  if (prefix.size() < kKvPageFixedHeaderBytes) return Status::error("truncated header");
  if (std::memcmp(prefix.data(), kKvPageMagic, sizeof kKvPageMagic) != 0)
    return Status::error("not a KV page file (bad magic)");
  uint32_t length = 0;
  std::memcpy(&length, prefix.data() + 8, 4);
  if (length < kKvPageFixedHeaderBytes + kFixedFields + 16 ||
      length > kKvPageFixedHeaderBytes + kFixedFields + 16 + 4ull * kMaxTokens)
    return Status::error("header length " + std::to_string(length) + " out of range");
  return length;
}

Result<KvPageFileHeader> decode_kv_page_header(std::span<const uint8_t> bytes) {
  Result<uint32_t> length = kv_page_header_bytes(bytes);
  if (!length) return length.status();
  if (bytes.size() < *length) return Status::error("truncated header");
  Reader r(bytes.subspan(kKvPageFixedHeaderBytes, *length - kKvPageFixedHeaderBytes));
  KvPageFileHeader h;
  uint32_t n_tokens = 0;
  KvPageGeometry& g = h.geometry;
  r.get(h.model_identity);
  r.get(g.digest);
  r.get(g.page_tokens);
  r.get(g.storage);
  r.get(g.page_bytes);
  r.get(g.snapshot_bytes);
  r.get(h.hash);
  r.get(h.parent);
  r.get(h.n_past);
  if (!r.get(n_tokens)) return Status::error("truncated header");
  if (kKvPageFixedHeaderBytes + kFixedFields + 4ull * n_tokens + 16 != *length)
    return Status::error("token count " + std::to_string(n_tokens) +
                         " disagrees with the header length");
  h.tokens.resize(n_tokens);
  for (int32_t& t : h.tokens) r.get(t);
  uint64_t header_checksum = 0;
  r.get(h.payload_checksum);
  const size_t checked = kKvPageFixedHeaderBytes + r.at();
  r.get(header_checksum);
  if (kv_page_checksum(bytes.first(checked)) != header_checksum)
    return Status::error("header checksum mismatch");
  return h;
}

Status check_kv_page_header(const KvPageFileHeader& h, uint64_t model_identity,
                            const KvPageGeometry& g) {
  auto differs = [](const char* what, uint64_t have, uint64_t want) {
    return Status::error(std::string(what) + " " + std::to_string(have) +
                         " differs from this engine's " + std::to_string(want));
  };
  if (h.model_identity != model_identity)
    return differs("model identity", h.model_identity, model_identity);
  const KvPageGeometry& f = h.geometry;
  if (f.page_tokens != g.page_tokens) return differs("page_tokens", f.page_tokens, g.page_tokens);
  if (f.storage != g.storage) return differs("KV storage", f.storage, g.storage);
  if (f.page_bytes != g.page_bytes) return differs("page bytes", f.page_bytes, g.page_bytes);
  if (f.snapshot_bytes != g.snapshot_bytes)
    return differs("snapshot bytes", f.snapshot_bytes, g.snapshot_bytes);
  if (f.digest != g.digest) return differs("layout digest", f.digest, g.digest);
  if (h.tokens.size() != g.page_tokens)
    return differs("token count", h.tokens.size(), g.page_tokens);
  if (h.n_past == 0 || h.n_past % g.page_tokens != 0)
    return Status::error("snapshot position " + std::to_string(h.n_past) +
                         " is not the end of a page");
  if (PrefixCache::chain_hash(h.parent, h.tokens) != h.hash)
    return Status::error("hash is not the chain hash of its parent and tokens");
  return Status::ok();
}

}  // namespace v4
