#include "model/v4/sequence_state.h"

#include <algorithm>
#include <string>

#include "model/v4/kv_layout.h"
#include "model/v4/v4_config.h"

namespace v4 {
namespace {

// Small pages: a lone sequence grows a page at a time.
constexpr uint32_t kPageTokens = 128;

}  // namespace

Result<std::unique_ptr<DeviceBuffer>> fresh_state_slot(Backend& backend, const KvLayout& layout,
                                                       uint64_t ring_rows) {
  std::unique_ptr<DeviceBuffer> slot =
      backend.allocate(layout.state_floats(ring_rows) * sizeof(float));
  if (!slot) return Status::error("out of device memory for a sequence's KV state");
  const Tensor carry = Tensor::contiguous(slot.get(), 0, GgmlType::F32,
                                          {static_cast<int64_t>(layout.carry_floats), 1, 1, 1});
  if (Status s = backend.copy_to_device(layout.initial_carry.data(), carry, 0,
                                        layout.carry_floats * sizeof(float));
      !s) {
    return s;
  }
  return slot;
}

KvSequenceView state_slot_view(DeviceBuffer* slot, const KvLayout& layout, uint64_t ring_rows) {
  KvSequenceView v;
  float* state = slot ? static_cast<float*>(slot->data()) : nullptr;
  v.carry = state;
  v.raw = state ? state + layout.carry_floats : nullptr;
  v.ring_rows = ring_rows;
  return v;
}

ContiguousKvState::ContiguousKvState(const V4Config& c, Backend& backend, bool with_mtp)
    : backend_(backend),
      layout_(make_kv_layout(c, KvStorage::kF32, kPageTokens, with_mtp)),
      window_(c.sliding_window) {}

Status ContiguousKvState::reserve(uint64_t n_new) {
  const size_t head_dim = layout_.format.shape.head_dim;
  const uint64_t ring = uint64_t{window_} + n_new;
  if (ring > ring_rows_) {
    // A deeper ring: carries and the live window rows move to a new slot.
    Result<std::unique_ptr<DeviceBuffer>> grown = fresh_state_slot(backend_, layout_, ring);
    if (!grown) return grown.status();
    float* to = static_cast<float*>((*grown)->data());
    if (state_) {
      float* from = static_cast<float*>(state_->data());
      backend_.copy_on_device(from, to, layout_.carry_floats * sizeof(float));
      const uint64_t first = n_past_ > window_ ? n_past_ - window_ : 0;
      for (size_t slot = 0; slot < layout_.layers.size(); ++slot) {
        float* old_ring = from + layout_.carry_floats + slot * ring_rows_ * head_dim;
        float* new_ring = to + layout_.carry_floats + slot * ring * head_dim;
        copy_ring_rows(backend_, {old_ring, ring_rows_, 0}, {new_ring, ring, 0}, first, n_past_,
                       static_cast<uint32_t>(head_dim));
      }
    }
    state_ = std::move(*grown);
    ring_rows_ = ring;
  }
  const uint64_t pages = (n_past_ + n_new + kPageTokens - 1) / kPageTokens;
  if (pages > block_table_.size() && layout_.format.page_bytes > 0) {
    const uint64_t capacity = std::max<uint64_t>(pages, 2 * block_table_.size());
    auto grown = backend_.allocate(capacity * layout_.format.page_bytes);
    if (!grown) return Status::error("KV pages: out of device memory");
    if (pages_) {
      backend_.copy_on_device(pages_->data(), grown->data(),
                              block_table_.size() * layout_.format.page_bytes);
    }
    pages_ = std::move(grown);
    while (block_table_.size() < capacity) {
      block_table_.push_back(static_cast<uint32_t>(block_table_.size()));
    }
  }
  return Status::ok();
}

KvSequenceView ContiguousKvState::view() {
  KvSequenceView v = state_slot_view(state_.get(), layout_, ring_rows_);
  v.pages = pages_ ? static_cast<uint8_t*>(pages_->data()) : nullptr;
  v.n_pages = static_cast<uint32_t>(block_table_.size());
  return v;
}

}  // namespace v4
