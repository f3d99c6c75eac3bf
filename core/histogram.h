// A fixed-bucket histogram in Prometheus' shape: upper bounds in increasing order, one count per
// bucket plus the +Inf bucket, the sum and count of observations. Counts are per bucket (not
// cumulative) so two histograms with equal bounds add element-wise; cumulative() gives the
// exposition form.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace v4 {

struct Histogram {
  std::vector<double> bounds;    // increasing upper bounds; a value v falls in the first v <= bound
  std::vector<uint64_t> counts;  // bounds.size() + 1; the last is the +Inf bucket
  double sum = 0.0;
  uint64_t count = 0;

  Histogram() : counts(1, 0) {}
  explicit Histogram(std::vector<double> upper_bounds)
      : bounds(std::move(upper_bounds)), counts(bounds.size() + 1, 0) {}

  void observe(double value);
  // counts[i] summed over buckets 0..i: observations <= bounds[i] (the last: all of them).
  std::vector<uint64_t> cumulative() const;
};

}  // namespace v4
