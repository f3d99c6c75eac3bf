// One accepted HTTP connection: reads requests, runs the handler, writes the response through a
// queue, and watches the socket for a disconnect while a response is pending. Every member
// function runs on the connection's strand; other threads reach it only through post().
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/thread_cpu_clock.h"
#include "router/http/http_beast.h"
#include "router/http/http_server.h"
#include "router/http/http_server_state.h"

namespace v4::router {

// The part of one request/response exchange that outlives the handler's call.
struct ExchangeState {
  enum class Response { none, streaming, ending, ended };
  Response response = Response::none;       // strand only
  std::function<void()> on_disconnect;      // strand only
  std::function<void(double)> on_finished;  // strand only
  std::atomic<bool> disconnected{false};
  std::atomic<bool> finished{false};  // ended or disconnected
  // Time the strand spent on this exchange's HTTP work (HttpExchange::on_finished).
  std::atomic<int64_t> http_nanoseconds{0};
  double http_seconds() const { return static_cast<double>(http_nanoseconds.load()) * 1e-9; }
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<ServerState> server, boost::asio::ip::tcp::socket socket, uint64_t id);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs `work(connection)` on the strand; false (work dropped) once the server has stopped.
  template <class Work>
  bool post(Work&& work) {
    return server_->post(executor_, [self = shared_from_this(),
                                     work = std::forward<Work>(work)]() mutable { work(*self); });
  }

  const boost::asio::any_io_executor& executor() const { return executor_; }

  void start();
  // Closes the connection unless an exchange is open; that one closes when its response ends.
  void drain();
  // Closes now; an open exchange counts as disconnected.
  void close();

  using Exchange = std::shared_ptr<ExchangeState>;
  void respond(const Exchange& exchange, int status, std::string_view content_type,
               std::string body, const HttpHeaders& headers);
  void start_events(const Exchange& exchange, int status, const HttpHeaders& headers);
  void send_event(const Exchange& exchange, std::string data);
  void end_events(const Exchange& exchange);
  void on_disconnect(const Exchange& exchange, std::function<void()> callback);
  void on_finished(const Exchange& exchange, std::function<void(double)> callback);
  // The handler dropped its handle: a 500 if nothing was sent, a truncated stream otherwise.
  void abandon(const Exchange& exchange);

 private:
  enum class Phase { idle, reading, exchange, closing };

  const HttpServerOptions& options() const { return server_->options; }

  void new_parser();
  void read_next();
  void read_header();
  void on_header(boost::beast::error_code ec);
  void read_body();
  void read_until(bool whole_message);
  boost::beast::error_code parse_buffered(bool whole_message);
  bool parsed(bool whole_message) const;
  void fail_request(boost::beast::error_code ec);
  void reply_error_and_close(int status, const std::string& message);
  void dispatch();

  void watch();
  void on_watch(boost::beast::error_code ec, size_t bytes);
  void finish_exchange();
  void after_exchange();
  std::function<void()> end_exchange_disconnected();
  void report_finished(const Exchange& exchange);

  void enqueue(std::string bytes);
  void flush();
  void write_some();
  void on_written(boost::beast::error_code ec, size_t bytes);
  void after_flush();
  void graceful_close();
  void linger();

  // First member: destroyed last, so the io_context outlives the stream below.
  std::shared_ptr<ServerState> server_;
  const uint64_t id_;
  boost::beast::tcp_stream stream_;
  const boost::asio::any_io_executor executor_;
  std::string remote_;

  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  uint64_t chunked_bytes_ = 0;
  // Parse time of the request being read; becomes the exchange's first HTTP time.
  ThreadCpuClock::duration parse_time_{};
  std::function<void(uint64_t, boost::beast::string_view, boost::beast::error_code&)> count_chunk_;

  Phase phase_ = Phase::reading;
  bool closed_ = false;
  bool keep_alive_ = true;
  bool http10_ = false;
  bool head_request_ = false;
  bool watching_ = false;
  bool close_after_flush_ = false;
  Exchange exchange_;

  std::deque<std::string> queue_;
  std::vector<std::string> in_flight_;
  std::vector<boost::asio::const_buffer> in_flight_buffers_;
  bool writing_ = false;
};

// The handler's thread-safe handle on `exchange`.
std::shared_ptr<HttpExchange> make_exchange(std::shared_ptr<Connection> connection,
                                            std::shared_ptr<ExchangeState> exchange);

}  // namespace v4::router
