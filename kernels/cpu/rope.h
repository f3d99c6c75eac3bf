// Rotary position embedding of one head's tail (spec §3.4.1): interleaved pairs (x[2k], x[2k+1])
// rotated by θ = pos·ω_k, the angle taken in double; `inverse` rotates by −θ (the attention
// output). The frequencies ω_k come from the layer's RoPE parameters (model/v4/rope.h).
#pragma once

#include <cstdint>

namespace v4::kernels {

void rope_rotate(float* x, const float* freqs, int64_t n_pairs, uint64_t pos, bool inverse);

}  // namespace v4::kernels
