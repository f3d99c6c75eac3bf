// Marks a function as callable from host and device code. The per-element math that the CPU
// kernels and the CUDA kernels share (block decoding, rounding, small reductions) is written
// once with V4_HD, so that it is tested on any machine and a GPU runs the very same arithmetic.
#pragma once

#if defined(__CUDACC__)
#define V4_HD __host__ __device__
#else
#define V4_HD
#endif
