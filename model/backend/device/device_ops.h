// The ops of a device backend (model/backend/backend.h), written once over an executor
// (kernels/device/host_exec.h, kernels/cuda/cuda_exec.cuh): CudaBackend runs them on a GPU and
// EmulatedDeviceBackend runs the very same per-index code on the host, so that every kernel's
// logic is checked against CpuBackend on any machine. Each op takes the Backend op's arguments
// (device pointers) after the executor and the backend's scratch.
//
// The definitions live in one header per op family (device_ops_<family>.h); each family is
// instantiated for both executors in its own translation units, with the macros below.
//
// Batch invariance (design invariant): every output element is computed by one fixed procedure
// that depends only on its own inputs — never on how many tokens share the call or on launch
// geometry — so a token's results are bit-identical in any batch.
#pragma once

#include <cstdint>

#include "core/hd.h"
#include "model/backend/backend.h"
#include "model/backend/device/device_scratch.h"

namespace v4::device {

// --- matmul family (device_ops_matmul.h, device_ops_experts.h) ---
// A product's outputs left before its chunk pass (matmul_typed with `unreduced`): output (t, r)
// is its chunks' partial sums added in order from zero, which is what that pass writes, so a
// consumer that reads them through `at` gets the same bits one launch sooner. Rows of one chunk
// are the outputs themselves.
struct UnreducedRows {
  const float* data = nullptr;
  int64_t rows = 0, chunks = 1;
  V4_HD float at(int64_t t, int64_t r) const {
    if (chunks == 1) return data[t * rows + r];
    float acc = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) acc += data[(t * rows + r) * chunks + c];
    return acc;
  }
};

template <class E>
void matmul(E& e, DeviceScratch<E>& s, const kernels::MatrixView& w, const float* x,
            int64_t x_stride, int64_t n_tokens, float* y, int64_t y_stride);
template <class E>
void matmul_split(E& e, DeviceScratch<E>& s, const kernels::MatrixView& w, const float* x,
                  int64_t x_stride, int64_t n_tokens, float* y, int64_t y_stride,
                  int64_t chunk_units);
// matmul (x rows of w.cols floats, y rows of w.rows) with the chunk pass left to the consumer,
// which reads the outputs through the returned UnreducedRows (the HC mixes).
template <class E>
UnreducedRows matmul_unreduced(E& e, DeviceScratch<E>& s, const kernels::MatrixView& w,
                               const float* x, int64_t n_tokens, float* y);
template <class E>
void matmul_groups(E& e, DeviceScratch<E>& s, const kernels::MatrixView& w, int64_t groups,
                   const float* x, int64_t n_tokens, float* y);
template <class E>
void matmul_shared(E& e, DeviceScratch<E>& s, const float* x, int64_t n_tokens,
                   const MatmulTarget* targets, size_t n_targets);
template <class E>
void norm_matmul_shared(E& e, DeviceScratch<E>& s, float* x, const float* norm_weight,
                        int64_t width, float eps, int64_t n_tokens, const MatmulTarget* targets,
                        size_t n_targets);
template <class E>
void embed(E& e, DeviceScratch<E>& s, const kernels::MatrixView& table, const int32_t* tokens,
           int64_t n_tokens, uint32_t copies, float* x);
// Rewrites rows [0, rows) of the Q8_0 matrix w (device memory; a stack counts all its rows) in
// the split layout, in place, and marks w (device_ops_q8_0_split.h); false, with nothing changed,
// where its rows do not allow it.
template <class E>
bool split_q8_0_rows(E& e, DeviceScratch<E>& s, kernels::MatrixView& w, int64_t rows);
template <class E>
void grouped_expert_ffn(E& e, DeviceScratch<E>& s, const ExpertFfnWeights& w,
                        const int64_t* expert_offsets, uint32_t n_expert, int64_t n_rows,
                        const float* x, const int64_t* x_rows, const float* row_scales, float* y);

// --- hyper-connection family (device_ops_hc.h) ---
template <class E>
void hc_pre(E& e, DeviceScratch<E>& s, const HcMixing& hc, const float* x, int64_t n_tokens,
            float* y, float* post, float* comb);
template <class E>
void hc_post(E& e, DeviceScratch<E>& s, const float* f, const float* f_added, const float* x,
             const float* post, const float* comb, int64_t n_tokens, uint32_t n_hc, int64_t n_embd,
             float* x_out);
template <class E>
void hc_head(E& e, DeviceScratch<E>& s, const HcMixing& hc, const float* x, int64_t n_tokens,
             float* z);

// --- elementwise family (device_ops_elementwise.h) ---
template <class E>
void rms_norm(E& e, DeviceScratch<E>& s, const float* x, const float* weight, int64_t n,
              int64_t n_rows, float eps, float* y);
template <class E>
void rope(E& e, DeviceScratch<E>& s, float* x, int64_t n_tokens, int64_t heads, int64_t head_stride,
          int64_t offset, int64_t rope_dim, const uint64_t* positions, const float* freqs,
          bool inverse);
template <class E>
void fp8_round_trip(E& e, DeviceScratch<E>& s, float* x, int64_t n_rows, int64_t stride, int64_t n,
                    int64_t block);
template <class E>
void indexer_qat(E& e, DeviceScratch<E>& s, float* x, int64_t n_rows, int64_t dim);
template <class E>
void transform_heads(E& e, DeviceScratch<E>& s, int64_t n_tokens, std::span<const HeadRows> rows);
template <class E>
void scale(E& e, DeviceScratch<E>& s, float* x, int64_t n, float factor);
template <class E>
void add(E& e, DeviceScratch<E>& s, const float* a, int64_t n, float* y);
template <class E>
void gather_rows(E& e, DeviceScratch<E>& s, const float* src, int64_t width, const int64_t* rows,
                 int64_t n, float* dst);
template <class E>
void copy_rows(E& e, DeviceScratch<E>& s, const float* src, int64_t src_stride, const int64_t* rows,
               int64_t n, int64_t width, float* dst, int64_t dst_stride);
template <class E>
void sum_slots(E& e, DeviceScratch<E>& s, const float* slots, const int64_t* slot_rows,
               int64_t n_tokens, uint32_t k, int64_t width, float* out);

// --- MoE routing family (device_ops_routing.h) ---
template <class E>
void route_experts(E& e, DeviceScratch<E>& s, const ExpertRouting& routing, const float* logits,
                   const int32_t* tokens, int64_t n_tokens, int32_t* experts, float* weights);
template <class E>
void group_by_expert(E& e, DeviceScratch<E>& s, const int32_t* experts, const float* weights,
                     int64_t n_tokens, uint32_t k, uint32_t n_expert, int64_t* expert_offsets,
                     int64_t* source_token, float* row_scale, int64_t* slot_row);

// --- attention family (device_ops_attention.h, device_ops_sparse_attention.h) ---
template <class E>
void kv_append(E& e, DeviceScratch<E>& s, const KvPageFormat& format, const KvLayerAddress& layer,
               const KvStep& step, const float* kv_rows, const KvCompressor* main,
               const KvCompressor* indexer);
template <class E>
void indexer_topk(E& e, DeviceScratch<E>& s, const KvPageFormat& format,
                  const KvLayerAddress& layer, const KvStep& step, const float* q,
                  const float* head_weights, float weight_scale, int64_t heads, uint32_t top_k,
                  uint32_t* chosen, uint32_t* chosen_count);
template <class E>
void sparse_attention(E& e, DeviceScratch<E>& s, const KvPageFormat& format,
                      const KvLayerAddress& layer, const KvStep& step, uint32_t window,
                      const float* q, int64_t n_head, const float* sinks, const uint32_t* chosen,
                      const uint32_t* chosen_count, uint32_t top_k, float* o,
                      const OutputRope* undo_rope);

// --- sampling family (device_ops_sampling.h) ---
template <class E>
void top_logits(E& e, DeviceScratch<E>& s, const float* logits, int64_t n_rows, int64_t n_vocab,
                uint32_t k, int32_t* ids, float* values, double* log_normalizer);
template <class E>
void draw_rows(E& e, DeviceScratch<E>& s, const float* logits, int64_t n_rows, int64_t n_vocab,
               const kernels::RowDrawParams* params, int32_t* tokens, float* token_logits);

}  // namespace v4::device

// Explicit instantiations, one macro per family, used by the family's translation units.
#define V4_DEVICE_OPS_MATMUL(E)                                                                    \
  template void v4::device::matmul<E>(E&, DeviceScratch<E>&, const kernels::MatrixView&,           \
                                      const float*, int64_t, int64_t, float*, int64_t);            \
  template void v4::device::matmul_split<E>(E&, DeviceScratch<E>&, const kernels::MatrixView&,     \
                                            const float*, int64_t, int64_t, float*, int64_t,       \
                                            int64_t);                                              \
  template v4::device::UnreducedRows v4::device::matmul_unreduced<E>(                              \
      E&, DeviceScratch<E>&, const kernels::MatrixView&, const float*, int64_t, float*);           \
  template void v4::device::matmul_groups<E>(E&, DeviceScratch<E>&, const kernels::MatrixView&,    \
                                             int64_t, const float*, int64_t, float*);              \
  template void v4::device::matmul_shared<E>(E&, DeviceScratch<E>&, const float*, int64_t,         \
                                             const MatmulTarget*, size_t);                         \
  template void v4::device::norm_matmul_shared<E>(E&, DeviceScratch<E>&, float*, const float*,     \
                                                  int64_t, float, int64_t, const MatmulTarget*,    \
                                                  size_t);                                         \
  template void v4::device::embed<E>(E&, DeviceScratch<E>&, const kernels::MatrixView&,            \
                                     const int32_t*, int64_t, uint32_t, float*);                   \
  template bool v4::device::split_q8_0_rows<E>(E&, DeviceScratch<E>&, kernels::MatrixView&,        \
                                               int64_t);                                           \
  template void v4::device::grouped_expert_ffn<E>(E&, DeviceScratch<E>&, const ExpertFfnWeights&,  \
                                                  const int64_t*, uint32_t, int64_t, const float*, \
                                                  const int64_t*, const float*, float*);

#define V4_DEVICE_OPS_HC(E)                                                                  \
  template void v4::device::hc_pre<E>(E&, DeviceScratch<E>&, const HcMixing&, const float*,  \
                                      int64_t, float*, float*, float*);                      \
  template void v4::device::hc_post<E>(E&, DeviceScratch<E>&, const float*, const float*,    \
                                       const float*, const float*, const float*, int64_t,    \
                                       uint32_t, int64_t, float*);                           \
  template void v4::device::hc_head<E>(E&, DeviceScratch<E>&, const HcMixing&, const float*, \
                                       int64_t, float*);

#define V4_DEVICE_OPS_ELEMENTWISE(E)                                                           \
  template void v4::device::rms_norm<E>(E&, DeviceScratch<E>&, const float*, const float*,     \
                                        int64_t, int64_t, float, float*);                      \
  template void v4::device::rope<E>(E&, DeviceScratch<E>&, float*, int64_t, int64_t, int64_t,  \
                                    int64_t, int64_t, const uint64_t*, const float*, bool);    \
  template void v4::device::fp8_round_trip<E>(E&, DeviceScratch<E>&, float*, int64_t, int64_t, \
                                              int64_t, int64_t);                               \
  template void v4::device::indexer_qat<E>(E&, DeviceScratch<E>&, float*, int64_t, int64_t);   \
  template void v4::device::transform_heads<E>(E&, DeviceScratch<E>&, int64_t,                 \
                                               std::span<const HeadRows>);                     \
  template void v4::device::scale<E>(E&, DeviceScratch<E>&, float*, int64_t, float);           \
  template void v4::device::add<E>(E&, DeviceScratch<E>&, const float*, int64_t, float*);      \
  template void v4::device::gather_rows<E>(E&, DeviceScratch<E>&, const float*, int64_t,       \
                                           const int64_t*, int64_t, float*);                   \
  template void v4::device::copy_rows<E>(E&, DeviceScratch<E>&, const float*, int64_t,         \
                                         const int64_t*, int64_t, int64_t, float*, int64_t);   \
  template void v4::device::sum_slots<E>(E&, DeviceScratch<E>&, const float*, const int64_t*,  \
                                         int64_t, uint32_t, int64_t, float*);

#define V4_DEVICE_OPS_ROUTING(E)                                                              \
  template void v4::device::route_experts<E>(E&, DeviceScratch<E>&, const ExpertRouting&,     \
                                             const float*, const int32_t*, int64_t, int32_t*, \
                                             float*);                                         \
  template void v4::device::group_by_expert<E>(E&, DeviceScratch<E>&, const int32_t*,         \
                                               const float*, int64_t, uint32_t, uint32_t,     \
                                               int64_t*, int64_t*, float*, int64_t*);

#define V4_DEVICE_OPS_ATTENTION(E)                                                                \
  template void v4::device::kv_append<E>(E&, DeviceScratch<E>&, const KvPageFormat&,              \
                                         const KvLayerAddress&, const KvStep&, const float*,      \
                                         const KvCompressor*, const KvCompressor*);               \
  template void v4::device::indexer_topk<E>(                                                      \
      E&, DeviceScratch<E>&, const KvPageFormat&, const KvLayerAddress&, const KvStep&,           \
      const float*, const float*, float, int64_t, uint32_t, uint32_t*, uint32_t*);                \
  template void v4::device::sparse_attention<E>(                                                  \
      E&, DeviceScratch<E>&, const KvPageFormat&, const KvLayerAddress&, const KvStep&, uint32_t, \
      const float*, int64_t, const float*, const uint32_t*, const uint32_t*, uint32_t, float*,    \
      const OutputRope*);

#define V4_DEVICE_OPS_SAMPLING(E)                                                                \
  template void v4::device::top_logits<E>(E&, DeviceScratch<E>&, const float*, int64_t, int64_t, \
                                          uint32_t, int32_t*, float*, double*);                  \
  template void v4::device::draw_rows<E>(E&, DeviceScratch<E>&, const float*, int64_t, int64_t,  \
                                         const kernels::RowDrawParams*, int32_t*, float*);
