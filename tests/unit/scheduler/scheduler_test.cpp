// Scheduler policies replayed step by step against tables of expected plans (TensorRT-LLM's
// capacity-scheduler test style): packing, chunked prefill, FCFS, preemption, cancellation, and
// page accounting that always returns to zero.
#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

namespace v4 {
namespace {

// "A64" = request A ran 64 tokens without sampling; "A36s" = 36 tokens and sampled.
std::string describe(const StepPlan& plan, const std::map<RequestId, char>& names) {
  std::string out;
  for (const ScheduledSequence& s : plan.sequences) {
    if (!out.empty()) out += ' ';
    out += names.at(s.id) + std::to_string(s.tokens.size()) + (s.samples ? "s" : "");
  }
  for (RequestId id : plan.preempted) out += std::string(" preempt:") + names.at(id);
  return out;
}

// Drives the loop like the engine does: every sampled request gets token 7 until it has
// produced max_out tokens.
class StepReplay {
 public:
  explicit StepReplay(const SchedulerConfig& c) : scheduler(c) {}
  void add(char name, size_t prompt, size_t max_out) {
    const RequestId id = next_id_++;
    names_[id] = name;
    max_out_[id] = max_out;
    ASSERT_TRUE(scheduler.add(id, std::vector<int32_t>(prompt, 3)));
  }
  std::string step() {
    StepPlan plan = scheduler.schedule();
    StepOutput out;
    for (const ScheduledSequence& s : plan.sequences) {
      if (!s.samples) continue;
      const size_t n = ++produced_[s.id];
      out.sampled.push_back({s.id, 7, n >= max_out_[s.id]});
    }
    const std::string d = describe(plan, names_);
    scheduler.update(plan, out);
    return d;
  }
  RequestId id_of(char name) const {
    for (auto& [id, n] : names_)
      if (n == name) return id;
    return 0;
  }
  Scheduler scheduler;

 private:
  RequestId next_id_ = 1;
  std::map<RequestId, char> names_;
  std::map<RequestId, size_t> max_out_, produced_;
};

TEST(Scheduler, ChunksPrefillWithinTheTokenBudgetAndRunsDecodesFirst) {
  StepReplay r({.page_tokens = 128, .total_pages = 8, .max_batch_tokens = 64, .max_seqs = 4});
  r.add('A', 100, 3);
  r.add('B', 30, 2);
  const std::vector<std::string> expected = {"A64", "A36s B28", "A1s B2s", "A1s B1s", ""};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(r.step(), expected[i]) << "step " << i;
  EXPECT_FALSE(r.scheduler.has_work());
  EXPECT_EQ(r.scheduler.allocator().used_count(), 0u);
}

TEST(Scheduler, RequestsJoinAtAnyStepBehindRunningDecodes) {
  StepReplay r({.page_tokens = 128, .total_pages = 8, .max_batch_tokens = 16, .max_seqs = 4});
  r.add('A', 4, 3);
  EXPECT_EQ(r.step(), "A4s");
  r.add('B', 20, 1);
  EXPECT_EQ(r.step(), "A1s B15");
  EXPECT_EQ(r.step(), "A1s B5s");
  EXPECT_EQ(r.step(), "");
  EXPECT_EQ(r.scheduler.allocator().used_count(), 0u);
}

TEST(Scheduler, PreemptsTheRequestingSequenceWhenItIsTheLastAdmitted) {
  StepReplay r({.page_tokens = 128, .total_pages = 3, .max_batch_tokens = 512, .max_seqs = 4});
  r.add('A', 200, 4);
  r.add('B', 127, 3);
  // B's 129th token needs a second page; B is the most recent admission, so it yields.
  const std::vector<std::string> expected = {"A200s B127s", "A1s B1s", "A1s preempt:B",
                                             "A1s",         "B129s",   ""};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(r.step(), expected[i]) << "step " << i;
  EXPECT_EQ(r.scheduler.stats().preemptions, 1u);
  EXPECT_EQ(r.scheduler.allocator().used_count(), 0u);
}

TEST(Scheduler, PreemptsTheLatestAdmissionToKeepTheOldestRunning) {
  StepReplay r({.page_tokens = 128, .total_pages = 3, .max_batch_tokens = 512, .max_seqs = 4});
  r.add('A', 127, 3);
  r.add('B', 200, 5);
  // A's 129th token needs a page; B, admitted later, gives up its two.
  const std::vector<std::string> expected = {
      "A127s B200s", "A1s B1s", "A1s preempt:B", "B202s", "B1s", "B1s", ""};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(r.step(), expected[i]) << "step " << i;
  EXPECT_EQ(r.scheduler.allocator().used_count(), 0u);
}

TEST(Scheduler, AdmitsInArrivalOrderWithoutSkippingTheHead) {
  // 2 pages: A holds one, the head B needs two, C would fit but must wait behind B.
  StepReplay r({.page_tokens = 128, .total_pages = 2, .max_batch_tokens = 512, .max_seqs = 4});
  r.add('A', 10, 2);
  r.add('B', 200, 1);
  r.add('C', 10, 1);
  const std::vector<std::string> expected = {"A10s", "A1s", "B200s", "C10s", ""};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(r.step(), expected[i]) << "step " << i;
}

TEST(Scheduler, RespectsTheSequenceLimit) {
  StepReplay r({.page_tokens = 128, .total_pages = 8, .max_batch_tokens = 512, .max_seqs = 2});
  r.add('A', 5, 2);
  r.add('B', 5, 1);
  r.add('C', 5, 1);
  const std::vector<std::string> expected = {"A5s B5s", "A1s C5s", ""};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(r.step(), expected[i]) << "step " << i;
}

TEST(Scheduler, CancellationFreesPagesAtOnceAndTellsTheWorker) {
  StepReplay r({.page_tokens = 128, .total_pages = 8, .max_batch_tokens = 512, .max_seqs = 4});
  r.add('A', 300, 10);
  EXPECT_EQ(r.step(), "A300s");
  EXPECT_EQ(r.scheduler.allocator().used_count(), 3u);
  const RequestId a = r.id_of('A');
  EXPECT_TRUE(r.scheduler.cancel(a));
  EXPECT_EQ(r.scheduler.allocator().used_count(), 0u);
  EXPECT_FALSE(r.scheduler.cancel(a));
  const StepPlan plan = r.scheduler.schedule();
  EXPECT_TRUE(plan.empty());
  EXPECT_EQ(plan.released, std::vector<RequestId>{a});
  EXPECT_EQ(plan.freed_pages, (std::vector<PageId>{0, 1, 2}));
}

TEST(Scheduler, BlockTablesGrowPageByPageWithLowestFreeIds) {
  Scheduler s({.page_tokens = 128, .total_pages = 4, .max_batch_tokens = 128, .max_seqs = 4});
  ASSERT_TRUE(s.add(1, std::vector<int32_t>(300, 1)));
  StepPlan p = s.schedule();
  ASSERT_EQ(p.sequences.size(), 1u);
  EXPECT_EQ(p.sequences[0].new_pages, std::vector<PageId>{0});
  s.update(p, {});
  p = s.schedule();
  EXPECT_EQ(p.sequences[0].first_position, 128u);
  EXPECT_EQ(p.sequences[0].pages, (std::vector<PageId>{0, 1}));
  EXPECT_EQ(p.sequences[0].new_pages, std::vector<PageId>{1});
}

// Random arrivals, cancellations and lengths against the invariants: budgets hold, decodes come
// before prefill chunks, every used page belongs to exactly one block table, and nothing leaks.
TEST(Scheduler, RandomTrafficNeverLeaksPagesOrBreaksBudgets) {
  const SchedulerConfig c{
      .page_tokens = 128, .total_pages = 12, .max_batch_tokens = 96, .max_seqs = 5};
  Scheduler s(c);
  std::mt19937_64 rng(5);
  std::map<RequestId, size_t> left;
  RequestId next = 1;
  for (int step = 0; step < 20000 && (step < 2000 || s.has_work()); ++step) {
    if (step < 2000 && rng() % 25 == 0) {
      const RequestId id = next++;
      ASSERT_TRUE(s.add(id, std::vector<int32_t>(1 + rng() % 400, 2)));
      left[id] = 1 + rng() % 200;
    }
    if (step < 2000 && rng() % 40 == 0 && !left.empty()) {
      auto it = std::next(left.begin(), static_cast<long>(rng() % left.size()));
      EXPECT_TRUE(s.cancel(it->first));
      left.erase(it);
    }
    const StepPlan plan = s.schedule();
    EXPECT_LE(plan.token_count(), c.max_batch_tokens);
    EXPECT_LE(plan.sequences.size(), c.max_seqs);
    bool prefill_seen = false;
    std::vector<bool> owned(c.total_pages);
    size_t owned_count = 0;
    StepOutput out;
    for (const ScheduledSequence& q : plan.sequences) {
      const bool decode = q.tokens.size() == 1 && q.first_position > 0 && q.samples;
      if (!decode) prefill_seen = true;
      EXPECT_FALSE(decode && prefill_seen && q.tokens.size() != 1);
      EXPECT_GE(q.pages.size() * c.page_tokens, q.first_position + q.tokens.size());
      if (q.samples) out.sampled.push_back({q.id, 1, --left[q.id] == 0});
    }
    s.update(plan, out);
    for (const SampledToken& t : out.sampled)
      if (t.finished) left.erase(t.id);
    for (auto& [id, n] : left) {
      for (PageId p : s.pages_of(id)) {
        EXPECT_FALSE(owned[p]) << "page " << p << " in two block tables";
        owned[p] = true;
        ++owned_count;
      }
    }
    ASSERT_EQ(owned_count, s.allocator().used_count()) << "step " << step;
  }
  EXPECT_FALSE(s.has_work()) << s.stats().running << " running, " << s.stats().waiting
                             << " waiting, " << s.allocator().used_count() << " pages";
  EXPECT_EQ(s.allocator().used_count(), 0u);
  EXPECT_GT(s.stats().preemptions, 0u);
}

}  // namespace
}  // namespace v4

namespace v4 {
namespace {

// Speculative decoding: a decode gets draft room within the token budget and free pages; an
// accepted draft counts as computed, a rollback returns the request to the chunk's start so the
// next step runs the valid tokens again, and every page comes back.
TEST(SchedulerSpeculative, DraftRoomAcceptedDraftsAndRollback) {
  Scheduler s({128, 4, 6, 4, false});
  ASSERT_TRUE(s.add(1, std::vector<int32_t>(126, 3), true, 3));
  ASSERT_TRUE(s.add(2, std::vector<int32_t>(2, 3)));  // no drafts asked
  StepPlan p = s.schedule();                          // budget 6: A's first chunk takes it all
  ASSERT_EQ(p.sequences.size(), 1u);
  EXPECT_EQ(p.sequences[0].draft_room, 0u);  // a prefill chunk that does not sample
  s.update(p, {});
  while (s.pages_of(1).size() < 1 || p.sequences.empty() || !p.sequences[0].samples) {
    p = s.schedule();
    StepOutput out;
    for (const ScheduledSequence& q : p.sequences)
      if (q.samples) out.sampled.push_back({q.id, 7, false});
    s.update(p, out);
  }
  // Now A decodes one token; its draft room crosses into a second page.
  p = s.schedule();
  const ScheduledSequence* a = nullptr;
  for (const ScheduledSequence& q : p.sequences)
    if (q.id == 1) a = &q;
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->tokens.size(), 1u);
  EXPECT_EQ(a->draft_room, 3u);
  EXPECT_GE(a->pages.size() * 128, a->first_position + 1 + 3);
  const uint64_t start = a->first_position;
  // Two drafts accepted, then a rejection: three tokens out and the KV back at `start`.
  StepOutput out;
  out.sampled = {{1, 8, false, true}, {1, 9, false, true}, {1, 10, false, false}};
  out.rolled_back = {{1, start}};
  for (const ScheduledSequence& q : p.sequences)
    if (q.id != 1 && q.samples) out.sampled.push_back({q.id, 7, true});
  s.update(p, out);
  p = s.schedule();
  for (const ScheduledSequence& q : p.sequences) {
    if (q.id != 1) continue;
    EXPECT_EQ(q.first_position, start);
    EXPECT_EQ(q.tokens, (std::vector<int32_t>{7, 8, 9, 10}));
    EXPECT_TRUE(q.samples);
    EXPECT_EQ(q.draft_room, 2u);  // what the budget of 6 leaves after 4 tokens
  }
  // All drafts accepted: the step's tokens and the drafts are computed; one token is left.
  out = {};
  out.sampled = {{1, 11, false, true}, {1, 12, false, true}, {1, 13, false, false}};
  s.update(p, out);
  p = s.schedule();
  ASSERT_EQ(p.sequences.size(), 1u);
  EXPECT_EQ(p.sequences[0].first_position, start + 6);
  EXPECT_EQ(p.sequences[0].tokens, std::vector<int32_t>{13});
  out = {};
  out.sampled = {{1, 14, true, false}};
  s.update(p, out);
  EXPECT_FALSE(s.has_work());
  EXPECT_EQ(s.allocator().used_count(), 0u);
}

// SchedulerConfig::speculative_max_batch: a step that starts with more running requests than
// the limit gives no draft room to anyone; once the batch shrinks to the limit, drafts return.
TEST(SchedulerSpeculative, NoDraftRoomAboveTheBatchLimit) {
  SchedulerConfig config{128, 8, 64, 8, false};
  config.speculative_max_batch = 2;
  Scheduler s(config);
  for (RequestId id = 1; id <= 3; ++id) ASSERT_TRUE(s.add(id, std::vector<int32_t>(4, 3), true, 2));
  const auto decode_step = [&](RequestId finishing) {
    StepPlan p = s.schedule();
    StepOutput out;
    uint32_t room = 0;
    for (const ScheduledSequence& q : p.sequences) {
      room += q.draft_room;
      if (q.samples) out.sampled.push_back({q.id, 7, q.id == finishing});
    }
    s.update(p, out);
    return room;
  };
  EXPECT_EQ(decode_step(0), 0u);     // the prompts' chunks (prefill never drafts)
  EXPECT_EQ(decode_step(0), 0u);     // three decoding requests: above the limit
  EXPECT_EQ(decode_step(3), 0u);     // still three at the step's start; one finishes
  EXPECT_EQ(decode_step(0), 4u);     // two left: each gets its two drafts
  config.speculative_max_batch = 0;  // no limit
  Scheduler unlimited(config);
  for (RequestId id = 1; id <= 3; ++id)
    ASSERT_TRUE(unlimited.add(id, std::vector<int32_t>(4, 3), true, 2));
  StepPlan p = unlimited.schedule();
  StepOutput out;
  for (const ScheduledSequence& q : p.sequences) out.sampled.push_back({q.id, 7, false});
  unlimited.update(p, out);
  p = unlimited.schedule();
  uint32_t room = 0;
  for (const ScheduledSequence& q : p.sequences) room += q.draft_room;
  EXPECT_EQ(room, 6u);
}

}  // namespace
}  // namespace v4
