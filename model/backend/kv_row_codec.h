// Byte encodings of cached compressed rows (spec §4.3). F32 keeps the forward's values; F16
// halves the bytes but is lossy (the F32 RoPE tail and tiny FP8 scales do not fit binary16);
// FP8 is the 584-byte production layout for main rows (nope dims as E4M3 with one UE8M0 scale
// per 64 values, RoPE tail as BF16). In FP8 mode indexer keys take the 68-byte FP4 layout
// (E2M1 codes with one UE8M0 scale per 32 values): the model already rounds them to exactly
// those values (spec §3.4.4), so FP8 mode loses nothing but the main rows' BF16 RoPE tails.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace v4 {

enum class KvStorage { kF32, kF16, kFp8 };

Result<KvStorage> kv_storage_from_name(const std::string& name);
const char* kv_storage_name(KvStorage storage);

// Shape of the rows of one model: head_dim-wide main rows whose last rope_dim values are the
// RoPE tail, and indexer keys of indexer_dim values.
struct KvRowShape {
  uint32_t head_dim = 0;
  uint32_t rope_dim = 0;
  uint32_t indexer_dim = 0;

  bool operator==(const KvRowShape&) const = default;
};

size_t main_row_bytes(KvStorage storage, const KvRowShape& shape);
size_t indexer_row_bytes(KvStorage storage, const KvRowShape& shape);

void encode_main_row(KvStorage storage, const KvRowShape& shape, const float* row, uint8_t* out);
void decode_main_row(KvStorage storage, const KvRowShape& shape, const uint8_t* in, float* row);
void encode_indexer_row(KvStorage storage, const KvRowShape& shape, const float* row, uint8_t* out);
void decode_indexer_row(KvStorage storage, const KvRowShape& shape, const uint8_t* in, float* row);

// E4M3fn code of x (nearest value, ties to even code); exact for values on the E4M3 grid.
uint8_t e4m3_encode(float x);
float e4m3_decode(uint8_t code);

}  // namespace v4
