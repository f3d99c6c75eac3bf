// Q8_0 weights in the split layout (spec §5.3 for the block; design: "Q8_0 weights split on the
// device"). A GGUF Q8_0 block is 34 bytes, an fp16 scale then 32 quants, so a lane reading its
// block's quants can only use 16-bit loads: 17 per block, each warp load spread over 1 KiB. The
// device rewrites each row once, after the upload, as its blocks' quants (32 bytes each, 16-byte
// aligned) followed by their scales, the layout the activations already have (device_ops_matmul.h,
// split_q8_0_row_bytes): a block's quants are then two 16-byte loads and a warp's loads are
// contiguous. The row keeps its size and place, so every view, slice and stride of the matrix
// stays valid; the values, and every product's bits, are unchanged.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/hd.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/device/quant_dot.h"
#include "model/backend/device/device_ops.h"

namespace v4::device {

// A row is rearranged by a team holding it in shared memory: rows up to this size (a Q8_0 row of
// 30K values; V4's widest is 8192).
inline constexpr size_t kSplitMaxRowBytes = size_t{32} << 10;
inline constexpr int kSplitTeam = 128;

// Whether w's rows can be split: GGUF Q8_0 rows without padding, each a whole number of 16-byte
// pieces on a 16-byte boundary (16 values wide: a multiple of 256), that fit a team.
inline bool can_split_q8_0(const kernels::MatrixView& w) {
  const int64_t blocks = w.cols / kernels::kQK8_0;
  return w.type == GgmlType::Q8_0 && !w.q8_0_split && w.cols % kernels::kQK8_0 == 0 &&
         w.row_bytes == static_cast<size_t>(blocks) * sizeof(kernels::BlockQ8_0) &&
         w.row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(w.data) % 16 == 0 &&
         w.row_bytes <= kSplitMaxRowBytes;
}

template <class E>
bool split_q8_0_rows(E& e, DeviceScratch<E>&, kernels::MatrixView& w, int64_t rows) {
  if (!can_split_q8_0(w)) return false;
  if (rows > 0) {
    uint8_t* data = const_cast<uint8_t*>(w.data);
    const size_t row_bytes = w.row_bytes;
    const int64_t blocks = w.cols / kernels::kQK8_0;
    e.for_each_team(rows, kSplitTeam, row_bytes,
                    [=] V4_HD(int64_t r, const typename E::Team& team) {
                      uint8_t* row = data + r * row_bytes;
                      uint8_t* held = team.template shared<uint8_t>();
                      team.threads([&](int l) {
                        for (size_t i = 16 * l; i < row_bytes; i += 16 * team.size())
                          memcpy(held + i, row + i, 16);
                      });
                      const auto* block = reinterpret_cast<const kernels::BlockQ8_0*>(held);
                      team.threads([&](int l) {
                        for (int64_t b = l; b < blocks; b += team.size())
                          kernels::store_q8_0_split(block[b], row, blocks, b);
                      });
                    });
  }
  w.q8_0_split = true;
  return true;
}

}  // namespace v4::device
