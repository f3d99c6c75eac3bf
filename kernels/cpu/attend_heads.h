// Sparse attention of one token's query heads over the rows it sees (spec §3.4): per head, a
// softmax with the head's sink logit over the scaled scores, then the weighted sum of the rows
// (V = K in V4). The scores use float_dot's lane order (kernels/cpu/float_dot_lanes.h); the
// softmax and the weighted sum run in row order. The SIMD kernels compute exactly this, several
// heads at a time, so every tier gives the scalar reference's result bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>

namespace v4::kernels {

// The rows a token attends to, and the heads to compute.
struct AttentionHeads {
  const float* const* rows;  // n_rows pointers to head_dim floats
  size_t n_rows;
  int64_t head_dim;
  const float* q;      // n_heads queries, head_dim apart
  const float* sinks;  // n_heads sink logits
  int64_t n_heads;
};

// o[h * head_dim + d] for h < n_heads; scratch holds at least n_heads * n_rows floats.
void attend_heads(const AttentionHeads& a, float* scratch, float* o);

// The scalar reference of attend_heads (tests compare the SIMD tiers with it).
void attend_heads_reference(const AttentionHeads& a, float* scratch, float* o);

}  // namespace v4::kernels
