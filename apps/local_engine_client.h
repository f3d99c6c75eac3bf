// The router's EngineClient over an in-process Engine (docs/design.md, single node default):
// converts requests, events and stats between router/ and worker/ types. apps/ is the one place
// that sees both.
#pragma once

#include "router/openai/engine_client.h"
#include "worker/engine.h"

namespace v4::apps {

SamplingParams to_sampling_params(const router::EngineSampling& s);
router::EngineEvent to_engine_event(const GenerationEvent& e);
router::EngineHistogram to_engine_histogram(const Histogram& h);
// Prefix-cache counters in tokens: the scheduler counts whole pages of `page_tokens`.
router::EngineSnapshot to_engine_snapshot(const EngineStats& stats, bool healthy,
                                          uint32_t page_tokens);

class LocalEngineClient final : public router::EngineClient {
 public:
  // `engine` must outlive the client.
  explicit LocalEngineClient(Engine& engine) : engine_(engine) {}

  Result<router::EngineRequestId> submit(router::EngineRequest request,
                                         EventCallback on_event) override;
  void cancel(router::EngineRequestId id) override { engine_.cancel(id); }
  router::EngineSnapshot snapshot() const override;
  uint32_t max_context() const override { return engine_.max_context(); }

 private:
  Engine& engine_;
};

}  // namespace v4::apps
