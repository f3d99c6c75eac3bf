#include "worker/ep/expert_placement.h"

#include <algorithm>
#include <fstream>
#include <numeric>
#include <optional>
#include <sstream>
#include <string_view>

#include "model/v4/expert_tiers.h"

namespace v4 {

ExpertPlacement ExpertPlacement::contiguous(uint32_t n_expert, int ranks) {
  std::vector<std::vector<int32_t>> layer(n_expert);
  for (uint32_t e = 0; e < n_expert; ++e)
    layer[e] = {static_cast<int32_t>((int64_t{e + 1} * ranks - 1) / n_expert)};
  return ExpertPlacement(n_expert, ranks, {std::move(layer)});
}

namespace {

// One layer of the balanced placement.
std::vector<std::vector<int32_t>> balance_layer(std::span<const uint64_t> load, int ranks,
                                                uint32_t redundant) {
  const uint32_t n = static_cast<uint32_t>(load.size());
  const uint32_t slots = (n + ranks - 1) / ranks + redundant;  // per rank
  const uint32_t total = std::min<uint64_t>(uint64_t{slots} * ranks, uint64_t{n} * ranks);
  // (1) Replicas: one each, then extra ones to the heaviest per replica.
  std::vector<uint32_t> copies(n, 1);
  auto per_copy = [&](uint32_t e) { return static_cast<double>(load[e] + 1) / copies[e]; };
  for (uint32_t used = n; used < total; ++used) {
    uint32_t best = n;
    for (uint32_t e = 0; e < n; ++e)
      if (copies[e] < static_cast<uint32_t>(ranks) && (best == n || per_copy(e) > per_copy(best)))
        best = e;
    if (best == n) break;
    ++copies[best];
  }
  // (2) Heaviest replicas first, each to the least loaded rank with a free slot that does not
  // hold the expert yet; ties go to the lower rank and the lower expert, so every rank computes
  // the same table.
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return per_copy(a) > per_copy(b); });
  std::vector<double> rank_load(ranks, 0.0);
  std::vector<uint32_t> rank_slots(ranks, 0);
  std::vector<std::vector<int32_t>> table(n);
  for (uint32_t e : order) {
    for (uint32_t c = 0; c < copies[e]; ++c) {
      int best = -1;
      for (int r = 0; r < ranks; ++r) {
        if (rank_slots[r] >= slots) continue;
        if (std::find(table[e].begin(), table[e].end(), r) != table[e].end()) continue;
        if (best < 0 || rank_load[r] < rank_load[best]) best = r;
      }
      if (best < 0) break;
      table[e].push_back(best);
      rank_load[best] += per_copy(e);
      ++rank_slots[best];
    }
    std::sort(table[e].begin(), table[e].end());
  }
  return table;
}

}  // namespace

Result<ExpertPlacement> ExpertPlacement::balanced(const ExpertLoad& load, int ranks,
                                                  uint32_t redundant) {
  if (load.empty() || load[0].empty()) return Status::error("expert placement: no load to balance");
  if (ranks < 1) return Status::error("expert placement: no ranks");
  const size_t n = load[0].size();
  std::vector<std::vector<std::vector<int32_t>>> table;
  for (const std::vector<uint64_t>& layer : load) {
    if (layer.size() != n)
      return Status::error("expert placement: layers with different expert counts");
    table.push_back(balance_layer(layer, ranks, redundant));
  }
  return ExpertPlacement(static_cast<uint32_t>(n), ranks, std::move(table));
}

const std::vector<int32_t>& ExpertPlacement::entry(uint32_t layer, int32_t expert) const {
  const auto& l = table_.size() == 1 ? table_[0] : table_.at(layer);
  return l.at(static_cast<size_t>(expert));
}

int ExpertPlacement::owner(uint32_t layer, int32_t expert, int sender) const {
  const std::vector<int32_t>& holders = entry(layer, expert);
  if (holders.size() == 1) return holders[0];
  if (std::find(holders.begin(), holders.end(), sender) != holders.end()) return sender;
  return holders[static_cast<size_t>(sender) % holders.size()];
}

bool ExpertPlacement::holds(int rank, uint32_t layer, int32_t expert) const {
  if (expert < 0 || static_cast<uint32_t>(expert) >= n_expert_) return false;
  if (table_.size() > 1 && layer >= table_.size()) return false;
  const std::vector<int32_t>& holders = entry(layer, expert);
  return std::find(holders.begin(), holders.end(), rank) != holders.end();
}

std::vector<int32_t> ExpertPlacement::held(int rank, uint32_t layer) const {
  std::vector<int32_t> out;
  for (uint32_t e = 0; e < n_expert_; ++e)
    if (holds(rank, layer, static_cast<int32_t>(e))) out.push_back(static_cast<int32_t>(e));
  return out;
}

std::span<const int32_t> ExpertPlacement::replicas(uint32_t layer, int32_t expert) const {
  return entry(layer, expert);
}

std::vector<double> ExpertPlacement::imbalance(const ExpertLoad& load) const {
  std::vector<double> out;
  for (uint32_t l = 0; l < load.size(); ++l) {
    std::vector<double> per_rank(ranks_, 0.0);
    double sum = 0.0;
    for (uint32_t e = 0; e < load[l].size() && e < n_expert_; ++e) {
      const std::vector<int32_t>& holders = entry(l, static_cast<int32_t>(e));
      for (int32_t r : holders) per_rank[r] += static_cast<double>(load[l][e]) / holders.size();
      sum += static_cast<double>(load[l][e]);
    }
    const double mean = sum / ranks_;
    out.push_back(mean > 0 ? *std::max_element(per_rank.begin(), per_rank.end()) / mean : 1.0);
  }
  return out;
}

uint64_t ExpertPlacement::digest() const {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the table
  auto mix = [&](uint64_t v) {
    h ^= v;
    h *= 1099511628211ull;
  };
  mix(n_expert_);
  mix(static_cast<uint64_t>(ranks_));
  for (const auto& layer : table_) {
    for (const auto& holders : layer) {
      mix(holders.size());
      for (int32_t r : holders) mix(static_cast<uint64_t>(r));
    }
  }
  return h;
}

namespace {

// The value of label `name` in a Prometheus label set `a="1",b="2"`, or nullopt.
std::optional<std::string> label_value(std::string_view labels, std::string_view name) {
  const std::string key = std::string(name) + "=\"";
  for (size_t at = labels.find(key); at != std::string_view::npos; at = labels.find(key, at + 1)) {
    if (at != 0 && labels[at - 1] != ',') continue;
    const size_t begin = at + key.size(), end = labels.find('"', begin);
    if (end == std::string_view::npos) return std::nullopt;
    return std::string(labels.substr(begin, end - begin));
  }
  return std::nullopt;
}

std::optional<unsigned long> to_count(const std::optional<std::string>& text) {
  if (!text || text->empty() || text->size() > 9) return std::nullopt;
  unsigned long v = 0;
  for (char c : *text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned long>(c - '0');
  }
  return v;
}

}  // namespace

Result<ExpertLoad> read_expert_load(const std::string& path, uint32_t n_layer, uint32_t n_expert) {
  std::ifstream in(path);
  if (!in) return Status::error("--expert-stats " + path + ": cannot read the file");
  ExpertLoad load(n_layer, std::vector<uint64_t>(n_expert, 0));
  constexpr std::string_view kSeries = "v4serve:expert_selections_total{";
  std::string line;
  size_t samples = 0, line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.starts_with(kSeries)) continue;
    const auto where = [&] {
      return "--expert-stats " + path + " line " + std::to_string(line_no);
    };
    const size_t close = line.find('}');
    if (close == std::string::npos) return Status::error(where() + ": an unterminated label set");
    const std::string_view labels =
        std::string_view(line).substr(kSeries.size(), close - kSeries.size());
    const std::optional<unsigned long> layer = to_count(label_value(labels, "layer"));
    const std::optional<unsigned long> expert = to_count(label_value(labels, "expert"));
    if (!layer || !expert)
      return Status::error(where() + ": a sample without layer and expert labels");
    double value = -1;
    std::istringstream(line.substr(close + 1)) >> value;
    if (*layer >= n_layer || *expert >= n_expert || !(value >= 0))
      return Status::error(where() + ": layer " + std::to_string(*layer) + " expert " +
                           std::to_string(*expert) + " is outside this model (" +
                           std::to_string(n_layer) + " layers, " + std::to_string(n_expert) +
                           " experts) or its count is not a count");
    load[*layer][*expert] += static_cast<uint64_t>(value);
    ++samples;
  }
  if (samples == 0)
    return Status::error("--expert-stats " + path +
                         ": no v4serve:expert_selections_total samples (serve the trace with "
                         "--metrics-expert-detail)");
  return load;
}

std::vector<uint32_t> hot_set_sizes(const ExpertLoad& load, double coverage) {
  std::vector<uint32_t> out;
  for (const std::vector<int32_t>& hot : hot_experts(load, coverage).hot)
    out.push_back(static_cast<uint32_t>(hot.size()));
  return out;
}

}  // namespace v4
