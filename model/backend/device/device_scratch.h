// Memory a device backend's ops keep between calls, owned by one executor: scratch slots, sized
// for the largest step before the first (reserve) or else grown to the largest step seen, so that
// steady-state steps do not allocate; constant copies of host tables (the quant grids, made
// once); and the backend's choice of product kernels. One DeviceScratch serves one backend.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace v4::device {

// Each op family has its own slots, so two ops of a step never share scratch by accident.
enum class ScratchSlot : int {
  kMatmulActivations,  // quantized activation rows
  kMatmulMid,          // the expert FFN's SwiGLU rows
  kMatmulAux,
  kMatmulTiles,  // the expert products' tile numbering (tensor cores)
  kAttentionScores,
  kAttentionAux,
  kAttentionAux2,
  kElementwise,
  kElementwiseAux,
  kElementwiseAux2,
  kCount
};

// Bytes per scratch slot.
struct ScratchSizes {
  std::array<uint64_t, static_cast<size_t>(ScratchSlot::kCount)> bytes{};
  uint64_t& operator[](ScratchSlot slot) { return bytes[static_cast<size_t>(slot)]; }
  uint64_t operator[](ScratchSlot slot) const { return bytes[static_cast<size_t>(slot)]; }
  uint64_t total() const {
    uint64_t sum = 0;
    for (uint64_t b : bytes) sum += b;
    return sum;
  }
};

// How a device backend's ops choose their kernels and bound their scratch. No choice here changes
// a bit of any result.
struct DeviceOpOptions {
  // Prefill's quantized products may run on the tensor cores (device_ops_matmul_mma.h); off only
  // to measure what they gain.
  bool tensor_cores = true;
  // Q8_0 weights are rewritten in the split layout after their upload (Backend::split_q8_0_rows,
  // device_ops_q8_0_split.h); off only to measure what it gains.
  bool split_q8_0_weights = true;
  // Scratch an attention op (the indexer's scores, sparse attention's scores and decoded rows)
  // may take at once: a step's tokens are taken in groups that fit it. Each token's work is its
  // own, so the grouping changes nothing but the memory. Without a bound a 2048-token prefill
  // chunk asks for gigabytes (a ratio-4 layer decodes top-k = 512 rows of 512 values per token),
  // and more as the context grows.
  uint64_t attention_scratch_bytes = uint64_t{256} << 20;
};

template <class Exec>
class DeviceScratch {
 public:
  explicit DeviceScratch(Exec& exec)
      : exec_(exec), slots_(static_cast<size_t>(ScratchSlot::kCount)) {}
  ~DeviceScratch() {
    for (Slot& s : slots_) exec_.free(s.data);
    for (auto& [host, copy] : constants_) exec_.free(copy);
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  // At least `count` elements of T in `slot`, kept until the next call for the slot. Throws
  // std::bad_alloc when the device has no room (the forward sizes steps to avoid that).
  template <class T>
  T* get(ScratchSlot slot, size_t count) {
    Slot& s = slots_[static_cast<size_t>(slot)];
    const size_t bytes = count * sizeof(T);
    s.most_asked = std::max(s.most_asked, bytes);
    // At least double: a slot that grows step by step moves (and drops every step recording that
    // points into it) a logarithmic number of times. A reserved slot does not grow.
    if (s.bytes < bytes) resize(s, std::max(bytes, 2 * s.bytes));
    return static_cast<T*>(s.data);
  }

  // Each slot holds at least `sizes` from now on, exactly that where it held less: sized before
  // the first step, no slot moves again while the steps stay within the sizes, so no recorded
  // step is dropped and nothing is held twice over for growth. Throws std::bad_alloc.
  void reserve(const ScratchSizes& sizes) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].bytes < sizes.bytes[i]) resize(slots_[i], sizes.bytes[i]);
    }
  }

  const DeviceOpOptions& options() const { return options_; }
  void set_options(const DeviceOpOptions& options) { options_ = options; }

  // Bytes the slots hold now.
  uint64_t bytes() const {
    uint64_t total = 0;
    for (const Slot& s : slots_) total += s.bytes;
    return total;
  }

  // The largest request each slot has had: what scratch_need (scratch_bound.h) bounds.
  ScratchSizes requested() const {
    ScratchSizes sizes;
    for (size_t i = 0; i < slots_.size(); ++i) sizes.bytes[i] = slots_[i].most_asked;
    return sizes;
  }

  // Counts the reallocations of slots: pointers returned before a change may be freed.
  uint64_t generation() const { return generation_; }

  // A device copy of `bytes` host bytes at `host` (a static table), made on first use.
  const void* constant(const void* host, size_t bytes) {
    auto it = constants_.find(host);
    if (it != constants_.end()) return it->second;
    void* copy = exec_.malloc(bytes);
    if (!copy) throw std::bad_alloc();
    if (!exec_.copy_in(copy, host, bytes))
      throw std::runtime_error("copy of a constant table failed");
    constants_.emplace(host, copy);
    return copy;
  }

 private:
  struct Slot {
    void* data = nullptr;
    size_t bytes = 0;
    size_t most_asked = 0;
  };

  void resize(Slot& s, size_t bytes) {
    ++generation_;
    exec_.free(s.data);
    s.bytes = 0;
    s.data = exec_.malloc(bytes);
    if (!s.data) throw std::bad_alloc();
    s.bytes = bytes;
  }

  Exec& exec_;
  std::vector<Slot> slots_;
  uint64_t generation_ = 0;
  DeviceOpOptions options_;
  std::map<const void*, void*> constants_;
};

}  // namespace v4::device
