#include "model/v4/padding_kv_state.h"

#include <string>

namespace v4 {

PaddingKvState::PaddingKvState(const KvLayout& layout, Backend& backend, uint32_t window)
    : backend_(backend), layout_(layout), ring_rows_(uint64_t{window} + 1) {}

Status PaddingKvState::reserve(uint64_t n_new) {
  if (n_new > 1) return Status::error("a padding row has one token, not " + std::to_string(n_new));
  if (state_) return Status::ok();
  Result<std::unique_ptr<DeviceBuffer>> slot = fresh_state_slot(backend_, layout_, ring_rows_);
  if (!slot) return slot.status();
  state_ = std::move(*slot);
  return Status::ok();
}

KvSequenceView PaddingKvState::view() { return state_slot_view(state_.get(), layout_, ring_rows_); }

}  // namespace v4
