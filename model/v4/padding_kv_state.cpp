#include "model/v4/padding_kv_state.h"

#include <string>

namespace v4 {

PaddingKvState::PaddingKvState(const KvLayout& layout, Backend& backend, uint32_t window)
    : backend_(backend), layout_(layout), ring_rows_(uint64_t{window} + 1) {}

Status PaddingKvState::reserve(uint64_t n_new) {
  if (n_new > 1) return Status::error("a padding row has one token, not " + std::to_string(n_new));
  if (state_) return Status::ok();
  state_ = backend_.allocate(layout_.state_floats(ring_rows_) * sizeof(float));
  if (!state_) return Status::error("out of device memory for the padding rows' state");
  const Tensor carry = Tensor::contiguous(state_.get(), 0, GgmlType::F32,
                                          {static_cast<int64_t>(layout_.carry_floats), 1, 1, 1});
  return backend_.copy_to_device(layout_.initial_carry.data(), carry, 0,
                                 layout_.carry_floats * sizeof(float));
}

KvSequenceView PaddingKvState::view() {
  KvSequenceView v;
  float* state = state_ ? static_cast<float*>(state_->data()) : nullptr;
  v.carry = state;
  v.raw = state ? state + layout_.carry_floats : nullptr;
  v.ring_rows = ring_rows_;
  return v;
}

}  // namespace v4
