// The seam between MoE routing and expert compute (spec §3.5). A dispatcher takes every token's
// chosen (expert, weight) pairs and returns the weighted sum of its routed experts' outputs. The
// single-rank LocalExpertDispatcher runs every expert on this rank's Backend; an expert-parallel
// one ships rows to the ranks that own the experts. Either way a token's sum is taken in
// selection order from per-(token, slot) rows, so results never depend on where an expert ran
// or on which other tokens shared the step.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/function_ref.h"
#include "model/backend/backend.h"

namespace v4 {

struct RoutedTokens {
  const float* x = nullptr;          // [n][n_embd] ffn-normed inputs
  const int32_t* experts = nullptr;  // [n][k], selection order
  const float* weights = nullptr;    // [n][k]
  int64_t n_tokens = 0;
  uint32_t k = 0;
  int64_t n_embd = 0;
  uint32_t n_expert = 0;  // expert ids are below it
};

class ExpertDispatcher {
 public:
  virtual ~ExpertDispatcher() = default;

  // out[t] = Σ_{s<k} weights[t][s]·FFN_{experts[t][s]}(x[t]) ([n][n_embd]) for MoE layer `layer`
  // (the MTP block is layer n_layer). `meanwhile` is the caller's work that neither reads `out`
  // nor changes the inputs (the shared expert): a dispatcher that exchanges rows runs it while
  // they travel, the others before their own work. It runs exactly once. (A FunctionRef: the
  // forward's steady-state steps allocate nothing.)
  virtual void dispatch_combine(uint32_t layer, const ExpertFfnWeights& experts,
                                const RoutedTokens& tokens, float* out,
                                FunctionRef<void()> meanwhile) = 0;

  // A collective dispatcher needs every rank of its group at every MoE layer of every step: a
  // rank with no tokens still joins each layer with none.
  virtual bool collective() const { return false; }
  // The first failure since the last call (a lost peer, a rank out of step), then ok.
  virtual Status take_error() { return Status::ok(); }
  // Set when a step's dispatch may be recorded into a step graph (Backend::begin_capture): all
  // of it runs on the device with no host decision between its ops. The value changes whenever
  // the buffers those ops read move. Unset (the default): never recorded.
  virtual std::optional<uint64_t> graph_generation() const { return std::nullopt; }
  // Sizes what the dispatcher keeps between steps for steps of up to `tokens` tokens routed to
  // `k` of `n_expert` experts, so that no such step moves it (and the recordings with it), nor
  // allocates halfway through a step. Each dispatcher's bytes_for says how much that is, for the
  // device fit check.
  virtual void reserve(int64_t tokens, uint32_t k, int64_t n_embd, uint32_t n_expert) {}
  // Bytes of its backend's memory the dispatcher keeps between steps now.
  virtual uint64_t buffer_bytes() const { return 0; }
};

// A dispatcher that plans on the host: the routing's n·k expert ids and weights read back into
// `ids` and `weights`, every id checked to be below `n_expert` before anything indexes with it.
Status read_back_routing(Backend& backend, const RoutedTokens& in, uint32_t n_expert,
                         std::vector<int32_t>& ids, std::vector<float>& weights);

// The device buffers of one dispatch plan and the rows through the experts (the arrays of
// Backend::group_by_expert and the rows' results), for up to `pairs` rows of
// `width` floats and `buckets` expert groups. They grow to the largest step seen and are reused.
class ExpertDispatchBuffers {
 public:
  explicit ExpertDispatchBuffers(Backend& backend) : backend_(backend) {}
  void ensure(int64_t pairs, int64_t width, uint32_t buckets);
  // What ensure(pairs, width, buckets) allocates, the first time.
  static uint64_t bytes_for(int64_t pairs, int64_t width, uint32_t buckets);
  uint64_t bytes() const { return arena_ ? arena_->bytes() : 0; }
  DeviceBuffer* buffer() const { return arena_.get(); }
  // Counts the reallocations: the pointers below change with it.
  uint64_t generation() const { return generation_; }

  int64_t *offsets = nullptr, *source_token = nullptr, *slot_row = nullptr;
  float *row_scale = nullptr, *expert_out = nullptr;

 private:
  Backend& backend_;
  std::unique_ptr<DeviceBuffer> arena_;
  int64_t pairs_ = 0, width_ = 0;
  uint32_t buckets_ = 0;
  uint64_t generation_ = 0;
};

// Every expert on this rank's backend: group the pairs by expert, run the grouped FFN on their
// tokens' rows, sum each token's slots. All on the device.
class LocalExpertDispatcher final : public ExpertDispatcher {
 public:
  explicit LocalExpertDispatcher(Backend& backend) : backend_(backend), buffers_(backend) {}

  void dispatch_combine(uint32_t layer, const ExpertFfnWeights& experts, const RoutedTokens& tokens,
                        float* out, FunctionRef<void()> meanwhile) override;
  std::optional<uint64_t> graph_generation() const override { return buffers_.generation(); }
  void reserve(int64_t tokens, uint32_t k, int64_t n_embd, uint32_t n_expert) override {
    buffers_.ensure(tokens * k, n_embd, n_expert);
  }
  static uint64_t bytes_for(int64_t tokens, uint32_t k, int64_t n_embd, uint32_t n_expert) {
    return ExpertDispatchBuffers::bytes_for(tokens * k, n_embd, n_expert);
  }
  uint64_t buffer_bytes() const override { return buffers_.bytes(); }

 private:
  Backend& backend_;
  ExpertDispatchBuffers buffers_;
};

}  // namespace v4
