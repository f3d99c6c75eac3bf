#include "worker/grpc/worker_service.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "worker/grpc/bearer_token.h"
#include "worker/grpc/worker_proto.h"

namespace v4::worker_grpc {

// One router's Generate stream: events wait here until its writer thread sends them, all that
// accumulated in one message (a step's events of many requests travel together).
struct WorkerService::Stream {
  std::mutex mutex;
  std::condition_variable ready;
  std::vector<pb::Event> events;
  bool closed = false;
  std::unordered_map<uint64_t, RequestId> open;  // router id -> engine id

  void push(pb::Event e) {
    std::lock_guard<std::mutex> lock(mutex);
    if (closed) return;
    if (e.finish() != pb::FINISH_NONE) open.erase(e.id());
    events.push_back(std::move(e));
    ready.notify_one();
  }
};

WorkerService::WorkerService(Engine& engine, WorkerServiceOptions options)
    : engine_(engine), options_(std::move(options)) {}

grpc::Status WorkerService::check_version(uint32_t peer) const {
  if (peer == options_.protocol_version) return grpc::Status::OK;
  return {grpc::StatusCode::FAILED_PRECONDITION,
          "protocol version mismatch: the router speaks v4serve.worker protocol " +
              std::to_string(peer) + ", this worker (" + options_.worker_id + ") speaks " +
              std::to_string(options_.protocol_version) +
              "; run a router and workers of the same release"};
}

grpc::Status WorkerService::authorize(const grpc::ServerContext& context) {
  grpc::Status s = check_bearer_token(context, options_.auth_token);
  if (s.ok()) return s;
  const uint64_t n = ++refused_calls_;
  // A router with a wrong token asks every health interval: log the first and then fewer.
  if ((n & (n - 1)) == 0)
    spdlog::warn("refused a call from {} ({} so far): {}", context.peer(), n, s.error_message());
  return s;
}

void WorkerService::submit(const std::shared_ptr<Stream>& stream, const pb::SubmitRequest& r) {
  auto refuse = [&](const std::string& error, bool retry) {
    pb::Event e;
    e.set_id(r.id());
    e.set_token(-1);
    e.set_finish(pb::FINISH_ERROR);
    e.set_error(error);
    e.set_retry_elsewhere(retry);
    stream->push(std::move(e));
  };
  if (draining_) return refuse("worker " + options_.worker_id + " is draining", true);
  Result<GenerationRequest> request = from_proto(r);
  if (!request) return refuse(request.message(), false);
  const bool looks_up = engine_.options().prefix_caching && !request->sampling.prompt_logprobs;
  const uint32_t prompt_tokens =
      static_cast<uint32_t>(request->prompt.size()) - request->resumed_tokens;
  // Per request, in the engine thread's order: the next output position and the cache hit.
  struct Progress {
    uint32_t index = 0;
    uint32_t cached = 0;
    bool first = true;
  };
  auto progress = std::make_shared<Progress>();
  progress->index = request->resumed_tokens;
  const uint64_t router_id = r.id();
  // The id enters `open` before any of its events can erase it. (The engine runs callbacks
  // without its own lock, so holding ours across submit() cannot deadlock.)
  std::unique_lock<std::mutex> lock(stream->mutex);
  Result<RequestId> id =
      engine_.submit(*request, [stream, router_id, progress, prompt_tokens, looks_up, open = open_,
                                prefix = prefix_](const GenerationEvent& g) {
        if (progress->first) {
          progress->first = false;
          progress->cached = g.cached_tokens;
          if (looks_up && g.token >= 0) {
            prefix->queries += prompt_tokens;
            prefix->hits += g.cached_tokens;
          }
        }
        pb::Event e;
        to_proto(g, router_id, progress->index, e);
        if (g.token >= 0) ++progress->index;
        if (g.finish != FinishReason::kNone) {
          pb::Usage* u = e.mutable_usage();
          u->set_prompt_tokens(prompt_tokens);
          u->set_completion_tokens(progress->index);
          u->set_cached_tokens(progress->cached);
          --*open;
        }
        stream->push(std::move(e));
      });
  if (!id) {
    lock.unlock();
    return refuse(id.message(), false);
  }
  ++*open_;
  stream->open[router_id] = *id;
}

grpc::Status WorkerService::Generate(
    grpc::ServerContext* context, grpc::ServerReaderWriter<pb::GenerateOut, pb::GenerateIn>* rw) {
  if (grpc::Status s = authorize(*context); !s.ok()) return s;
  pb::GenerateIn in;
  if (!rw->Read(&in)) return grpc::Status::OK;
  if (!in.has_hello())
    return {grpc::StatusCode::INVALID_ARGUMENT, "the Generate stream starts with Hello"};
  if (grpc::Status s = check_version(in.hello().protocol_version()); !s.ok()) {
    spdlog::error("{}", s.error_message());
    return s;
  }
  const std::string router =
      in.hello().router_id().empty() ? context->peer() : in.hello().router_id();
  spdlog::info("router {} connected", router);
  pb::GenerateOut welcome;
  pb::Welcome* w = welcome.mutable_welcome();
  w->set_protocol_version(options_.protocol_version);
  w->set_worker_id(options_.worker_id);
  w->set_max_context(engine_.max_context());
  w->set_page_tokens(engine_.options().page_tokens);
  w->set_model(options_.model);
  if (!rw->Write(welcome)) return grpc::Status::OK;

  auto stream = std::make_shared<Stream>();
  std::thread writer([stream, rw] {
    std::unique_lock<std::mutex> lock(stream->mutex);
    while (true) {
      stream->ready.wait(lock, [&] { return stream->closed || !stream->events.empty(); });
      if (stream->closed) return;
      pb::GenerateOut out;
      for (pb::Event& e : stream->events) *out.mutable_events()->add_events() = std::move(e);
      stream->events.clear();
      lock.unlock();
      const bool written = rw->Write(out);
      lock.lock();
      if (!written) return;
    }
  });
  while (rw->Read(&in)) {
    if (in.has_submit()) {
      for (const pb::SubmitRequest& r : in.submit().requests()) submit(stream, r);
    } else if (in.has_cancel()) {
      for (uint64_t id : in.cancel().ids()) {
        std::lock_guard<std::mutex> lock(stream->mutex);
        if (auto it = stream->open.find(id); it != stream->open.end()) engine_.cancel(it->second);
      }
    }
  }
  // The router closed the stream or the connection broke: nobody will read these requests'
  // events any more, so they end now.
  std::vector<RequestId> orphans;
  {
    std::lock_guard<std::mutex> lock(stream->mutex);
    stream->closed = true;
    for (const auto& [router_id, id] : stream->open) orphans.push_back(id);
    stream->open.clear();
    stream->ready.notify_all();
  }
  for (RequestId id : orphans) engine_.cancel(id);
  writer.join();
  spdlog::info("router {} disconnected; {} requests cancelled", router, orphans.size());
  return grpc::Status::OK;
}

grpc::Status WorkerService::Health(grpc::ServerContext* context, const pb::HealthRequest* request,
                                   pb::HealthResponse* response) {
  if (grpc::Status s = authorize(*context); !s.ok()) return s;
  if (grpc::Status s = check_version(request->protocol_version()); !s.ok()) return s;
  response->set_protocol_version(options_.protocol_version);
  response->set_status(!engine_.alive() ? pb::HealthResponse::NOT_SERVING
                       : draining_      ? pb::HealthResponse::DRAINING
                                        : pb::HealthResponse::SERVING);
  response->set_worker_id(options_.worker_id);
  response->set_max_context(engine_.max_context());
  response->set_page_tokens(engine_.options().page_tokens);
  response->set_model(options_.model);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Stats(grpc::ServerContext* context, const pb::StatsRequest*,
                                  pb::StatsResponse* response) {
  if (grpc::Status s = authorize(*context); !s.ok()) return s;
  to_proto(engine_.stats(), engine_.options().page_tokens, *response);
  response->set_prefix_queries(prefix_->queries.load());
  response->set_prefix_hits(prefix_->hits.load());
  response->set_draining(draining_);
  return grpc::Status::OK;
}

grpc::Status WorkerService::Drain(grpc::ServerContext* context, const pb::DrainRequest*,
                                  pb::DrainResponse* response) {
  if (grpc::Status s = authorize(*context); !s.ok()) return s;
  drain();
  response->set_running(static_cast<uint32_t>(open_->load()));
  return grpc::Status::OK;
}

}  // namespace v4::worker_grpc
