// Rotary position embedding of the last rope_dim dims of a head (spec §3.4.1): interleaved pairs
// (x[2k], x[2k+1]) rotated by θ = t·ω_k. Uncompressed layers and the MTP block use ω_k =
// base^(-2k/rope_dim); compressed layers use the compress base with YaRN frequency blending and
// no magnitude correction.
#pragma once

#include <cstdint>
#include <vector>

namespace v4 {

struct V4Config;

struct RopeParams {
  uint32_t rope_dim = 64;
  float freq_base = 10000.0f;
  bool yarn = false;
  float scaling_factor = 1.0f;
  uint64_t original_context = 65536;
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
};

// Parameters for a layer with the given compress ratio (0: plain RoPE; 4 or 128: YaRN).
RopeParams rope_params_for_ratio(const V4Config& config, uint32_t compress_ratio);

// YaRN correction range [low, high] in pair indices: low = floor(dim(beta_fast)), high =
// ceil(dim(beta_slow)) with dim(β) = rope_dim·ln(ctx/(2πβ)) / (2·ln base), clamped to
// [0, rope_dim-1].
struct YarnRange {
  float low;
  float high;
};
YarnRange yarn_correction_range(const RopeParams& params);

// ω_k for k = 0..rope_dim/2-1.
std::vector<float> rope_frequencies(const RopeParams& params);

// Rotates the rope_dim values at `x` (the tail of one head) to position `pos`; `inverse` rotates
// by -θ (the attention output, spec §3.4).
void rope_rotate(float* x, const std::vector<float>& freqs, uint64_t pos, bool inverse);

}  // namespace v4
