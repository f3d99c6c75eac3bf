#include "router/grpc/worker_link.h"

#include <future>
#include <utility>

#include "router/grpc/status_code_name.h"

namespace v4::router_grpc {

struct WorkerLink::Session {
  uint64_t id = 0;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<pb::GenerateIn, pb::GenerateOut>> stream;
  std::promise<Result<pb::Welcome>> welcome;
  std::thread reader, writer;
  std::mutex mutex;
  std::condition_variable ready;
  std::vector<pb::SubmitRequest> submits;
  std::vector<uint64_t> cancels;
  bool closed = false;
};

WorkerLink::WorkerLink(std::string address, LinkOptions options, EventsHandler on_events,
                       BrokenHandler on_broken)
    : address_(std::move(address)),
      options_(std::move(options)),
      on_events_(std::move(on_events)),
      on_broken_(std::move(on_broken)) {
  grpc::ChannelArguments args;
  // Find a dead peer on an idle connection too, and reconnect quickly once it is back.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
  // Workers found by DNS are dialled by address; their certificates name the service instead.
  const LinkSecurity& security = options_.security;
  if (!security.server_name.empty()) args.SetSslTargetNameOverride(security.server_name);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      security.credentials ? security.credentials : grpc::InsecureChannelCredentials();
  channel_ = grpc::CreateCustomChannel(address_, credentials, args);
  stub_ = pb::Worker::NewStub(channel_);
}

WorkerLink::~WorkerLink() {
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    s = std::move(session_);
  }
  if (!s) return;
  s->context.TryCancel();
  if (s->reader.joinable()) s->reader.join();
}

grpc::Status WorkerLink::version_error(uint32_t worker_version) const {
  return {grpc::StatusCode::FAILED_PRECONDITION,
          "protocol version mismatch: worker " + address_ + " speaks v4serve.worker protocol " +
              std::to_string(worker_version) + ", this router speaks " +
              std::to_string(options_.protocol_version) +
              "; run a router and workers of the same release"};
}

void WorkerLink::prepare(grpc::ClientContext& context, bool deadline) const {
  if (deadline) context.set_deadline(std::chrono::system_clock::now() + options_.rpc_timeout);
  // The worker's check is worker/grpc/bearer_token.h.
  if (!options_.security.auth_token.empty())
    context.AddMetadata("authorization", "Bearer " + options_.security.auth_token);
}

std::string WorkerLink::describe(const grpc::Status& status) const {
  std::string out = address_ + ": " + std::string(status_code_name(status.error_code())) + ": " +
                    status.error_message();
  // A TLS handshake that fails shows as UNAVAILABLE with a message about connecting only.
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE)
    out += options_.security.tls
               ? " (if the worker is up: does it serve TLS with a certificate the "
                 "--workers-tls-ca trusts for this name, and does it require a client "
                 "certificate?)"
               : " (if the worker is up: does it serve TLS? then give the router "
                 "--workers-tls-ca)";
  return out;
}

Result<pb::HealthResponse> WorkerLink::health() {
  grpc::ClientContext context;
  prepare(context, true);
  pb::HealthRequest request;
  request.set_protocol_version(options_.protocol_version);
  pb::HealthResponse response;
  grpc::Status s = stub_->Health(&context, request, &response);
  if (s.ok() && response.protocol_version() != options_.protocol_version)
    s = version_error(response.protocol_version());
  if (!s.ok()) return Status::error(describe(s));
  return response;
}

Result<pb::StatsResponse> WorkerLink::stats() {
  grpc::ClientContext context;
  prepare(context, true);
  pb::StatsResponse response;
  grpc::Status s = stub_->Stats(&context, pb::StatsRequest{}, &response);
  if (!s.ok()) return Status::error(describe(s));
  return response;
}

Result<uint32_t> WorkerLink::drain() {
  grpc::ClientContext context;
  prepare(context, true);
  pb::DrainResponse response;
  grpc::Status s = stub_->Drain(&context, pb::DrainRequest{}, &response);
  if (!s.ok()) return Status::error(describe(s));
  return response.running();
}

Result<uint64_t> WorkerLink::open(pb::Welcome& welcome) {
  std::shared_ptr<Session> old;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    old = std::move(session_);
  }
  if (old) {
    old->context.TryCancel();
    if (old->reader.joinable()) old->reader.join();
  }
  auto s = std::make_shared<Session>();
  std::future<Result<pb::Welcome>> answer = s->welcome.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    s->id = next_session_++;
  }
  prepare(s->context, false);  // the stream lives as long as the worker serves it
  s->stream = stub_->Generate(&s->context);
  pb::GenerateIn hello;
  hello.mutable_hello()->set_protocol_version(options_.protocol_version);
  hello.mutable_hello()->set_router_id(options_.router_id);
  s->stream->Write(hello);  // a failure shows as the Read below failing
  s->reader = std::thread([this, s] { read_loop(s); });
  if (answer.wait_for(options_.rpc_timeout) != std::future_status::ready) {
    s->context.TryCancel();
    s->reader.join();
    return Status::error(address_ + ": no Welcome within the timeout");
  }
  Result<pb::Welcome> w = answer.get();
  if (!w) {
    s->reader.join();
    return w.status();
  }
  welcome = *w;
  std::lock_guard<std::mutex> lock(mutex_);
  session_ = s;
  return s->id;
}

void WorkerLink::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (session_) session_->context.TryCancel();
}

bool WorkerLink::submit(uint64_t session, pb::SubmitRequest request) {
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    s = session_;
  }
  if (!s || s->id != session) return false;
  std::lock_guard<std::mutex> lock(s->mutex);
  if (s->closed) return false;
  s->submits.push_back(std::move(request));
  s->ready.notify_one();
  return true;
}

bool WorkerLink::cancel(uint64_t session, uint64_t id) {
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    s = session_;
  }
  if (!s || s->id != session) return false;
  std::lock_guard<std::mutex> lock(s->mutex);
  if (s->closed) return false;
  s->cancels.push_back(id);
  s->ready.notify_one();
  return true;
}

void WorkerLink::write_loop(std::shared_ptr<Session> s) {
  std::unique_lock<std::mutex> lock(s->mutex);
  while (true) {
    s->ready.wait(lock, [&] { return s->closed || !s->submits.empty() || !s->cancels.empty(); });
    if (s->closed) return;
    if (!s->submits.empty() && options_.batch_window.count() > 0) {
      // Router-side batching: gather what else arrives for this worker within the window.
      const auto until = std::chrono::steady_clock::now() + options_.batch_window;
      s->ready.wait_until(lock, until,
                          [&] { return s->closed || s->submits.size() >= options_.batch_max; });
      if (s->closed) return;
    }
    pb::GenerateIn submit, cancel;
    const size_t n = std::min(s->submits.size(), options_.batch_max);
    for (size_t i = 0; i < n; ++i)
      *submit.mutable_submit()->add_requests() = std::move(s->submits[i]);
    s->submits.erase(s->submits.begin(), s->submits.begin() + static_cast<ptrdiff_t>(n));
    for (uint64_t id : s->cancels) cancel.mutable_cancel()->add_ids(id);
    s->cancels.clear();
    lock.unlock();
    bool ok = true;
    if (n > 0) {
      ok = s->stream->Write(submit);
      submit_messages_ += 1;
      submitted_ += n;
      if (options_.on_submit_message) options_.on_submit_message(n);
    }
    // After the submissions, so a request submitted and cancelled in one window is known.
    if (ok && cancel.has_cancel()) ok = s->stream->Write(cancel);
    lock.lock();
    if (!ok) return;  // the reader sees the break and reports it
  }
}

void WorkerLink::read_loop(std::shared_ptr<Session> s) {
  pb::GenerateOut out;
  bool welcomed = false;
  if (s->stream->Read(&out) && out.has_welcome()) {
    if (out.welcome().protocol_version() != options_.protocol_version) {
      s->welcome.set_value(
          Status::error(version_error(out.welcome().protocol_version()).error_message()));
      s->context.TryCancel();
      s->stream->Finish();
      return;
    }
    welcomed = true;
    s->welcome.set_value(out.welcome());
    s->writer = std::thread([this, s] { write_loop(s); });
    while (s->stream->Read(&out)) {
      if (out.has_events()) on_events_(s->id, *out.mutable_events());
    }
  }
  {
    std::lock_guard<std::mutex> lock(s->mutex);
    s->closed = true;
    s->ready.notify_all();
  }
  // The call is over once Read fails, so a Write in progress fails too and the writer ends.
  if (s->writer.joinable()) s->writer.join();
  const grpc::Status status = s->stream->Finish();
  std::string why = status.ok() ? address_ + ": the worker closed the stream" : describe(status);
  if (!welcomed) {
    s->welcome.set_value(Status::error(why));
    return;
  }
  on_broken_(s->id, why);
}

}  // namespace v4::router_grpc
