#include "model/v4/device_weights.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <type_traits>

namespace v4 {
namespace {

// 256 bytes: every tensor starts on a boundary any device load width accepts.
constexpr uint64_t kAlign = 256;

uint64_t aligned(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

uint64_t matrix_bytes(const WeightMatrix& m) {
  return m.present() ? static_cast<uint64_t>(m.n_mats) * m.mat_bytes : 0;
}

// The visitors take const or mutable weights (W deduces either): resident_weight_bytes reads,
// DeviceWeights::upload repoints.
template <class W, class F>
void visit_hc(W& hc, F&& f) {
  f(hc.fn);
  f(hc.scale);
  f(hc.base);
}

template <class W, class F>
void visit_compressor(W& c, F&& f) {
  f(c.kv);
  f(c.gate);
  f(c.ape);
  f(c.norm);
}

template <class W, class F>
void visit_layer(W& l, F&& f) {
  visit_hc(l.hc_attn, f);
  visit_hc(l.hc_ffn, f);
  for (auto* v : {&l.attn_norm, &l.q_a_norm, &l.kv_a_norm, &l.sinks, &l.ffn_norm, &l.exp_probs_b})
    f(*v);
  for (auto* m : {&l.q_a, &l.q_b, &l.kv, &l.output_a, &l.output_b, &l.router, &l.gate_exps,
                  &l.up_exps, &l.down_exps, &l.gate_shexp, &l.up_shexp, &l.down_shexp})
    f(*m);
  visit_compressor(l.compressor, f);
  f(l.indexer.q_b);
  f(l.indexer.proj);
  visit_compressor(l.indexer.compressor, f);
  f(l.tid2eid);
}

// Calls f on every WeightMatrix and WeightVector of w (spec §5.4, MTP §5.5).
template <class W, class F>
void visit_weights(W& w, F&& f) {
  f(w.token_embd);
  f(w.output);
  f(w.output_hc.fn);
  f(w.output_hc.scale);
  f(w.output_hc.base);
  f(w.output_norm);
  for (auto& l : w.layers) visit_layer(l, f);
  if (w.mtp) {
    auto& m = *w.mtp;
    visit_layer(m.block, f);
    for (auto* x : {&m.e_proj, &m.h_proj, &m.eh_proj}) f(*x);
    for (auto* v : {&m.enorm, &m.hnorm, &m.norm}) f(*v);
    f(m.hc_head.fn);
    f(m.hc_head.scale);
    f(m.hc_head.base);
  }
}

template <class T>
uint64_t bytes_of(const T& x) {
  if constexpr (std::is_same_v<T, WeightMatrix>) {
    return matrix_bytes(x);
  } else {
    return x.size() * sizeof(x[0]);
  }
}

std::string gib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
  return text;
}

// A routed-expert stack `tiers` cuts to its hot experts: their ids, and the stack's full count.
struct CutStack {
  WeightMatrix* stack;
  const std::vector<int32_t>* hot;
  int64_t full_mats;
};

// Cuts the stacks of the layers `tiers` does not keep whole: their n_mats becomes the hot count
// (their views still on the host's full stacks).
std::vector<CutStack> cut_to_hot_sets(V4Weights& w, const ExpertTiers* tiers) {
  std::vector<CutStack> cut;
  if (!tiers) return cut;
  for (uint32_t l = 0; l < w.layers.size(); ++l) {
    if (tiers->all_hot(l, w.config.n_expert)) continue;
    for (WeightMatrix* m : {&w.layers[l].gate_exps, &w.layers[l].up_exps, &w.layers[l].down_exps}) {
      cut.push_back({m, &tiers->hot[l], m->n_mats});
      m->n_mats = static_cast<int64_t>(tiers->hot[l].size());
    }
  }
  return cut;
}

}  // namespace

uint64_t resident_weight_bytes(const V4Weights& weights, const ExpertTiers* tiers) {
  if (tiers) {
    V4Weights cut = weights;  // a copy of the views: the tiers change its stacks' counts
    cut_to_hot_sets(cut, tiers);
    return resident_weight_bytes(cut);
  }
  uint64_t total = 0;
  visit_weights(weights, [&](const auto& x) { total += aligned(bytes_of(x)); });
  return total;
}

Status check_device_fit(uint64_t needed, uint64_t free_bytes, const std::string& what) {
  if (needed <= free_bytes) return Status::ok();
  return Status::error("the model does not fit on the device: it needs " + gib(needed) + " (" +
                       what + ") and " + gib(free_bytes) +
                       " are free: " + gib(needed - free_bytes) + " missing");
}

Result<std::unique_ptr<DeviceWeights>> DeviceWeights::upload(
    const V4Weights& host, Backend& backend,
    const std::function<void(const UploadProgress&)>& progress, const HostMats& host_mats,
    const ExpertTiers* tiers) {
  if (tiers)
    if (Status s = tiers->validate(host.config.n_layer, host.config.n_expert); !s) return s;
  auto out = std::unique_ptr<DeviceWeights>(new DeviceWeights());
  out->weights_ = host;
  const auto cut = cut_to_hot_sets(out->weights_, tiers);
  out->bytes_ = resident_weight_bytes(out->weights_);  // cut already
  try {
    out->buffer_ = backend.allocate(std::max<uint64_t>(out->bytes_, 1));
  } catch (const std::bad_alloc&) {
    return Status::error("cannot allocate " + gib(out->bytes_) + " for the weights on the device");
  }
  const Tensor all = Tensor::whole(out->buffer_.get());
  uint8_t* base = static_cast<uint8_t*>(out->buffer_->data());
  const auto start = std::chrono::steady_clock::now();
  UploadProgress p{0, out->bytes_, 0};
  uint64_t offset = 0;
  Status status;
  visit_weights(out->weights_, [&](auto& x) {
    const uint64_t bytes = bytes_of(x);
    if (!status || bytes == 0) return;
    using X = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<X, WeightMatrix>) {
      const auto tiered =
          std::find_if(cut.begin(), cut.end(), [&](const CutStack& c) { return c.stack == &x; });
      WeightMatrix full = x;
      if (tiered != cut.end()) full.n_mats = tiered->full_mats;
      const int64_t held = host_mats ? std::max<int64_t>(1, host_mats(full)) : full.n_mats;
      if (tiered != cut.end()) {
        // The hot experts, packed in id order; a template stack repeats its held matrices.
        const std::vector<int32_t>& ids = *tiered->hot;
        for (size_t j = 0; status && j < ids.size(); ++j) {
          const int64_t source = ids[j] % held;
          status = backend.copy_to_device(x.view.data + source * x.mat_bytes, all,
                                          offset + j * x.mat_bytes, x.mat_bytes);
        }
      }
      for (int64_t i = 0; status && tiered == cut.end() && i < x.n_mats; i += held) {
        const int64_t n = std::min(held, x.n_mats - i);
        status =
            backend.copy_to_device(x.view.data, all, offset + i * x.mat_bytes, n * x.mat_bytes);
      }
    } else {
      status = backend.copy_to_device(x.data(), all, offset, bytes);
    }
    if constexpr (std::is_same_v<X, WeightMatrix>) {
      x.view.data = base + offset;
      // Q8_0 rows in the layout the device's products read coalesced (the same values).
      if (status && x.view.type == GgmlType::Q8_0 &&
          x.mat_bytes == static_cast<size_t>(x.view.rows) * x.view.row_bytes)
        backend.split_q8_0_rows(x.view, x.n_mats * x.view.rows);
    } else {
      x.set_device(reinterpret_cast<const typename std::decay_t<decltype(x[0])>*>(base + offset));
    }
    offset += aligned(bytes);
    p.bytes_done = offset;
    p.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (progress) progress(p);
  });
  if (!status) return Status::error("uploading the weights: " + status.message());
  return out;
}

}  // namespace v4
