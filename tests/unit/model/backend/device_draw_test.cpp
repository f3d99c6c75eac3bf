// Backend::draw_rows, the op that draws a sampled row's token where the logits are. The reference
// is the host's whole-row draw (kernels/cpu/whole_row_draw.h, itself tested against a sort and
// walk and against textbook nucleus sampling): CpuBackend must give its token for every row, and
// each device backend the CPU's tokens and logits exactly. The draw's sums are integers, so the
// team's order cannot move a token; what could is expf, which on CUDA may differ from glibc's in
// its last bits and so move a weight by a unit of 2^-45 — a draw moves only if its target falls
// within such a unit of a boundary, which these seeded rows never do.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "kernels/cpu/token_candidates.h"
#include "kernels/cpu/whole_row_draw.h"
#include "model/backend/cpu_backend.h"
#include "model/backend/device/scratch_bound.h"
#include "tests/unit/model/backend/device_test_util.h"

namespace v4 {
namespace {

using kernels::RowDrawParams;
using testing_device::download;
using testing_device::upload;
using testing_device::zeros_on;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Draws {
  std::vector<int32_t> tokens;
  std::vector<float> logits;
};

Draws draw(Backend& be, const std::vector<float>& x, int64_t vocab,
           const std::vector<RowDrawParams>& params) {
  const auto rows = static_cast<int64_t>(params.size());
  auto dx = upload(be, x);
  auto dp = upload(be, params);
  auto tokens = zeros_on<int32_t>(be, params.size());
  auto logits = zeros_on<float>(be, params.size());
  be.draw_rows(dx.get(), rows, vocab, dp.get(), tokens.get(), logits.get());
  return {download(be, tokens), download(be, logits)};
}

// Rows of every kind the draw meets: flat (most tokens weigh something), peaked, on a grid of
// ties (with −0 and +0), NaN and −inf sprinkled in, all NaN, an infinite best token; each with
// its own filters and random bits, and one row not drawn (temperature 0).
struct Case {
  std::vector<float> x;
  std::vector<RowDrawParams> params;
};

Case test_case(int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::mt19937_64 bits(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const float spreads[] = {2.0f, 40.0f, 3.0f, 4.0f, 1.0f, 5.0f, 8.0f, 2.0f, 6.0f};
  const RowDrawParams filters[] = {
      {1.0f, 1.0f, 0.0f},  {0.7f, 0.9f, 0.0f},   {1.3f, 1.0f, 0.05f},
      {0.2f, 0.5f, 0.01f}, {0.0f, 1.0f, 0.0f},   {2.0f, 0.999f, 0.0f},
      {1.0f, 1e-6f, 0.0f}, {0.8f, 0.95f, 0.02f}, {1.0f, 1.0f, 0.0f},
  };
  Case c;
  const size_t rows = std::size(spreads);
  c.x.resize(rows * static_cast<size_t>(vocab));
  for (size_t r = 0; r < rows; ++r) {
    float* row = c.x.data() + r * static_cast<size_t>(vocab);
    for (int64_t i = 0; i < vocab; ++i) row[i] = u(rng) * spreads[r];
    RowDrawParams p = filters[r];
    p.bits53 = bits() >> 11;
    c.params.push_back(p);
  }
  float* ties = c.x.data() + 2 * vocab;
  for (int64_t i = 0; i < vocab; ++i) ties[i] = std::round(ties[i] * 4.0f) / 4.0f;
  float* holes = c.x.data() + 3 * vocab;
  for (int64_t i = 0; i < vocab; i += 37) holes[i] = kNan;
  holes[1] = -kInf;
  std::fill(c.x.data() + 5 * vocab, c.x.data() + 6 * vocab, kNan);
  c.x[static_cast<size_t>(7 * vocab + vocab / 2)] = kInf;
  return c;
}

TEST(CpuDrawRows, IsTheHostsWholeRowDraw) {
  CpuBackend cpu(2);
  const int64_t vocab = 3001;
  const Case c = test_case(vocab, 1);
  const Draws got = draw(cpu, c.x, vocab, c.params);
  for (size_t r = 0; r < c.params.size(); ++r) {
    const RowDrawParams& p = c.params[r];
    if (p.filters.temperature <= 0.0f) {
      EXPECT_EQ(got.tokens[r], -1) << "row " << r;
      continue;
    }
    const std::span<const float> row(c.x.data() + r * vocab, static_cast<size_t>(vocab));
    const int32_t want = kernels::draw_whole_row(row, p.filters, p.bits53);
    EXPECT_EQ(got.tokens[r], want) << "row " << r;
    const float logit = row[static_cast<size_t>(want)];
    EXPECT_TRUE(got.logits[r] == logit || (std::isnan(logit) && std::isnan(got.logits[r])))
        << "row " << r;
  }
  EXPECT_EQ(got.tokens[5], 0) << "an all-NaN row gives token 0";
  EXPECT_EQ(got.tokens[7], vocab / 2) << "an infinite logit is drawn";
}

class DeviceDrawRows : public testing_device::OnEachDevice {};

void expect_same(const Draws& got, const Draws& want, const char* what) {
  EXPECT_EQ(got.tokens, want.tokens) << what;
  ASSERT_EQ(got.logits.size(), want.logits.size());
  for (size_t r = 0; r < got.logits.size(); ++r) {
    EXPECT_TRUE(got.logits[r] == want.logits[r] ||
                (std::isnan(got.logits[r]) && std::isnan(want.logits[r])))
        << what << " row " << r;
  }
}

TEST_P(DeviceDrawRows, DrawsTheCpusTokensWhateverTheBatch) {
  const int64_t vocab = 3001;  // not a multiple of the team
  for (uint32_t seed : {2u, 3u}) {
    const Case c = test_case(vocab, seed);
    const Draws want = draw(cpu_, c.x, vocab, c.params);
    const Draws got = draw(*be_, c.x, vocab, c.params);
    expect_same(got, want, "batch");
    // Each row alone draws what it drew in the batch.
    for (size_t r = 0; r < c.params.size(); r += 3) {
      const std::vector<float> one(c.x.begin() + static_cast<ptrdiff_t>(r * vocab),
                                   c.x.begin() + static_cast<ptrdiff_t>((r + 1) * vocab));
      const Draws alone = draw(*be_, one, vocab, {c.params[r]});
      EXPECT_EQ(alone.tokens[0], got.tokens[r]) << "row " << r << " alone";
    }
  }
}

TEST_P(DeviceDrawRows, FullVocabularyRows) {
  const int64_t vocab = 129280;  // V4's vocabulary
  std::vector<float> x = testing_device::randoms(static_cast<size_t>(2 * vocab), 4);
  x[static_cast<size_t>(vocab + 17)] = 6.0f;  // row 1 peaked
  std::vector<RowDrawParams> params{{0.9f, 0.95f, 0.0f, 0, 12345}, {1.0f, 1.0f, 0.0f, 0, 1}};
  for (uint64_t b : {uint64_t{0}, (uint64_t{1} << 53) - 1, uint64_t{0x123456789abcd}}) {
    params[0].bits53 = b;
    expect_same(draw(*be_, x, vocab, params), draw(cpu_, x, vocab, params), "full rows");
  }
}

// Rows whose crossing falls where many tokens share a bin of the device's search
// (device_ops_draw_search.h): tied logits at the top, more of them than the row team holds (its
// radix search over the row), fewer (its held tokens), a row of one logit repeated (every token
// in one bin), and a wide row with −inf in it; top-p's crossing and the draw's in the same bin
// and in different ones.
TEST_P(DeviceDrawRows, CrowdedBinsAreSearchedExactly) {
  const int64_t vocab = 129280;
  const size_t n = static_cast<size_t>(vocab);
  std::vector<float> x = testing_device::randoms(6 * n, 7);
  const auto row = [&](size_t r) { return x.data() + r * n; };
  for (size_t i = 0; i < 3000; ++i) row(0)[(i * 37) % n] = 5.0f;
  for (size_t i = 0; i < 600; ++i) row(1)[(i * 211) % n] = 5.0f;
  std::fill(row(2), row(2) + n, 0.25f);
  for (size_t i = 0; i < n; ++i) row(3)[i] *= 30.0f;
  for (size_t i = 0; i < n; i += 101) row(3)[i] = -kInf;
  for (size_t i = 0; i < 2000; ++i) row(4)[(i * 53) % n] = 2.0f;
  for (size_t i = 0; i < 40; ++i) row(5)[(i * 997) % n] = 3.0f + 0.01f * static_cast<float>(i);
  std::vector<RowDrawParams> params{
      {1.0f, 1.0f, 0.0f},   {0.7f, 0.9f, 0.0f},   {1.0f, 0.5f, 0.0f},
      {0.9f, 0.95f, 0.01f}, {1.0f, 0.999f, 0.0f}, {0.6f, 0.3f, 0.0f},
  };
  for (uint64_t b : {uint64_t{0}, (uint64_t{1} << 53) - 1, uint64_t{0x1f2e3d4c5b6a7}}) {
    for (size_t r = 0; r < params.size(); ++r) {
      params[r].bits53 = (b ^ (r * 0x9e3779b97f4a7ull)) & ((uint64_t{1} << 53) - 1);
    }
    const Draws got = draw(*be_, x, vocab, params);
    expect_same(got, draw(cpu_, x, vocab, params), "crowded bins");
  }
}

// What the device fit check counts for a step's selection (device::scratch_need of its
// StepShapes::Selection, which both top_logits and draw_rows run under) holds what the two ops
// ask for, and not loosely: the draw's row totals are most of it.
TEST_P(DeviceDrawRows, ScratchNeedHoldsWhatTheSelectionOpsAskFor) {
  const int64_t vocab = 129280, rows = 5;
  const uint32_t k = kernels::kMaxTokenCandidates;
  const std::vector<float> x = testing_device::randoms(static_cast<size_t>(rows * vocab), 11);
  (void)draw(*be_, x, vocab, std::vector<RowDrawParams>(rows, {1.0f, 0.9f, 0.0f, 0, 7}));
  auto dx = upload(*be_, x);
  auto ids = zeros_on<int32_t>(*be_, static_cast<size_t>(rows * k));
  auto values = zeros_on<float>(*be_, static_cast<size_t>(rows * k));
  auto normalizers = zeros_on<double>(*be_, static_cast<size_t>(rows));
  be_->top_logits(dx.get(), rows, vocab, k, ids.get(), values.get(), normalizers.get());
  StepShapes shapes;
  shapes.selections.push_back({rows, vocab, int64_t{k}});
  const uint64_t need = device::scratch_need(shapes, {}).total();
  const uint64_t asked = be_->scratch_requested_bytes();
  EXPECT_LE(asked, need);
  EXPECT_GE(asked, need - need / 10) << "the bound is loose: " << asked << " of " << need;
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceDrawRows, testing_device::device_backend_names());

}  // namespace
}  // namespace v4
