// The router's EngineClient over an in-process Engine (docs/design.md, single node default):
// converts requests, events and stats between router/ and worker/ types. apps/ is the one place
// that sees both.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "router/openai/engine_client.h"
#include "worker/engine.h"

namespace v4::apps {

SamplingParams to_sampling_params(const router::EngineSampling& s);
router::EngineEvent to_engine_event(const GenerationEvent& e);
router::EngineHistogram to_engine_histogram(const Histogram& h);
// Prefix-cache counters in tokens from the scheduler's page counts (whole pages of
// `page_tokens`); LocalEngineClient::snapshot() replaces them with per-token counts.
router::EngineSnapshot to_engine_snapshot(const EngineStats& stats, bool healthy,
                                          uint32_t page_tokens);

class LocalEngineClient final : public router::EngineClient {
 public:
  // `engine` must outlive the client.
  explicit LocalEngineClient(Engine& engine)
      : engine_(engine), prefix_(std::make_shared<PrefixCounts>()) {}

  Result<router::EngineRequestId> submit(router::EngineRequest request,
                                         EventCallback on_event) override;
  void cancel(router::EngineRequestId id) override { engine_.cancel(id); }
  router::EngineSnapshot snapshot() const override;
  bool ready() const override { return engine_.alive(); }
  uint32_t max_context() const override { return engine_.max_context(); }

 private:
  // vLLM's prefix_cache_queries / hits: every prompt token of a request that looks the cache
  // up, and the tokens it found there (the scheduler's page counts leave out the prompt's last,
  // partial page, which made the hit ratio read high). Shared with the event callbacks, which
  // the engine may still run after the client is gone.
  struct PrefixCounts {
    std::atomic<uint64_t> queries{0}, hits{0};
  };
  Engine& engine_;
  std::shared_ptr<PrefixCounts> prefix_;
};

}  // namespace v4::apps
