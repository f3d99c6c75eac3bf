// The CPU Backend: a thread pool sized to the cores running the kernels of kernels/cpu. Scratch
// buffers are members that grow to the largest step seen and are reused, so steady-state steps
// do not allocate. One CpuBackend serves one forward at a time.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "core/function_ref.h"
#include "core/thread_pool.h"
#include "model/backend/backend.h"

namespace v4 {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(unsigned threads = 0);

  unsigned threads() const override { return pool_.size(); }
  std::unique_ptr<DeviceBuffer> allocate(size_t bytes) override;
  Status copy_to_device(const void* host, const Tensor& dst, size_t offset, size_t bytes) override;
  Status copy_to_host(const Tensor& src, size_t offset, void* host, size_t bytes) override;
  void copy_on_device(const void* src, void* dst, size_t bytes) override;
  Status read_back(const void* src, void* host, size_t bytes) override {
    if (bytes) std::memcpy(host, src, bytes);
    return Status::ok();
  }
  void matmul(const kernels::MatrixView& w, const float* x, int64_t x_stride, int64_t n_tokens,
              float* y, int64_t y_stride) override;
  void rms_norm(const float* x, const float* weight, int64_t n, int64_t n_rows, float eps,
                float* y) override;
  void embed(const kernels::MatrixView& table, const int32_t* tokens, int64_t n_tokens,
             uint32_t copies, float* x) override;
  void hc_pre(const HcMixing& hc, const float* x, int64_t n_tokens, float* y, float* post,
              float* comb) override;
  void hc_post(const float* f, const float* f_added, const float* x, const float* post,
               const float* comb, int64_t n_tokens, uint32_t n_hc, int64_t n_embd,
               float* x_out) override;
  void hc_head(const HcMixing& hc, const float* x, int64_t n_tokens, float* z) override;
  void rope(float* x, int64_t n_tokens, int64_t heads, int64_t head_stride, int64_t offset,
            int64_t rope_dim, const uint64_t* positions, const float* freqs, bool inverse) override;
  void fp8_round_trip(float* x, int64_t n_rows, int64_t stride, int64_t n, int64_t block) override;
  void indexer_qat(float* x, int64_t n_rows, int64_t dim) override;
  void scale(float* x, int64_t n, float s) override;
  void route_experts(const ExpertRouting& routing, const float* logits, const int32_t* tokens,
                     int64_t n_tokens, int32_t* experts, float* weights) override;
  void group_by_expert(const int32_t* experts, const float* weights, int64_t n_tokens, uint32_t k,
                       uint32_t n_expert, int64_t* expert_offsets, int64_t* source_token,
                       float* row_scale, int64_t* slot_row) override;
  void grouped_expert_ffn(const ExpertFfnWeights& w, const int64_t* expert_offsets,
                          uint32_t n_expert, int64_t n_rows, const float* x, const int64_t* x_rows,
                          const float* row_scales, float* y) override;
  void gather_rows(const float* src, int64_t width, const int64_t* rows, int64_t n,
                   float* dst) override;
  void copy_rows(const float* src, int64_t src_stride, const int64_t* rows, int64_t n,
                 int64_t width, float* dst, int64_t dst_stride) override;
  void sum_slots(const float* slots, const int64_t* slot_rows, int64_t n_tokens, uint32_t k,
                 int64_t width, float* out) override;
  void add(const float* a, int64_t n, float* y) override;
  void top_logits(const float* logits, int64_t n_rows, int64_t n_vocab, uint32_t k, int32_t* ids,
                  float* values, double* log_normalizer) override;
  void draw_rows(const float* logits, int64_t n_rows, int64_t n_vocab,
                 const kernels::RowDrawParams* params, int32_t* tokens,
                 float* token_logits) override;
  void kv_append(const KvPageFormat& format, const KvLayerAddress& layer, const KvStep& step,
                 const float* kv_rows, const KvCompressor* main,
                 const KvCompressor* indexer) override;
  void indexer_topk(const KvPageFormat& format, const KvLayerAddress& layer, const KvStep& step,
                    const float* q, const float* head_weights, float weight_scale, int64_t heads,
                    uint32_t top_k, uint32_t* chosen, uint32_t* chosen_count) override;
  void sparse_attention(const KvPageFormat& format, const KvLayerAddress& layer, const KvStep& step,
                        uint32_t window, const float* q, int64_t n_head, const float* sinks,
                        const uint32_t* chosen, const uint32_t* chosen_count, uint32_t top_k,
                        float* o, const OutputRope* undo_rope) override;
  void parallel_for(int64_t n, FunctionRef<void(int64_t, int64_t)> fn) override;
  using Backend::matmul;

 private:
  // Grows `v` to at least n elements (doubling, so a slowly growing need reallocates rarely)
  // and returns its data.
  template <class T>
  static T* grow(std::vector<T>& v, size_t n) {
    if (v.size() < n) v.resize(std::max(n, 2 * v.size()));
    return v.data();
  }
  // Runs fn over [0, n) on the pool, or inline when `work` (multiply-adds) is too small to pay
  // for waking it; the arithmetic per index is the same either way.
  void run(int64_t n, int64_t work, FunctionRef<void(int64_t, int64_t)> fn);
  // fn · RMSNorm(x) for the HC ops (see cpu_backend_hc.cpp).
  void hc_mix(const HcMixing& hc, const float* x, int64_t n);
  // Quantizes rows of x into `out` in the dot-product format of `type`.
  // Row t of x, or row x_rows[t] when x_rows is given, into row t of `out`.
  void quantize_rows(GgmlType type, const float* x, const int64_t* x_rows, int64_t cols,
                     int64_t rows, std::vector<uint8_t>& out);
  // Calls block(expert, r0, r1) for every block of kRowsPerTask output rows (of `rows`, each a
  // dot product over `cols`) of every expert with rows, all experts in one pass over the threads.
  void for_each_expert_block(const int64_t* expert_offsets, uint32_t n_expert, int64_t rows,
                             int64_t cols, FunctionRef<void(int32_t, int64_t, int64_t)> block);

  ThreadPool pool_;
  std::vector<uint8_t> quantized_;  // activation rows in the dot-product format
  // hc ops
  std::vector<float> hc_normed_, hc_mixes_, hc_pre_weights_;
  // routing
  std::vector<float> route_probs_;
  // grouped expert FFN
  std::vector<uint8_t> ffn_xq_gate_, ffn_xq_up_, ffn_hq_;
  std::vector<float> ffn_hidden_, ffn_up_;
  std::vector<int64_t> task_offsets_;
  std::vector<int32_t> task_experts_;
  // KV ops: pooled rows, the indexer's candidates, the rows a head attends to.
  std::vector<float> kv_pooled_, index_scores_, index_key_, attn_scores_, attn_decoded_;
  std::vector<uint32_t> index_ids_;
  std::vector<const float*> attn_rows_;
};

}  // namespace v4
