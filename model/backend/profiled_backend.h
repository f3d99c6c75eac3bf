// A Backend that forwards every op to another and times it (V4_DEVICE_PROFILE with a host
// backend): host ops return when their work is done, so the time of each call is the op's own.
// Matrix products are told apart by weight type and shape, the one thing that decides their
// speed; the table (model/backend/op_profile.h) is printed when the backend is destroyed.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "model/backend/backend.h"
#include "model/backend/op_profile.h"

namespace v4 {

class ProfiledBackend final : public Backend {
 public:
  explicit ProfiledBackend(std::unique_ptr<Backend> inner)
      : owned_(std::move(inner)), inner_(owned_.get()) {}
  // Times `inner`, which outlives it (memory allocated through it stays valid after).
  explicit ProfiledBackend(Backend& inner) : inner_(&inner) {}
  ~ProfiledBackend() override;

  const OpProfile& profile() const { return profile_; }

  using Backend::matmul;
  unsigned threads() const override { return inner_->threads(); }
  std::unique_ptr<DeviceBuffer> allocate(size_t bytes) override { return inner_->allocate(bytes); }
  Status copy_to_device(const void* host, const Tensor& dst, size_t offset, size_t bytes) override;
  Status copy_to_host(const Tensor& src, size_t offset, void* host, size_t bytes) override;
  Status read_back(const void* src, void* host, size_t bytes) override;
  void copy_on_device(const void* src, void* dst, size_t bytes) override;
  Status synchronize() override { return inner_->synchronize(); }
  uint64_t kernel_launches() const override { return inner_->kernel_launches(); }
  void profile_section(const std::string& name) override {
    profile_.begin_section(name);
    inner_->profile_section(name);
  }
  void matmul(const kernels::MatrixView& w, const float* x, int64_t x_stride, int64_t n_tokens,
              float* y, int64_t y_stride) override;
  void matmul_shared(const float* x, int64_t n_tokens,
                     std::span<const MatmulTarget> targets) override;
  void norm_matmul_shared(float* x, const float* norm_weight, int64_t width, float eps,
                          int64_t n_tokens, std::span<const MatmulTarget> targets) override;
  void matmul_groups(const kernels::MatrixView& w, int64_t groups, const float* x, int64_t n_tokens,
                     float* y) override;
  bool split_q8_0_rows(kernels::MatrixView& w, int64_t rows) override {
    return inner_->split_q8_0_rows(w, rows);
  }
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
  void transform_heads(int64_t n_tokens, std::span<const HeadRows> rows) override;
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

 private:
  template <class F>
  auto timed(const std::string& name, F&& op) {
    const auto start = std::chrono::steady_clock::now();
    struct Stop {
      OpProfile& profile;
      const std::string& name;
      std::chrono::steady_clock::time_point start;
      ~Stop() {
        profile.add(
            name, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
    } stop{profile_, name, start};
    return op();
  }

  std::unique_ptr<Backend> owned_;
  Backend* inner_;
  OpProfile profile_;
};

}  // namespace v4
