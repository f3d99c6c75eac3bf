#include "worker/paged_sequence_kv.h"

#include <algorithm>
#include <cassert>
#include <string>

#include "model/v4/kv_layout.h"

namespace v4 {

size_t PagedSequenceKv::fixed_bytes(const V4Config& c, uint32_t max_chunk) {
  const KvLayout layout = make_kv_layout(c, KvStorage::kF32, 128, false);
  return layout.state_floats(uint64_t{c.sliding_window} + max_chunk) * sizeof(float);
}

size_t PagedSequenceKv::snapshot_bytes(const V4Config& c, const KvLayout& layout) {
  return layout.state_floats(c.sliding_window) * sizeof(float);
}

Status copy_snapshot_to_host(Backend& backend, const KvSnapshot& snapshot, uint8_t* host,
                             size_t bytes) {
  if (snapshot.bytes() != bytes)
    return Status::error("snapshot of " + std::to_string(snapshot.bytes()) + " bytes, expected " +
                         std::to_string(bytes));
  return backend.read_back(snapshot.state->data(), host, bytes);
}

Result<KvSnapshot> snapshot_from_host(Backend& backend, uint64_t n_past, const uint8_t* host,
                                      size_t bytes) {
  KvSnapshot s;
  s.n_past = n_past;
  s.state = backend.allocate(bytes);
  if (!s.state) return Status::error("paged KV: out of device memory for a prefix snapshot");
  const Tensor state = Tensor::whole(s.state.get());
  if (Status st = backend.copy_to_device(host, state, 0, bytes); !st) return st;
  return s;
}

PagedSequenceKv::PagedSequenceKv(const V4Config& c, PagedKvCache& cache, uint32_t max_chunk)
    : cache_(cache),
      head_dim_(c.head_dim),
      max_chunk_(max_chunk),
      window_(c.sliding_window),
      ring_rows_(uint64_t{c.sliding_window} + max_chunk) {}

float* PagedSequenceKv::slot_ring(float* state, uint32_t slot, uint64_t rows) const {
  return state + cache_.layout().carry_floats + slot * rows * head_dim_;
}

Status PagedSequenceKv::reserve(uint64_t n_new) {
  if (n_new > max_chunk_) {
    return Status::error("paged KV: a chunk of " + std::to_string(n_new) +
                         " tokens exceeds the ring's room of " + std::to_string(max_chunk_));
  }
  if (uint64_t{pages_.size()} * cache_.page_tokens() < n_past_ + n_new) {
    return Status::error("paged KV: block table of " + std::to_string(pages_.size()) +
                         " pages cannot hold " + std::to_string(n_past_ + n_new) + " tokens");
  }
  if (state_) return Status::ok();
  // The state slot, its carries fresh: the sequence's first step (or its first after a
  // preemption, which starts it over).
  Result<std::unique_ptr<DeviceBuffer>> slot =
      fresh_state_slot(cache_.backend(), cache_.layout(), ring_rows_);
  if (!slot) return Status::error("paged KV: " + slot.message());
  state_ = std::move(*slot);
  return Status::ok();
}

KvSequenceView PagedSequenceKv::view() {
  KvSequenceView v = state_slot_view(state_.get(), cache_.layout(), ring_rows_);
  v.pages = cache_.pages();
  v.n_pages = static_cast<uint32_t>(pages_.size());
  return v;
}

Result<KvSnapshot> PagedSequenceKv::snapshot() const {
  assert(state_ && "snapshot of a sequence that never ran");
  const KvLayout& layout = cache_.layout();
  Backend& backend = cache_.backend();
  KvSnapshot s;
  s.n_past = n_past_;
  s.state = backend.allocate(layout.state_floats(window_) * sizeof(float));
  if (!s.state) return Status::error("paged KV: out of device memory for a prefix snapshot");
  float* from = static_cast<float*>(state_->data());
  float* to = static_cast<float*>(s.state->data());
  backend.copy_on_device(from, to, layout.carry_floats * sizeof(float));
  const uint64_t first = n_past_ > window_ ? n_past_ - window_ : 0;
  for (uint32_t slot = 0; slot < layout.layers.size(); ++slot) {
    copy_ring_rows(backend, {slot_ring(from, slot, ring_rows_), ring_rows_, 0},
                   {slot_ring(to, slot, window_), window_, first}, first, n_past_, head_dim_);
  }
  return s;
}

Status PagedSequenceKv::restore(const KvSnapshot& s) {
  assert(n_past_ == 0 && !state_);
  const KvLayout& layout = cache_.layout();
  Backend& backend = cache_.backend();
  state_ = backend.allocate(layout.state_floats(ring_rows_) * sizeof(float));
  if (!state_) return Status::error("paged KV: out of device memory for a sequence's state");
  float* from = static_cast<float*>(s.state->data());
  float* to = static_cast<float*>(state_->data());
  backend.copy_on_device(from, to, layout.carry_floats * sizeof(float));
  const uint64_t first = s.n_past > window_ ? s.n_past - window_ : 0;
  for (uint32_t slot = 0; slot < layout.layers.size(); ++slot) {
    copy_ring_rows(backend, {slot_ring(from, slot, window_), window_, first},
                   {slot_ring(to, slot, ring_rows_), ring_rows_, 0}, first, s.n_past, head_dim_);
  }
  n_past_ = s.n_past;
  return Status::ok();
}

Status PagedSequenceKv::save_carry(KvSnapshot& into) const {
  assert(state_ && "carry of a sequence that never ran");
  const size_t bytes = cache_.layout().carry_floats * sizeof(float);
  const size_t room = std::max<size_t>(bytes, sizeof(float));  // a model without compressors
  if (!into.state || into.state->bytes() != room) {
    into.state = cache_.backend().allocate(room);
    if (!into.state) return Status::error("paged KV: out of device memory for a carry copy");
  }
  if (bytes) cache_.backend().copy_on_device(state_->data(), into.state->data(), bytes);
  into.n_past = n_past_;
  return Status::ok();
}

void PagedSequenceKv::rollback(const KvSnapshot& saved) {
  assert(state_ && saved.n_past <= n_past_);
  const size_t bytes = cache_.layout().carry_floats * sizeof(float);
  if (bytes) cache_.backend().copy_on_device(saved.state->data(), state_->data(), bytes);
  n_past_ = saved.n_past;
}

}  // namespace v4
