#include "kernels/cpu/whole_row_draw.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/token_candidates.h"

namespace v4::kernels {
namespace {

// Tokens few enough to sort and walk; more are narrowed by one more radix digit.
constexpr size_t kSortBelow = 64;

}  // namespace

void WholeRowDraw::weigh(std::span<const float> logits, const WholeRowDrawOptions& options) {
  kept_.clear();
  kept_mass_ = 0;
  top_digit_mass_.assign(size_t{1} << kDigitBits, 0);
  const auto n = static_cast<int64_t>(logits.size());
  int32_t best = -1;  // the row's best orderable token (-1: every logit is NaN)
  float max = 0.0f;
  select_top_candidates(logits.data(), n, 1, &best, &max);
  fixed_ = std::max(best, 0);
  if (best < 0 || !std::isfinite(max)) return;
  const DrawWeightScale scale = draw_weight_scale(n);
  const float min_x = draw_min_scaled_logit(options.min_p);
  uint64_t row_mass = 0;  // top-p's reference: the whole row's
  for (size_t i = 0; i < logits.size(); ++i) {
    const float v = logits[i];
    const float x = draw_scaled_logit(v, max, options.temperature);
    const uint64_t w = draw_weight(x, scale);
    if (w == 0) continue;
    row_mass += w;
    if (x < min_x) continue;
    const uint64_t key = draw_rank_key(v, static_cast<int32_t>(i));
    kept_.push_back({key, w});
    top_digit_mass_[key >> kTopShift] += w;
    kept_mass_ += w;
  }
  if (kept_.empty()) return;  // min_p above 1 keeps nothing; the best token stands
  fixed_ = -1;
  // top-p: the shortest ranked prefix whose mass reaches top_p of the row's.
  if (options.top_p < 1.0f) {
    const uint64_t reach = draw_top_p_reach(options.top_p, row_mass);
    if (kept_mass_ >= reach) kept_mass_ = crossing(reach - 1).mass_through;
  }
}

int32_t WholeRowDraw::token_passing(uint64_t x) {
  return fixed_ >= 0 ? fixed_ : crossing(std::min(x, kept_mass_ - 1)).id;
}

int32_t WholeRowDraw::draw(uint64_t bits53) {
  return fixed_ >= 0 ? fixed_ : crossing(draw_threshold(bits53, kept_mass_)).id;
}

// A most-significant-digit radix search: the digit whose tokens' mass takes the cumulative sum
// past x, then the next digit among those tokens only, until few enough remain to sort. The
// sums are exact integers, so summing per digit in row order finds the token that sorting
// everything and walking would find, in a few passes over the row instead of a sort of it.
WholeRowDraw::Crossing WholeRowDraw::crossing(uint64_t x) {
  constexpr uint64_t kDigits = uint64_t{1} << kDigitBits;
  const std::vector<Weighted>* range = &kept_;
  const std::vector<uint64_t>* mass = &top_digit_mass_;
  uint64_t before = 0;  // the weight ranked before every token of *range
  for (int shift = kTopShift; range->size() > kSortBelow && shift >= 0; shift -= kDigitBits) {
    if (shift != kTopShift) {
      digit_mass_.assign(kDigits, 0);
      for (const Weighted& t : *range) digit_mass_[(t.key >> shift) & (kDigits - 1)] += t.weight;
      mass = &digit_mass_;
    }
    uint64_t digit = 0;
    while (digit + 1 < kDigits && before + (*mass)[digit] <= x) before += (*mass)[digit++];
    next_.clear();
    for (const Weighted& t : *range) {
      if (((t.key >> shift) & (kDigits - 1)) == digit) next_.push_back(t);
    }
    narrowed_.swap(next_);
    range = &narrowed_;
  }
  if (range != &narrowed_) narrowed_.assign(range->begin(), range->end());
  std::sort(narrowed_.begin(), narrowed_.end(),
            [](const Weighted& a, const Weighted& b) { return a.key < b.key; });
  for (const Weighted& t : narrowed_) {
    before += t.weight;
    if (before > x) return {static_cast<int32_t>(t.key), before};
  }
  return {static_cast<int32_t>(narrowed_.back().key), before};  // not reached: x < kept mass
}

int32_t draw_whole_row(std::span<const float> logits, const WholeRowDrawOptions& options,
                       uint64_t bits53) {
  static thread_local WholeRowDraw scratch;
  scratch.weigh(logits, options);
  return scratch.draw(bits53);
}

int32_t draw_whole_row(std::span<const float> logits, const RowDrawParams& params) {
  return draw_whole_row(logits, params.filters, params.bits53);
}

}  // namespace v4::kernels
