// The compute operations the V4 forward pass is written against (architecture: model/ calls a
// Backend, never kernels or devices directly). Every pointer an op takes lives on the backend's
// device; the forward keeps no arithmetic loops of its own. Every op is deterministic and its
// results do not depend on the number of threads or on which other tokens share the call: work
// is split by output element, never by reduction.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/function_ref.h"
#include "core/status.h"
#include "kernels/cpu/draw_weight.h"
#include "kernels/cpu/matmul.h"
#include "model/backend/kv_view.h"
#include "model/backend/step_shapes.h"
#include "model/backend/tensor.h"

namespace v4 {

// The hyper-connection mixing of one sub-layer or of the head (spec §3.2, §3.6): `fn` maps the
// RMS-normalised flat state (n_hc·n_embd) to the mixes; `scale` and `base` are the learned
// scalars; n_hc streams of n_embd values.
struct HcMixing {
  const kernels::MatrixView* fn = nullptr;
  const float* scale = nullptr;
  const float* base = nullptr;
  uint32_t n_hc = 0;
  int64_t n_embd = 0;
  uint32_t sinkhorn_iters = 0;
  float eps = 0.0f;      // hc epsilon
  float rms_eps = 0.0f;  // of the weightless RMSNorm before fn
  // When set, the op's output rows (hc_pre's y, hc_head's z) leave through the RMSNorm that the
  // forward applies next (eps rms_eps, weighted by out_norm: attn_norm, ffn_norm, the output
  // norm; spec §3.4, §3.5, §3.6), bit for bit Backend::rms_norm.
  const float* out_norm = nullptr;
};

// A stack of equal expert matrices (spec §5.4: ne2 = expert): matrix e starts e·stride bytes
// after `first`.
struct ExpertStack {
  kernels::MatrixView first;
  size_t stride = 0;
  kernels::MatrixView matrix(int32_t e) const {
    kernels::MatrixView m = first;
    m.data += static_cast<size_t>(e) * stride;
    return m;
  }
};

// The three projections of a SwiGLU FFN (routed experts or the shared expert, spec §3.5).
struct ExpertFfnWeights {
  ExpertStack gate, up, down;
  float swiglu_limit = 0.0f;
};

// How a MoE layer picks experts (spec §3.5). Exactly one of `bias` (n_expert floats) and
// `hash_table` ([n_vocab][hash_width] expert ids) is set.
struct ExpertRouting {
  uint32_t n_expert = 0;
  uint32_t k = 0;
  float weights_scale = 1.0f;
  bool normalize = true;
  const float* bias = nullptr;
  const int32_t* hash_table = nullptr;
  uint32_t hash_width = 0;
  // When set, Backend::route_experts also adds one to counts[expert] per selection (the
  // per-layer expert load the engine reports), only for the first *counted (token, slot) pairs
  // when `counted` (the backend's memory) is set: a recorded step's replay counts as many as it
  // is told, its padding rows left out.
  uint64_t* counts = nullptr;
  const int64_t* counted = nullptr;
};

// One product of Backend::matmul_shared: y (rows of w.rows floats) = w · x.
struct MatmulTarget {
  kernels::MatrixView w;
  float* y = nullptr;
};

// What Backend::transform_heads does to each head vector of head_dim floats, in this order:
// the RMSNorm of spec §3.4 (when `norm`; weighted by norm_weight, or weightless when it is null),
// the RoPE of its last rope_dim values to its token's position (spec §3.4.1), then the FP8 round
// trip of the values before them in blocks of fp8_block (spec §3.4.2; 0: none) or the indexer's
// QAT transform of the whole vector (`qat`, spec §3.4.4).
struct HeadTransform {
  bool norm = false;
  const float* norm_weight = nullptr;
  float eps = 0.0f;
  int64_t rope_dim = 0;
  const uint64_t* positions = nullptr;
  const float* freqs = nullptr;
  int64_t fp8_block = 0;
  bool qat = false;
};

// Head vectors for Backend::transform_heads: n_tokens × heads contiguous vectors of head_dim
// floats at x, transformed by t.
struct HeadRows {
  float* x = nullptr;
  int64_t heads = 0;
  int64_t head_dim = 0;
  HeadTransform t;
};
// Tensors one device launch of Backend::transform_heads takes (a layer's q, kv and indexer
// queries); more are taken in turn.
inline constexpr size_t kMaxHeadRows = 3;

// The RoPE that Backend::sparse_attention undoes on each head's output (spec §3.4.1): the last
// rope_dim values rotated by −θ at the token's position (positions: one per token).
struct OutputRope {
  int64_t rope_dim = 0;
  const uint64_t* positions = nullptr;
  const float* freqs = nullptr;
};

// A step's device work recorded once and launched again (Backend::end_capture).
class StepGraph {
 public:
  virtual ~StepGraph() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual unsigned threads() const = 0;

  // Memory on the backend's device; the forward's workspace and (later) the KV pages live there.
  virtual std::unique_ptr<DeviceBuffer> allocate(size_t bytes) = 0;
  // The explicit host↔device copies of a step, at its edges only: token ids in, requested
  // logits out. Bytes [offset, offset + bytes) of the tensor's span; an error when out of range.
  virtual Status copy_to_device(const void* host, const Tensor& dst, size_t offset,
                                size_t bytes) = 0;
  virtual Status copy_to_host(const Tensor& src, size_t offset, void* host, size_t bytes) = 0;
  // `bytes` at a device address back to the host, after the work before it (instrumentation that
  // reads a plan the device made, e.g. which experts a step ran).
  virtual Status read_back(const void* src, void* host, size_t bytes) = 0;
  // bytes from src to dst, both on the device (the prefix cache's state snapshots, spec §4.4).
  virtual void copy_on_device(const void* src, void* dst, size_t bytes) = 0;
  // Waits for the work queued so far: a collective that reads the backend's memory on a stream of
  // its own (NCCL) must see what the ops before it wrote.
  virtual Status synchronize() { return Status::ok(); }

  // Step graphs (CUDA graphs; docs/design.md, "Decode steps as graphs"). Between begin_capture
  // and end_capture the ops are recorded, not run; replay runs the recording again with the
  // arguments the ops had, so it may only read what lives at fixed device addresses. An op
  // that needs the host inside a capture (an allocation, a free, a copy to or from the host)
  // breaks it: end_capture returns an error and the caller runs the step without a graph.
  virtual bool can_capture() const { return false; }
  virtual void begin_capture() {}
  virtual Result<std::unique_ptr<StepGraph>> end_capture() {
    return Status::error("this backend records no step graphs");
  }
  virtual Status replay(StepGraph&) { return Status::error("this backend records no step graphs"); }
  // Changes whenever the backend frees or moves memory its ops keep between calls (scratch):
  // a graph captured before then may read freed memory. It counts the step scratch's moves.
  virtual uint64_t scratch_generation() const { return 0; }
  // Kernels launched so far, outside replays of recorded steps (device backends; 0 for backends
  // that launch none). A decode step's count is what a GPU pays in launch gaps without graphs.
  virtual uint64_t kernel_launches() const { return 0; }
  // Names the part of a run the ops that follow belong to (a benchmark's prefill, its decode
  // steps): a backend that times its ops (V4_DEVICE_PROFILE) prints a table per part. Nothing
  // else changes.
  virtual void profile_section(const std::string& name) {}
  // Sizes what the ops keep between calls before the first step: for steps of up to the first
  // StepShapes, and for the recorded steps' own scratch (use_step_scratch) of up to the second.
  // Steps within them then allocate nothing and move nothing a recording points into. An error
  // where the device has no room; nothing to do for a backend whose ops keep nothing on a device
  // (the CPU).
  virtual Status reserve_scratch(const StepShapes&, const StepShapes&) { return Status::ok(); }
  // Device bytes the ops keep between calls (scratch, both kinds): what reserve_scratch sized, or
  // what the largest step seen grew it to. 0 for a backend whose ops keep none on a device (the
  // CPU).
  virtual uint64_t scratch_bytes() const { return 0; }
  // The largest request each of those scratch slots has had, summed (where nothing was reserved,
  // scratch_bytes() holds up to twice that: a slot grows at least twofold).
  virtual uint64_t scratch_requested_bytes() const { return 0; }
  // While on, the ops keep what they keep between calls in a scratch of their own for recorded
  // steps (a recorded shape's first run, its capture and its replays): a prefill step that grows
  // the other scratch then moves nothing a recording points into.
  virtual void use_step_scratch(bool) {}

  // y[t·y_stride + r] = W[r] · x[t·x_stride ..] for n_tokens activation rows of w.cols floats.
  // Activations are quantized to the weight type's dot-product format first (like ggml).
  virtual void matmul(const kernels::MatrixView& w, const float* x, int64_t x_stride,
                      int64_t n_tokens, float* y, int64_t y_stride) = 0;
  // matmul(target.w, x, target.y) for every target, all reading the same n_tokens rows of x
  // (of the targets' common width w.cols, contiguous). A layer's projections of its normed input
  // share it (spec §3.4: q_a, kv, the compressors', the indexer's head weights): a device backend
  // quantizes x once per weight format and runs the products of one format as one launch. Every
  // y is bit for bit what matmul gives it alone.
  virtual void matmul_shared(const float* x, int64_t n_tokens,
                             std::span<const MatmulTarget> targets) {
    for (const MatmulTarget& t : targets) matmul(t.w, x, t.w.cols, n_tokens, t.y, t.w.rows);
  }
  // rms_norm(x, norm_weight, width, n_tokens, eps, x) in place, then matmul_shared(x, ...):
  // the normed rows feed every product (spec §3.4: q_a's output through q_a_norm, then q_b and
  // the indexer's q_b). `width` is the targets' common w.cols. A device backend norms each row
  // in the launch that quantizes it, bit for bit the two ops.
  virtual void norm_matmul_shared(float* x, const float* norm_weight, int64_t width, float eps,
                                  int64_t n_tokens, std::span<const MatmulTarget> targets) {
    rms_norm(x, norm_weight, width, n_tokens, eps, x);
    matmul_shared(x, n_tokens, targets);
  }
  // The grouped low-rank product (spec §3.4, attn_output_a): w's rows fall in `groups` equal
  // groups, and group g's rows read the g-th slice of w.cols values of each x row (rows of
  // groups·w.cols floats, contiguous) into y (rows of w.rows floats). Bit for bit the groups'
  // matmuls; a device backend quantizes x once and runs every group in one launch.
  virtual void matmul_groups(const kernels::MatrixView& w, int64_t groups, const float* x,
                             int64_t n_tokens, float* y) {
    const int64_t rows = w.rows / groups;
    for (int64_t g = 0; g < groups; ++g) {
      kernels::MatrixView part = w;
      part.data += static_cast<size_t>(g * rows) * w.row_bytes;
      part.rows = rows;
      matmul(part, x + g * w.cols, groups * w.cols, n_tokens, y + g * rows, w.rows);
    }
  }
  // A measuring aid, never called by the forward: matmul with each row's sum split into chunks
  // of `chunk_units` dot-product units (blocks; 32-value groups of the 256-value formats; float
  // values) instead of the fixed split by row length. A split chosen per batch is what a
  // non-batch-invariant kernel does to fill the device; device_matmul_bench times the best such
  // split against the invariant product (docs/design.md, "What batch invariance costs"). False:
  // this backend has no such variant.
  virtual bool matmul_split(const kernels::MatrixView& w, const float* x, int64_t x_stride,
                            int64_t n_tokens, float* y, int64_t y_stride, int64_t chunk_units) {
    return false;
  }

  // Rewrites `rows` rows of the Q8_0 matrix w, in this backend's memory (a stack of matrices
  // counts all its rows), in the layout this backend's products read fastest, in place, and
  // marks w (MatrixView::q8_0_split). The products give the same bits in either layout. False,
  // with nothing changed, where the backend reads the GGUF layout alone or w's rows do not
  // allow it. Called once per matrix after its upload (DeviceWeights).
  virtual bool split_q8_0_rows(kernels::MatrixView& w, int64_t rows) { return false; }

  // Row-wise RMSNorm of n_rows rows of n values: y = x / sqrt(mean(x²) + eps) ⊙ weight
  // (weight may be null: no weight). y may alias x.
  virtual void rms_norm(const float* x, const float* weight, int64_t n, int64_t n_rows, float eps,
                        float* y) = 0;

  // Embedding lookup (spec §3.1): row tokens[t] of `table`, dequantized, written `copies` times
  // side by side into x[t] (the n_hc residual streams start equal).
  virtual void embed(const kernels::MatrixView& table, const int32_t* tokens, int64_t n_tokens,
                     uint32_t copies, float* x) = 0;

  // HC_pre (spec §3.2) of n_tokens states x [n][n_hc·n_embd]: the sub-layer inputs y [n][n_embd],
  // the post gates [n][n_hc] and the Sinkhorn-normalised combine matrices [n][n_hc²].
  virtual void hc_pre(const HcMixing& hc, const float* x, int64_t n_tokens, float* y, float* post,
                      float* comb) = 0;

  // HC_post (spec §3.3): x_out[t] stream b = post_b·F[t] + Σ_a comb[a][b]·x[t] stream a, where
  // the sub-layer output F is f, or f + f_added (each value's sum as Backend::add takes it) when
  // f_added is set: the MoE's output comes as its shared and routed sums (spec §3.5), and
  // adding them here saves a pass over the rows (a launch per layer on a device).
  // x_out must not alias x.
  virtual void hc_post(const float* f, const float* f_added, const float* x, const float* post,
                       const float* comb, int64_t n_tokens, uint32_t n_hc, int64_t n_embd,
                       float* x_out) = 0;

  // HC head (spec §3.6): z[t] = Σ_s w_s·x[t] stream s with w = sigmoid(mixes·scale0 + base) + eps.
  virtual void hc_head(const HcMixing& hc, const float* x, int64_t n_tokens, float* z) = 0;

  // RoPE (spec §3.4.1) on n_tokens × heads head vectors head_stride floats apart: the rope_dim
  // values at `offset` in each are rotated to their token's position (−θ when `inverse`).
  // `freqs` holds rope_dim/2 frequencies (plain or YaRN, per layer kind).
  virtual void rope(float* x, int64_t n_tokens, int64_t heads, int64_t head_stride, int64_t offset,
                    int64_t rope_dim, const uint64_t* positions, const float* freqs,
                    bool inverse) = 0;

  // The FP8 (E4M3, UE8M0 scale per `block`) round-trip of spec §3.4.2 on the first `n` values of
  // n_rows rows `stride` floats apart, in place.
  virtual void fp8_round_trip(float* x, int64_t n_rows, int64_t stride, int64_t n,
                              int64_t block) = 0;

  // The indexer's QAT transform (spec §3.4.4) on n_rows rows of `dim` floats, in place:
  // Walsh–Hadamard rotation, then the FP4 (E2M1) round-trip in blocks of 32.
  virtual void indexer_qat(float* x, int64_t n_rows, int64_t dim) = 0;

  // Each tensor of `rows` (n_tokens tokens' head vectors) transformed by its HeadTransform, in
  // place: bit for bit rms_norm, rope, then fp8_round_trip or indexer_qat, as these ops give it.
  // A device backend runs all of it in one launch for up to kMaxHeadRows tensors (a layer's q,
  // kv and indexer-query rows, spec §3.4).
  virtual void transform_heads(int64_t n_tokens, std::span<const HeadRows> rows) {
    for (const HeadRows& r : rows) {
      const HeadTransform& t = r.t;
      const int64_t vectors = n_tokens * r.heads, rotated_from = r.head_dim - t.rope_dim;
      if (t.norm) rms_norm(r.x, t.norm_weight, r.head_dim, vectors, t.eps, r.x);
      rope(r.x, n_tokens, r.heads, r.head_dim, rotated_from, t.rope_dim, t.positions, t.freqs,
           false);
      if (t.fp8_block > 0) fp8_round_trip(r.x, vectors, r.head_dim, rotated_from, t.fp8_block);
      if (t.qat) indexer_qat(r.x, vectors, r.head_dim);
    }
  }

  // x[i] *= s for i < n.
  virtual void scale(float* x, int64_t n, float s) = 0;

  // MoE routing (spec §3.5) from router logits [n][n_expert]: experts [n][k] in selection order
  // and their weights [n][k]. `tokens` (the input ids) feed hash routing.
  virtual void route_experts(const ExpertRouting& routing, const float* logits,
                             const int32_t* tokens, int64_t n_tokens, int32_t* experts,
                             float* weights) = 0;

  // The dispatch plan of a MoE layer (spec §3.5): a counting sort of the n_tokens·k (token,
  // slot) pairs of `experts` ([n][k], ids < n_expert) by expert. Expert e's rows are
  // [expert_offsets[e], expert_offsets[e+1]) (n_expert + 1 entries), in token then slot order;
  // row r gathers token source_token[r] and carries weight row_scale[r] = weights[pair];
  // slot_row[t·k + s] is the row of pair (t, s).
  virtual void group_by_expert(const int32_t* experts, const float* weights, int64_t n_tokens,
                               uint32_t k, uint32_t n_expert, int64_t* expert_offsets,
                               int64_t* source_token, float* row_scale, int64_t* slot_row) = 0;

  // Grouped expert FFN (spec §3.5): rows [expert_offsets[e], expert_offsets[e+1]) go through
  // expert e's gate/up projections, the clamped SwiGLU scaled by row_scales[row] (null: 1), and
  // its down projection into y[row], for e < n_expert. Row r's input is x[x_rows[r]] (n_embd
  // floats), or x[r] when x_rows is null: the dispatch gather happens as the rows are quantized
  // (bit for bit gather_rows, then the FFN). One weight block serves every row routed to its
  // expert, and all experts share one pass over the threads. `n_rows` is
  // expert_offsets[n_expert], which the caller knows on the host: a device backend launches
  // without reading its plan back (no host round trip per layer). y must not alias x.
  virtual void grouped_expert_ffn(const ExpertFfnWeights& w, const int64_t* expert_offsets,
                                  uint32_t n_expert, int64_t n_rows, const float* x,
                                  const int64_t* x_rows, const float* row_scales, float* y) = 0;

  // dst[i] = src[rows[i]] for n rows of `width` floats (the expert dispatch gather).
  virtual void gather_rows(const float* src, int64_t width, const int64_t* rows, int64_t n,
                           float* dst) = 0;
  // dst[i·dst_stride + c] = src[r·src_stride + c] for c < width and i < n, r = rows ? rows[i] :
  // i: a strided row copy (expert parallelism's wire rows carry a pair's expert and weight
  // after its activations).
  virtual void copy_rows(const float* src, int64_t src_stride, const int64_t* rows, int64_t n,
                         int64_t width, float* dst, int64_t dst_stride) = 0;

  // The weighted expert combine (spec §3.5): out[t] = Σ_{s<k} slots[slot_rows[t·k + s]], summed
  // from zero in selection order s, so a token's sum never depends on where its experts ran.
  virtual void sum_slots(const float* slots, const int64_t* slot_rows, int64_t n_tokens, uint32_t k,
                         int64_t width, float* out) = 0;

  // y[i] += a[i] for i < n.
  virtual void add(const float* a, int64_t n, float* y) = 0;

  // What the sampler needs of n_rows rows of n_vocab logits, so that a step returns that instead
  // of the rows: each row's k best tokens in sampling's order (kernels/cpu/token_candidates.h)
  // into ids/values [n_rows][k] (id -1 past a row's orderable tokens), and, when
  // log_normalizer is not null, its log Σ exp(logit) into log_normalizer[n_rows] (double, as
  // the host's logprobs take it). 1 ≤ k ≤ kMaxTokenCandidates and k ≤ n_vocab.
  virtual void top_logits(const float* logits, int64_t n_rows, int64_t n_vocab, uint32_t k,
                          int32_t* ids, float* values, double* log_normalizer) = 0;

  // Draws a token from every row r whose params[r].temperature > 0, over the whole row as
  // kernels/cpu/whole_row_draw.h defines the draw (fixed-point weights, min-p, top-p, then the
  // token where the cumulative weight passes params[r].bits53 · 2^-53 of the kept weight), into
  // tokens[r], and that token's logit into token_logits[r]; other rows get -1 and 0. The sums
  // are exact integers, so the token never depends on how a backend orders them.
  virtual void draw_rows(const float* logits, int64_t n_rows, int64_t n_vocab,
                         const kernels::RowDrawParams* params, int32_t* tokens,
                         float* token_logits) = 0;

  // The KV update of one layer for a step (spec §3.4.2–§3.4.4, §4.1). Each token's raw row
  // (kv_rows[t], head_dim floats) goes into its sequence's window ring; each compressor given
  // takes the token and, when the token completes a block, pools it, finishes the pooled row
  // (RMSNorm, RoPE at the block's first position, then the FP8 simulation of main rows or the
  // QAT transform of indexer keys) and encodes it into the page its block table names. Tokens
  // of a sequence go in position order (spec §3.8: a chunk leaves the state its tokens would
  // one by one); sequences are independent.
  virtual void kv_append(const KvPageFormat& format, const KvLayerAddress& layer,
                         const KvStep& step, const float* kv_rows, const KvCompressor* main,
                         const KvCompressor* indexer) = 0;

  // The lightning indexer (spec §3.4.4) of a ratio-4 layer: for token t, of the n = (pos+1)/4
  // indexer keys its sequence has, all when n ≤ top_k, else the top_k highest scores
  // S_i = Σ_h w_h·max(0, q_h·K_i) (ties: lower index first). Writes their indices ascending to
  // chosen[t·top_k ..] and their count to chosen_count[t]. q: [n_tokens][heads][indexer_dim]
  // (RoPE'd, QAT-transformed), head_weights: [n_tokens][heads], each multiplied by weight_scale
  // into w_h (the scale is applied here, not in a pass of its own over the weights).
  virtual void indexer_topk(const KvPageFormat& format, const KvLayerAddress& layer,
                            const KvStep& step, const float* q, const float* head_weights,
                            float weight_scale, int64_t heads, uint32_t top_k, uint32_t* chosen,
                            uint32_t* chosen_count) = 0;

  // Sparse attention (spec §3.4): each head of each token attends, with its sink logit, over
  // its sequence's raw rows of the last `window` positions up to its own and its compressed
  // rows: for ratio 4 the indexer's choice (chosen / chosen_count as indexer_topk wrote them),
  // for ratio 128 every row i < (pos+1)/128, none for ratio 0. K = V; scores scaled by
  // 1/sqrt(head_dim). q and o: [n_tokens][n_head][head_dim]. With undo_rope, each head's output
  // then leaves through rope(o, .., inverse) as that op gives it (a device backend rotates the
  // pairs in the kernel that writes them).
  virtual void sparse_attention(const KvPageFormat& format, const KvLayerAddress& layer,
                                const KvStep& step, uint32_t window, const float* q, int64_t n_head,
                                const float* sinks, const uint32_t* chosen,
                                const uint32_t* chosen_count, uint32_t top_k, float* o,
                                const OutputRope* undo_rope) = 0;

  // Runs fn on disjoint ranges of [0, n); each index is handled by exactly one call, on the
  // backend's host threads (a device backend runs it inline). For host work between steps
  // (benchmarks, the worker's whole-row sampling); the forward does not use it.
  virtual void parallel_for(int64_t n, FunctionRef<void(int64_t, int64_t)> fn) = 0;

  // Convenience: contiguous rows.
  void matmul(const kernels::MatrixView& w, const float* x, int64_t n_tokens, float* y) {
    matmul(w, x, w.cols, n_tokens, y, w.rows);
  }
};

}  // namespace v4
