#include "core/histogram.h"

#include <algorithm>

namespace v4 {

void Histogram::observe(double value) {
  // lower_bound: the first bound >= value, so a value equal to a bound counts in that bucket
  // (Prometheus' "le").
  const auto it = std::lower_bound(bounds.begin(), bounds.end(), value);
  ++counts[static_cast<size_t>(it - bounds.begin())];
  sum += value;
  ++count;
}

std::vector<uint64_t> Histogram::cumulative() const {
  std::vector<uint64_t> out(counts.size());
  uint64_t acc = 0;
  for (size_t i = 0; i < counts.size(); ++i) out[i] = acc += counts[i];
  return out;
}

}  // namespace v4
