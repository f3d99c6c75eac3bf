// Integer atomics for the device ops: any thread of any team may add to a counter or take a slot.
// Integer adds are exact, so a total is the same in any order; a slot's number may differ from
// run to run, so a caller that takes slots must not depend on which element lands where, only on
// the set. On the host the executor runs one thread at a time, and plain adds are atomic.
#pragma once

#include <cstdint>

#include "core/hd.h"

namespace v4::kernels {

// *total += v.
V4_HD inline void add_exact(uint64_t* total, uint64_t v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(reinterpret_cast<unsigned long long*>(total), static_cast<unsigned long long>(v));
#else
  *total += v;
#endif
}

// The next slot of a counter: its value before this thread's increment.
V4_HD inline uint32_t take_slot(uint32_t* counter) {
#if defined(__CUDA_ARCH__)
  return atomicAdd(counter, 1u);
#else
  return (*counter)++;
#endif
}

}  // namespace v4::kernels
