#include "router/http/http_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/error.hpp>
#include <mutex>
#include <optional>
#include <thread>

#include "router/http/http_connection.h"
#include "router/http/http_server_state.h"
#include "router/http/http_wire.h"

namespace v4::router {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

// A full accept queue or fd exhaustion would otherwise make the accept loop spin.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(50);

void run_io(ServerState& state) {
  for (;;) {
    try {
      state.io.run();
      return;
    } catch (const std::exception& e) {
      spdlog::error("http: io thread: {}", e.what());
    }
  }
}

// The host as an endpoint: a literal address as is, otherwise its first resolved address.
std::optional<tcp::endpoint> resolve(net::io_context& io, const std::string& host, uint16_t port,
                                     beast::error_code& ec) {
  auto address = net::ip::make_address(host, ec);
  if (!ec) return tcp::endpoint(address, port);
  tcp::resolver resolver(io);
  auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::numeric_service, ec);
  if (ec) return std::nullopt;
  if (results.empty()) {
    ec = net::error::host_not_found;
    return std::nullopt;
  }
  return results.begin()->endpoint();
}

}  // namespace

std::string HttpRequest::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

struct HttpServer::Impl {
  Impl(HttpServerOptions options, HttpHandler handler)
      : state(std::make_shared<ServerState>(std::move(options), std::move(handler))),
        acceptor(net::make_strand(state->io)),
        retry_timer(acceptor.get_executor()),
        busy_response(wire::format_error(503, "the server has too many open connections", false,
                                         state->options.extra_headers)) {}

  Status start();
  Status listen();
  void accept();
  void on_accept(beast::error_code ec, tcp::socket socket);
  void reject(tcp::socket socket);
  void close_acceptor();
  bool drain(std::chrono::milliseconds deadline, const std::function<void()>& at_deadline,
             std::chrono::milliseconds grace);
  bool wait_for_exchanges(std::chrono::milliseconds timeout);
  void stop();

  std::shared_ptr<ServerState> state;
  tcp::acceptor acceptor;         // acceptor strand only, once started
  net::steady_timer retry_timer;  // acceptor strand only
  const std::string busy_response;
  uint64_t next_id = 0;  // acceptor strand only
  std::atomic<uint16_t> port{0};

  std::mutex lifecycle;  // start and stop
  bool started = false;
  bool stopped = false;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::vector<std::thread> threads;
};

Status HttpServer::Impl::start() {
  std::lock_guard lock(lifecycle);
  if (started || stopped) return Status::error("the HTTP server was already started");
  if (Status status = listen(); !status) return status;
  started = true;
  work.emplace(state->io.get_executor());
  accept();
  const unsigned count = state->options.threads == 0 ? 1 : state->options.threads;
  try {
    for (unsigned i = 0; i < count; ++i) threads.emplace_back([s = state] { run_io(*s); });
  } catch (const std::system_error& e) {
    spdlog::error("http: started {} of {} threads: {}", threads.size(), count, e.what());
    if (threads.empty()) {
      stopped = true;
      beast::error_code ignored;
      acceptor.close(ignored);
      return Status::error("cannot start the HTTP server's threads: " + std::string(e.what()));
    }
  }
  spdlog::debug("http: listening on {}:{}", state->options.host, port.load());
  return Status::ok();
}

Status HttpServer::Impl::listen() {
  const auto& options = state->options;
  auto fail = [&](const beast::error_code& ec) {
    beast::error_code ignored;
    acceptor.close(ignored);
    return Status::error("cannot listen on " + options.host + ":" + std::to_string(options.port) +
                         ": " + ec.message());
  };
  beast::error_code ec;
  auto endpoint = resolve(state->io, options.host, options.port, ec);
  if (!endpoint) return fail(ec);
  acceptor.open(endpoint->protocol(), ec);
  if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(*endpoint, ec);
  if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
  tcp::endpoint local;
  if (!ec) local = acceptor.local_endpoint(ec);
  if (ec) return fail(ec);
  port = local.port();
  return Status::ok();
}

void HttpServer::Impl::accept() {
  acceptor.async_accept(
      net::make_strand(state->io),
      [this](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket)); });
}

void HttpServer::Impl::on_accept(beast::error_code ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
  if (ec) {
    spdlog::debug("http: accept failed: {}", ec.message());
    retry_timer.expires_after(kAcceptRetryDelay);
    retry_timer.async_wait([this](beast::error_code wait_ec) {
      if (!wait_ec && acceptor.is_open()) accept();
    });
    return;
  }
  if (state->draining) {
    beast::error_code ignored;
    socket.close(ignored);
  } else if (state->connections_open >= state->options.max_connections) {
    reject(std::move(socket));
  } else {
    const uint64_t id = ++next_id;
    auto connection = std::make_shared<Connection>(state, std::move(socket), id);
    if (!state->add_connection(id, connection)) return;
    connection->post([](Connection& c) { c.start(); });
  }
  accept();
}

// Over max_connections: a best-effort 503 on the fresh socket, whose send buffer is empty, then
// close, all without blocking the accept loop.
void HttpServer::Impl::reject(tcp::socket socket) {
  beast::error_code ignored;
  socket.non_blocking(true, ignored);
  socket.send(net::buffer(busy_response), 0, ignored);
  socket.shutdown(tcp::socket::shutdown_send, ignored);
  socket.close(ignored);
}

void HttpServer::Impl::close_acceptor() {
  net::post(acceptor.get_executor(), [this] {
    beast::error_code ignored;
    acceptor.close(ignored);
    retry_timer.cancel();
  });
}

bool HttpServer::Impl::wait_for_exchanges(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state->mutex);
  return state->changed.wait_for(lock, timeout, [&] { return state->exchanges_open == 0; });
}

bool HttpServer::Impl::drain(std::chrono::milliseconds deadline,
                             const std::function<void()>& at_deadline,
                             std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(lifecycle);
    state->draining = true;
    if (started && !stopped) close_acceptor();
  }
  for (auto& connection : state->live_connections(false)) {
    connection->post([](Connection& c) { c.drain(); });
  }
  const bool ended = wait_for_exchanges(deadline);
  // The connections stay open here so that what at_deadline ends still reaches its client.
  if (!ended && at_deadline) {
    at_deadline();
    wait_for_exchanges(grace);
  }
  stop();
  return ended;
}

// Closing every socket and the acceptor leaves the io_context without work, so the threads
// return once the resulting completions (and the disconnect callbacks) have run.
void HttpServer::Impl::stop() {
  std::lock_guard lock(lifecycle);
  if (stopped) return;
  stopped = true;
  auto live = state->live_connections(true);
  if (!started) return;
  close_acceptor();
  for (auto& connection : live) {
    net::post(connection->executor(), [connection] { connection->close(); });
  }
  live.clear();
  work.reset();
  for (auto& thread : threads) {
    if (thread.get_id() == std::this_thread::get_id()) {
      spdlog::error("http: stop() called from a server thread; not joining it");
      thread.detach();
    } else {
      thread.join();
    }
  }
  threads.clear();
}

HttpServer::HttpServer(HttpServerOptions options, HttpHandler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start() { return impl_->start(); }

uint16_t HttpServer::port() const { return impl_->port; }

bool HttpServer::drain(std::chrono::milliseconds deadline, std::function<void()> at_deadline,
                       std::chrono::milliseconds grace) {
  return impl_->drain(deadline, at_deadline, grace);
}

void HttpServer::stop() { impl_->stop(); }

HttpServerStats HttpServer::stats() const {
  const ServerState& state = *impl_->state;
  return {state.connections_open, state.connections_total, state.exchanges_open};
}

}  // namespace v4::router
