// Drafts from the model's own MTP block (spec §3.7): the pair (main HC state after the last
// layer at position t, token t+1) predicts token t+2, as the DeepSeek reference pairs them
// (v4_forward_oracle_test checks the block against it). Each request keeps the block's raw
// window (its only KV, ratio 0) in a state slot of its own; verified pairs fill it in position
// order, so the window matches the one a full MTP prefill would hold. Further drafts feed the
// block's own output HC state back as H (ds4's recursive drafting); their rows are dropped
// after the step.
#pragma once

#include <map>
#include <memory>
#include <unordered_map>

#include "model/v4/v4_forward.h"
#include "worker/draft_source.h"
#include "worker/mtp_window.h"

namespace v4 {

class MtpDrafter final : public DraftSource {
 public:
  // `forward` (not owned) must have MTP weights; the drafter runs its mtp_draft between steps.
  explicit MtpDrafter(V4Forward& forward);
  ~MtpDrafter() override;

  Status observe(RequestId id, uint64_t first, std::span<const float> hidden, size_t rows,
                 std::span<const int32_t> tokens) override;
  Result<std::vector<int32_t>> draft(RequestId id, uint64_t first, std::span<const int32_t> chunk,
                                     uint32_t count) override;
  void forget(RequestId id) override { sequences_.erase(id); }
  // The request's window of the block, or null; for inspection.
  const MtpWindow* window(RequestId id) const {
    auto it = sequences_.find(id);
    return it == sequences_.end() ? nullptr : it->second.window.get();
  }

 private:
  struct Sequence {
    std::unique_ptr<MtpWindow> window;
    std::map<uint64_t, std::vector<float>> hidden;  // H by position, not yet fed
    std::map<uint64_t, int32_t> tokens;             // the stream's tokens by position
  };
  // Feeds the pairs of positions [window n_past, last] into the block's window, up to
  // kMtpMaxRows per forward; returns the logits of the pair at `last` (which must be kept) and
  // its output HC state in hidden_out.
  Result<std::vector<float>> feed_through(Sequence& s, uint64_t last,
                                          std::vector<float>* hidden_out);

  V4Forward& forward_;
  std::unordered_map<RequestId, Sequence> sequences_;
};

}  // namespace v4
