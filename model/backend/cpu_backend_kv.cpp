// CpuBackend's KV update (spec §3.4.2–§3.4.4, §4.1): raw rows into the window rings, the
// streaming compressors, and finished rows encoded into the pages of the block tables.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/compressor.h"
#include "kernels/cpu/fp4.h"
#include "kernels/cpu/fp8.h"
#include "kernels/cpu/rope.h"
#include "model/backend/cpu_backend.h"
#include "model/backend/kv_address.h"

namespace v4 {
namespace {

// FP8 block of the KV simulation (spec §3.4.2).
constexpr int64_t kFp8Block = 64;

// A pooled compressed row becomes a cached row: RMSNorm (accumulated in double, as the
// reference), RoPE at the block's first position (spec §3.9), then FP8 for main rows or the QAT
// transform for indexer keys.
void finish_row(const KvCompressor& cw, int64_t dim, int64_t rope_dim, uint64_t first_pos,
                bool indexer, float* row) {
  double ss = 0.0;
  for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(row[i]) * row[i];
  const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + cw.rms_eps));
  for (int64_t i = 0; i < dim; ++i) row[i] = row[i] * r * cw.norm[i];
  kernels::rope_rotate(row + dim - rope_dim, cw.rope_freqs, rope_dim / 2, first_pos, false);
  if (indexer) {
    kernels::indexer_qat_transform(row, dim);
  } else {
    kernels::fp8_round_trip(row, dim - rope_dim, kFp8Block);
  }
}

kernels::CompressorCarry carry_of(const KvSequenceView& s, size_t offset, uint32_t rows,
                                  uint32_t width) {
  float* values = s.carry + offset;
  return {values, values + size_t{rows} * width, rows, width};
}

}  // namespace

void CpuBackend::copy_on_device(const void* src, void* dst, size_t bytes) {
  if (bytes != 0) std::memmove(dst, src, bytes);
}

void CpuBackend::kv_append(const KvPageFormat& f, const KvLayerAddress& l, const KvStep& step,
                           const float* kv_rows, const KvCompressor* main,
                           const KvCompressor* indexer) {
  const uint32_t hd = f.shape.head_dim, idim = f.shape.indexer_dim;
  const int64_t rope_dim = f.shape.rope_dim;
  const int64_t tasks = std::min<int64_t>(step.n_sequences, threads());
  float* pooled =
      grow(kv_pooled_, static_cast<size_t>(std::max<int64_t>(tasks, 1)) * std::max(hd, idim));
  run(tasks, step.n_tokens * int64_t{hd} * 64, [&](int64_t task0, int64_t task1) {
    for (int64_t task = task0; task < task1; ++task) {
      float* row = pooled + task * std::max(hd, idim);
      for (int64_t s = step.n_sequences * task / tasks; s < step.n_sequences * (task + 1) / tasks;
           ++s) {
        const KvSequenceView& seq = step.sequences[s];
        for (int64_t t = step.sequence_begin[s]; t < step.sequence_begin[s + 1]; ++t) {
          const uint64_t pos = step.positions[t];
          std::memcpy(kv_raw_row(seq, l.raw_slot, hd, pos), kv_rows + t * hd, hd * sizeof(float));
          const uint64_t first_pos = pos + 1 - l.ratio;
          if (main &&
              kernels::compressor_push(carry_of(seq, l.carry_offset, l.carry_rows, l.carry_width),
                                       l.ratio, main->ape, main->a + t * main->width,
                                       main->g + t * main->width, pos, row)) {
            finish_row(*main, hd, rope_dim, first_pos, false, row);
            encode_main_row(f.storage, f.shape, row, kv_main_row(f, l, seq, pos / l.ratio));
          }
          if (indexer &&
              kernels::compressor_push(
                  carry_of(seq, l.indexer_carry_offset, 8, l.indexer_carry_width), 4, indexer->ape,
                  indexer->a + t * indexer->width, indexer->g + t * indexer->width, pos, row)) {
            finish_row(*indexer, idim, rope_dim, first_pos, true, row);
            encode_indexer_row(f.storage, f.shape, row, kv_indexer_row(f, l, seq, pos / 4));
          }
        }
      }
    }
  });
}

}  // namespace v4
