// Measures which weight bytes a forward step actually reads, for bandwidth accounting (how close
// decode runs to the memory roofline). Every weight matrix reaches the forward through a Backend
// op, so a Backend decorator that notes each matrix's byte range sees all of them, routed experts
// included: only the experts the router really selected are read.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/function_ref.h"
#include "model/backend/backend.h"

namespace v4 {

struct V4Weights;

struct ByteRange {
  const uint8_t* begin = nullptr;
  const uint8_t* end = nullptr;
};

// Forwards every op to `inner` and records the bytes of each weight matrix an op reads.
class WeightTrafficRecorder final : public Backend {
 public:
  explicit WeightTrafficRecorder(Backend& inner) : inner_(inner) {}

  unsigned threads() const override { return inner_.threads(); }
  std::unique_ptr<DeviceBuffer> allocate(size_t bytes) override { return inner_.allocate(bytes); }
  Status copy_to_device(const void* host, const Tensor& dst, size_t offset, size_t bytes) override {
    return inner_.copy_to_device(host, dst, offset, bytes);
  }
  Status copy_to_host(const Tensor& src, size_t offset, void* host, size_t bytes) override {
    return inner_.copy_to_host(src, offset, host, bytes);
  }
  // Steps are recorded only while nothing is counted: counting is host work per op, which a
  // replay would skip.
  bool can_capture() const override { return !recording_ && inner_.can_capture(); }
  void begin_capture() override { inner_.begin_capture(); }
  Result<std::unique_ptr<StepGraph>> end_capture() override { return inner_.end_capture(); }
  Status replay(StepGraph& graph) override { return inner_.replay(graph); }
  Status reserve_scratch(const StepShapes& steps, const StepShapes& recorded_steps) override {
    return inner_.reserve_scratch(steps, recorded_steps);
  }
  uint64_t scratch_generation() const override { return inner_.scratch_generation(); }
  uint64_t kernel_launches() const override { return inner_.kernel_launches(); }
  void profile_section(const std::string& name) override { inner_.profile_section(name); }
  uint64_t scratch_bytes() const override { return inner_.scratch_bytes(); }
  uint64_t scratch_requested_bytes() const override { return inner_.scratch_requested_bytes(); }
  void use_step_scratch(bool on) override { inner_.use_step_scratch(on); }
  void matmul(const kernels::MatrixView& w, const float* x, int64_t x_stride, int64_t n_tokens,
              float* y, int64_t y_stride) override;
  void matmul_shared(const float* x, int64_t n_tokens,
                     std::span<const MatmulTarget> targets) override;
  void norm_matmul_shared(float* x, const float* norm_weight, int64_t width, float eps,
                          int64_t n_tokens, std::span<const MatmulTarget> targets) override;
  void matmul_groups(const kernels::MatrixView& w, int64_t groups, const float* x, int64_t n_tokens,
                     float* y) override;
  bool split_q8_0_rows(kernels::MatrixView& w, int64_t rows) override {
    return inner_.split_q8_0_rows(w, rows);
  }
  void rms_norm(const float* x, const float* weight, int64_t n, int64_t n_rows, float eps,
                float* y) override {
    inner_.rms_norm(x, weight, n, n_rows, eps, y);
  }
  void embed(const kernels::MatrixView& table, const int32_t* tokens, int64_t n_tokens,
             uint32_t copies, float* x) override {
    inner_.embed(table, tokens, n_tokens, copies, x);  // counted from the tokens instead
  }
  void hc_pre(const HcMixing& hc, const float* x, int64_t n_tokens, float* y, float* post,
              float* comb) override;
  void hc_post(const float* f, const float* f_added, const float* x, const float* post,
               const float* comb, int64_t n_tokens, uint32_t n_hc, int64_t n_embd,
               float* x_out) override {
    inner_.hc_post(f, f_added, x, post, comb, n_tokens, n_hc, n_embd, x_out);
  }
  void hc_head(const HcMixing& hc, const float* x, int64_t n_tokens, float* z) override;
  void rope(float* x, int64_t n_tokens, int64_t heads, int64_t head_stride, int64_t offset,
            int64_t rope_dim, const uint64_t* positions, const float* freqs,
            bool inverse) override {
    inner_.rope(x, n_tokens, heads, head_stride, offset, rope_dim, positions, freqs, inverse);
  }
  void fp8_round_trip(float* x, int64_t n_rows, int64_t stride, int64_t n, int64_t block) override {
    inner_.fp8_round_trip(x, n_rows, stride, n, block);
  }
  void indexer_qat(float* x, int64_t n_rows, int64_t dim) override {
    inner_.indexer_qat(x, n_rows, dim);
  }
  void transform_heads(int64_t n_tokens, std::span<const HeadRows> rows) override {
    inner_.transform_heads(n_tokens, rows);
  }
  void scale(float* x, int64_t n, float s) override { inner_.scale(x, n, s); }
  void route_experts(const ExpertRouting& routing, const float* logits, const int32_t* tokens,
                     int64_t n_tokens, int32_t* experts, float* weights) override {
    inner_.route_experts(routing, logits, tokens, n_tokens, experts, weights);
  }
  void group_by_expert(const int32_t* experts, const float* weights, int64_t n_tokens, uint32_t k,
                       uint32_t n_expert, int64_t* expert_offsets, int64_t* source_token,
                       float* row_scale, int64_t* slot_row) override {
    inner_.group_by_expert(experts, weights, n_tokens, k, n_expert, expert_offsets, source_token,
                           row_scale, slot_row);
  }
  // Reads expert_offsets back from the backend's memory when recording (a device sync).
  void grouped_expert_ffn(const ExpertFfnWeights& w, const int64_t* expert_offsets,
                          uint32_t n_expert, int64_t n_rows, const float* x, const int64_t* x_rows,
                          const float* row_scales, float* y) override;
  void gather_rows(const float* src, int64_t width, const int64_t* rows, int64_t n,
                   float* dst) override {
    inner_.gather_rows(src, width, rows, n, dst);
  }
  void copy_rows(const float* src, int64_t src_stride, const int64_t* rows, int64_t n,
                 int64_t width, float* dst, int64_t dst_stride) override {
    inner_.copy_rows(src, src_stride, rows, n, width, dst, dst_stride);
  }
  void sum_slots(const float* slots, const int64_t* slot_rows, int64_t n_tokens, uint32_t k,
                 int64_t width, float* out) override {
    inner_.sum_slots(slots, slot_rows, n_tokens, k, width, out);
  }
  void add(const float* a, int64_t n, float* y) override { inner_.add(a, n, y); }
  void top_logits(const float* logits, int64_t n_rows, int64_t n_vocab, uint32_t k, int32_t* ids,
                  float* values, double* log_normalizer) override {
    inner_.top_logits(logits, n_rows, n_vocab, k, ids, values, log_normalizer);
  }
  void draw_rows(const float* logits, int64_t n_rows, int64_t n_vocab,
                 const kernels::RowDrawParams* params, int32_t* tokens,
                 float* token_logits) override {
    inner_.draw_rows(logits, n_rows, n_vocab, params, tokens, token_logits);
  }
  Status read_back(const void* src, void* host, size_t bytes) override {
    return inner_.read_back(src, host, bytes);
  }
  void copy_on_device(const void* src, void* dst, size_t bytes) override {
    inner_.copy_on_device(src, dst, bytes);
  }
  Status synchronize() override { return inner_.synchronize(); }
  void kv_append(const KvPageFormat& format, const KvLayerAddress& layer, const KvStep& step,
                 const float* kv_rows, const KvCompressor* main,
                 const KvCompressor* indexer) override {
    inner_.kv_append(format, layer, step, kv_rows, main, indexer);
  }
  void indexer_topk(const KvPageFormat& format, const KvLayerAddress& layer, const KvStep& step,
                    const float* q, const float* head_weights, float weight_scale, int64_t heads,
                    uint32_t top_k, uint32_t* chosen, uint32_t* chosen_count) override {
    inner_.indexer_topk(format, layer, step, q, head_weights, weight_scale, heads, top_k, chosen,
                        chosen_count);
  }
  void sparse_attention(const KvPageFormat& format, const KvLayerAddress& layer, const KvStep& step,
                        uint32_t window, const float* q, int64_t n_head, const float* sinks,
                        const uint32_t* chosen, const uint32_t* chosen_count, uint32_t top_k,
                        float* o, const OutputRope* undo_rope) override {
    inner_.sparse_attention(format, layer, step, window, q, n_head, sinks, chosen, chosen_count,
                            top_k, o, undo_rope);
  }
  void parallel_for(int64_t n, FunctionRef<void(int64_t, int64_t)> fn) override {
    inner_.parallel_for(n, fn);
  }
  using Backend::matmul;

  // The ranges recorded since the last call, in call order (one per matmul).
  std::vector<ByteRange> take_ranges();

  // Off: a plain pass-through that records nothing and, above all, reads nothing back (the
  // dispatch plan's read-back waits for the device), so timed passes run as without it.
  void set_recording(bool on) { recording_ = on; }

 private:
  void record(const kernels::MatrixView& w);

  Backend& inner_;
  bool recording_ = true;
  std::vector<ByteRange> ranges_;
  std::vector<int64_t> offsets_;  // the last grouped_expert_ffn call's, read back
};

// The weight bytes one forward step read.
struct StepTraffic {
  uint64_t matrix_bytes = 0;  // distinct bytes of matrices read (a matrix read twice counts once)
  uint64_t embedding_bytes = 0;  // token_embd rows of the step's distinct tokens
  uint64_t small_bytes = 0;      // f32 norms, HC scale/base, sinks, biases (widened at bind time)
  uint64_t routed_experts = 0;   // (layer, expert) pairs whose gate matrix was read
  uint64_t routed_expert_bytes = 0;  // part of matrix_bytes: those experts' gate/up/down slices

  uint64_t total() const { return matrix_bytes + embedding_bytes + small_bytes; }
  StepTraffic& operator+=(const StepTraffic& other);
};

// Classifies one step's recorded ranges against the main stack of `weights`. `tokens` are the
// step's input ids: the forward dequantizes their embedding rows directly, not through matmul.
StepTraffic summarize_step_traffic(const V4Weights& weights, std::span<const ByteRange> ranges,
                                   std::span<const int32_t> tokens);

}  // namespace v4
