// Sampling from a whole row of logits without sorting it: the draw of a request with no top-k
// (every OpenAI request that samples; that API has no top_k).
//
// The distribution is the usual one: softmax(logit/T), min-p keeps the tokens whose probability
// is at least min_p times the best one's, top-p keeps the shortest prefix of the ranked tokens
// (logit descending, lower id first) whose mass reaches top_p, and the draw walks the kept
// prefix in rank order to where the cumulative mass passes u·(kept mass). Every probability is
// a fixed-point weight (kernels/cpu/draw_weight.h), so the cumulative sums are exact integers:
// the draw finds the prefix boundary and the drawn token by a most-significant-digit radix
// search over the rank key (a few passes over the row) instead of sorting all of it (10 ms for
// a 129,280-token row), and gets the token that a sort and walk would get. Tokens whose weight
// rounds to zero (probability below about 2^-46 of the best token's) are never drawn.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cpu/draw_weight.h"

namespace v4::kernels {

// One row's draw: weigh() its tokens once, then draw (or ask where a cumulative mass falls).
class WholeRowDraw {
 public:
  // The drawable tokens that min-p keeps, their fixed-point weights, and top-p's boundary. A row
  // with no orderable logit (all NaN) always gives 0; one whose best logit is infinite, or whose
  // min-p keeps nothing, that best token.
  void weigh(std::span<const float> logits, const WholeRowDrawOptions& options);
  // The kept tokens' total weight (0 when one token is fixed).
  uint64_t kept_mass() const { return kept_mass_; }
  // The first kept token, in rank order, whose cumulative weight passes x < kept_mass().
  int32_t token_passing(uint64_t x);
  // The token drawn by u = bits53 · 2^-53 (bits53 < 2^53).
  int32_t draw(uint64_t bits53);

 private:
  struct Weighted {
    uint64_t key;  // kernels::draw_rank_key: ascending is rank order; the id in its low bits
    uint64_t weight;
  };
  struct Crossing {
    int32_t id;
    uint64_t mass_through;  // the cumulative weight up to and including it
  };
  Crossing crossing(uint64_t x);

  // Radix digits of a key, most significant first: a crossing narrows to the tokens sharing
  // the digits it has found.
  static constexpr int kDigitBits = 12;
  static constexpr int kTopShift = 64 - kDigitBits;

  std::vector<Weighted> kept_;
  std::vector<uint64_t> top_digit_mass_;   // kept weight per top digit, summed while weighing
  std::vector<uint64_t> digit_mass_;       // the same for a narrower digit
  std::vector<Weighted> narrowed_, next_;  // the tokens that share the digits found so far
  uint64_t kept_mass_ = 0;
  int32_t fixed_ = -1;  // ≥ 0: the token every draw gives
};

// WholeRowDraw's weigh and draw with a scratch of the calling thread's.
int32_t draw_whole_row(std::span<const float> logits, const WholeRowDrawOptions& options,
                       uint64_t bits53);
// The same for a backend's row parameters (filters and bits).
int32_t draw_whole_row(std::span<const float> logits, const RowDrawParams& params);

}  // namespace v4::kernels
