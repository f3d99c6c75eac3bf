#include "core/histogram.h"

#include <gtest/gtest.h>

namespace v4 {
namespace {

TEST(Histogram, ValuesOnABoundCountInThatBucket) {
  Histogram h({1.0, 2.0, 4.0});
  for (double v : {0.5, 1.0, 1.5, 2.0, 4.0, 4.5, 100.0}) h.observe(v);
  EXPECT_EQ(h.counts, (std::vector<uint64_t>{2, 2, 1, 2}));
  EXPECT_EQ(h.cumulative(), (std::vector<uint64_t>{2, 4, 5, 7}));
  EXPECT_EQ(h.count, 7u);
  EXPECT_DOUBLE_EQ(h.sum, 113.5);
}

TEST(Histogram, WithoutBoundsEverythingIsInTheInfBucket) {
  Histogram h;
  h.observe(-3.0);
  h.observe(7.0);
  EXPECT_EQ(h.counts, (std::vector<uint64_t>{2}));
  EXPECT_EQ(h.cumulative(), (std::vector<uint64_t>{2}));
}

}  // namespace
}  // namespace v4
