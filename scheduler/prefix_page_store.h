// Cached prefix pages kept outside the page pool (docs/design.md, KvCache: save/restore of
// prefix pages): when a lookup's hash chain runs past the pages in memory, the scheduler asks the
// store whether it holds the next page; if so it gives that page a free page id and the plan
// tells the worker to load it there (StepPlan::loaded_pages). Pages evicted from the pool travel
// the other way (StepPlan::spilled_pages). Only the question lives here; the bytes belong to the
// worker's store.
#pragma once

#include <cstdint>
#include <span>

namespace v4 {

class PrefixPageStore {
 public:
  virtual ~PrefixPageStore() = default;
  // True when the store holds the page `hash` after `parent` with exactly `tokens`, ending at
  // stream position `end`, verified and ready for the worker to load before the next step runs.
  // A false answer is a plain miss.
  virtual bool find(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens,
                    uint64_t end) = 0;
};

}  // namespace v4
