// Test support for the HTTP server tests: a raw loopback client that controls every byte, a
// mailbox to hand exchanges from handlers to the test thread, and small canned handlers.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "router/http/http_beast.h"
#include "router/http/http_server.h"

namespace v4::router::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

// Every wait in these tests is bounded by this, so a broken server fails a test, never hangs it.
inline constexpr auto kWait = std::chrono::milliseconds(10'000);

template <class T>
class Mailbox {
 public:
  void put(T value) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(value));
    }
    changed_.notify_all();
  }

  std::optional<T> take(std::chrono::milliseconds wait = kWait) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, wait, [&] { return !items_.empty(); })) return std::nullopt;
    T value = std::move(items_.front());
    items_.pop_front();
    return value;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<T> items_;
};

using Exchanges = Mailbox<std::shared_ptr<HttpExchange>>;

// A client that controls every byte: keep-alive, pipelining, partial requests, early close.
class RawClient {
 public:
  explicit RawClient(uint16_t port) : stream_(io_) {
    stream_.expires_after(kWait);
    stream_.async_connect(tcp::endpoint(net::ip::address_v4::loopback(), port),
                          [this](beast::error_code ec) { connect_error_ = ec; });
    run();
  }

  bool connected() const { return !connect_error_; }

  beast::error_code write(std::string_view data) {
    beast::error_code result;
    stream_.expires_after(kWait);
    net::async_write(stream_, net::buffer(data.data(), data.size()),
                     [&](beast::error_code ec, size_t) { result = ec; });
    run();
    return result;
  }

  struct Reply {
    beast::error_code ec;
    http::response<http::string_body> message;
  };

  // One whole response, de-chunked.
  Reply read_response() {
    http::response_parser<http::string_body> parser;
    parser.body_limit(boost::none);
    Reply reply;
    stream_.expires_after(kWait);
    http::async_read(stream_, buffer_, parser,
                     [&](beast::error_code ec, size_t) { reply.ec = ec; });
    run();
    if (!reply.ec) reply.message = parser.release();
    return reply;
  }

  // Raw bytes until `needle` has been received (or the read fails).
  beast::error_code read_until(std::string_view needle) {
    take_buffered();
    stream_.expires_after(kWait);
    while (received_.find(needle) == std::string::npos) {
      if (auto ec = read_some()) return ec;
    }
    return {};
  }

  // Raw bytes until the server closes: returns eof then, timeout if it never does.
  beast::error_code read_until_eof() {
    take_buffered();
    stream_.expires_after(kWait);
    for (;;) {
      if (auto ec = read_some()) return ec;
    }
  }

  const std::string& received() const { return received_; }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  beast::error_code read_some() {
    beast::error_code result;
    char data[16384];
    stream_.async_read_some(net::buffer(data), [&](beast::error_code ec, size_t bytes) {
      result = ec;
      received_.append(data, bytes);
    });
    run();
    return result;
  }

  void take_buffered() {
    received_ += beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
  }

  void run() {
    io_.restart();
    io_.run();
  }

  net::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  beast::error_code connect_error_;
  std::string received_;
};

inline HttpServerOptions test_options() {
  HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  options.threads = 2;
  return options;
}

inline std::unique_ptr<HttpServer> start_server(HttpHandler handler,
                                                HttpServerOptions options = test_options()) {
  auto server = std::make_unique<HttpServer>(std::move(options), std::move(handler));
  Status status = server->start();
  EXPECT_TRUE(status.is_ok()) << status.message();
  return server;
}

// Answers "METHOD|target|path|x-test header|body".
inline void echo(HttpRequest request, std::shared_ptr<HttpExchange> exchange) {
  std::string text = request.method + "|" + request.target + "|" + request.path + "|" +
                     request.header("x-test") + "|" + request.body;
  exchange->respond(200, "text/plain", std::move(text), {{"X-Remote", request.remote}});
}

inline std::string get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: test\r\n\r\n";
}

inline std::string error_body(const std::string& message, const std::string& type) {
  return R"({"error":{"message":")" + message + R"(","type":")" + type +
         R"(","param":null,"code":null}})";
}

inline void stream_three(HttpRequest, std::shared_ptr<HttpExchange> exchange) {
  exchange->start_events();
  for (const char* event : {"data: 1\n\n", "data: 2\n\n", "data: [DONE]\n\n"}) {
    exchange->send_event(event);
  }
  exchange->end_events();
}

}  // namespace v4::router::test
