// A Backend whose ops run through an executor (device_ops.h): memory, copies and the op calls,
// written once. CudaBackend is DeviceBackend<CudaExec>; EmulatedDeviceBackend is
// DeviceBackend<HostExec>, the same kernels on the host, which tests compare with CpuBackend.
#pragma once

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <string>

#include "model/backend/backend.h"
#include "model/backend/device/device_ops.h"
#include "model/backend/device/scratch_bound.h"
#include "model/backend/op_profile.h"

namespace v4::device {

// Bytes [offset, offset + bytes) of `t` lie inside its buffer (copy_to_device/_host checks).
Status check_tensor_span(const Tensor& t, size_t offset, size_t bytes, const char* what);

template <class Exec>
class ExecBuffer final : public DeviceBuffer {
 public:
  ExecBuffer(Exec& exec, void* data, size_t bytes, DeviceKind kind)
      : exec_(exec), data_(data), bytes_(bytes), kind_(kind) {}
  ~ExecBuffer() override { exec_.free(data_); }
  ExecBuffer(const ExecBuffer&) = delete;
  ExecBuffer& operator=(const ExecBuffer&) = delete;
  void* data() override { return data_; }
  size_t bytes() const override { return bytes_; }
  DeviceKind device() const override { return kind_; }

 private:
  Exec& exec_;
  void* data_;
  size_t bytes_;
  DeviceKind kind_;
};

template <class Exec>
class ExecGraph final : public StepGraph {
 public:
  explicit ExecGraph(typename Exec::Graph graph) : graph(std::move(graph)) {}
  typename Exec::Graph graph;
};

template <class Exec>
class DeviceBackend : public Backend {
 public:
  // `exec` must be initialised; the backend keeps it (by value) for its lifetime.
  explicit DeviceBackend(Exec exec)
      : exec_(std::move(exec)), scratch_(exec_), step_scratch_(exec_) {
    if (std::getenv("V4_DEVICE_PROFILE")) profile_ = std::make_unique<OpProfile>();
  }
  ~DeviceBackend() override {
    if (profile_) profile_->print("device op profile (each op timed to its end)");
  }
  void profile_section(const std::string& name) override {
    if (profile_) profile_->begin_section(name);
  }

  Exec& exec() { return exec_; }
  void set_op_options(const DeviceOpOptions& options) {
    scratch_.set_options(options);
    step_scratch_.set_options(options);
  }
  DeviceKind kind() const { return Exec::kIsHost ? DeviceKind::kCpu : DeviceKind::kCuda; }

  unsigned threads() const override { return 1; }
  // Throws std::bad_alloc when the device is out of memory (callers size what they ask for;
  // weights are uploaded only after a fit check, see device_weights.h).
  std::unique_ptr<DeviceBuffer> allocate(size_t bytes) override {
    void* p = exec_.malloc(bytes);
    if (!p) throw std::bad_alloc();
    return std::make_unique<ExecBuffer<Exec>>(exec_, p, bytes, kind());
  }
  Status copy_to_device(const void* host, const Tensor& dst, size_t offset, size_t bytes) override {
    if (Status s = check_tensor_span(dst, offset, bytes, "copy_to_device"); !s) return s;
    return exec_.copy_in(dst.data<uint8_t>() + offset, host, bytes);
  }
  Status copy_to_host(const Tensor& src, size_t offset, void* host, size_t bytes) override {
    if (Status s = check_tensor_span(src, offset, bytes, "copy_to_host"); !s) return s;
    return exec_.copy_out(host, src.data<uint8_t>() + offset, bytes);
  }
  Status read_back(const void* src, void* host, size_t bytes) override {
    return exec_.copy_out(host, src, bytes);
  }
  void copy_on_device(const void* src, void* dst, size_t bytes) override {
    exec_.copy(dst, src, bytes);
  }
  Status synchronize() override { return exec_.sync(); }

  // Not while profiling: the profile waits for each op, which a capture cannot.
  bool can_capture() const override { return !profile_; }
  void begin_capture() override { exec_.begin_capture(); }
  Result<std::unique_ptr<StepGraph>> end_capture() override {
    Result<typename Exec::Graph> graph = exec_.end_capture();
    if (!graph) return graph.status();
    return std::unique_ptr<StepGraph>(std::make_unique<ExecGraph<Exec>>(std::move(*graph)));
  }
  Status replay(StepGraph& graph) override {
    auto* g = dynamic_cast<ExecGraph<Exec>*>(&graph);
    if (!g) return Status::error("a step graph of another backend");
    return exec_.replay(g->graph);
  }
  Status reserve_scratch(const StepShapes& steps, const StepShapes& recorded_steps) override {
    const ScratchSizes main = scratch_need(steps, scratch_.options());
    const ScratchSizes recorded = scratch_need(recorded_steps, step_scratch_.options());
    try {
      scratch_.reserve(main);
      step_scratch_.reserve(recorded);
    } catch (const std::bad_alloc&) {
      return Status::error("the device has no room for the kernels' scratch (" +
                           std::to_string((main.total() + recorded.total()) >> 20) + " MiB)");
    }
    return Status::ok();
  }
  uint64_t scratch_generation() const override { return step_scratch_.generation(); }
  uint64_t kernel_launches() const override { return exec_.launches(); }
  uint64_t scratch_bytes() const override { return scratch_.bytes() + step_scratch_.bytes(); }
  uint64_t scratch_requested_bytes() const override {
    return scratch_.requested().total() + step_scratch_.requested().total();
  }
  void use_step_scratch(bool on) override { step_mode_ = on; }

  void matmul(const kernels::MatrixView& w, const float* x, int64_t x_stride, int64_t n_tokens,
              float* y, int64_t y_stride) override {
    run_op("matmul",
           [&] { device::matmul(exec_, scratch(), w, x, x_stride, n_tokens, y, y_stride); });
  }
  void norm_matmul_shared(float* x, const float* norm_weight, int64_t width, float eps,
                          int64_t n_tokens, std::span<const MatmulTarget> targets) override {
    run_op("norm_matmul_shared", [&] {
      device::norm_matmul_shared(exec_, scratch(), x, norm_weight, width, eps, n_tokens,
                                 targets.data(), targets.size());
    });
  }
  void matmul_shared(const float* x, int64_t n_tokens,
                     std::span<const MatmulTarget> targets) override {
    run_op("matmul_shared", [&] {
      device::matmul_shared(exec_, scratch(), x, n_tokens, targets.data(), targets.size());
    });
  }
  void matmul_groups(const kernels::MatrixView& w, int64_t groups, const float* x, int64_t n_tokens,
                     float* y) override {
    run_op("matmul_groups",
           [&] { device::matmul_groups(exec_, scratch(), w, groups, x, n_tokens, y); });
  }
  bool matmul_split(const kernels::MatrixView& w, const float* x, int64_t x_stride,
                    int64_t n_tokens, float* y, int64_t y_stride, int64_t chunk_units) override {
    run_op("matmul_split", [&] {
      device::matmul_split(exec_, scratch(), w, x, x_stride, n_tokens, y, y_stride, chunk_units);
    });
    return true;
  }
  bool split_q8_0_rows(kernels::MatrixView& w, int64_t rows) override {
    if (!scratch_.options().split_q8_0_weights) return false;
    bool split = false;
    run_op("split_q8_0_rows", [&] { split = device::split_q8_0_rows(exec_, scratch(), w, rows); });
    return split;
  }
  void rms_norm(const float* x, const float* weight, int64_t n, int64_t n_rows, float eps,
                float* y) override {
    run_op("rms_norm", [&] { device::rms_norm(exec_, scratch(), x, weight, n, n_rows, eps, y); });
  }
  void embed(const kernels::MatrixView& table, const int32_t* tokens, int64_t n_tokens,
             uint32_t copies, float* x) override {
    run_op("embed", [&] { device::embed(exec_, scratch(), table, tokens, n_tokens, copies, x); });
  }
  void hc_pre(const HcMixing& hc, const float* x, int64_t n_tokens, float* y, float* post,
              float* comb) override {
    run_op("hc_pre", [&] { device::hc_pre(exec_, scratch(), hc, x, n_tokens, y, post, comb); });
  }
  void hc_post(const float* f, const float* f_added, const float* x, const float* post,
               const float* comb, int64_t n_tokens, uint32_t n_hc, int64_t n_embd,
               float* x_out) override {
    run_op("hc_post", [&] {
      device::hc_post(exec_, scratch(), f, f_added, x, post, comb, n_tokens, n_hc, n_embd, x_out);
    });
  }
  void hc_head(const HcMixing& hc, const float* x, int64_t n_tokens, float* z) override {
    run_op("hc_head", [&] { device::hc_head(exec_, scratch(), hc, x, n_tokens, z); });
  }
  void rope(float* x, int64_t n_tokens, int64_t heads, int64_t head_stride, int64_t offset,
            int64_t rope_dim, const uint64_t* positions, const float* freqs,
            bool inverse) override {
    run_op("rope", [&] {
      device::rope(exec_, scratch(), x, n_tokens, heads, head_stride, offset, rope_dim, positions,
                   freqs, inverse);
    });
  }
  void fp8_round_trip(float* x, int64_t n_rows, int64_t stride, int64_t n, int64_t block) override {
    run_op("fp8_round_trip",
           [&] { device::fp8_round_trip(exec_, scratch(), x, n_rows, stride, n, block); });
  }
  void indexer_qat(float* x, int64_t n_rows, int64_t dim) override {
    run_op("indexer_qat", [&] { device::indexer_qat(exec_, scratch(), x, n_rows, dim); });
  }
  void transform_heads(int64_t n_tokens, std::span<const HeadRows> rows) override {
    run_op("transform_heads", [&] { device::transform_heads(exec_, scratch(), n_tokens, rows); });
  }
  void scale(float* x, int64_t n, float s) override {
    run_op("scale", [&] { device::scale(exec_, scratch(), x, n, s); });
  }
  void route_experts(const ExpertRouting& routing, const float* logits, const int32_t* tokens,
                     int64_t n_tokens, int32_t* experts, float* weights) override {
    run_op("route_experts", [&] {
      device::route_experts(exec_, scratch(), routing, logits, tokens, n_tokens, experts, weights);
    });
  }
  void group_by_expert(const int32_t* experts, const float* weights, int64_t n_tokens, uint32_t k,
                       uint32_t n_expert, int64_t* expert_offsets, int64_t* source_token,
                       float* row_scale, int64_t* slot_row) override {
    run_op("group_by_expert", [&] {
      device::group_by_expert(exec_, scratch(), experts, weights, n_tokens, k, n_expert,
                              expert_offsets, source_token, row_scale, slot_row);
    });
  }
  void grouped_expert_ffn(const ExpertFfnWeights& w, const int64_t* expert_offsets,
                          uint32_t n_expert, int64_t n_rows, const float* x, const int64_t* x_rows,
                          const float* row_scales, float* y) override {
    run_op("grouped_expert_ffn", [&] {
      device::grouped_expert_ffn(exec_, scratch(), w, expert_offsets, n_expert, n_rows, x, x_rows,
                                 row_scales, y);
    });
  }
  void gather_rows(const float* src, int64_t width, const int64_t* rows, int64_t n,
                   float* dst) override {
    run_op("gather_rows", [&] { device::gather_rows(exec_, scratch(), src, width, rows, n, dst); });
  }
  void copy_rows(const float* src, int64_t src_stride, const int64_t* rows, int64_t n,
                 int64_t width, float* dst, int64_t dst_stride) override {
    run_op("copy_rows", [&] {
      device::copy_rows(exec_, scratch(), src, src_stride, rows, n, width, dst, dst_stride);
    });
  }
  void sum_slots(const float* slots, const int64_t* slot_rows, int64_t n_tokens, uint32_t k,
                 int64_t width, float* out) override {
    run_op("sum_slots",
           [&] { device::sum_slots(exec_, scratch(), slots, slot_rows, n_tokens, k, width, out); });
  }
  void add(const float* a, int64_t n, float* y) override {
    run_op("add", [&] { device::add(exec_, scratch(), a, n, y); });
  }
  void top_logits(const float* logits, int64_t n_rows, int64_t n_vocab, uint32_t k, int32_t* ids,
                  float* values, double* log_normalizer) override {
    run_op("top_logits", [&] {
      device::top_logits(exec_, scratch(), logits, n_rows, n_vocab, k, ids, values, log_normalizer);
    });
  }
  void draw_rows(const float* logits, int64_t n_rows, int64_t n_vocab,
                 const kernels::RowDrawParams* params, int32_t* tokens,
                 float* token_logits) override {
    run_op("draw_rows", [&] {
      device::draw_rows(exec_, scratch(), logits, n_rows, n_vocab, params, tokens, token_logits);
    });
  }
  void kv_append(const KvPageFormat& format, const KvLayerAddress& layer, const KvStep& step,
                 const float* kv_rows, const KvCompressor* main,
                 const KvCompressor* indexer) override {
    run_op("kv_append", [&] {
      device::kv_append(exec_, scratch(), format, layer, step, kv_rows, main, indexer);
    });
  }
  void indexer_topk(const KvPageFormat& format, const KvLayerAddress& layer, const KvStep& step,
                    const float* q, const float* head_weights, float weight_scale, int64_t heads,
                    uint32_t top_k, uint32_t* chosen, uint32_t* chosen_count) override {
    run_op("indexer_topk", [&] {
      device::indexer_topk(exec_, scratch(), format, layer, step, q, head_weights, weight_scale,
                           heads, top_k, chosen, chosen_count);
    });
  }
  void sparse_attention(const KvPageFormat& format, const KvLayerAddress& layer, const KvStep& step,
                        uint32_t window, const float* q, int64_t n_head, const float* sinks,
                        const uint32_t* chosen, const uint32_t* chosen_count, uint32_t top_k,
                        float* o, const OutputRope* undo_rope) override {
    run_op("sparse_attention", [&] {
      device::sparse_attention(exec_, scratch(), format, layer, step, window, q, n_head, sinks,
                               chosen, chosen_count, top_k, o, undo_rope);
    });
  }
  // Device memory is not the host's: benchmarks that need host loops run them inline.
  void parallel_for(int64_t n, FunctionRef<void(int64_t, int64_t)> fn) override {
    if (n > 0) fn(0, n);
  }
  using Backend::matmul;

 protected:
  // With V4_DEVICE_PROFILE set, every op is timed to its end (a sync after each: slower, but it
  // says where a step's time goes); the table is printed when the backend is destroyed.
  template <class F>
  void run_op(const char* name, F&& op) {
    if (!profile_) {
      op();
      return;
    }
    const auto start = std::chrono::steady_clock::now();
    const uint64_t launched = exec_.launches();
    op();
    (void)exec_.sync();
    profile_->add(name,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                  exec_.launches() - launched);
  }

  DeviceScratch<Exec>& scratch() { return step_mode_ ? step_scratch_ : scratch_; }

  Exec exec_;
  // Recorded steps keep theirs apart (use_step_scratch), so that other steps move none of it.
  DeviceScratch<Exec> scratch_, step_scratch_;
  bool step_mode_ = false;
  std::unique_ptr<OpProfile> profile_;
};

}  // namespace v4::device
