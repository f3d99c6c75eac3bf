// The activations of the device's quantized products (spec §6): each row quantized to the
// weight type's dot-product format exactly as the CPU quantizes it, a unit (a block, or a group of
// 32 values of a 256-value block) per thread, with Q8_0 rows in the split layout the weight rows
// of device_ops_q8_0_split.h share.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/hd.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/quant.h"
#include "kernels/device/quant_dot.h"
#include "model/backend/device/device_ops.h"

namespace v4::device {

// n activation rows of `cols` floats (`x_stride` apart) in the format `weight`'s dot product
// reads: quantized into `slot` (act_bytes per row), or, for float weights, the rows as they are.
struct Activations {
  const uint8_t* rows = nullptr;
  size_t row_bytes = 0;
};

// Activations for Q8_0 and MXFP4 weights (the CPU's Q8_0 blocks) are split: a row holds its
// blocks' 32 quants each (16-byte aligned, so a lane reads a block with two 16-byte loads and a
// warp's loads are contiguous), then their fp16 scales, padded to 16 bytes. The values are the
// CPU's Q8_0 blocks.
inline size_t split_q8_0_row_bytes(int64_t blocks) {
  return (static_cast<size_t>(blocks) * (kernels::kQK8_0 + 2) + 15) / 16 * 16;
}

// How the activations for a weight type are laid out, and quantized a unit (block, or group
// of 32 of a 256-value block) at a time.
struct ActivationFormat {
  enum Kind { kFloat, kSplitQ8_0, kQ8_K } kind = kFloat;
  int64_t units = 0;     // quantized units per row
  size_t row_bytes = 0;  // of a quantized row
};

inline ActivationFormat activation_format(GgmlType weight, int64_t cols) {
  const GgmlType act = kernels::vec_dot_activation_type(weight);
  if (act == GgmlType::Q8_0) {  // Q8_0 and MXFP4 weights
    const int64_t blocks = cols / kernels::kQK8_0;
    return {ActivationFormat::kSplitQ8_0, blocks, split_q8_0_row_bytes(blocks)};
  }
  if (act != GgmlType::Q8_K) return {};
  return {ActivationFormat::kQ8_K, cols / 32, kernels::activation_row_bytes(weight, cols)};
}

// Unit u of the quantized row `row` from the float row `x` (the CPU's block quantizers).
V4_HD inline void quantize_unit(const ActivationFormat& f, const float* x, uint8_t* row,
                                int64_t u) {
  if (f.kind == ActivationFormat::kSplitQ8_0) {
    kernels::BlockQ8_0 block;
    kernels::quantize_block_q8_0(x + u * kernels::kQK8_0, &block);
    kernels::store_q8_0_split(block, row, f.units, u);
  } else if (f.kind == ActivationFormat::kQ8_K) {
    // A thread per group of 32 (8 per 256-value block): short serial chains.
    kernels::quantize_group_q8_k(x + u / 8 * kernels::kQK_K,
                                 reinterpret_cast<kernels::BlockQ8K*>(row) + u / 8,
                                 static_cast<int>(u % 8));
  }
}

// Scratch for n quantized rows (with the padding the dot products may read past a row).
template <class E>
uint8_t* activation_rows(DeviceScratch<E>& s, ScratchSlot slot, const ActivationFormat& f,
                         int64_t n) {
  const size_t pad = f.kind == ActivationFormat::kSplitQ8_0 ? 16 : 1;
  return s.template get<uint8_t>(slot, f.row_bytes * static_cast<size_t>(n) + pad);
}

// Row t of the result is row t of x, or row x_rows[t] when x_rows is given (the expert
// dispatch's gather, done as the rows are quantized). Float weights read x itself, which only a
// caller without x_rows may ask for.
template <class E>
Activations quantize_activations(E& e, DeviceScratch<E>& s, ScratchSlot slot, GgmlType weight,
                                 const float* x, int64_t x_stride, int64_t cols, int64_t n,
                                 const int64_t* x_rows = nullptr) {
  const ActivationFormat f = activation_format(weight, cols);
  if (f.kind == ActivationFormat::kFloat) {
    return {reinterpret_cast<const uint8_t*>(x), static_cast<size_t>(x_stride) * sizeof(float)};
  }
  uint8_t* out = activation_rows(s, slot, f, n);
  const int64_t units = f.units;
  e.for_each(n * units, [=] V4_HD(int64_t i) {
    const int64_t t = i / units;
    const int64_t from = x_rows ? x_rows[t] : t;
    quantize_unit(f, x + from * x_stride, out + t * f.row_bytes, i % units);
  });
  return {out, f.row_bytes};
}

}  // namespace v4::device
