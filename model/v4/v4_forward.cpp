#include "model/v4/v4_forward.h"

#include <algorithm>
#include <string>

#include "model/v4/moe.h"
#include "model/v4/rope.h"

namespace v4 {
namespace {

HcMixing hc_mixing(const V4Config& c, const WeightMatrix& fn, const WeightVector<float>& scale,
                   const WeightVector<float>& base) {
  return {&fn.view, scale.device(),      base.device(), c.n_hc,
          c.n_embd, c.hc_sinkhorn_iters, c.hc_eps,      c.rms_eps};
}

// `shared`: the padding rows' state, which any number of a step's rows may name.
Status build_batch(const V4Config& c, std::span<const SequenceInput> inputs,
                   const KvStateStore* shared, ForwardBatch& b) {
  for (size_t s = 0; s < inputs.size(); ++s) {
    const SequenceInput& in = inputs[s];
    if (!in.state) return Status::error("sequence " + std::to_string(s) + " has no state");
    if (in.no_logits && (in.all_logits || in.keep_hidden || in.top_candidates > 0)) {
      return Status::error("sequence " + std::to_string(s) +
                           ": no logits, yet logits, hidden states or candidates asked for");
    }
    if (in.draw && (in.all_logits || in.keep_hidden || in.no_logits ||
                    !(in.draw->filters.temperature > 0.0f))) {
      return Status::error("sequence " + std::to_string(s) +
                           ": a draw needs a temperature above 0 and the last row alone");
    }
    if (in.top_candidates > std::min(kMaxTopCandidates, c.n_vocab) ||
        (in.top_candidates > 0 && (in.all_logits || in.keep_hidden))) {
      return Status::error("sequence " + std::to_string(s) + ": " +
                           std::to_string(in.top_candidates) + " top candidates (at most " +
                           std::to_string(kMaxTopCandidates) +
                           ", and only for a sequence that wants its last row's logits alone)");
    }
    if (in.state != shared &&
        std::find(b.states.begin(), b.states.end(), in.state) != b.states.end()) {
      return Status::error("sequence " + std::to_string(s) + " appears twice in one step");
    }
    b.sequence_begin.push_back(b.size());
    b.states.push_back(in.state);
    const uint64_t start = in.state->n_past();
    for (size_t i = 0; i < in.tokens.size(); ++i) {
      const int32_t tok = in.tokens[i];
      if (tok < 0 || static_cast<uint32_t>(tok) >= c.n_vocab) {
        return Status::error("sequence " + std::to_string(s) + ": token id " + std::to_string(tok) +
                             " outside the vocabulary of " + std::to_string(c.n_vocab));
      }
      b.tokens.push_back(tok);
      b.positions.push_back(start + i);
      b.sequence_of.push_back(static_cast<uint32_t>(s));
    }
    if (Status st = in.state->reserve(in.tokens.size()); !st) return st;
  }
  b.sequence_begin.push_back(b.size());
  return Status::ok();
}

}  // namespace

V4Forward::V4Forward(const V4Weights& weights, Backend& backend, ExpertDispatcher* experts,
                     ForwardLimits limits)
    : weights_(weights),
      backend_(backend),
      local_experts_(experts ? nullptr : std::make_unique<LocalExpertDispatcher>(backend)),
      experts_(experts ? *experts : *local_experts_),
      ws_(backend),
      graphs_(backend, limits.step_graphs, limits.graph_positions),
      two_micro_batches_(limits.two_micro_batches && experts_.collective()),
      pad_decode_steps_(limits.pad_decode_steps),
      max_tokens_(limits.max_tokens) {
  for (uint32_t il = 0; il < weights.config.n_layer; ++il)
    ratio4_layers_ += weights.layers[il].compress_ratio == 4;
  plain_rope_.freqs = rope_frequencies(rope_params_for_ratio(weights.config, 0));
  compressed_rope_.freqs = rope_frequencies(rope_params_for_ratio(weights.config, 4));
  for (AttentionRope* rope : {&plain_rope_, &compressed_rope_}) {
    const size_t bytes = rope->freqs.size() * sizeof(float);
    rope->copy = backend.allocate(std::max<size_t>(bytes, sizeof(float)));
    const Tensor t = Tensor::contiguous(rope->copy.get(), 0, GgmlType::F32,
                                        {static_cast<int64_t>(rope->freqs.size()), 1, 1, 1});
    if (Status s = backend.copy_to_device(rope->freqs.data(), t, 0, bytes); !s) rope_status_ = s;
  }
  stats_.expert_selections.assign(weights.config.n_layer,
                                  std::vector<uint64_t>(weights.config.n_expert, 0));
  // The expert counters stay on the device, summed there each step; stats() reads them back.
  const size_t counters = size_t{weights.config.n_layer} * weights.config.n_expert;
  selection_counts_ = backend.allocate(std::max<size_t>(counters, 1) * sizeof(uint64_t));
  const std::vector<uint64_t> zeros(counters, 0);
  selection_status_ =
      backend.copy_to_device(zeros.data(),
                             Tensor::contiguous(selection_counts_.get(), 0, GgmlType::I64,
                                                {static_cast<int64_t>(counters), 1, 1, 1}),
                             0, counters * sizeof(uint64_t));
  ws_.ensure(weights.config, limits.max_tokens);
  // A prefill of up to max_tokens then moves no dispatch buffer a decode recording points into,
  // and no step allocates one halfway (the device fit check counted them: bytes_for).
  if (limits.max_tokens > 0) {
    const V4Config& c = weights.config;
    experts_.reserve(limits.max_tokens, c.n_expert_used, c.n_embd, c.n_expert);
  }
}

// One block (spec §2): HC_pre → attention → HC_post, HC_pre → MoE → HC_post.
void V4Forward::block_forward(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer,
                              float*& x, float*& next) {
  attention_half(ctx, w, layer, x, next);
  ffn_half(ctx, w, layer, x, next, [] {});
}

// The workspace rows of ctx's tokens: the HC mixes, the normed input and the sub-layer output.
V4Forward::BlockRows V4Forward::block_rows(const ForwardContext& ctx) {
  const V4Config& c = ctx.config;
  const int64_t first = ctx.first_token;
  return {ctx.ws.post.data<float>() + first * c.n_hc,
          ctx.ws.comb.data<float>() + first * c.n_hc * c.n_hc,
          ctx.ws.y.data<float>() + first * c.n_embd, ctx.ws.f.data<float>() + first * c.n_embd};
}

// HC_pre of x into the sub-layer input rows (normed) and their mixes.
void V4Forward::sub_layer_input(const ForwardContext& ctx, const HcWeights& hc,
                                const WeightVector<float>& norm, const float* x,
                                const BlockRows& r) {
  const V4Config& c = ctx.config;
  const int64_t n = ctx.size();
  HcMixing mixing = hc_mixing(c, hc.fn, hc.scale, hc.base);
  mixing.out_norm = norm.device();
  backend_.hc_pre(mixing, x, n, r.y, r.post, r.comb);
}

void V4Forward::attention_half(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer,
                               float*& x, float*& next) {
  const V4Config& c = ctx.config;
  const int64_t n = ctx.size();
  const BlockRows r = block_rows(ctx);
  sub_layer_input(ctx, w.hc_attn, w.attn_norm, x, r);
  attention_forward(ctx, w, layer, w.compress_ratio == 0 ? plain_rope_ : compressed_rope_, r.y,
                    r.f);
  backend_.hc_post(r.f, nullptr, x, r.post, r.comb, n, c.n_hc, c.n_embd, next);
  std::swap(x, next);
}

void V4Forward::ffn_half(const ForwardContext& ctx, const LayerWeights& w, uint32_t layer,
                         float*& x, float*& next, FunctionRef<void()> also) {
  const V4Config& c = ctx.config;
  const int64_t n = ctx.size();
  const BlockRows r = block_rows(ctx);
  sub_layer_input(ctx, w.hc_ffn, w.ffn_norm, x, r);
  // The MTP block (layer n_layer) has no counters.
  uint64_t* selections = layer < c.n_layer ? static_cast<uint64_t*>(selection_counts_->data()) +
                                                 size_t{layer} * c.n_expert
                                           : nullptr;
  // The MoE's output is the shared expert's (in r.f) plus the routed sum: HC_post adds them.
  const float* routed = moe_forward(ctx, w, layer, r.y, r.f, selections, also);
  backend_.hc_post(r.f, routed, x, r.post, r.comb, n, c.n_hc, c.n_embd, next);
  std::swap(x, next);
}

// HC head + output norm + vocabulary projection (spec §3.6) for n HC states, into `logits` on
// the device (n ≤ the workspace's logit rows).
void V4Forward::head_logits(const float* x, int64_t n, const HcHeadWeights& head,
                            const WeightVector<float>& norm, float* logits) {
  const V4Config& c = weights_.config;
  float* z = ws_.head_z.data<float>();
  HcMixing mixing = hc_mixing(c, head.fn, head.scale, head.base);
  mixing.out_norm = norm.device();
  backend_.hc_head(mixing, x, n, z);
  backend_.matmul(weights_.output.view, z, n, logits);
}

Status V4Forward::join_empty_step() {
  if (!experts_.collective()) return Status::ok();
  for (uint32_t il = 0; il < weights_.config.n_layer; ++il) {
    join_layer_empty(il, [] {});
    if (two_micro_batches_) join_layer_empty(il, [] {});
  }
  return experts_.take_error();
}

void V4Forward::join_layer_empty(uint32_t layer, FunctionRef<void()> also) {
  const V4Config& c = weights_.config;
  const LayerWeights& w = weights_.layers[layer];
  const RoutedTokens none{nullptr,  nullptr,   nullptr, 0, expert_routing(c, w).k,
                          c.n_embd, c.n_expert};
  experts_.dispatch_combine(layer, routed_experts(c, w), none, nullptr, also);
}

const ForwardStats& V4Forward::stats() const {
  const V4Config& c = weights_.config;
  const size_t row_bytes = size_t{c.n_expert} * sizeof(uint64_t);
  stats_.step_graphs = graphs_.stats();
  const Tensor counts =
      Tensor::contiguous(selection_counts_.get(), 0, GgmlType::I64,
                         {static_cast<int64_t>(c.n_expert), static_cast<int64_t>(c.n_layer), 1, 1});
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    if (!backend_.copy_to_host(counts, il * row_bytes, stats_.expert_selections[il].data(),
                               row_bytes)) {
      break;  // the counters keep their last values; the step that failed reported it
    }
  }
  return stats_;
}

Result<ForwardOutput> V4Forward::forward(std::span<const SequenceInput> inputs) {
  ForwardOutput out;
  if (Status s = forward(inputs, out); !s) return s;
  return out;
}

Status V4Forward::copy_step_inputs() {
  const V4Config& c = weights_.config;
  ForwardBatch& b = batch_;
  const size_t n = b.tokens.size(), n_seqs = b.states.size();
  // Every sequence of a step must share one layout: the KV ops take it once per layer.
  const KvLayout& layout = b.states.front()->layout();
  for (KvStateStore* state : b.states) {
    const KvLayout& other = state->layout();
    if (!(other.format == layout.format) ||
        !std::equal(layout.layers.begin(), layout.layers.begin() + c.n_layer, other.layers.begin(),
                    other.layers.begin() + c.n_layer) ||
        other.layers.size() < c.n_layer) {
      return Status::error("the sequences of one step use different KV layouts");
    }
    b.views.push_back(state->view());
    const std::span<const uint32_t> table = state->block_table();
    b.block_tables.insert(b.block_tables.end(), table.begin(), table.end());
  }
  // Block tables go end to end into the device buffer; each view points at its own.
  ws_.ensure_block_tables(b.block_tables.size());
  const uint32_t* tables = ws_.block_tables.data<uint32_t>();
  for (size_t s = 0, offset = 0; s < n_seqs; offset += b.views[s].n_pages, ++s) {
    b.views[s].block_table = tables + offset;
  }
  const int64_t all_rows[2] = {0, static_cast<int64_t>(n)};
  // The expert statistics count the real tokens' selections only (the padding rows are last).
  counted_host_.resize(size_t{c.n_expert_used} + 1);
  for (size_t j = 0; j < counted_host_.size(); ++j)
    counted_host_[j] = static_cast<int64_t>(j * (n - padding_rows_));
  struct Copy {
    const void* host;
    const Tensor& dst;
    size_t bytes;
  };
  const Copy copies[] = {
      {b.tokens.data(), ws_.tokens, n * sizeof(int32_t)},
      {b.positions.data(), ws_.positions, n * sizeof(uint64_t)},
      {b.sequence_of.data(), ws_.sequence_of, n * sizeof(uint32_t)},
      {b.sequence_begin.data(), ws_.sequence_begin, (n_seqs + 1) * sizeof(int64_t)},
      {b.views.data(), ws_.kv_views, n_seqs * sizeof(KvSequenceView)},
      {b.block_tables.data(), ws_.block_tables, b.block_tables.size() * sizeof(uint32_t)},
      {all_rows, ws_.all_rows, sizeof all_rows},
      {counted_host_.data(), ws_.counted_pairs, counted_host_.size() * sizeof(int64_t)},
  };
  for (const Copy& copy : copies) {
    if (Status s = backend_.copy_to_device(copy.host, copy.dst, 0, copy.bytes); !s) return s;
  }
  kv_step_ = {ws_.kv_views.data<KvSequenceView>(), ws_.sequence_begin.data<int64_t>(),
              ws_.sequence_of.data<uint32_t>(),    ws_.positions.data<uint64_t>(),
              static_cast<int64_t>(n_seqs),        static_cast<int64_t>(n)};
  for (uint64_t p : b.positions) kv_step_.position_end = std::max(kv_step_.position_end, p + 1);
  for (const KvSequenceView& v : b.views)
    kv_step_.max_pages = std::max(kv_step_.max_pages, v.n_pages);
  return Status::ok();
}

Status V4Forward::forward(std::span<const SequenceInput> inputs, ForwardOutput& out) {
  clear_output(out);
  if (!selection_status_) return selection_status_;
  if (!rope_status_) return rope_status_;
  if (inputs.empty()) return join_empty_step();
  const size_t real = inputs.size();
  const std::span<const SequenceInput> step = pad_decode_step(inputs);
  Status s = run_step(step, out);
  if (s && step.size() > real) drop_padding(real, out);
  return s;
}

void V4Forward::clear_output(ForwardOutput& out) {
  out.logits.clear();
  out.hidden.clear();
  out.first_row.clear();
  out.row_count.clear();
  out.candidate_k = 0;
  out.candidate_ids.clear();
  out.candidate_logits.clear();
  out.log_normalizer.clear();
  out.drawn_tokens.clear();
  out.drawn_logits.clear();
}

Status V4Forward::run_step(std::span<const SequenceInput> inputs, ForwardOutput& out) {
  const V4Config& c = weights_.config;
  ForwardBatch& b = batch_;
  b.clear();
  if (Status s = build_batch(c, inputs, padding_.get(), b); !s) return s;
  const int64_t n = b.size();
  ws_.ensure(c, n);
  // The step's copies in: token ids, positions and the KV addresses.
  if (Status s = copy_step_inputs(); !s) return s;
  count_indexer_drops(ratio4_layers_);
  Result<int64_t> n_rows = plan_rows(inputs, out);
  if (!n_rows) return n_rows.status();
  ForwardContext ctx{c, backend_, experts_, ws_, b, stats_, b.states.front()->layout(), kv_step_};
  ctx.counted_pairs = ws_.counted_pairs.data<int64_t>();
  if (recordable(inputs, *n_rows)) return recorded_step(ctx, inputs, *n_rows, out);
  if (two_micro_batches_) {
    if (Status s = split_micro_batches(); !s) return s;
  }
  const float* x = two_micro_batches_ ? run_micro_batches(ctx) : run_layers(ctx);
  if (Status s = experts_.take_error(); !s) return s;
  backend_.gather_rows(x, int64_t{c.n_hc} * c.n_embd, ws_.rows.data<int64_t>(), *n_rows,
                       ws_.selected.data<float>());
  if (Status s = copy_out_hidden(*n_rows, out); !s) return s;
  return copy_out_logits(inputs, *n_rows, out);
}

// Embedding, copied into every HC stream (spec §3.1), then every block; returns where the final
// HC states are.
const float* V4Forward::run_layers(const ForwardContext& ctx) {
  const V4Config& c = weights_.config;
  float* x = ws_.x.data<float>();
  float* next = ws_.next.data<float>();
  backend_.embed(weights_.token_embd.view, ws_.tokens.data<int32_t>(), ctx.batch.size(), c.n_hc, x);
  for (uint32_t il = 0; il < c.n_layer; ++il) block_forward(ctx, weights_.layers[il], il, x, next);
  return x;
}

// Host bookkeeping from the positions alone: how often the indexer of each of `layers` ratio-4
// layers had to drop rows (spec §3.4.4).
void V4Forward::count_indexer_drops(uint64_t layers) {
  const uint64_t top_k = weights_.config.indexer_top_k;
  for (uint64_t p : batch_.positions) {
    const uint64_t visible = (p + 1) / 4;
    if (visible <= top_k) continue;
    stats_.indexer_selections += layers;
    stats_.indexer_rows_dropped += layers * (visible - top_k);
  }
}

// Which rows get logits (host bookkeeping; the states advance past the step), then one copy of
// the row ids to the device, and the output sized for them.
Result<int64_t> V4Forward::plan_rows(std::span<const SequenceInput> inputs, ForwardOutput& out) {
  const ForwardBatch& b = batch_;
  std::vector<int64_t>& host_rows = host_rows_;
  host_rows.clear();
  row_target_.clear();
  int64_t logit_rows = 0;
  for (size_t s = 0; s < inputs.size(); ++s) {
    const int64_t begin = b.sequence_begin[s], end = b.sequence_begin[s + 1];
    const bool compact = inputs[s].top_candidates > 0 || inputs[s].draw.has_value();
    out.candidate_k = std::max(out.candidate_k, inputs[s].top_candidates);
    out.first_row.push_back(static_cast<size_t>(logit_rows));
    const int64_t first = inputs[s].no_logits    ? end
                          : inputs[s].all_logits ? begin
                                                 : std::max(begin, end - 1);
    for (int64_t t = first; t < end; ++t) {
      ws_.keep[host_rows.size()] = inputs[s].keep_hidden ? 1 : 0;
      host_rows.push_back(t);
      row_target_.push_back(compact ? -1 - static_cast<int64_t>(s) : logit_rows++);
    }
    out.row_count.push_back(static_cast<size_t>(logit_rows) - out.first_row.back());
    b.states[s]->advance(static_cast<uint64_t>(end - begin));
  }
  const int64_t n_rows = static_cast<int64_t>(host_rows.size());
  if (Status s = backend_.copy_to_device(host_rows.data(), ws_.rows, 0,
                                         static_cast<size_t>(n_rows) * sizeof(int64_t));
      !s) {
    return s;
  }
  out.logits.resize(static_cast<size_t>(logit_rows) * weights_.config.n_vocab);
  out.candidate_ids.assign(inputs.size() * out.candidate_k, -1);
  out.candidate_logits.assign(inputs.size() * out.candidate_k, 0.0f);
  out.log_normalizer.assign(out.candidate_k > 0 ? inputs.size() : 0, 0.0);
  out.drawn_tokens.assign(inputs.size(), -1);
  out.drawn_logits.assign(inputs.size(), 0.0f);
  return n_rows;
}

// The final HC states of the rows that keep them (ws_.selected), one copy each.
Status V4Forward::copy_out_hidden(int64_t n_rows, ForwardOutput& out) {
  const int64_t flat = int64_t{weights_.config.n_hc} * weights_.config.n_embd;
  const size_t row_bytes = static_cast<size_t>(flat) * sizeof(float);
  for (int64_t r = 0; r < n_rows; ++r) {
    if (!ws_.keep[static_cast<size_t>(r)]) continue;
    out.hidden.resize(out.hidden.size() + static_cast<size_t>(flat));
    if (Status s = backend_.copy_to_host(ws_.selected, static_cast<size_t>(r) * row_bytes,
                                         out.hidden.data() + out.hidden.size() - flat, row_bytes);
        !s) {
      return s;
    }
  }
  return Status::ok();
}

// A step may run from a recording when the backend and the dispatcher allow it and the step is
// a decode step: one token per sequence, and its row's logits or compact outputs (not its hidden
// state). Rows past one logit batch must all be compact: logits go out batch by batch, which a
// recording cannot (docs/design.md, "Decode steps as graphs").
bool V4Forward::recordable(std::span<const SequenceInput> inputs, int64_t n_rows) const {
  if (!graphs_.enabled() || !experts_.graph_generation()) return false;
  if (n_rows > ws_.logit_rows() &&
      std::any_of(row_target_.begin(), row_target_.end(), [](int64_t t) { return t >= 0; })) {
    return false;
  }
  return std::all_of(inputs.begin(), inputs.end(), [](const SequenceInput& in) {
    return in.tokens.size() == 1 && !in.keep_hidden && !in.no_logits;
  });
}

// The step's device work as one recording: everything it reads from the host is copied in
// before (inputs, row ids, draw parameters) and everything it returns is copied out after.
Status V4Forward::recorded_step(const ForwardContext& ctx, std::span<const SequenceInput> inputs,
                                int64_t n_rows, ForwardOutput& out) {
  const V4Config& c = weights_.config;
  const int64_t flat = int64_t{c.n_hc} * c.n_embd, batch = ws_.logit_rows();
  // One plan for every logit batch (what any of them needs), so that the shape says it all; then
  // every batch's draw parameters, since every batch draws when any does.
  const CompactPlan plan = plan_compact(inputs, {0, n_rows});
  for (int64_t first = 0; plan.draws && first < n_rows; first += batch) {
    const LogitBatch rows{first, std::min(batch, n_rows - first)};
    if (Status s = stage_draws(inputs, rows, out.candidate_k); !s) return s;
  }
  // The recording is sized for a bound on the positions, not for this step's (step_graphs.h).
  kv_step_.position_end = graphs_.bound_for(kv_step_.position_end);
  const StepGraphShape shape{n_rows, kv_step_.position_end, plan.candidates ? out.candidate_k : 0,
                             plan.normalize, plan.draws};
  const StepGraphGenerations generations{backend_.scratch_generation(), ws_.generation(),
                                         *experts_.graph_generation()};
  float* selected = ws_.selected.data<float>();
  // The ops keep their scratch apart from other steps' (Backend::use_step_scratch), until the
  // end of this scope, however it ends.
  struct StepScratch {
    Backend& backend;
    explicit StepScratch(Backend& b) : backend(b) { backend.use_step_scratch(true); }
    ~StepScratch() { backend.use_step_scratch(false); }
  } step_scratch(backend_);
  Status s = graphs_.run(shape, generations, [&] {
    const float* x = run_layers(ctx);
    backend_.gather_rows(x, flat, ws_.rows.data<int64_t>(), n_rows, selected);
    for (int64_t first = 0; first < n_rows; first += batch) {
      const LogitBatch rows{first, std::min(batch, n_rows - first)};
      head_logits(selected + first * flat, rows.count, weights_.output_hc, weights_.output_norm,
                  ws_.logits.data<float>());
      launch_compact(plan, rows, out.candidate_k);
    }
  });
  if (s) s = experts_.take_error();
  // Rows with logits are in one batch (recordable), the last the head computed.
  if (s && n_rows <= batch) s = copy_logit_runs({0, n_rows}, out);
  for (int64_t first = 0; s && first < n_rows; first += batch) {
    s = read_compact(plan, inputs, {first, std::min(batch, n_rows - first)}, out);
  }
  return s;
}

}  // namespace v4
