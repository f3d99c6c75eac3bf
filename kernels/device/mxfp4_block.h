// MXFP4 weight blocks on the device (spec §6): MXFP4 weights meet the split Q8_0 activation rows
// as Q8_0 weights do (the same blocks of 32, so the same values), so a block's 32 activation
// quants are two 16-byte loads. A block's codes become their doubled E2M1 values by byte selects
// from the 16 values held in registers, not by 32 table loads, and its 17 bytes come from the
// five aligned words that hold them. Each device intrinsic used here is spelled out for the host,
// so the emulated device runs the same arithmetic.
#pragma once

#include <string.h>

#include <cstdint>

#include "core/hd.h"
#include "kernels/cpu/quant_blocks.h"

namespace v4::kernels {

// Byte n of the result is byte (s >> 4n) & 7 of the eight bytes lo (bytes 0–3) and hi (4–7)
// (the upper 16 bits of s unused): CUDA's __byte_perm, spelled out for the host.
V4_HD inline uint32_t byte_select(uint32_t lo, uint32_t hi, uint32_t s) {
#if defined(__CUDA_ARCH__)
  return __byte_perm(lo, hi, s);
#else
  const uint64_t all = (static_cast<uint64_t>(hi) << 32) | lo;
  uint32_t r = 0;
  for (int n = 0; n < 4; ++n) {
    const uint32_t from = (s >> (4 * n)) & 7u;
    r |= static_cast<uint32_t>((all >> (8 * from)) & 0xFFu) << (8 * n);
  }
  return r;
#endif
}

// The doubled E2M1 values (kvalues_mxfp4, checked against it) as four words: value c is byte
// c % 4 of word c / 4.
inline constexpr uint32_t kMxfp4ValueWords[4] = {0x03020100u, 0x0C080604u, 0xFDFEFF00u,
                                                 0xF4F8FAFCu};

// The values of the eight codes of q, four bytes of an MXFP4 block's quants: *lo the values of
// the bytes' low codes (byte i: byte i's), *hi those of their high codes. Each 16-bit half of q
// selects the values of its four codes twice, from values 0–7 and from 8–15, then bit 3 of each
// code picks one of the two; two more selects gather the low and the high codes' values.
V4_HD inline void mxfp4_word_values(uint32_t q, uint32_t* lo, uint32_t* hi) {
  const uint32_t pick = 0x32103210u | ((q & 0x88888888u) >> 1);
  uint32_t halves[2];
  for (int h = 0; h < 2; ++h) {
    const uint32_t codes = q >> (16 * h);
    const uint32_t low_eight = byte_select(kMxfp4ValueWords[0], kMxfp4ValueWords[1], codes);
    const uint32_t high_eight = byte_select(kMxfp4ValueWords[2], kMxfp4ValueWords[3], codes);
    halves[h] = byte_select(low_eight, high_eight, pick >> (16 * h));
  }
  *lo = byte_select(halves[0], halves[1], 0x6420u);
  *hi = byte_select(halves[0], halves[1], 0x7531u);
}

// Σ of the four products of the signed bytes of a and b, added to sum (__dp4a on the device).
V4_HD inline int32_t dot4_i8(uint32_t a, uint32_t b, int32_t sum) {
#if defined(__CUDA_ARCH__)
  return __dp4a(static_cast<int>(a), static_cast<int>(b), sum);
#else
  for (int i = 0; i < 4; ++i) {
    sum +=
        static_cast<int8_t>((a >> (8 * i)) & 0xFFu) * static_cast<int8_t>((b >> (8 * i)) & 0xFFu);
  }
  return sum;
#endif
}

// An MXFP4 block's 32 values from its quant bytes as four words `q` (bytes 0–15), as eight words
// in the order of its activation quants: words 0–3 the low codes' values (values 0–15), words
// 4–7 the high codes'.
V4_HD inline void mxfp4_block_values(const uint32_t* q, uint32_t* v) {
  for (int w = 0; w < 4; ++w) mxfp4_word_values(q[w], &v[w], &v[w + 4]);
}

// Bits `bits` (0–32) to 63 + bits of the 64-bit hi:lo, the low 32 of them: CUDA's
// __funnelshift_rc, spelled out for the host.
V4_HD inline uint32_t funnel_right(uint32_t lo, uint32_t hi, uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __funnelshift_rc(lo, hi, bits);
#else
  return static_cast<uint32_t>(((static_cast<uint64_t>(hi) << 32) | lo) >> bits);
#endif
}

// An MXFP4 block (17 bytes: its scale byte, then 16 quant bytes) from the five aligned words
// that hold it, the block starting `offset` (0–3) bytes into the first: its scale and its quants
// as four words.
V4_HD inline void mxfp4_block_from_words(const uint32_t* words, uint32_t offset, uint8_t* e,
                                         uint32_t* q) {
  *e = static_cast<uint8_t>(words[0] >> (8 * offset));
  // The quants start offset + 1 bytes in: word w is bytes offset + 1 + 4w onwards.
  const uint32_t bits = 8 * ((offset + 1) % 4), first = (offset + 1) / 4;
  for (int w = 0; w < 4; ++w) q[w] = funnel_right(words[first + w], words[first + w + 1], bits);
}

// Block u of an MXFP4 row: its scale byte and its quants as four words. MXFP4 blocks are 17 bytes
// apart, so a block may start at any byte: on the device five aligned 4-byte loads fetch the
// words that hold it (each holds one of its bytes, so none reads past it) and shifts take it out,
// instead of 17 byte loads; the host copies the bytes.
V4_HD inline void load_mxfp4_block(const uint8_t* row, int64_t u, uint8_t* e, uint32_t* q) {
  const uint8_t* at = row + u * static_cast<int64_t>(sizeof(BlockMXFP4));
#if defined(__CUDA_ARCH__)
  const auto address = reinterpret_cast<uintptr_t>(at);
  const auto* aligned = reinterpret_cast<const uint32_t*>(address & ~uintptr_t{3});
  uint32_t words[6];
#pragma unroll
  for (int w = 0; w < 5; ++w) words[w] = aligned[w];
  words[5] = 0;  // read only where the quants end a word: shifted out
  mxfp4_block_from_words(words, static_cast<uint32_t>(address & 3), e, q);
#else
  *e = at[0];
  memcpy(q, at + 1, 16);
#endif
}

// Σ v·a over 32 signed bytes each, held as eight words: an exact integer sum.
V4_HD inline int32_t dot32_i8(const uint32_t* v, const int32_t* a) {
  int32_t sum = 0;
  for (int w = 0; w < 8; ++w) sum = dot4_i8(v[w], static_cast<uint32_t>(a[w]), sum);
  return sum;
}

}  // namespace v4::kernels
