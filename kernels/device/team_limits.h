// What one team (a GPU block) of the device ops may ask for, on either executor. A GPU refuses a
// block beyond its limits only when the launch runs, so the host executor, which every machine
// runs the ops on, refuses the same launches: a team too large fails the tests without a GPU.
#pragma once

#include <cstddef>

namespace v4::kernels {

// Threads of a team. CudaExec compiles its team kernel for blocks of this many threads, so that
// none needs more registers than a block of them may have (65536 / 512 = 128 a thread).
inline constexpr int kMaxTeamThreads = 512;
// Shared memory of a team: a block gets 48 KiB without asking for more (cudaFuncSetAttribute).
inline constexpr size_t kMaxTeamSharedBytes = 48 * 1024;

// Whether a team of `size` threads with `shared_bytes` of shared memory is within the limits.
constexpr bool team_fits(int size, size_t shared_bytes) {
  return size >= 1 && size <= kMaxTeamThreads && shared_bytes <= kMaxTeamSharedBytes;
}

}  // namespace v4::kernels
