#include "worker/mtp_drafter.h"

#include <algorithm>

#include "model/v4/v4_config.h"

namespace v4 {

MtpDrafter::MtpDrafter(V4Forward& forward) : forward_(forward) {}
MtpDrafter::~MtpDrafter() = default;

Status MtpDrafter::observe(RequestId id, uint64_t first, std::span<const float> hidden, size_t rows,
                           std::span<const int32_t> tokens) {
  const V4Config& c = forward_.weights().config;
  const size_t flat = size_t{c.n_hc} * c.n_embd;
  if (hidden.size() < rows * flat) return Status::error("MTP drafter: hidden rows missing");
  Sequence& s = sequences_[id];
  if (!s.window) s.window = std::make_unique<MtpWindow>(c, forward_.backend());
  for (size_t r = 0; r < rows; ++r) {
    if (s.window->started() && first + r < s.window->n_past()) continue;  // fed already
    s.hidden[first + r].assign(hidden.begin() + static_cast<std::ptrdiff_t>(r * flat),
                               hidden.begin() + static_cast<std::ptrdiff_t>((r + 1) * flat));
  }
  for (size_t i = 0; i < tokens.size(); ++i) s.tokens[first + i] = tokens[i];
  // Pairs more than a window behind the newest can never reach a draft (the block attends over
  // its last sliding_window rows, each row's K/V a function of its own pair only): dropping them
  // bounds what a request keeps while it does not draft (long prefills, large batches).
  const uint64_t end = first + rows;  // one past the newest row
  if (end > c.sliding_window) {
    const uint64_t cut = end - c.sliding_window;
    s.hidden.erase(s.hidden.begin(), s.hidden.lower_bound(cut));
    s.tokens.erase(s.tokens.begin(), s.tokens.lower_bound(cut));
  }
  return Status::ok();
}

Result<std::vector<float>> MtpDrafter::feed_through(Sequence& s, uint64_t last,
                                                    std::vector<float>* hidden_out) {
  MtpWindow& w = *s.window;
  const uint64_t window = forward_.weights().config.sliding_window;
  if (!w.started()) {
    // A fresh window starts at the earliest pair it can fill (at most a window before last).
    uint64_t start = last;
    while (start > 0 && last - (start - 1) < window && s.hidden.count(start - 1) &&
           s.tokens.count(start))
      --start;
    w.start(start);
  }
  if (w.n_past() > last) w.set_n_past(last);
  // Rows a window or more behind `last` are outside every draft's attention: skip them.
  if (last + 1 > w.n_past() + window) w.set_n_past(last + 1 - window);
  std::vector<float> hidden;
  std::vector<int32_t> tokens;
  for (;;) {
    // The run of kept pairs from the window's next position, up to kMtpMaxRows and `last`.
    const uint64_t first = w.n_past();
    hidden.clear();
    tokens.clear();
    uint64_t t = first;
    for (; t <= last && t - first < static_cast<uint64_t>(kMtpMaxRows); ++t) {
      auto h = s.hidden.find(t);
      auto x = s.tokens.find(t + 1);
      if (h == s.hidden.end() || x == s.tokens.end()) break;
      hidden.insert(hidden.end(), h->second.begin(), h->second.end());
      tokens.push_back(x->second);
    }
    if (t == first) {
      // A position this request never kept (inside an earlier prefill chunk): its row stays
      // stale, which only lowers the drafts' quality.
      w.advance(1);
      continue;
    }
    const bool final = t == last + 1;
    Result<std::vector<float>> out =
        forward_.mtp_forward(w, hidden, tokens, final ? hidden_out : nullptr, final);
    if (!out) return out.status();
    if (!final) continue;
    s.hidden.erase(s.hidden.begin(), s.hidden.upper_bound(last));
    return out;
  }
}

// Greedy drafts (lowest id on ties): the most likely continuation is the likeliest to equal the
// token the request samples.
Result<std::vector<int32_t>> MtpDrafter::draft(RequestId id, uint64_t first,
                                               std::span<const int32_t> chunk, uint32_t count) {
  std::vector<int32_t> drafts;
  auto it = sequences_.find(id);
  if (it == sequences_.end() || chunk.empty() || first + chunk.size() < 2 || count == 0)
    return drafts;
  Sequence& s = it->second;
  for (size_t i = 0; i < chunk.size(); ++i) s.tokens[first + i] = chunk[i];
  // Pair (H_t, x_{t+1}) with t + 1 the chunk's last position predicts the first draft.
  const uint64_t target = first + chunk.size() - 2;
  if (!s.hidden.count(target)) return drafts;
  // The verified pairs the window lacks and the first draft's pair, batched into forwards.
  std::vector<float> state;
  Result<std::vector<float>> logits = feed_through(s, target, &state);
  for (uint32_t i = 0; i < std::min(count, kMaxSpeculativeTokens); ++i) {
    if (i > 0) logits = forward_.mtp_draft(*s.window, state, drafts.back(), &state);
    if (!logits) return logits.status();
    drafts.push_back(
        static_cast<int32_t>(std::max_element(logits->begin(), logits->end()) - logits->begin()));
  }
  // Only the first pair was verified; the recursive drafts' rows are dropped.
  s.window->set_n_past(target + 1);
  s.tokens.erase(s.tokens.begin(), s.tokens.lower_bound(target + 1));
  return drafts;
}

}  // namespace v4
