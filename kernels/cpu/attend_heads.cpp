#include "kernels/cpu/attend_heads.h"

#include <algorithm>

#include "kernels/cpu/attend_heads_simd.h"
#include "kernels/cpu/float_dot_lanes.h"
#include "kernels/cpu/vec_dot_avx2.h"
#include "kernels/cpu/vec_dot_avx512.h"

namespace v4::kernels {

void attend_heads_reference(const AttentionHeads& a, float* scratch, float* o) {
  const int64_t hd = a.head_dim;
  const float scale = attention_scale(hd);
  float* w = scratch;
  for (int64_t h = 0; h < a.n_heads; ++h) {
    const float* q = a.q + h * hd;
    for (size_t j = 0; j < a.n_rows; ++j) w[j] = float_dot(q, a.rows[j], hd) * scale;
    const float den = softmax_with_sink(w, a.n_rows, a.sinks[h]);
    float* out = o + h * hd;
    std::fill_n(out, hd, 0.0f);
    for (size_t j = 0; j < a.n_rows; ++j) {
      for (int64_t d = 0; d < hd; ++d) out[d] = out[d] + w[j] * a.rows[j][d];
    }
    for (int64_t d = 0; d < hd; ++d) out[d] = out[d] / den;
  }
}

void attend_heads(const AttentionHeads& a, float* scratch, float* o) {
  if (a.n_heads <= 0) return;
  if (attend_heads_simd_shape(a)) {
    if (cpu_has_avx512()) return attend_heads_avx512(a, scratch, o);
    if (cpu_has_avx2()) return attend_heads_avx2(a, scratch, o);
  }
  attend_heads_reference(a, scratch, o);
}

}  // namespace v4::kernels
