// Which rank of a worker group runs each routed expert. Static contiguous shards: rank r of N
// owns experts [r·E/N, (r+1)·E/N), so shards differ in size by at most one expert.
#pragma once

#include <cstdint>

namespace v4 {

class ExpertPlacement {
 public:
  ExpertPlacement(uint32_t n_expert, int ranks) : n_expert_(n_expert), ranks_(ranks) {}

  int owner(int32_t expert) const {
    return static_cast<int>((int64_t{expert + 1} * ranks_ - 1) / n_expert_);
  }
  int32_t first(int rank) const { return static_cast<int32_t>(int64_t{rank} * n_expert_ / ranks_); }
  int ranks() const { return ranks_; }
  uint32_t n_expert() const { return n_expert_; }

 private:
  uint32_t n_expert_;
  int ranks_;
};

}  // namespace v4
