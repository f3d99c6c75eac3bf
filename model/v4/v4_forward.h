// The DeepSeek-V4 forward pass (spec §2–§3) over a Backend, batched: one call advances any number
// of sequences, each from its own position with its own KvStateStore, mixing prefill chunks and
// single decode tokens. Each token's arithmetic is independent of which other tokens share the
// step and of how a prompt is chunked, so logits are bit-identical across batchings.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/function_ref.h"
#include "core/status.h"
#include "kernels/cpu/draw_weight.h"
#include "kernels/cpu/token_candidates.h"
#include "model/backend/backend.h"
#include "model/v4/attention.h"
#include "model/v4/expert_dispatcher.h"
#include "model/v4/padding_kv_state.h"
#include "model/v4/sequence_state.h"
#include "model/v4/step_graphs.h"
#include "model/v4/v4_forward_batch.h"
#include "model/v4/v4_weights.h"

namespace v4 {

// The most best tokens a sequence's row returns instead of its logits (top_candidates).
inline constexpr uint32_t kMaxTopCandidates = kernels::kMaxTokenCandidates;

struct SequenceInput {
  KvStateStore* state = nullptr;    // advanced by tokens.size()
  std::span<const int32_t> tokens;  // at positions state->n_past() onwards
  bool all_logits = false;          // logits for every token instead of only the last
  bool keep_hidden = false;         // also return the final HC state of those tokens (MTP input)
  // > 0: instead of its logits, the last token returns what a sampler needs of them: its
  // top_candidates best tokens and its log-normalizer (Backend::top_logits), a few hundred bytes
  // where a row of logits is 4·n_vocab. At most kMaxTopCandidates; not with
  // all_logits or keep_hidden.
  uint32_t top_candidates = 0;
  bool candidate_logprobs = false;  // with top_candidates: also the row's log-normalizer
  // No logits at all (a prefill chunk that does not sample: its last row would go unused, and
  // the head reads n_vocab rows of weights for it). Not with the options above.
  bool no_logits = false;
  // Set (temperature > 0): the last token's next token is drawn where its logits are
  // (Backend::draw_rows, sampling over the whole row) and only it and its logit come back,
  // with the top_candidates too when asked for (the logprobs). Not with all_logits, keep_hidden
  // or no_logits.
  std::optional<kernels::RowDrawParams> draw = std::nullopt;
};

struct ForwardOutput {
  std::vector<float> logits;      // rows of n_vocab floats
  std::vector<float> hidden;      // rows of n_hc·n_embd (sequences with keep_hidden)
  std::vector<size_t> first_row;  // per sequence: its first logits row
  std::vector<size_t> row_count;  // per sequence: how many logits rows (0 with top_candidates)
  // Sequences with top_candidates: their best tokens, best first, ids and logits at
  // [s·candidate_k ..] of candidate_ids and candidate_logits (candidate_k: the step's largest
  // top_candidates; a sequence reads its own count; id -1 past the row's orderable tokens), and
  // log Σ exp(logit) of their row at log_normalizer[s] (with candidate_logprobs). Other
  // sequences' entries are unused.
  uint32_t candidate_k = 0;
  std::vector<int32_t> candidate_ids;
  std::vector<float> candidate_logits;
  std::vector<double> log_normalizer;
  // Sequences with draw: the drawn token and its logit at [s] (other sequences': -1 and 0).
  std::vector<int32_t> drawn_tokens;
  std::vector<float> drawn_logits;
};

// The batch size a decode step of n sequences is padded to when a recording may run it: 1, 2,
// 4, 8, then the next of 2^j and 1.5·2^j (12, 16, 24, 32, 48, ...). Above 8 at most a third of a
// step's rows are padding; up to 256 sequences take 14 sizes.
int64_t decode_bucket(int64_t n);

// What V4Forward::capture_decode_graphs recorded.
struct DecodeGraphCapture {
  std::vector<int64_t> batch_sizes;  // the padded sizes, largest first
  uint32_t kinds = 0;                // sampling kinds per size (sampled, greedy, both)
  uint64_t position_bound = 0;       // decode steps below it replay these recordings
  uint64_t recorded = 0;             // shapes recorded
  uint64_t shapes = 0;               // shapes asked for
  double seconds = 0;
  std::string stopped;  // why it stopped before recording every shape; empty when it did not
};

class V4Forward {
 public:
  // Routed experts run through `experts` (not owned) when given, else on `backend` alone.
  // `limits` size the step workspace once (see ForwardWorkspace).
  V4Forward(const V4Weights& weights, Backend& backend, ExpertDispatcher* experts = nullptr,
            ForwardLimits limits = {});

  // One step. An empty batch still takes part in a collective dispatcher's exchanges. `out` is
  // overwritten; its buffers are reused, so a caller that keeps one
  // ForwardOutput across steps makes steady-state steps allocation-free.
  Status forward(std::span<const SequenceInput> batch, ForwardOutput& out);
  Result<ForwardOutput> forward(std::span<const SequenceInput> batch);

  // MTP draft logits (spec §3.7): for each (hidden state H, token x) pair, the MTP block's
  // next-next-token logits. `state` holds the MTP block's raw window in layer slot n_layer
  // (a ContiguousKvState built with with_mtp) and is advanced by one per call.
  // `hidden_out`, when given, receives the block's output HC state (the H of a recursive draft,
  // as ds4 feeds it); with `want_logits` false the head is skipped and no logits return (a
  // call that only fills the block's raw window).
  Result<std::vector<float>> mtp_draft(KvStateStore& state, std::span<const float> hidden,
                                       int32_t token, std::vector<float>* hidden_out = nullptr,
                                       bool want_logits = true);
  // mtp_draft for up to kMtpMaxRows consecutive pairs in one forward (their H rows end to end in
  // `hidden`): the block's raw window gets every pair's row, `state` advances by their count,
  // and `hidden_out` and the logits are those of the last pair. Bit-identical to that many
  // mtp_draft calls (the forward is chunk-invariant), in one pass over the block's weights.
  Result<std::vector<float>> mtp_forward(KvStateStore& state, std::span<const float> hidden,
                                         std::span<const int32_t> tokens,
                                         std::vector<float>* hidden_out, bool want_logits);

  // Records the decode steps of every padded batch size up to max_sequences sequences (decode
  // steps of up to max_sequences are padded to one of them), for sampled, greedy and mixed rows,
  // at positions below ForwardLimits::graph_positions: a server's decode steps then replay from
  // the first step on. Stops once budget_seconds are spent (the rest are recorded on first use,
  // as without it). `layout`: the KV layout of the sequences the steps will run. The rows run
  // are padding rows: no sequence's state changes and the expert statistics count none.
  Result<DecodeGraphCapture> capture_decode_graphs(const KvLayout& layout, int64_t max_sequences,
                                                   double budget_seconds);

  // The counters, the expert selections read back from the device.
  const ForwardStats& stats() const;
  const V4Weights& weights() const { return weights_; }
  // The backend the forward runs on; KV states for it allocate there.
  Backend& backend() const { return backend_; }
  // Device bytes of the step workspace (grown to the largest step so far).
  uint64_t workspace_bytes() const { return ws_.bytes(); }

 private:
  // Advances the HC states at x through one block; `next` is scratch of the same size (the two
  // pointers are swapped).
  void block_forward(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer, float*& x,
                     float*& next);
  // The two halves of a block: HC_pre → attention → HC_post, and HC_pre → MoE → HC_post with
  // `also` run while the MoE rows travel. Both work on ctx's tokens' rows of the workspace.
  struct BlockRows {
    float *post, *comb, *y, *f;
  };
  static BlockRows block_rows(const ForwardContext& ctx);
  void sub_layer_input(const ForwardContext& ctx, const HcWeights& hc,
                       const WeightVector<float>& norm, const float* x, const BlockRows& r);
  void attention_half(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer, float*& x,
                      float*& next);
  void ffn_half(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer, float*& x,
                float*& next, FunctionRef<void()> also);
  // Two micro-batches (v4_forward_micro_batches.cpp): the step's sequences split in two by
  // tokens, each layer's MoE exchange of one beside the other's attention. Every rank of a group
  // splits, so each MoE layer has two exchanges on every rank, empty halves included.
  struct MicroBatch {
    int64_t first_token = 0, n_tokens = 0, first_sequence = 0;
    KvStep kv;
  };
  Status split_micro_batches();
  // Padded decode steps (v4_forward_padding.cpp): a step a recording may run takes one of a few
  // batch sizes (decode_bucket()), its extra rows one token at position 0 of padding_, so that
  // a handful of recordings serve every batch size; the padding rows' outputs are dropped.
  std::span<const SequenceInput> pad_decode_step(std::span<const SequenceInput> inputs);
  void make_padding_state(const KvLayout& layout);
  // The rows a decode step of n sequences is padded to: decode_bucket(n), within max_tokens_.
  int64_t padded_size(int64_t n) const;
  // Every padded size of steps of 1 to max_sequences sequences, largest first.
  std::vector<int64_t> padded_sizes(int64_t max_sequences) const;
  void drop_padding(size_t real, ForwardOutput& out);
  // One step of `inputs` into `out`, which the caller has cleared (clear_output).
  Status run_step(std::span<const SequenceInput> inputs, ForwardOutput& out);
  static void clear_output(ForwardOutput& out);
  const float* run_micro_batches(const ForwardContext& whole);
  // A step with no tokens: joins every MoE layer's collective with none, when the expert
  // dispatcher is collective (the other ranks of its group are waiting).
  Status join_empty_step();
  // One MoE layer's exchange with no rows of this rank's (an idle step, or an empty micro-batch),
  // `also` beside it.
  void join_layer_empty(uint32_t layer, FunctionRef<void()> also);
  // Copies batch_'s token ids, positions and KV addresses (views, block tables) into the
  // workspace and points kv_step_ at them.
  Status copy_step_inputs();
  void count_indexer_drops(uint64_t layers);
  Result<int64_t> plan_rows(std::span<const SequenceInput> inputs, ForwardOutput& out);
  const float* run_layers(const ForwardContext& ctx);
  Status copy_out_hidden(int64_t n_rows, ForwardOutput& out);
  bool recordable(std::span<const SequenceInput> inputs, int64_t n_rows) const;
  Status recorded_step(const ForwardContext& ctx, std::span<const SequenceInput> inputs,
                       int64_t n_rows, ForwardOutput& out);
  void head_logits(const float* x, int64_t n, const HcHeadWeights& head,
                   const WeightVector<float>& norm, float* logits);
  // The head over the step's selected rows (ws_.selected) in batches of the workspace's logit
  // rows, and each row's copy out: its logits, or its candidates for a top_candidates sequence.
  Status copy_out_logits(std::span<const SequenceInput> inputs, int64_t n_rows, ForwardOutput& out);
  // Rows [first, first + count) of the step's logit rows: one batch of the head.
  struct LogitBatch {
    int64_t first = 0, count = 0;
  };
  Status copy_logit_runs(LogitBatch rows, ForwardOutput& out);
  // A logit batch's rows that return candidates or a drawn token (their targets in row_target_
  // are negative): what they need, its launch, and its copy back.
  struct CompactPlan {
    bool candidates = false, normalize = false, draws = false;
  };
  static size_t compact_block(LogitBatch rows, uint32_t k);
  CompactPlan plan_compact(std::span<const SequenceInput> inputs, LogitBatch rows) const;
  Status stage_draws(std::span<const SequenceInput> inputs, LogitBatch rows, uint32_t k);
  void launch_compact(const CompactPlan& plan, LogitBatch rows, uint32_t k);
  Status read_compact(const CompactPlan& plan, std::span<const SequenceInput> inputs,
                      LogitBatch rows, ForwardOutput& out);

  const V4Weights& weights_;
  Backend& backend_;
  std::unique_ptr<ExpertDispatcher> local_experts_;
  ExpertDispatcher& experts_;
  ForwardWorkspace ws_;
  ForwardBatch batch_;
  KvStep kv_step_;
  std::vector<int64_t> host_rows_;  // the step's logit rows, before their copy to the device
  // Per logit row: its row in ForwardOutput::logits, or -1 - s for sequence s's candidates.
  std::vector<int64_t> row_target_;
  // One batch of top_logits and draw_rows results, on the host, laid out as ws_.candidates
  // (doubles: aligned), and the batch's draw parameters on their way in.
  std::vector<double> candidates_host_;
  std::vector<kernels::RowDrawParams> draw_params_;
  AttentionRope plain_rope_, compressed_rope_;
  uint64_t ratio4_layers_ = 0;  // main layers whose indexer chooses rows
  StepGraphs graphs_;
  bool two_micro_batches_ = false;
  bool pad_decode_steps_ = true;
  int64_t max_tokens_ = 0;                   // ForwardLimits::max_tokens (0: no bound)
  std::unique_ptr<PaddingKvState> padding_;  // made from the first padded step's layout
  std::vector<SequenceInput> padded_inputs_;
  size_t padding_rows_ = 0;            // of the step being run (the last of its rows)
  std::vector<int64_t> counted_host_;  // ws_.counted_pairs on its way in
  MicroBatch halves_[2];
  std::unique_ptr<DeviceBuffer> half_arrays_;  // B's rebased KV arrays and both halves' {0, n}
  mutable ForwardStats stats_;
  std::unique_ptr<DeviceBuffer> selection_counts_;  // [n_layer][n_expert] u64, on the device
  Status selection_status_;                         // of zeroing them
  Status rope_status_;                              // of copying the RoPE tables
};

}  // namespace v4
