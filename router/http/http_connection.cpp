#include "router/http/http_connection.h"

#include <spdlog/spdlog.h>

#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <charconv>
#include <chrono>
#include <iterator>
#include <limits>

#include "router/http/http_wire.h"

namespace v4::router {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

constexpr size_t kReadChunk = 16 * 1024;
constexpr uint32_t kHeaderLimit = 16 * 1024;
// Bytes a client may pipeline while a response is pending. Past this the connection stops
// reading (and so stops noticing a disconnect) until the response ends.
constexpr size_t kPipelineLimit = 64 * 1024;
// After a final response: how long to drain what the client still sends, so closing with unread
// input does not reset the connection before the client has read the response.
constexpr auto kLingerTimeout = std::chrono::seconds(1);
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// End of input, timeouts and resets close quietly; anything else from the parser is a bad request.
bool is_malformed(beast::error_code ec) {
  if (ec.category() != http::make_error_code(http::error::bad_method).category()) return false;
  return ec != http::error::end_of_stream && ec != http::error::partial_message &&
         ec != http::error::short_read && ec != http::error::need_more &&
         ec != http::error::need_buffer && ec != http::error::stale_parser;
}

HttpRequest to_request(http::request<http::string_body> message, std::string remote) {
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  request.path = request.target.substr(0, request.target.find('?'));
  for (const auto& field : message) {
    std::string& value = request.headers[wire::to_lower(field.name_string())];
    if (!value.empty()) value.append(", ");
    value.append(field.value());
  }
  request.body = std::move(message.body());
  request.remote = std::move(remote);
  return request;
}

// Charges the CPU time from its construction to its destruction, one strand handler's HTTP
// work, to an exchange (none: nothing is charged).
class ChargedTime {
 public:
  explicit ChargedTime(std::shared_ptr<ExchangeState> exchange)
      : exchange_(std::move(exchange)), start_(ThreadCpuClock::now()) {}
  ~ChargedTime() {
    if (!exchange_) return;
    exchange_->http_nanoseconds +=
        std::chrono::duration_cast<std::chrono::nanoseconds>(ThreadCpuClock::now() - start_)
            .count();
  }
  ChargedTime(const ChargedTime&) = delete;
  ChargedTime& operator=(const ChargedTime&) = delete;

 private:
  std::shared_ptr<ExchangeState> exchange_;
  ThreadCpuClock::time_point start_;
};

void run_callback(const std::function<void()>& callback) {
  if (!callback) return;
  try {
    callback();
  } catch (const std::exception& e) {
    spdlog::debug("http: disconnect callback threw: {}", e.what());
  } catch (...) {
    spdlog::debug("http: disconnect callback threw");
  }
}

}  // namespace

Connection::Connection(std::shared_ptr<ServerState> server, tcp::socket socket, uint64_t id)
    : server_(std::move(server)),
      id_(id),
      stream_(std::move(socket)),
      executor_(stream_.get_executor()) {
  beast::error_code ec;
  auto peer = stream_.socket().remote_endpoint(ec);
  remote_ = ec ? "unknown" : peer.address().to_string() + ":" + std::to_string(peer.port());
  // Events are small and latency matters more than packet count.
  stream_.socket().set_option(tcp::no_delay(true), ec);
  count_chunk_ = [this](uint64_t size, beast::string_view, beast::error_code& ec) {
    const uint64_t limit = options().body_limit;
    if (size > limit - chunked_bytes_) {
      const uint64_t max = std::numeric_limits<uint64_t>::max();
      chunked_bytes_ = size > max - chunked_bytes_ ? max : chunked_bytes_ + size;
      ec = http::error::body_limit;
      return;
    }
    chunked_bytes_ += size;
  };
}

void Connection::start() {
  if (closed_) return;
  if (server_->draining) {
    close();
    return;
  }
  new_parser();
  phase_ = Phase::reading;
  stream_.expires_after(options().header_timeout);
  read_header();
}

void Connection::drain() {
  if (closed_) return;
  if (phase_ == Phase::idle || phase_ == Phase::reading) {
    close();
    return;
  }
  keep_alive_ = false;
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  phase_ = Phase::closing;
  std::function<void()> callback;
  if (exchange_) callback = end_exchange_disconnected();
  queue_.clear();
  stream_.close();
  server_->remove_connection(id_);
  run_callback(callback);
}

// ---- reading requests ----

void Connection::new_parser() {
  parser_.emplace();
  parser_->header_limit(kHeaderLimit);
  parser_->body_limit(options().body_limit);
  chunked_bytes_ = 0;
  parser_->on_chunk_header(count_chunk_);
  parse_time_ = {};
}

// Between keep-alive requests the idle timeout applies until the next request's first bytes.
void Connection::read_next() {
  new_parser();
  if (buffer_.size() > 0) {
    phase_ = Phase::reading;
    stream_.expires_after(options().header_timeout);
    read_header();
    return;
  }
  phase_ = Phase::idle;
  stream_.expires_after(options().idle_timeout);
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code ec, size_t bytes) {
                            self->buffer_.commit(bytes);
                            if (self->closed_) return;
                            if (ec) {
                              self->close();
                              return;
                            }
                            self->phase_ = Phase::reading;
                            self->stream_.expires_after(self->options().header_timeout);
                            self->read_header();
                          });
}

void Connection::read_header() { read_until(/*whole_message=*/false); }

bool Connection::parsed(bool whole_message) const {
  return whole_message ? parser_->is_done() : parser_->is_header_done();
}

// Feeds what is buffered to the parser until it has the header (or the whole message). The
// parsing runs here, not inside Beast's composed read, so that its time can be charged to the
// exchange apart from the time spent waiting for the client's bytes.
beast::error_code Connection::parse_buffered(bool whole_message) {
  const auto start = ThreadCpuClock::now();
  parser_->eager(whole_message);
  beast::error_code ec;
  while (buffer_.size() > 0 && !parsed(whole_message)) {
    const size_t used = parser_->put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec || used == 0) break;
  }
  parse_time_ += ThreadCpuClock::now() - start;
  return ec;
}

// Reads and parses until the header (whole_message: the body too) is complete, as Beast's
// async_read_header / async_read would: the end of input before any byte is end_of_stream.
void Connection::read_until(bool whole_message) {
  if (beast::error_code ec = parse_buffered(whole_message)) {
    fail_request(ec);
    return;
  }
  if (parsed(whole_message)) {
    if (whole_message)
      dispatch();
    else
      on_header({});
    return;
  }
  stream_.async_read_some(buffer_.prepare(kReadChunk), [self = shared_from_this(), whole_message](
                                                           beast::error_code ec, size_t bytes) {
    self->buffer_.commit(bytes);
    if (self->closed_) return;
    if (ec == net::error::eof) {
      if (self->parser_->got_some())
        self->parser_->put_eof(ec);
      else
        ec = http::error::end_of_stream;
    }
    if (ec) {
      self->fail_request(ec);
      return;
    }
    self->read_until(whole_message);
  });
}

void Connection::on_header(beast::error_code ec) {
  if (closed_) return;
  if (ec) {
    fail_request(ec);
    return;
  }
  // A chunked body's size is unknown up front; count_chunk_ enforces the limit and knows the
  // size to report, which Beast's own limit check would not tell.
  if (parser_->chunked()) parser_->body_limit(boost::none);
  const bool expects_continue = beast::iequals(parser_->get()[http::field::expect], "100-continue");
  if (expects_continue && !parser_->is_done()) {
    net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (self->closed_) return;
                       if (ec) {
                         self->close();
                         return;
                       }
                       self->read_body();
                     });
    return;
  }
  read_body();
}

void Connection::read_body() { read_until(/*whole_message=*/true); }

void Connection::fail_request(beast::error_code ec) {
  if (ec == http::error::body_limit) {
    uint64_t size = chunked_bytes_;
    // Beast has validated Content-Length by the time it reports the limit.
    const auto declared = parser_->get()[http::field::content_length];
    if (!declared.empty())
      std::from_chars(declared.data(), declared.data() + declared.size(), size);
    reply_error_and_close(413, "request body of " + std::to_string(size) +
                                   " bytes exceeds the limit of " +
                                   std::to_string(options().body_limit) + " bytes");
  } else if (ec == http::error::header_limit) {
    reply_error_and_close(
        431, "request header exceeds the limit of " + std::to_string(kHeaderLimit) + " bytes");
  } else if (is_malformed(ec)) {
    reply_error_and_close(400, "malformed HTTP request: " + ec.message());
  } else {
    close();
  }
}

void Connection::reply_error_and_close(int status, const std::string& message) {
  spdlog::debug("http: connection {} from {}: {} {}", id_, remote_, status, message);
  phase_ = Phase::closing;
  keep_alive_ = false;
  close_after_flush_ = true;
  enqueue(wire::format_error(status, message, false, options().extra_headers));
}

void Connection::dispatch() {
  const auto start = ThreadCpuClock::now();
  auto message = parser_->release();
  parser_.reset();
  keep_alive_ = message.keep_alive();
  http10_ = message.version() < 11;
  head_request_ = message.method() == http::verb::head;
  HttpRequest request = to_request(std::move(message), remote_);
  spdlog::debug("http: connection {}: {} {}", id_, request.method, request.path);

  exchange_ = std::make_shared<ExchangeState>();
  exchange_->http_nanoseconds = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    parse_time_ + (ThreadCpuClock::now() - start))
                                    .count();
  server_->exchange_started();
  phase_ = Phase::exchange;
  watch();
  auto handle = make_exchange(shared_from_this(), exchange_);
  try {
    server_->handler(std::move(request), std::move(handle));
  } catch (const std::exception& e) {
    spdlog::debug("http: handler threw: {}", e.what());
  } catch (...) {
    spdlog::debug("http: handler threw");
  }
}

// ---- the exchange ----

// A read kept open while a response is pending: it completes with an error when the client
// goes away. Bytes it gets are pipelined requests and stay in buffer_ for the next parse.
void Connection::watch() {
  if (watching_ || closed_ || buffer_.size() >= kPipelineLimit) return;
  watching_ = true;
  stream_.expires_never();
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code ec, size_t bytes) {
                            self->on_watch(ec, bytes);
                          });
}

void Connection::on_watch(beast::error_code ec, size_t bytes) {
  watching_ = false;
  buffer_.commit(bytes);
  if (closed_) return;
  if (exchange_) {
    if (ec) {
      close();
      return;
    }
    watch();
    return;
  }
  // The exchange ended while this read was pending; finish_exchange() cancelled it.
  if (ec && ec != net::error::operation_aborted) {
    close();
    return;
  }
  after_exchange();
}

void Connection::finish_exchange() {
  exchange_->response = ExchangeState::Response::ended;
  exchange_->finished = true;
  exchange_->on_disconnect = nullptr;
  report_finished(exchange_);
  exchange_.reset();
  server_->exchange_ended();
  if (watching_) {
    beast::error_code ignored;
    stream_.socket().cancel(ignored);
    return;
  }
  after_exchange();
}

void Connection::after_exchange() {
  if (!keep_alive_ || server_->draining) {
    graceful_close();
    return;
  }
  read_next();
}

// Ends the open exchange as disconnected and returns its callback, for the caller to run once
// the connection's own state is consistent.
std::function<void()> Connection::end_exchange_disconnected() {
  auto exchange = std::move(exchange_);
  exchange->disconnected = true;
  exchange->finished = true;
  exchange->response = ExchangeState::Response::ended;
  auto callback = std::move(exchange->on_disconnect);
  exchange->on_disconnect = nullptr;
  report_finished(exchange);
  server_->exchange_ended();
  return callback;
}

// Posted, so that the handler running now (a write completion, a close) has charged its own
// time before the total is read.
void Connection::report_finished(const Exchange& exchange) {
  if (!exchange->on_finished) return;
  auto report = [exchange, callback = std::move(exchange->on_finished)] {
    callback(exchange->http_seconds());
  };
  exchange->on_finished = nullptr;
  if (!server_->post(executor_, report)) report();
}

void Connection::respond(const Exchange& exchange, int status, std::string_view content_type,
                         std::string body, const HttpHeaders& headers) {
  const ChargedTime charged(exchange);
  if (exchange != exchange_ || exchange->response != ExchangeState::Response::none) return;
  exchange->response = ExchangeState::Response::ending;
  if (server_->draining) keep_alive_ = false;
  wire::ResponseHead head;
  head.status = status;
  head.content_type = content_type;
  head.content_length = body.size();
  head.keep_alive = keep_alive_;
  head.handler_headers = &headers;
  head.extra_headers = &options().extra_headers;
  std::string bytes = wire::format_head(head);
  if (!head_request_) bytes.append(body);
  enqueue(std::move(bytes));
}

void Connection::start_events(const Exchange& exchange, int status, const HttpHeaders& headers) {
  const ChargedTime charged(exchange);
  static const HttpHeaders kEventHeaders = {{"Cache-Control", "no-cache"}};
  if (exchange != exchange_ || exchange->response != ExchangeState::Response::none) return;
  exchange->response = ExchangeState::Response::streaming;
  // HTTP/1.0 has no chunked encoding: the stream ends when the connection closes.
  if (server_->draining || http10_) keep_alive_ = false;
  wire::ResponseHead head;
  head.status = status;
  head.content_type = "text/event-stream";
  head.framing = http10_ ? wire::Framing::until_close : wire::Framing::chunked;
  head.keep_alive = keep_alive_;
  head.handler_headers = &headers;
  head.extra_headers = &options().extra_headers;
  head.default_headers = &kEventHeaders;
  enqueue(wire::format_head(head));
}

void Connection::send_event(const Exchange& exchange, std::string data) {
  const ChargedTime charged(exchange);
  if (exchange != exchange_ || exchange->response != ExchangeState::Response::streaming) return;
  if (data.empty()) return;
  enqueue(http10_ ? std::move(data) : wire::format_chunk(data));
}

void Connection::end_events(const Exchange& exchange) {
  const ChargedTime charged(exchange);
  if (exchange != exchange_ || exchange->response != ExchangeState::Response::streaming) return;
  exchange->response = ExchangeState::Response::ending;
  enqueue(http10_ ? std::string() : std::string(wire::kLastChunk));
}

void Connection::on_disconnect(const Exchange& exchange, std::function<void()> callback) {
  if (exchange->disconnected) {
    run_callback(callback);
    return;
  }
  // A response that has ended can no longer be cut short; the callback would never run.
  if (exchange != exchange_) return;
  exchange->on_disconnect = std::move(callback);
}

void Connection::on_finished(const Exchange& exchange, std::function<void(double)> callback) {
  if (exchange->finished) {
    callback(exchange->http_seconds());
    return;
  }
  exchange->on_finished = std::move(callback);
}

void Connection::abandon(const Exchange& exchange) {
  if (exchange != exchange_) return;
  switch (exchange->response) {
    case ExchangeState::Response::none:
      spdlog::debug("http: connection {}: handler sent no response", id_);
      respond(exchange, 500, "application/json",
              wire::error_json(500, "the request handler produced no response"), {});
      break;
    case ExchangeState::Response::streaming:
      // Without the last chunk the client sees a truncated stream, not a complete one.
      keep_alive_ = false;
      exchange->response = ExchangeState::Response::ending;
      enqueue(std::string());
      break;
    default:
      break;
  }
}

// ---- writing ----

void Connection::enqueue(std::string bytes) {
  if (closed_) return;
  if (!bytes.empty()) queue_.push_back(std::move(bytes));
  if (!writing_) flush();
}

// Writes everything queued as one gather write; what is queued meanwhile goes in the next.
void Connection::flush() {
  if (queue_.empty()) {
    after_flush();
    return;
  }
  in_flight_.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
  queue_.clear();
  in_flight_buffers_.clear();
  for (const auto& bytes : in_flight_) in_flight_buffers_.push_back(net::buffer(bytes));
  writing_ = true;
  write_some();
}

// One write_some at a time, each under a fresh write timeout: a slow reader that keeps making
// progress is served; one that stops reading for write_timeout is cut off.
void Connection::write_some() {
  stream_.expires_after(options().write_timeout);
  stream_.async_write_some(in_flight_buffers_,
                           [self = shared_from_this()](beast::error_code ec, size_t bytes) {
                             self->on_written(ec, bytes);
                           });
}

void Connection::on_written(beast::error_code ec, size_t bytes) {
  const ChargedTime charged(exchange_);
  if (!closed_ && !ec) {
    auto first = in_flight_buffers_.begin();
    while (first != in_flight_buffers_.end() && bytes >= first->size()) bytes -= (first++)->size();
    if (first != in_flight_buffers_.end()) *first += bytes;
    in_flight_buffers_.erase(in_flight_buffers_.begin(), first);
    if (!in_flight_buffers_.empty()) {
      write_some();
      return;
    }
  }
  writing_ = false;
  in_flight_.clear();
  in_flight_buffers_.clear();
  if (closed_) return;
  if (ec) {
    close();
    return;
  }
  flush();
}

void Connection::after_flush() {
  if (exchange_ && exchange_->response == ExchangeState::Response::ending) {
    finish_exchange();
  } else if (!exchange_ && close_after_flush_) {
    graceful_close();
  }
}

void Connection::graceful_close() {
  if (closed_) return;
  phase_ = Phase::closing;
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.expires_after(kLingerTimeout);
  linger();
}

void Connection::linger() {
  buffer_.consume(buffer_.size());
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code ec, size_t bytes) {
                            if (self->closed_) return;
                            if (ec) {
                              self->close();
                              return;
                            }
                            self->buffer_.commit(bytes);
                            self->linger();
                          });
}

}  // namespace v4::router
