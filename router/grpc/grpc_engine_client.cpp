#include "router/grpc/grpc_engine_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <utility>

#include "router/grpc/router_proto.h"

namespace v4::router_grpc {

using router::EngineEvent;
using router::EngineFinish;
using router::EngineRequest;
using router::EngineRequestId;

// One request as the router follows it. All but `delivery` and `callback` are guarded by the
// client's mutex_; `delivery` orders the callback calls (one thread at a time, in event order).
struct GrpcEngineClient::Tracked {
  EngineRequest request;
  EventCallback callback;
  std::vector<int32_t> sent;  // output tokens accepted so far, in order
  size_t worker = 0;
  uint64_t session = 0;
  bool cancelled = false;
  bool first_accepted = false;
  bool ended = false;
  std::deque<EngineEvent> pending;  // accepted, not yet delivered
  std::mutex delivery;
};

namespace {

// The reason label of an ejection, from the error of the Health call that failed.
std::string_view ejection_reason(const std::string& error) {
  if (error.find("UNAUTHENTICATED") != std::string::npos) return "unauthenticated";
  if (error.find("protocol version mismatch") != std::string::npos) return "version_mismatch";
  if (error.find("DEADLINE_EXCEEDED") != std::string::npos) return "timeout";
  return "unreachable";
}

}  // namespace

GrpcEngineClient::GrpcEngineClient(GrpcClientOptions options)
    : options_(std::move(options)), policy_(options_.routing) {
  if (options_.metrics && !options_.link.on_submit_message)
    options_.link.on_submit_message = [metrics = options_.metrics](size_t requests) {
      metrics->submit_message(requests);
    };
  std::lock_guard<std::mutex> lock(mutex_);
  for (const std::string& address : options_.workers)
    workers_[add_worker_locked(address)].configured = true;
}

size_t GrpcEngineClient::add_worker_locked(const std::string& address) {
  // Workers are never erased, so an index names one worker for the client's lifetime.
  const size_t i = workers_.size();
  workers_.emplace_back();
  workers_[i].link = std::make_unique<WorkerLink>(
      address, options_.link,
      [this, i](uint64_t session, pb::Events& events) { on_events(i, session, events); },
      [this, i](uint64_t session, const std::string& why) { on_broken(i, session, why); });
  return i;
}

void GrpcEngineClient::publish_state_locked(size_t i) {
  if (!options_.metrics) return;
  const Worker& w = workers_[i];
  if (w.removed()) return options_.metrics->remove_worker(w.link->address());
  options_.metrics->set_state(w.link->address(), !w.up        ? WorkerState::kEjected
                                                 : w.draining ? WorkerState::kDraining
                                                              : WorkerState::kUsable);
}

GrpcEngineClient::~GrpcEngineClient() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    stop_.notify_all();
  }
  if (health_.joinable()) health_.join();
  if (dns_.joinable()) dns_.join();
  // Streams close first, so no reader thread runs while the requests end.
  for (Worker& w : workers_) w.link.reset();
  Flush flush;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!requests_.empty()) {
      auto [id, t] = *requests_.begin();
      EngineEvent e;
      e.finish = EngineFinish::kCancelled;
      end_locked(id, t, std::move(e), flush);
    }
  }
  deliver(flush);
}

void GrpcEngineClient::start() {
  if (options_.dns) resolve_once();
  size_t n = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    n = workers_.size();
  }
  for (size_t i = 0; i < n; ++i) check(i);
  health_ = std::thread([this] { health_loop(); });
  if (options_.dns) dns_ = std::thread([this] { dns_loop(); });
}

void GrpcEngineClient::resolve_once() {
  const DnsDiscoveryOptions& dns = *options_.dns;
  Result<std::vector<std::string>> found =
      dns.resolve ? dns.resolve(dns.host, dns.port) : resolve_with_getaddrinfo(dns.host, dns.port);
  if (!found) {
    // A resolver that cannot answer says nothing about the workers: keep them.
    spdlog::warn("--workers-dns {}:{}: {}; keeping the workers found before", dns.host, dns.port,
                 found.message());
    return;
  }
  set_discovered_workers(*found);
}

void GrpcEngineClient::set_discovered_workers(const std::vector<std::string>& addresses) {
  const std::set<std::string> listed(addresses.begin(), addresses.end());
  std::vector<WorkerLink*> to_close;
  std::vector<std::string> added, removed;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    std::set<std::string> known;
    for (size_t i = 0; i < workers_.size(); ++i) {
      Worker& w = workers_[i];
      const std::string& address = w.link->address();
      known.insert(address);
      const bool now = listed.count(address) > 0;
      if (now == w.discovered) continue;
      const bool was_removed = w.removed();
      w.discovered = now;
      if (was_removed && !w.removed()) {
        added.push_back(address);
        w.last_error.clear();
      } else if (!was_removed && w.removed()) {
        // As a lost worker: the reader's on_broken moves its requests elsewhere.
        removed.push_back(address);
        w.eject_reason = "removed";
        policy_.forget(i);
        to_close.push_back(w.link.get());
      }
      publish_state_locked(i);
    }
    for (const std::string& address : listed) {
      if (known.count(address)) continue;
      workers_[add_worker_locked(address)].discovered = true;
      added.push_back(address);
    }
  }
  // Links are never destroyed before the client, so these pointers stay valid.
  for (WorkerLink* link : to_close) link->close();
  for (const std::string& a : added) spdlog::info("worker {} added (DNS)", a);
  for (const std::string& a : removed) spdlog::info("worker {} removed (DNS)", a);
}

std::vector<WorkerLoad> GrpcEngineClient::loads() const {
  std::vector<WorkerLoad> out(workers_.size());
  for (size_t i = 0; i < workers_.size(); ++i) {
    out[i].usable = usable(workers_[i]);
    if (workers_[i].stats) {
      out[i].pages_known = true;
      out[i].pages_free = workers_[i].stats->pages_free();
    }
  }
  // Tokens still to compute: the prompt until the first token, then the rest of the output.
  for (const auto& [id, t] : requests_) {
    const uint64_t max_tokens = t->request.sampling.max_tokens;
    out[t->worker].outstanding += t->sent.empty()
                                      ? t->request.prompt.size() + max_tokens
                                      : max_tokens - std::min<uint64_t>(max_tokens, t->sent.size());
  }
  return out;
}

void GrpcEngineClient::end_locked(EngineRequestId id, const std::shared_ptr<Tracked>& t,
                                  EngineEvent event, Flush& flush) {
  t->ended = true;
  t->pending.push_back(std::move(event));
  requests_.erase(id);
  flush.push_back(t);
}

void GrpcEngineClient::place(EngineRequestId id, const std::shared_ptr<Tracked>& t,
                             std::optional<size_t> avoid, Flush& flush) {
  if (t->cancelled) {
    EngineEvent e;
    e.finish = EngineFinish::kCancelled;
    return end_locked(id, t, std::move(e), flush);
  }
  std::vector<int32_t> prompt = t->request.prompt;
  prompt.insert(prompt.end(), t->sent.begin(), t->sent.end());
  std::vector<WorkerLoad> load = loads();
  if (avoid) load[*avoid].usable = false;
  std::optional<RoutingPolicy::Choice> choice = policy_.pick(prompt, load);
  if (!choice) {
    EngineEvent e;
    e.finish = EngineFinish::kError;
    e.error = "no worker is available to continue this request (" +
              std::to_string(workers_.size()) + " configured, none healthy)";
    return end_locked(id, t, std::move(e), flush);
  }
  if (choice->affinity_pages > 0) ++counters_.affinity_hits;
  Worker& w = workers_[choice->worker];
  if (options_.metrics) {
    options_.metrics->routed(w.link->address());
    if (avoid) options_.metrics->failover();
  }
  t->worker = choice->worker;
  t->session = w.session;
  pb::SubmitRequest r;
  EngineRequest continuation = t->request;
  continuation.prompt = std::move(prompt);
  to_proto(continuation, id, static_cast<uint32_t>(t->sent.size()), r);
  if (!t->sent.empty()) ++counters_.resubmitted;
  // A stream that just broke refuses; its reader's on_broken (waiting for mutex_) moves the
  // request on, since it is now registered on that stream.
  w.link->submit(w.session, std::move(r));
}

Result<EngineRequestId> GrpcEngineClient::submit(EngineRequest request, EventCallback on_event) {
  if (request.prompt.empty()) return Status::error("empty prompt");
  const uint32_t limit = max_context();
  if (request.prompt.size() >= limit) {
    return Status::error("prompt of " + std::to_string(request.prompt.size()) +
                         " tokens does not fit the context limit of " + std::to_string(limit));
  }
  Flush flush;
  std::lock_guard<std::mutex> lock(mutex_);
  bool any = false;
  for (const Worker& w : workers_) any = any || usable(w);
  if (!any) return Status::error("no worker is available");
  const EngineRequestId id = next_id_++;
  auto t = std::make_shared<Tracked>();
  t->request = std::move(request);
  t->callback = std::move(on_event);
  requests_.emplace(id, t);
  place(id, t, std::nullopt, flush);
  return id;  // `flush` is empty: a usable worker exists, so place() ended nothing
}

void GrpcEngineClient::cancel(EngineRequestId id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  Tracked& t = *it->second;
  if (t.cancelled) return;
  t.cancelled = true;
  // The worker answers with the final kCancelled event; a worker lost before that makes
  // place() end the request instead of moving it.
  workers_[t.worker].link->cancel(t.session, id);
}

void GrpcEngineClient::on_events(size_t worker, uint64_t session, pb::Events& events) {
  Flush flush;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;  // the destructor ends what is open
    for (const pb::Event& e : events.events()) {
      auto it = requests_.find(e.id());
      if (it == requests_.end()) continue;
      std::shared_ptr<Tracked> t = it->second;
      // Events of a stream the request has left (it was moved) are stale.
      if (t->worker != worker || t->session != session) continue;
      if (e.finish() == pb::FINISH_ERROR && e.retry_elsewhere()) {
        spdlog::info("request {}: {}; moving it", e.id(), e.error());
        place(e.id(), t, worker, flush);
        continue;
      }
      if (e.token() >= 0) {
        // Each output position is delivered once, in order.
        if (e.token_index() != t->sent.size()) continue;
        t->sent.push_back(e.token());
      }
      EngineEvent event = from_proto(e);
      if (t->first_accepted) {
        event.cached_tokens = 0;
        event.queue_seconds = 0.0;
      }
      t->first_accepted = true;
      if (event.finish != EngineFinish::kNone) {
        end_locked(e.id(), t, std::move(event), flush);
      } else {
        t->pending.push_back(std::move(event));
        if (flush.empty() || flush.back() != t) flush.push_back(t);
      }
    }
  }
  deliver(flush);
}

void GrpcEngineClient::on_broken(size_t worker, uint64_t session, const std::string& why) {
  Flush flush;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    Worker& w = workers_[worker];
    if (w.session == session && w.up) {
      w.up = false;
      w.stats.reset();
      // Its prefix cache is gone with it (or will be stale by the time it is back).
      policy_.forget(worker);
      const std::string reason = !w.eject_reason.empty() ? w.eject_reason
                                 : w.draining            ? "drained"
                                                         : "stream_lost";
      if (options_.metrics) options_.metrics->ejected(w.link->address(), reason);
      publish_state_locked(worker);
    }
    w.eject_reason.clear();
    std::vector<std::pair<EngineRequestId, std::shared_ptr<Tracked>>> moved;
    for (const auto& [id, t] : requests_)
      if (t->worker == worker && t->session == session) moved.emplace_back(id, t);
    spdlog::warn("stream lost ({}); moving {} requests", why, moved.size());
    for (auto& [id, t] : moved) place(id, t, worker, flush);
  }
  deliver(flush);
}

void GrpcEngineClient::deliver(const Flush& flush) {
  for (const std::shared_ptr<Tracked>& t : flush) {
    std::lock_guard<std::mutex> order(t->delivery);
    while (true) {
      std::deque<EngineEvent> batch;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        batch.swap(t->pending);
      }
      if (batch.empty()) break;
      for (EngineEvent& e : batch) t->callback(std::move(e));
    }
  }
}

void GrpcEngineClient::note_error(size_t i, const std::string& message, bool refused) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (workers_[i].last_error == message) return;
  workers_[i].last_error = message;
  if (refused)
    spdlog::error("worker refused: {}", message);
  else
    spdlog::warn("worker unavailable: {}", message);
}

bool GrpcEngineClient::connect(size_t i, WorkerLink& link) {
  pb::Welcome welcome;
  Result<uint64_t> session = link.open(welcome);
  if (!session) {
    note_error(i, session.message(), session.message().find("mismatch") != std::string::npos);
    return false;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  Worker& w = workers_[i];
  if (w.removed()) {  // its record went away while the stream opened
    lock.unlock();
    link.close();
    return false;
  }
  w.up = true;
  w.session = *session;
  w.max_context = welcome.max_context();
  w.last_error.clear();
  if (welcome.page_tokens()) policy_.set_page_tokens(welcome.page_tokens());
  spdlog::info("worker {} ({}) connected: max context {}, pages of {} tokens", link.address(),
               welcome.model(), welcome.max_context(), welcome.page_tokens());
  return true;
}

void GrpcEngineClient::check(size_t i) {
  WorkerLink* link_pointer = nullptr;
  bool up = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (workers_[i].removed()) return;
    link_pointer = workers_[i].link.get();
    up = workers_[i].up;
  }
  WorkerLink& link = *link_pointer;
  const auto asked = std::chrono::steady_clock::now();
  Result<pb::HealthResponse> health = link.health();
  if (health && options_.metrics)
    options_.metrics->health_round_trip(
        link.address(),
        std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count());
  // A worker that stops answering is ejected: its stream is closed and the reader moves its
  // requests (a SIGSTOPped or wedged process keeps its connection open).
  auto eject = [&](std::string_view reason) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (up) workers_[i].eject_reason = std::string(reason);
      publish_state_locked(i);
    }
    if (up) link.close();
  };
  if (!health) {
    const bool refused = health.message().find("protocol version mismatch") != std::string::npos;
    note_error(i, health.message(), refused);
    eject(ejection_reason(health.message()));
    return;
  }
  const bool serving = health->status() == pb::HealthResponse::SERVING;
  const bool draining = health->status() == pb::HealthResponse::DRAINING;
  if (!serving && !draining) {
    note_error(i, link.address() + ": not serving", false);
    eject("not_serving");
    return;
  }
  if (!up && serving && !connect(i, link)) return;
  Result<pb::StatsResponse> stats = link.stats();
  std::lock_guard<std::mutex> lock(mutex_);
  Worker& w = workers_[i];
  if (w.draining != draining && w.up)
    spdlog::info("worker {} {}", link.address(), draining ? "is draining" : "serves again");
  w.draining = draining;
  if (stats && w.up) {
    if (options_.metrics) options_.metrics->worker_stats(link.address(), *stats);
    w.stats = std::move(*stats);
  }
  publish_state_locked(i);
}

void GrpcEngineClient::health_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    stop_.wait_for(lock, options_.health_interval);
    if (stopping_) return;
    const size_t n = workers_.size();
    lock.unlock();
    for (size_t i = 0; i < n; ++i) check(i);
    lock.lock();
  }
}

void GrpcEngineClient::dns_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    stop_.wait_for(lock, options_.dns->interval);
    if (stopping_) return;
    lock.unlock();
    resolve_once();
    lock.lock();
  }
}

router::EngineSnapshot GrpcEngineClient::snapshot() const {
  router::EngineSnapshot out;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const Worker& w : workers_) {
    out.healthy = out.healthy || usable(w);
    if (w.up && w.stats) add_stats(*w.stats, out);
  }
  return out;
}

bool GrpcEngineClient::ready() const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const Worker& w : workers_)
    if (usable(w)) return true;
  return false;
}

size_t GrpcEngineClient::usable_workers() const {
  std::lock_guard<std::mutex> lock(mutex_);
  size_t n = 0;
  for (const Worker& w : workers_) n += usable(w);
  return n;
}

std::vector<std::string> GrpcEngineClient::worker_addresses() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  for (const Worker& w : workers_)
    if (!w.removed()) out.push_back(w.link->address());
  return out;
}

uint32_t GrpcEngineClient::max_context() const {
  std::lock_guard<std::mutex> lock(mutex_);
  uint32_t limit = 0;
  for (const Worker& w : workers_)
    if (w.max_context && !w.removed())
      limit = limit ? std::min(limit, w.max_context) : w.max_context;
  return limit ? limit : options_.default_max_context;
}

GrpcClientCounters GrpcEngineClient::counters() const {
  std::lock_guard<std::mutex> lock(mutex_);
  GrpcClientCounters c = counters_;
  for (const Worker& w : workers_) {
    c.submit_messages += w.link->submit_messages();
    c.submitted += w.link->submitted();
  }
  return c;
}

}  // namespace v4::router_grpc
