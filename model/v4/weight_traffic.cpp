#include "model/v4/weight_traffic.h"

#include <algorithm>
#include <set>

#include "model/v4/v4_weights.h"

namespace v4 {
namespace {

uint64_t float_bytes(const WeightVector<float>& v) { return v.size() * sizeof(float); }

// Bytes of the bind-time float vectors a step reads for `n_tokens` tokens of one layer. The
// compressor's ape is read one row (position mod ratio) per token, so at most `ratio` rows.
uint64_t layer_small_bytes(const LayerWeights& l, uint64_t n_tokens) {
  auto compressor = [n_tokens](const CompressorWeights& c) -> uint64_t {
    if (c.ratio == 0) return 0;
    const uint64_t rows = std::min<uint64_t>(n_tokens, c.ratio);
    return rows * c.width * sizeof(float) + float_bytes(c.norm);
  };
  return float_bytes(l.hc_attn.scale) + float_bytes(l.hc_attn.base) + float_bytes(l.hc_ffn.scale) +
         float_bytes(l.hc_ffn.base) + float_bytes(l.attn_norm) + float_bytes(l.q_a_norm) +
         float_bytes(l.kv_a_norm) + float_bytes(l.sinks) + float_bytes(l.ffn_norm) +
         float_bytes(l.exp_probs_b) + compressor(l.compressor) + compressor(l.indexer.compressor);
}

// Total length of the union of `ranges` (sorted by begin).
uint64_t union_bytes(const std::vector<ByteRange>& sorted) {
  uint64_t total = 0;
  const uint8_t* open_begin = nullptr;
  const uint8_t* open_end = nullptr;
  for (const ByteRange& r : sorted) {
    if (open_end && r.begin <= open_end) {
      open_end = std::max(open_end, r.end);
      continue;
    }
    if (open_end) total += static_cast<uint64_t>(open_end - open_begin);
    open_begin = r.begin;
    open_end = r.end;
  }
  if (open_end) total += static_cast<uint64_t>(open_end - open_begin);
  return total;
}

}  // namespace

// Called from the forward's own thread only (the pool is not reentrant), so no lock.
void WeightTrafficRecorder::record(const kernels::MatrixView& w) {
  if (recording_ && w.rows > 0)
    ranges_.push_back({w.data, w.data + static_cast<size_t>(w.rows) * w.row_bytes});
}

void WeightTrafficRecorder::matmul(const kernels::MatrixView& w, const float* x, int64_t x_stride,
                                   int64_t n_tokens, float* y, int64_t y_stride) {
  if (n_tokens > 0) record(w);
  inner_.matmul(w, x, x_stride, n_tokens, y, y_stride);
}

void WeightTrafficRecorder::matmul_shared(const float* x, int64_t n_tokens,
                                          std::span<const MatmulTarget> targets) {
  if (n_tokens > 0) {
    for (const MatmulTarget& t : targets) record(t.w);
  }
  inner_.matmul_shared(x, n_tokens, targets);
}

void WeightTrafficRecorder::norm_matmul_shared(float* x, const float* norm_weight, int64_t width,
                                               float eps, int64_t n_tokens,
                                               std::span<const MatmulTarget> targets) {
  if (n_tokens > 0) {
    for (const MatmulTarget& t : targets) record(t.w);
  }
  inner_.norm_matmul_shared(x, norm_weight, width, eps, n_tokens, targets);
}

void WeightTrafficRecorder::matmul_groups(const kernels::MatrixView& w, int64_t groups,
                                          const float* x, int64_t n_tokens, float* y) {
  if (n_tokens > 0) record(w);
  inner_.matmul_groups(w, groups, x, n_tokens, y);
}

void WeightTrafficRecorder::hc_pre(const HcMixing& hc, const float* x, int64_t n_tokens, float* y,
                                   float* post, float* comb) {
  if (n_tokens > 0) record(*hc.fn);
  inner_.hc_pre(hc, x, n_tokens, y, post, comb);
}

void WeightTrafficRecorder::hc_head(const HcMixing& hc, const float* x, int64_t n_tokens,
                                    float* z) {
  if (n_tokens > 0) record(*hc.fn);
  inner_.hc_head(hc, x, n_tokens, z);
}

void WeightTrafficRecorder::grouped_expert_ffn(const ExpertFfnWeights& w,
                                               const int64_t* expert_offsets, uint32_t n_expert,
                                               int64_t n_rows, const float* x,
                                               const int64_t* x_rows, const float* row_scales,
                                               float* y) {
  if (!recording_) {
    inner_.grouped_expert_ffn(w, expert_offsets, n_expert, n_rows, x, x_rows, row_scales, y);
    return;
  }
  // The dispatch plan is in the backend's memory: read it back (a GPU's is not the host's).
  offsets_.resize(n_expert + 1);
  if (!inner_.read_back(expert_offsets, offsets_.data(), offsets_.size() * sizeof(int64_t))) {
    offsets_.assign(n_expert + 1, 0);
  }
  for (uint32_t e = 0; e < n_expert; ++e) {
    if (offsets_[e + 1] == offsets_[e]) continue;
    const int32_t id = static_cast<int32_t>(e);
    record(w.gate.matrix(id));
    record(w.up.matrix(id));
    record(w.down.matrix(id));
  }
  inner_.grouped_expert_ffn(w, expert_offsets, n_expert, n_rows, x, x_rows, row_scales, y);
}

std::vector<ByteRange> WeightTrafficRecorder::take_ranges() {
  std::vector<ByteRange> out;
  out.swap(ranges_);
  return out;
}

StepTraffic& StepTraffic::operator+=(const StepTraffic& o) {
  matrix_bytes += o.matrix_bytes;
  embedding_bytes += o.embedding_bytes;
  small_bytes += o.small_bytes;
  routed_experts += o.routed_experts;
  routed_expert_bytes += o.routed_expert_bytes;
  return *this;
}

StepTraffic summarize_step_traffic(const V4Weights& w, std::span<const ByteRange> ranges,
                                   std::span<const int32_t> tokens) {
  StepTraffic out;
  std::vector<ByteRange> sorted(ranges.begin(), ranges.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.begin < b.begin; });
  out.matrix_bytes = union_bytes(sorted);

  // A routed expert is read iff its gate matrix is: the MoE runs gate, up and down for every
  // expert with at least one token, and never for the others.
  for (const LayerWeights& l : w.layers) {
    const WeightMatrix& gate = l.gate_exps;
    const uint8_t* base = gate.view.data;
    const uint8_t* end = base + static_cast<size_t>(gate.n_mats) * gate.mat_bytes;
    std::set<int64_t> experts;
    auto it = std::lower_bound(sorted.begin(), sorted.end(), base,
                               [](const ByteRange& r, const uint8_t* p) { return r.begin < p; });
    for (; it != sorted.end() && it->begin < end; ++it) {
      experts.insert(static_cast<int64_t>(it->begin - base) / static_cast<int64_t>(gate.mat_bytes));
    }
    out.routed_experts += experts.size();
    out.routed_expert_bytes +=
        experts.size() * (gate.mat_bytes + l.up_exps.mat_bytes + l.down_exps.mat_bytes);
  }

  const std::set<int32_t> distinct(tokens.begin(), tokens.end());
  out.embedding_bytes = distinct.size() * w.token_embd.view.row_bytes;
  for (const LayerWeights& l : w.layers) {
    out.small_bytes += layer_small_bytes(l, tokens.size());
    if (l.hash_routed()) out.small_bytes += distinct.size() * l.tid2eid_width * sizeof(int32_t);
  }
  out.small_bytes +=
      float_bytes(w.output_hc.scale) + float_bytes(w.output_hc.base) + float_bytes(w.output_norm);
  return out;
}

}  // namespace v4
