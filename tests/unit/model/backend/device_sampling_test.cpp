// Backend::top_logits, the op that lets a step return a sampled row's best tokens instead of the
// row. The reference is the host's own view of a row: the order std::partial_sort gives with
// sampling's comparator (logit descending, lower id first) and the log-normalizer that
// worker/prompt_logprobs.cpp's score_token computes. CpuBackend must be that bit for bit; each
// device backend must select exactly the CPU's tokens (the order is total, so any exact
// selection agrees) and sum the normalizer within 1e-12 relative (fp64 in another order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "kernels/cpu/token_candidates.h"
#include "model/backend/cpu_backend.h"
#include "tests/unit/model/backend/device_test_util.h"

namespace v4 {
namespace {

using testing_device::download;
using testing_device::upload;
using testing_device::zeros_on;

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

struct Selection {
  std::vector<int32_t> ids;
  std::vector<float> values;
  std::vector<double> log_normalizer;
};

// Rows of `vocab` logits on a grid of 1/8 (many exact ties), with NaN and ±inf sprinkled in
// row 1, a row with fewer orderable tokens than any k here (row 2), an all-NaN row (row 3) and a
// row whose second half is -inf (row 4: a device part of -inf logits where the row is wide).
std::vector<float> test_rows(int64_t rows, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> grid(-80, 40);
  std::vector<float> x(static_cast<size_t>(rows * vocab));
  for (float& v : x) v = static_cast<float>(grid(rng)) / 8.0f;
  float* r1 = x.data() + vocab;
  for (int64_t i = 0; i < vocab; i += 97) r1[i] = kNan;
  r1[5] = -kInf;
  r1[vocab - 1] = 9.0f;  // the best, last
  float* r2 = x.data() + 2 * vocab;
  for (int64_t i = 3; i < vocab; ++i) r2[i] = kNan;
  std::fill(x.data() + 3 * vocab, x.data() + 4 * vocab, kNan);
  std::fill(x.data() + 4 * vocab + vocab / 2, x.data() + 5 * vocab, -kInf);
  return x;
}

// The host's view: orderable ids sorted by sampling's comparator, then -1 / -inf; the
// log-normalizer exactly as score_token writes it (max_element over the row).
Selection reference(const std::vector<float>& x, int64_t rows, int64_t vocab, uint32_t k) {
  Selection s;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x.data() + r * vocab;
    std::vector<int32_t> ids;
    for (int64_t i = 0; i < vocab; ++i) {
      if (!std::isnan(row[i])) ids.push_back(static_cast<int32_t>(i));
    }
    const size_t n = std::min<size_t>(k, ids.size());
    std::partial_sort(
        ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n), ids.end(),
        [&](int32_t a, int32_t b) { return row[a] != row[b] ? row[a] > row[b] : a < b; });
    for (uint32_t j = 0; j < k; ++j) {
      s.ids.push_back(j < n ? ids[j] : -1);
      s.values.push_back(j < n ? row[ids[j]] : -kInf);
    }
    const float mx = n > 0 ? row[ids[0]] : kNan;
    double sum = 0.0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(row[i]) - mx);
    s.log_normalizer.push_back(mx + std::log(sum));
  }
  return s;
}

// `normalize` false: the op is asked for no log-normalizers (they stay empty).
Selection select(Backend& be, const std::vector<float>& x, int64_t rows, int64_t vocab, uint32_t k,
                 bool normalize = true) {
  auto dx = upload(be, x);
  auto ids = zeros_on<int32_t>(be, static_cast<size_t>(rows) * k);
  auto values = zeros_on<float>(be, static_cast<size_t>(rows) * k);
  auto lz = zeros_on<double>(be, static_cast<size_t>(rows));
  be.top_logits(dx.get(), rows, vocab, k, ids.get(), values.get(), normalize ? lz.get() : nullptr);
  return {download(be, ids), download(be, values),
          normalize ? download(be, lz) : std::vector<double>()};
}

void expect_same_normalizers(const std::vector<double>& got, const std::vector<double>& want,
                             double rel, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t r = 0; r < got.size(); ++r) {
    if (std::isnan(want[r])) {
      EXPECT_TRUE(std::isnan(got[r])) << what << " row " << r;
    } else if (rel == 0.0) {
      EXPECT_EQ(got[r], want[r]) << what << " row " << r;
    } else {
      EXPECT_NEAR(got[r], want[r], rel * std::fabs(want[r])) << what << " row " << r;
    }
  }
}

// The device's selection of x's rows against the CPU's for several k: the same ids and values,
// the normalizers within 1e-12 relative, and each of rows 0 and 4 alone what it gave in the batch.
void expect_cpus_selection(Backend& be, Backend& cpu, const std::vector<float>& x, int64_t rows,
                           int64_t vocab) {
  for (uint32_t k : {1u, 7u, kernels::kMaxTokenCandidates}) {
    const Selection want = select(cpu, x, rows, vocab, k);
    const Selection got = select(be, x, rows, vocab, k);
    EXPECT_EQ(got.ids, want.ids) << "k " << k;
    EXPECT_EQ(got.values, want.values) << "k " << k;
    expect_same_normalizers(got.log_normalizer, want.log_normalizer, 1e-12, "device");
    const Selection bare = select(be, x, rows, vocab, k, false);
    EXPECT_EQ(bare.ids, want.ids) << "k " << k << ", no normalizers";
    // Each row alone gives what it gave in the batch, bit for bit.
    for (int64_t r = 0; r < rows; r += 4) {
      const std::vector<float> one(x.begin() + r * vocab, x.begin() + (r + 1) * vocab);
      const Selection alone = select(be, one, 1, vocab, k);
      EXPECT_TRUE(std::equal(alone.ids.begin(), alone.ids.end(), got.ids.begin() + r * k));
      EXPECT_TRUE(std::equal(alone.values.begin(), alone.values.end(), got.values.begin() + r * k));
      if (!std::isnan(alone.log_normalizer[0])) {
        EXPECT_EQ(alone.log_normalizer[0], got.log_normalizer[static_cast<size_t>(r)]);
      }
    }
  }
}

TEST(CpuTopLogits, IsTheHostsOrderAndNormalizerBitForBit) {
  CpuBackend cpu(2);
  const int64_t rows = 6, vocab = 3001;
  const std::vector<float> x = test_rows(rows, vocab, 1);
  for (uint32_t k : {1u, 2u, 20u, kernels::kMaxTokenCandidates}) {
    const Selection want = reference(x, rows, vocab, k);
    const Selection got = select(cpu, x, rows, vocab, k);
    EXPECT_EQ(got.ids, want.ids) << "k " << k;
    EXPECT_EQ(got.values, want.values) << "k " << k;
    expect_same_normalizers(got.log_normalizer, want.log_normalizer, 0.0, "cpu");
  }
}

class DeviceTopLogits : public testing_device::OnEachDevice {};

// Rows narrower than a device part (3001: not a multiple of the team) and rows of three parts,
// the last ragged (10007), whose ties, NaN, ±inf and missing tokens fall in different parts.
TEST_P(DeviceTopLogits, SelectsTheCpusTokensWhateverTheBatch) {
  const int64_t rows = 6;
  for (const int64_t vocab : {int64_t{3001}, int64_t{10007}}) {
    SCOPED_TRACE(vocab);
    expect_cpus_selection(*be_, cpu_, test_rows(rows, vocab, 2), rows, vocab);
  }
}

TEST_P(DeviceTopLogits, FullVocabularyRowsWithTheFirstAndLastTokenBest) {
  const int64_t rows = 2, vocab = 129280;  // V4's vocabulary
  std::vector<float> x = testing_device::randoms(static_cast<size_t>(rows * vocab), 3);
  x[0] = 50.0f;              // row 0: token 0 best
  x[2 * vocab - 1] = 50.0f;  // row 1: the last token best
  x[vocab + 17] = 50.0f;     // and tied with token 17, which comes first
  const Selection want = select(cpu_, x, rows, vocab, 3);
  const Selection got = select(*be_, x, rows, vocab, 3);
  EXPECT_EQ(want.ids[0], 0);
  EXPECT_EQ(want.ids[3], 17);
  EXPECT_EQ(want.ids[4], vocab - 1);
  EXPECT_EQ(got.ids, want.ids);
  EXPECT_EQ(got.values, want.values);
  expect_same_normalizers(got.log_normalizer, want.log_normalizer, 1e-12, "device");
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceTopLogits, testing_device::device_backend_names());

}  // namespace
}  // namespace v4
