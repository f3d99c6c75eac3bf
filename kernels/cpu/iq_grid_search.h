// Nearest-row lookup for the IQ codebooks (spec §6). Every grid row of IQ2_XXS / IQ2_XS
// (magnitudes in {8, 25, 43}) and of IQ1_S / IQ1_M (values in {−1, 0, +1}) is a point of the
// 3-level lattice L^8, 3^8 = 6561 points. For a fixed scale the coordinate-wise nearest lattice
// point P of a target octet minimises the squared error over all of L^8, so when P is a grid row
// it is the exact best row; otherwise the best row is almost always among the rows closest to P.
// LatticeNeighbours precomputes, per lattice point, that short candidate list (the approach of
// ggml's kmap/kneighbors tables), turning a 256–2048-row scan into 8 compares and a few dots.
// Internal to kernels/cpu.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace v4::kernels {

inline constexpr int kLatticePoints = 6561;  // 3^8
inline constexpr int kLatticePow3[8] = {1, 3, 9, 27, 81, 243, 729, 2187};
inline constexpr int kMaxShells = 4;

class LatticeNeighbours {
 public:
  // grid: `rows` packed rows, byte j = element j, each byte one of levels[0..2] (read as int8
  // when `signed_bytes`). Built for up to `max_shells` (≤ kMaxShells) distance shells.
  LatticeNeighbours(const uint64_t* grid, int rows, const int (&levels)[3], bool signed_bytes,
                    int max_shells);

  // A lattice point on the grid: its own row. Off the grid: every row whose squared distance to
  // the point is among the `shells` (1..max_shells) smallest distinct distances, nearest first.
  std::span<const uint16_t> candidates(int lattice_index, int shells) const {
    return {rows_.data() + offsets_[lattice_index],
            rows_.data() + shell_ends_[lattice_index * max_shells_ + shells - 1]};
  }

 private:
  int max_shells_;
  std::vector<uint32_t> offsets_;     // kLatticePoints entries into rows_
  std::vector<uint32_t> shell_ends_;  // kLatticePoints × max_shells_ ends into rows_
  std::vector<uint16_t> rows_;
};

// Lattice index of an octet: element j is at level (t_j > lower) + (t_j > upper), where lower /
// upper are the midpoints between scaled levels 0|1 and 1|2 (coordinate-wise nearest level).
inline int lattice_index(const float* t, float lower, float upper) {
  int index = 0;
  for (int j = 0; j < 8; ++j) index += ((t[j] > lower) + (t[j] > upper)) * kLatticePow3[j];
  return index;
}

}  // namespace v4::kernels
