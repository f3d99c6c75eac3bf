// Per-format row quantizers behind quantize_row() (spec §6). Internal to kernels/cpu: callers use
// quant.h. Each takes n values (a multiple of the block size) and writes n / block_size blocks.
#pragma once

#include <cstdint>

#include "kernels/cpu/quant_blocks.h"

namespace v4::kernels {

// quantize_simple.cpp: ggml's reference algorithms.
void quantize_row_mxfp4(const float* x, BlockMXFP4* y, int64_t n);

// quantize_k.cpp: ggml's quantize_row_q{2,4,5,6}_K_ref.
void quantize_row_q2_k(const float* x, BlockQ2K* y, int64_t n);
void quantize_row_q4_k(const float* x, BlockQ4K* y, int64_t n);
void quantize_row_q5_k(const float* x, BlockQ5K* y, int64_t n);
void quantize_row_q6_k(const float* x, BlockQ6K* y, int64_t n);

// quantize_iq2.cpp / quantize_iq1.cpp: per-group nearest-grid search with a least-squares scale
// (not ggml's importance-weighted search, which needs its neighbour tables).
void quantize_row_iq2_xxs(const float* x, BlockIQ2XXS* y, int64_t n);
void quantize_row_iq2_xs(const float* x, BlockIQ2XS* y, int64_t n);
void quantize_row_iq1_s(const float* x, BlockIQ1S* y, int64_t n);
void quantize_row_iq1_m(const float* x, BlockIQ1M* y, int64_t n);

}  // namespace v4::kernels
