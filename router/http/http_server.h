// HTTP/1.1 server on Boost.Beast/Asio (docs/design.md, router front): keep-alive, chunked
// server-sent events, a request body limit, header/idle/write timeouts, and graceful drain.
// A small thread pool runs every connection; each connection is serialised on its own strand.
//
// Handlers get an HttpExchange: a thread-safe handle through which exactly one response is
// sent, either whole (respond) or as an event stream (start_events / send_event / end_events).
// When the client goes away before the response ends, the exchange's disconnect callback runs
// once (the handler cancels its work there) and later writes are dropped.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace v4::router {

struct HttpRequest {
  std::string method;                          // "GET", "POST", ...
  std::string target;                          // path and query as sent
  std::string path;                            // target without the query
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string remote;  // peer address, for logs

  // The header's value, or "" when absent.
  std::string header(const std::string& lower_name) const;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

class HttpExchange {
 public:
  virtual ~HttpExchange() = default;

  // A complete response. Ignored after the first response or once the client is gone.
  virtual void respond(int status, std::string content_type, std::string body,
                       HttpHeaders headers = {}) = 0;
  // Starts a `text/event-stream` response with chunked transfer encoding.
  virtual void start_events(int status = 200, HttpHeaders headers = {}) = 0;
  // Sends one chunk (normally one "data: ...\n\n" event) as soon as the socket allows.
  virtual void send_event(std::string data) = 0;
  // Writes the last chunk; the connection then serves its next request (keep-alive).
  virtual void end_events() = 0;
  // Runs `callback` once if the client disconnects (or a write fails) before the response has
  // ended; at once if that already happened. Called on a server thread.
  virtual void on_disconnect(std::function<void()> callback) = 0;
  virtual bool disconnected() const = 0;
  // Runs `callback` once the response has ended (written, or the client gone; at once if that
  // already happened) with the seconds the server's threads spent on this exchange's HTTP
  // work: parsing the request, formatting the response and handing it to the socket. Time
  // waiting for the client's bytes or for the handler is not in it. Called on a server thread,
  // or on the caller's once the server has stopped.
  virtual void on_finished(std::function<void(double http_seconds)> callback) = 0;
};

using HttpHandler = std::function<void(HttpRequest request, std::shared_ptr<HttpExchange>)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;  // 0: any free port (see HttpServer::port())
  unsigned threads = 2;
  size_t body_limit = size_t{8} << 20;  // larger bodies get 413 and the connection closes
  size_t max_connections = 1024;        // further connections are closed at once
  std::chrono::milliseconds header_timeout{30'000};  // to receive a whole request
  std::chrono::milliseconds idle_timeout{60'000};    // keep-alive wait for the next request
  std::chrono::milliseconds write_timeout{30'000};   // a client that stops reading
  // Added to every response (e.g. CORS headers).
  HttpHeaders extra_headers;
};

struct HttpServerStats {
  uint64_t connections_open = 0;
  uint64_t connections_total = 0;
  uint64_t exchanges_open = 0;  // requests whose response has not ended
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, HttpHandler handler);
  ~HttpServer();  // stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens, then runs the thread pool. Fails with "cannot listen on HOST:PORT: why".
  Status start();
  uint16_t port() const;

  // Graceful drain: stops accepting, closes idle keep-alive connections, and waits until every
  // open exchange has ended or `deadline` passes. Exchanges still open then are given their
  // ends: `at_deadline` runs (it should end every response, e.g. cancel with a final event)
  // and the server waits up to `grace` for those responses to be written. Then it closes
  // everything. Returns true when all exchanges ended before the deadline. Responses may
  // still be written while draining.
  bool drain(std::chrono::milliseconds deadline, std::function<void()> at_deadline = {},
             std::chrono::milliseconds grace = std::chrono::seconds(5));
  // Closes everything now and joins the threads. Idempotent.
  void stop();
  HttpServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A whole HTTP/1.1 response on a fresh connection to 127.0.0.1 (tests and health checks).
struct HttpClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased
  std::string body;                            // de-chunked
};
Result<HttpClientResponse> http_fetch(uint16_t port, const std::string& method,
                                      const std::string& target, const std::string& body = "",
                                      const HttpHeaders& headers = {},
                                      std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace v4::router
