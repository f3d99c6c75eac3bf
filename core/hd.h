// Marks a function as callable from host and device code. The per-element math that the CPU
// kernels and the CUDA kernels share (block decoding, rounding, small reductions) is written
// once with V4_HD, so that it is tested on any machine and a GPU runs the very same arithmetic.
#pragma once

#if defined(__CUDACC__)
#define V4_HD __host__ __device__
#else
#define V4_HD
#endif

// Loop unrolling hints that both compilers take: V4_UNROLL(n) unrolls by n, V4_UNROLL_ALL fully
// (fixed trip counts, e.g. over a tile's tokens so that per-token sums stay in registers).
#define V4_PRAGMA(x) _Pragma(#x)
#if defined(__CUDACC__)
#define V4_UNROLL(n) V4_PRAGMA(unroll n)
#define V4_UNROLL_ALL V4_PRAGMA(unroll)
#elif defined(__clang__)
#define V4_UNROLL(n) V4_PRAGMA(clang loop unroll_count(n))
#define V4_UNROLL_ALL V4_PRAGMA(clang loop unroll(full))
#else
#define V4_UNROLL(n) V4_PRAGMA(GCC unroll n)
#define V4_UNROLL_ALL V4_PRAGMA(GCC unroll 64)
#endif
