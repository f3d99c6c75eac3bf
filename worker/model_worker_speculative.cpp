// ModelWorker's speculative decoding (docs/design.md, speculative decoding): a sampling chunk
// runs with up to k drafts after it in the same forward; the engine's batch and chunk
// invariance makes row j's logits exactly the ones decoding one token at a time would give
// after the drafts before it, so sampling the rows in order with the request's own sampler,
// while each draft equals the token sampled before it, yields the very tokens (and logprobs)
// of decoding without drafts.
#include <algorithm>

#include "worker/model_worker.h"
#include "worker/mtp_drafter.h"

namespace v4 {

Result<std::span<const int32_t>> ModelWorker::speculative_input(RequestId id, RequestState& r,
                                                                const ScheduledSequence& s) {
  r.step_tokens.assign(s.tokens.begin(), s.tokens.end());
  r.n_drafts = 0;
  uint64_t room = std::min(s.draft_room, r.speculative);
  // Never past max_tokens: the chunk's own sample comes first, each accepted draft is one more.
  const SamplingParams& p = r.sampler.params();
  const uint64_t left =
      p.max_tokens > r.sampler.generated() ? p.max_tokens - r.sampler.generated() : 0;
  room = std::min<uint64_t>(room, left > 0 ? left - 1 : 0);
  // Nor past the context: the last draft must sit before the position that ends the request.
  const uint64_t end = s.first_position + s.tokens.size();
  room =
      std::min<uint64_t>(room, options_.max_context > end + 1 ? options_.max_context - end - 1 : 0);
  if (room == 0 || r.kv->n_past() == 0) return std::span<const int32_t>(r.step_tokens);
  // A rejected draft costs a replay of the step's tokens: a request whose drafts keep failing
  // (random MTP weights, text the MTP block cannot predict) pauses drafting.
  if (r.steps_without_drafts > 0) {
    --r.steps_without_drafts;
    return std::span<const int32_t>(r.step_tokens);
  }
  Result<std::vector<int32_t>> drafts =
      drafter_->draft(id, s.first_position, s.tokens, static_cast<uint32_t>(room));
  if (!drafts) return drafts.status();
  if (drafts->empty()) return std::span<const int32_t>(r.step_tokens);
  // Spec §4.4: a rejected draft rolls back the compressors' carry, saved here.
  if (Status st = r.kv->save_carry(r.saved); !st) return st;
  r.n_drafts = std::min<size_t>(drafts->size(), room);
  r.step_tokens.insert(r.step_tokens.end(), drafts->begin(),
                       drafts->begin() + static_cast<std::ptrdiff_t>(r.n_drafts));
  return std::span<const int32_t>(r.step_tokens);
}

Status ModelWorker::sample_speculative(RequestState& r, const ScheduledSequence& s,
                                       const ForwardOutput& fwd, size_t index, size_t hidden_row,
                                       StepOutput& out, std::vector<GenerationEvent>& events) {
  const size_t vocab = config_.n_vocab, m = s.tokens.size(), k = r.n_drafts;
  const size_t first_row = fwd.first_row[index] + m - 1;
  std::vector<int32_t> stream(s.tokens.begin(), s.tokens.end());
  size_t accepted = 0;
  bool finished = false;
  for (size_t j = 0; j <= k; ++j) {
    SampledChoice c = r.sampler.sample({&fwd.logits[(first_row + j) * vocab], vocab});
    GenerationEvent e = token_event(s.id, r, std::move(c), s.first_position + m + j);
    finished = e.finish != FinishReason::kNone;
    const bool equal = j < k && e.token == r.step_tokens[m + j];
    if (equal) {
      ++accepted;
      ++speculative_.accepted_per_position[j];
    }
    // Stop tokens and limits apply to each token as they would one step at a time.
    const bool go_on = equal && !finished;
    out.sampled.push_back({s.id, e.token, finished, go_on});
    stream.push_back(e.token);
    events.push_back(std::move(e));
    if (!go_on) break;
  }
  if (k > 0) {
    ++speculative_.drafts;
    speculative_.draft_tokens += k;
    speculative_.accepted_tokens += accepted;
    r.failed_verifies = accepted == 0 ? std::min(r.failed_verifies + 1, 4u) : 0;
    r.steps_without_drafts = (1u << r.failed_verifies) - 1;
  }
  const RequestId id = s.id;
  if (finished) {
    drafter_->forget(id);
    sequences_.erase(id);
    return Status::ok();
  }
  // The inputs up to the last accepted draft are the stream's; a rejected draft leaves rows
  // past them, so the state returns to the chunk's start and the scheduler runs the valid
  // tokens again (spec §4.4).
  const size_t valid = m + accepted;
  if (accepted < k) {
    r.kv->rollback(r.saved);
    out.rolled_back.push_back({id, s.first_position});
  }
  const size_t flat = size_t{config_.n_hc} * config_.n_embd;
  const std::span<const float> hidden(fwd.hidden.data() + hidden_row * flat, valid * flat);
  return drafter_->observe(id, s.first_position, hidden, valid, stream);
}

}  // namespace v4
