#include "model/sampling/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/cpu/whole_row_draw.h"

namespace v4 {

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t counter_bits53(uint64_t seed, uint64_t index) {
  return splitmix64(splitmix64(seed) ^ splitmix64(index ^ 0x5851f42d4c957f2dull)) >> 11;
}

double counter_uniform(uint64_t seed, uint64_t index) {
  return static_cast<double>(counter_bits53(seed, index)) * 0x1.0p-53;
}

std::optional<kernels::RowDrawParams> Sampler::whole_row_draw() const {
  if (!(options_.temperature > 0.0f) || options_.top_k > 0) return std::nullopt;
  kernels::RowDrawParams draw;
  draw.filters = {options_.temperature, options_.top_p, options_.min_p};
  draw.bits53 = counter_bits53(options_.seed, token_index_);
  return draw;
}

int32_t Sampler::sample(std::span<const float> logits) {
  const std::optional<kernels::RowDrawParams> whole_row = whole_row_draw();
  // Every token advances the index, greedy ones too, so the index is the output position.
  const uint64_t index = token_index_++;
  if (whole_row) return kernels::draw_whole_row(logits, *whole_row);
  if (!(options_.temperature > 0.0f)) return argmax(logits);
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  // Candidates in descending logit order (ties: lower id first) so every filter is a prefix.
  auto by_logit = [&](int32_t a, int32_t b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  };
  const size_t keep = std::min(ids.size(), static_cast<size_t>(options_.top_k));
  std::partial_sort(ids.begin(), ids.begin() + static_cast<ptrdiff_t>(keep), ids.end(), by_logit);
  std::vector<float> ranked(keep);
  for (size_t i = 0; i < keep; ++i) ranked[i] = logits[ids[i]];
  return draw(std::span<const int32_t>(ids).first(keep), ranked, index);
}

bool Sampler::samples_from_best(size_t n) const {
  if (options_.temperature <= 0.0f) return n >= 1;
  return options_.top_k > 0 && static_cast<size_t>(options_.top_k) <= n;
}

int32_t Sampler::sample_ranked(std::span<const int32_t> ids, std::span<const float> logits) {
  const uint64_t index = token_index_++;
  if (options_.temperature <= 0.0f) return ids[0];
  const size_t keep = std::min(ids.size(), static_cast<size_t>(options_.top_k));
  return draw(ids.first(keep), logits.first(keep), index);
}

int32_t Sampler::draw(std::span<const int32_t> ids, std::span<const float> logits,
                      uint64_t index) const {
  size_t keep = ids.size();
  std::vector<double> p(keep);
  const double mx = logits[0];
  double sum = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    sum += p[i] = std::exp((logits[i] - mx) / options_.temperature);
  }
  for (double& v : p) v /= sum;
  if (options_.min_p > 0.0f) {
    size_t n = 1;
    while (n < keep && p[n] >= options_.min_p * p[0]) ++n;
    keep = n;
  }
  if (options_.top_p < 1.0f) {
    double acc = 0.0;
    size_t n = 0;
    while (n < keep && acc < options_.top_p) acc += p[n++];
    keep = std::max<size_t>(n, 1);
  }
  const double total = std::accumulate(p.begin(), p.begin() + keep, 0.0);
  double u = counter_uniform(options_.seed, index) * total;
  for (size_t i = 0; i < keep; ++i) {
    if ((u -= p[i]) < 0.0) return ids[i];
  }
  return ids[keep - 1];
}

}  // namespace v4
