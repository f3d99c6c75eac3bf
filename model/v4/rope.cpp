#include "model/v4/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/cpu/rope.h"
#include "model/v4/v4_config.h"

namespace v4 {

RopeParams rope_params_for_ratio(const V4Config& c, uint32_t compress_ratio) {
  RopeParams p;
  p.rope_dim = c.rope_dim;
  if (compress_ratio == 0) {
    p.freq_base = c.rope_freq_base;
    return p;
  }
  p.freq_base = c.compress_rope_freq_base;
  p.yarn = true;
  p.scaling_factor = c.rope_scaling_factor;
  p.original_context = c.rope_original_context;
  p.beta_fast = c.yarn_beta_fast;
  p.beta_slow = c.yarn_beta_slow;
  return p;
}

YarnRange yarn_correction_range(const RopeParams& p) {
  auto dim_for = [&](double beta) {
    return p.rope_dim *
           std::log(static_cast<double>(p.original_context) / (2 * std::numbers::pi * beta)) /
           (2 * std::log(static_cast<double>(p.freq_base)));
  };
  const double low = std::floor(dim_for(p.beta_fast));
  const double high = std::ceil(dim_for(p.beta_slow));
  const double top = p.rope_dim - 1.0;
  return {static_cast<float>(std::clamp(low, 0.0, top)),
          static_cast<float>(std::clamp(high, 0.0, top))};
}

std::vector<float> rope_frequencies(const RopeParams& p) {
  const uint32_t n_pairs = p.rope_dim / 2;
  std::vector<float> freqs(n_pairs);
  for (uint32_t k = 0; k < n_pairs; ++k) {
    freqs[k] =
        static_cast<float>(1.0 / std::pow(static_cast<double>(p.freq_base), 2.0 * k / p.rope_dim));
  }
  if (!p.yarn) return freqs;
  YarnRange r = yarn_correction_range(p);
  if (r.high == r.low) r.high += 0.001f;  // as the reference's linear ramp guards a zero range
  for (uint32_t k = 0; k < n_pairs; ++k) {
    const float ramp = std::clamp((static_cast<float>(k) - r.low) / (r.high - r.low), 0.0f, 1.0f);
    const float keep = 1.0f - ramp;  // γ_k: 1 keeps the original frequency
    freqs[k] = freqs[k] / p.scaling_factor * (1.0f - keep) + freqs[k] * keep;
  }
  return freqs;
}

void rope_rotate(float* x, const std::vector<float>& freqs, uint64_t pos, bool inverse) {
  kernels::rope_rotate(x, freqs.data(), static_cast<int64_t>(freqs.size()), pos, inverse);
}

}  // namespace v4
