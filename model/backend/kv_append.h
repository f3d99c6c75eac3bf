// One sequence's part of the KV update of a layer (spec §3.4.2–§3.4.4, §4.1), shared by the CPU
// and the device backends (V4_HD): each of its tokens' raw rows goes into the window ring, each
// compressor takes the token, and a completed block's pooled row is finished and encoded into
// the page its block table names. Tokens go in position order (spec §3.8).
#pragma once

#include <math.h>

#include <cstdint>

#include "core/hd.h"
#include "kernels/cpu/compressor.h"
#include "kernels/cpu/fp4.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/rope.h"
#include "model/backend/kv_address.h"
#include "model/backend/kv_row_codec.h"
#include "model/backend/kv_view.h"

namespace v4 {

// FP8 block of the KV simulation (spec §3.4.2).
inline constexpr int64_t kKvFp8Block = 64;

// A pooled compressed row becomes a cached row: RMSNorm (accumulated in double, as the
// reference), RoPE at the block's first position (spec §3.9), then FP8 for main rows or the QAT
// transform for indexer keys.
V4_HD inline void kv_finish_row(const KvCompressor& cw, int64_t dim, int64_t rope_dim,
                                uint64_t first_pos, bool indexer, float* row) {
  double ss = 0.0;
  for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(row[i]) * row[i];
  const float r = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(dim) + cw.rms_eps));
  for (int64_t i = 0; i < dim; ++i) row[i] = row[i] * r * cw.norm[i];
  kernels::rope_rotate(row + dim - rope_dim, cw.rope_freqs, rope_dim / 2, first_pos, false);
  if (indexer) {
    kernels::indexer_qat_transform(row, dim);
  } else {
    kernels::fp8_round_trip(row, dim - rope_dim, kKvFp8Block);
  }
}

V4_HD inline kernels::CompressorCarry kv_carry_of(const KvSequenceView& s, size_t offset,
                                                  uint32_t rows, uint32_t width) {
  float* values = s.carry + offset;
  return {values, values + size_t{rows} * width, rows, width};
}

// Sequence `sq` of the step; `row` is scratch of max(head_dim, indexer_dim) floats.
V4_HD inline void kv_append_sequence(const KvPageFormat& f, const KvLayerAddress& l,
                                     const KvStep& step, int64_t sq, const float* kv_rows,
                                     const KvCompressor* main, const KvCompressor* indexer,
                                     float* row) {
  const uint32_t hd = f.shape.head_dim, idim = f.shape.indexer_dim;
  const int64_t rope_dim = f.shape.rope_dim;
  const KvSequenceView& seq = step.sequences[sq];
  for (int64_t t = step.sequence_begin[sq]; t < step.sequence_begin[sq + 1]; ++t) {
    const uint64_t pos = step.positions[t];
    float* raw = kv_raw_row(seq, l.raw_slot, hd, pos);
    for (uint32_t i = 0; i < hd; ++i) raw[i] = kv_rows[t * hd + i];
    const uint64_t first_pos = pos + 1 - l.ratio;
    if (main && kernels::compressor_push(
                    kv_carry_of(seq, l.carry_offset, l.carry_rows, l.carry_width), l.ratio,
                    main->ape, main->a + t * main->width, main->g + t * main->width, pos, row)) {
      kv_finish_row(*main, hd, rope_dim, first_pos, false, row);
      encode_main_row(f.storage, f.shape, row, kv_main_row(f, l, seq, pos / l.ratio));
    }
    if (indexer &&
        kernels::compressor_push(kv_carry_of(seq, l.indexer_carry_offset, 8, l.indexer_carry_width),
                                 4, indexer->ape, indexer->a + t * indexer->width,
                                 indexer->g + t * indexer->width, pos, row)) {
      kv_finish_row(*indexer, idim, rope_dim, first_pos, true, row);
      encode_indexer_row(f.storage, f.shape, row, kv_indexer_row(f, l, seq, pos / 4));
    }
  }
}

}  // namespace v4
