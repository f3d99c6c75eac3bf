// LatticeNeighbours construction (see iq_grid_search.h, spec §6 grids). Built once per grid by
// its quantizer's function-local static: 6561 points × ≤2048 rows × 8 coordinates.
#include "kernels/cpu/iq_grid_search.h"

#include <algorithm>
#include <cassert>
#include <limits>

namespace v4::kernels {

namespace {

// Rows per distance batch: a fixed trip count lets the compiler vectorise the inner loop; every
// grid's row count (256, 512, 2048) is a multiple of it.
constexpr int kChunk = 16;

// Squared distances of kChunk rows (coordinate-major values, `stride` apart) to `point`.
void distances(const int* values, int stride, const int* point, int* dist) {
  int d[kChunk] = {};
  for (int j = 0; j < 8; ++j) {
    const int* column = values + static_cast<size_t>(j) * stride;
    for (int i = 0; i < kChunk; ++i) d[i] += (column[i] - point[j]) * (column[i] - point[j]);
  }
  for (int i = 0; i < kChunk; ++i) dist[i] = d[i];
}

// Smallest of dist[0..rows) above `floor` (INT_MAX if none), in per-lane minima for the same
// reason.
int min_above(const int* dist, int rows, int floor) {
  int lanes[kChunk];
  for (int i = 0; i < kChunk; ++i) lanes[i] = std::numeric_limits<int>::max();
  for (int r0 = 0; r0 < rows; r0 += kChunk) {
    for (int i = 0; i < kChunk; ++i) {
      const int d = dist[r0 + i];
      lanes[i] = d > floor && d < lanes[i] ? d : lanes[i];
    }
  }
  return *std::min_element(lanes, lanes + kChunk);
}

}  // namespace

LatticeNeighbours::LatticeNeighbours(const uint64_t* grid, int rows, const int (&levels)[3],
                                     bool signed_bytes, int max_shells)
    : max_shells_(std::clamp(max_shells, 1, kMaxShells)) {
  assert(rows % kChunk == 0);
  // Coordinates stored coordinate-major so the distance loop below runs over rows (vectorizes),
  // and the lattice point each row occupies. A byte outside levels[] cannot occur in the
  // generated tables; such a row would only be missing from the on-grid map.
  std::vector<int> values(static_cast<size_t>(rows) * 8);
  std::vector<int> on_grid(kLatticePoints, -1);
  for (int r = 0; r < rows; ++r) {
    int index = 0;
    for (int j = 0; j < 8; ++j) {
      const uint8_t byte = static_cast<uint8_t>(grid[r] >> (8 * j));
      const int v = signed_bytes ? static_cast<int8_t>(byte) : byte;
      values[static_cast<size_t>(j) * rows + r] = v;
      const int level = static_cast<int>(std::find(levels, levels + 3, v) - levels);
      index = index < 0 || level == 3 ? -1 : index + level * kLatticePow3[j];
    }
    if (index >= 0 && on_grid[index] < 0) on_grid[index] = r;
  }
  offsets_.resize(kLatticePoints);
  shell_ends_.resize(static_cast<size_t>(kLatticePoints) * max_shells_);
  std::vector<int> dist(rows);
  std::vector<uint16_t> by_shell[kMaxShells];
  for (int p = 0; p < kLatticePoints; ++p) {
    offsets_[p] = static_cast<uint32_t>(rows_.size());
    uint32_t* ends = shell_ends_.data() + static_cast<size_t>(p) * max_shells_;
    if (on_grid[p] >= 0) {
      rows_.push_back(static_cast<uint16_t>(on_grid[p]));
      std::fill(ends, ends + max_shells_, static_cast<uint32_t>(rows_.size()));
      continue;
    }
    int point[8];
    for (int j = 0; j < 8; ++j) point[j] = levels[(p / kLatticePow3[j]) % 3];
    for (int r0 = 0; r0 < rows; r0 += kChunk) distances(values.data() + r0, rows, point, &dist[r0]);
    // The max_shells_ smallest distinct distances, ascending (a min pass over larger ones each).
    int smallest[kMaxShells];
    int found = 0;
    for (; found < max_shells_; ++found) {
      const int next = min_above(dist.data(), rows, found == 0 ? -1 : smallest[found - 1]);
      if (next == std::numeric_limits<int>::max()) break;
      smallest[found] = next;
    }
    // Shell by shell, so that the first `shells` shells are a prefix of the list.
    for (auto& shell : by_shell) shell.clear();
    for (int r = 0; r < rows; ++r) {
      if (dist[r] > smallest[found - 1]) continue;
      int k = 0;
      while (smallest[k] != dist[r]) ++k;
      by_shell[k].push_back(static_cast<uint16_t>(r));
    }
    for (int k = 0; k < max_shells_; ++k) {
      rows_.insert(rows_.end(), by_shell[k].begin(), by_shell[k].end());
      ends[k] = static_cast<uint32_t>(rows_.size());
    }
  }
}

}  // namespace v4::kernels
