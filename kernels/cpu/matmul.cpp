#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/quant.h"
#include "kernels/cpu/row_group_matmul.h"
#include "kernels/cpu/vec_dot_avx2.h"
#include "kernels/cpu/vec_dot_avx512.h"
#include "kernels/cpu/weight_rows_avx512.h"

namespace v4::kernels {

size_t activation_row_bytes(GgmlType weight_type, int64_t cols) {
  const GgmlType act = vec_dot_activation_type(weight_type);
  const GgmlTypeTraits traits = ggml_type_traits(act);
  return static_cast<size_t>(cols / traits.block_size) * traits.type_size;
}

void quantize_activation_row(GgmlType weight_type, const float* x, int64_t cols, void* dst) {
  switch (vec_dot_activation_type(weight_type)) {
    case GgmlType::Q8_0:
      quantize_row_q8_0(x, dst, cols);
      break;
    case GgmlType::Q8_K:
      quantize_row_q8_k(x, dst, cols);
      break;
    default:
      std::memcpy(dst, x, static_cast<size_t>(cols) * sizeof(float));
      break;
  }
}

namespace {

// The operands of one matmul_rows call.
struct RowsJob {
  const MatrixView& w;
  const uint8_t* xq;
  size_t act_bytes;
  int64_t n_tokens;
  float* y;
  int64_t y_stride;

  const uint8_t* act(int64_t t) const { return xq + static_cast<size_t>(t) * act_bytes; }
  const uint8_t* row(int64_t r) const { return w.data + static_cast<size_t>(r) * w.row_bytes; }
  float& out(int64_t t, int64_t r) const { return y[t * y_stride + r]; }
};

// Float weights on AVX-512: four weight rows per call, each token on its own, so that the rows'
// float sums (chains of dependent adds) advance side by side.
void float_rows_avx512(const RowsJob& j, int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; r += 4) {
    const int rows = static_cast<int>(std::min<int64_t>(4, row_end - r));
    const void* rows_at[4];
    for (int k = 0; k < rows; ++k) rows_at[k] = j.row(r + k);
    for (int64_t t = 0; t < j.n_tokens; ++t) {
      float out[4];
      vec_dot_avx512_float_rows(j.w.type, rows_at, rows, j.act(t), j.w.cols, out);
      for (int k = 0; k < rows; ++k) j.out(t, r + k) = out[k];
    }
  }
}

// Float weights from DRAM on AVX-512, for several tokens: each weight row is read once and
// widened for two tokens at a time. Two tokens' F32 activations (2 × 16 KiB at 4096 columns) stay
// in L1 where four do not; a block of eight rows (64 KiB of BF16, in L2) serves each pair of
// tokens in turn. BF16 4096×8192, one thread: 2 tokens 7.8 → 5.7 ms, 4 tokens 14.2 → 8.8 ms,
// 16 tokens 45.4 → 30.6 ms against the one-row AVX2 kernel per token.
constexpr int64_t kFloatTokenRows = 8;
constexpr int kFloatTokensPerPass = 2;

void float_tokens_avx512(const RowsJob& j, int64_t row_begin, int64_t row_end) {
  for (int64_t r0 = row_begin; r0 < row_end; r0 += kFloatTokenRows) {
    const int64_t r1 = std::min(row_end, r0 + kFloatTokenRows);
    for (int64_t t = 0; t < j.n_tokens; t += kFloatTokensPerPass) {
      const int tokens = static_cast<int>(std::min<int64_t>(kFloatTokensPerPass, j.n_tokens - t));
      const void* const acts[2] = {j.act(t), j.act(t + tokens - 1)};
      for (int64_t r = r0; r < r1; ++r) {
        float out[2];
        vec_dot_avx512_float_tokens(j.w.type, j.row(r), acts, tokens, j.w.cols, out);
        for (int k = 0; k < tokens; ++k) j.out(t + k, r) = out[k];
      }
    }
  }
}

// Up to how many tokens the four-row kernel below beats the 16-row groups (one thread, from
// DRAM, G products/s, groups against four rows: Q8_0 at 4 / 6 / 8 tokens 34 / 46 / 54 against
// 47 / 49 / 48; MXFP4 at 4 tokens 42 against 41). 0: the format has no such kernel here.
int64_t weight_rows_max_tokens(GgmlType type) {
  if (!cpu_has_avx512() || !has_avx512_weight_rows(type)) return 0;
  return type == GgmlType::Q8_0 ? 6 : 3;
}

// Q8_0 and MXFP4 for a few tokens on AVX-512: four weight rows per call, so that their float sums
// advance side by side, each weight block is decoded once for up to three tokens and each
// activation block read once for four rows (one thread, from DRAM, G products/s against the
// one-row kernels: Q8_0 at 1 / 2 / 3 tokens 42 / 50 / 49 against 28 (AVX2) / 32 / 38, MXFP4 33 /
// 36 / 43 against 24 / 30 / 38).
void weight_rows_avx512(const RowsJob& j, int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; r += 4) {
    const int rows = static_cast<int>(std::min<int64_t>(4, row_end - r));
    const void* rows_at[4];
    for (int k = 0; k < rows; ++k) rows_at[k] = j.row(r + k);
    for (int64_t t = 0; t < j.n_tokens; t += 3) {
      const int tokens = static_cast<int>(std::min<int64_t>(3, j.n_tokens - t));
      const void* acts[3];
      for (int u = 0; u < tokens; ++u) acts[u] = j.act(t + u);
      float out[12];
      vec_dot_avx512_weight_rows(j.w.type, rows_at, rows, acts, tokens, j.w.cols, out);
      for (int k = 0; k < rows; ++k) {
        for (int u = 0; u < tokens; ++u) j.out(t + u, r + k) = out[k * tokens + u];
      }
    }
  }
}

// AVX-512 quantized kernels: up to four tokens per call share each decoded weight block.
void quantized_rows_avx512(const RowsJob& j, int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t t = 0; t < j.n_tokens; t += 4) {
      const int rows = static_cast<int>(std::min<int64_t>(4, j.n_tokens - t));
      const void* const acts[4] = {j.act(t), j.act(t + std::min(1, rows - 1)),
                                   j.act(t + std::min(2, rows - 1)),
                                   j.act(t + std::min(3, rows - 1))};
      float out[4];
      vec_dot_avx512_rows(j.w.type, j.row(r), acts, rows, j.w.cols, out);
      for (int k = 0; k < rows; ++k) j.out(t + k, r) = out[k];
    }
  }
}

// AVX2 (or scalar): four tokens at a time, and a remainder of two or three together, share each
// weight block where a multi-row kernel exists.
void rows_avx2(const RowsJob& j, int64_t row_begin, int64_t row_end) {
  const bool shared = cpu_has_avx2() && has_avx2_dot_x4(j.w.type);
  const bool by_four = j.n_tokens >= 4 && shared;
  for (int64_t r = row_begin; r < row_end; ++r) {
    const uint8_t* row = j.row(r);
    int64_t t = 0;
    for (; by_four && t + 4 <= j.n_tokens; t += 4) {
      const void* const acts[4] = {j.act(t), j.act(t + 1), j.act(t + 2), j.act(t + 3)};
      float out[4];
      vec_dot_avx2_x4(j.w.type, row, acts, j.w.cols, out);
      for (int k = 0; k < 4; ++k) j.out(t + k, r) = out[k];
    }
    if (shared && j.n_tokens - t >= 2) {
      const int few = static_cast<int>(j.n_tokens - t);
      const void* const acts[3] = {j.act(t), j.act(t + 1), j.act(std::min(t + 2, j.n_tokens - 1))};
      float out[3];
      vec_dot_avx2_few(j.w.type, row, acts, few, j.w.cols, out);
      for (int k = 0; k < few; ++k) j.out(t + k, r) = out[k];
      t = j.n_tokens;
    }
    for (; t < j.n_tokens; ++t) j.out(t, r) = vec_dot_best(j.w.type, row, j.act(t), j.w.cols);
  }
}

// Float matrices up to this size take four rows per call. From cache four add chains win
// (BF16 4096×1024: 400 against 534 µs a call for one row at a time); from DRAM each row is a
// memory stream, and several per thread lose to one (the BF16 output head, 4096×129280: 42 ms
// with four rows, 47 with two, 32 with the AVX2 kernel's one), since one thread's reads are the
// bound there. (Measured with the earlier double-lane float kernels; the float-lane kernels read
// the head at 47 GB/s through the AVX2 path, and the cut was not measured again.) Larger
// matrices take the AVX2 kernel for one token and float_tokens_avx512 for several.
constexpr size_t kFourRowMaxBytes = size_t{16} << 20;

// The best row-at-a-time kernel of this CPU for the weight type.
void rows_any(const RowsJob& j, int64_t row_begin, int64_t row_end) {
  if (cpu_has_avx512() && has_avx512_float_rows(j.w.type)) {
    if (static_cast<size_t>(j.w.rows) * j.w.row_bytes <= kFourRowMaxBytes) {
      return float_rows_avx512(j, row_begin, row_end);
    }
    if (j.n_tokens > 1) return float_tokens_avx512(j, row_begin, row_end);
  }
  if (cpu_has_avx512() && has_avx512_weight_rows(j.w.type)) {
    return weight_rows_avx512(j, row_begin, row_end);
  }
  if (cpu_has_avx512() && has_avx512_dot(j.w.type)) {
    return quantized_rows_avx512(j, row_begin, row_end);
  }
  rows_avx2(j, row_begin, row_end);
}

}  // namespace

// Every kernel gives each output the single-row reference result bit for bit, so the choice of
// kernel and the grouping of rows and tokens never change an output. The token-inner loops read
// a weight row once from memory and reuse it for every token.
void matmul_rows(const MatrixView& w, const uint8_t* xq, int64_t n_tokens, float* y,
                 int64_t y_stride, int64_t row_begin, int64_t row_end) {
  const RowsJob job{w, xq, activation_row_bytes(w.type, w.cols), n_tokens, y, y_stride};
  if (n_tokens > weight_rows_max_tokens(w.type) && n_tokens >= kRowGroupMinTokens &&
      row_groups_available(w.type)) {
    const int64_t grouped_end = row_begin + (row_end - row_begin) / kRowGroupRows * kRowGroupRows;
    matmul_row_groups(w, xq, n_tokens, y, y_stride, row_begin, grouped_end);
    return rows_any(job, grouped_end, row_end);
  }
  rows_any(job, row_begin, row_end);
}

}  // namespace v4::kernels
