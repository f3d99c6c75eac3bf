#include "router/http/http_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/unit/router/http/http_test_client.h"

namespace v4::router {
namespace {

using namespace test;
using namespace std::chrono_literals;

TEST(HttpServer, KeepAliveServesTwoRequestsOnOneConnection) {
  auto server = start_server(echo);
  RawClient client(server->port());
  ASSERT_TRUE(client.connected());
  ASSERT_FALSE(client.write("GET /a?x=1 HTTP/1.1\r\nHost: test\r\nX-Test: hi\r\n\r\n"));
  auto first = client.read_response();
  ASSERT_FALSE(first.ec) << first.ec.message();
  EXPECT_EQ(first.message.result_int(), 200u);
  EXPECT_EQ(first.message.body(), "GET|/a?x=1|/a|hi|");
  EXPECT_TRUE(first.message.keep_alive());
  EXPECT_EQ(std::string(first.message["X-Remote"]).rfind("127.0.0.1:", 0), 0u);

  ASSERT_FALSE(client.write(
      "POST /b HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
      "hello"));
  auto second = client.read_response();
  ASSERT_FALSE(second.ec) << second.ec.message();
  EXPECT_EQ(second.message.body(), "POST|/b|/b||hello");
  EXPECT_EQ(server->stats().connections_total, 1u);
}

TEST(HttpServer, ServesManyConcurrentClients) {
  auto server = start_server(echo);
  constexpr int kClients = 8;
  constexpr int kRequests = 25;
  std::atomic<int> served{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      RawClient keep_alive(server->port());
      for (int r = 0; r < kRequests; ++r) {
        const std::string target = "/c" + std::to_string(c) + "r" + std::to_string(r);
        if (r % 2 == 0) {
          auto response = http_fetch(server->port(), "GET", target);
          if (response.is_ok() && response->body == "GET|" + target + "|" + target + "||") served++;
          continue;
        }
        if (keep_alive.write(get(target))) continue;
        auto reply = keep_alive.read_response();
        if (!reply.ec && reply.message.body() == "GET|" + target + "|" + target + "||") served++;
      }
    });
  }
  for (auto& client : clients) client.join();
  EXPECT_EQ(served.load(), kClients * kRequests);
  EXPECT_EQ(server->stats().connections_total, uint64_t{kClients + kClients * (kRequests + 1) / 2});
}

TEST(HttpServer, FetchRoundTripLowerCasesHeaders) {
  auto server = start_server(echo);
  auto response = http_fetch(server->port(), "POST", "/v1/x", "payload", {{"X-Test", "yes"}});
  ASSERT_TRUE(response.is_ok()) << response.message();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "POST|/v1/x|/v1/x|yes|payload");
  EXPECT_EQ(response->headers["content-type"], "text/plain");
  EXPECT_EQ(response->headers["content-length"], std::to_string(response->body.size()));
}

TEST(HttpServer, Http10ResponseClosesTheConnection) {
  auto server = start_server(echo);
  RawClient client(server->port());
  ASSERT_FALSE(client.write("GET /old HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(client.read_until_eof(), net::error::eof);
  EXPECT_NE(client.received().find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(client.received().find("GET|/old|/old||"), std::string::npos);
}

TEST(HttpServer, ExpectContinueGetsInterimResponse) {
  auto server = start_server(echo);
  RawClient client(server->port());
  ASSERT_FALSE(client.write(
      "POST /c HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"));
  ASSERT_FALSE(client.read_until("HTTP/1.1 100 Continue\r\n\r\n"));
  ASSERT_FALSE(client.write("abc"));
  ASSERT_FALSE(client.read_until("POST|/c|/c||abc"));
}

TEST(HttpServer, DeclaredBodyOverLimitGets413BeforeTheBody) {
  std::atomic<int> calls{0};
  auto options = test_options();
  options.body_limit = 1024;
  auto server = start_server([&](HttpRequest, std::shared_ptr<HttpExchange>) { calls++; }, options);
  RawClient client(server->port());
  // No body follows: the answer must not wait for it.
  ASSERT_FALSE(client.write("POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\n\r\n"));
  auto reply = client.read_response();
  ASSERT_FALSE(reply.ec) << reply.ec.message();
  EXPECT_EQ(reply.message.result_int(), 413u);
  EXPECT_EQ(reply.message.body(),
            error_body("request body of 5000 bytes exceeds the limit of 1024 bytes",
                       "invalid_request_error"));
  EXPECT_FALSE(reply.message.keep_alive());
  client.close();
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServer, ChunkedBodyOverLimitGets413AndCloses) {
  std::atomic<int> calls{0};
  auto options = test_options();
  options.body_limit = 1024;
  auto server = start_server([&](HttpRequest, std::shared_ptr<HttpExchange>) { calls++; }, options);
  RawClient client(server->port());
  ASSERT_FALSE(
      client.write("POST /x HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "400\r\n" +
                   std::string(1024, 'a') + "\r\n10\r\n" + std::string(16, 'b') + "\r\n0\r\n\r\n"));
  EXPECT_EQ(client.read_until_eof(), net::error::eof);
  EXPECT_EQ(client.received().rfind("HTTP/1.1 413 ", 0), 0u);
  EXPECT_NE(
      client.received().find(error_body(
          "request body of 1040 bytes exceeds the limit of 1024 bytes", "invalid_request_error")),
      std::string::npos);
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServer, FetchWithOverLimitBodyGets413) {
  auto options = test_options();
  options.body_limit = 1024;
  auto server = start_server(echo, options);
  auto response = http_fetch(server->port(), "POST", "/x", std::string(2000, 'z'));
  ASSERT_TRUE(response.is_ok()) << response.message();
  EXPECT_EQ(response->status, 413);
  EXPECT_EQ(response->headers["content-type"], "application/json");
}

TEST(HttpServer, GarbageGets400AndCloses) {
  std::atomic<int> calls{0};
  auto server = start_server([&](HttpRequest, std::shared_ptr<HttpExchange>) { calls++; });
  RawClient client(server->port());
  ASSERT_FALSE(client.write("this is not http at all\r\n\r\n"));
  EXPECT_EQ(client.read_until_eof(), net::error::eof);
  EXPECT_EQ(client.received().rfind("HTTP/1.1 400 ", 0), 0u);
  EXPECT_NE(client.received().find(R"({"error":{"message":"malformed HTTP request: )"),
            std::string::npos);
  EXPECT_NE(client.received().find(R"("type":"invalid_request_error","param":null,"code":null}})"),
            std::string::npos);
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServer, HeaderTimeoutClosesASlowClient) {
  std::atomic<int> calls{0};
  auto options = test_options();
  options.header_timeout = 200ms;
  auto server = start_server([&](HttpRequest, std::shared_ptr<HttpExchange>) { calls++; }, options);
  RawClient client(server->port());
  const auto start = std::chrono::steady_clock::now();
  ASSERT_FALSE(client.write("GET / HTTP/1.1\r\nHost: te"));
  EXPECT_EQ(client.read_until_eof(), net::error::eof);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  EXPECT_EQ(client.received(), "");
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServer, IdleTimeoutClosesAKeepAliveConnection) {
  auto options = test_options();
  options.idle_timeout = 200ms;
  auto server = start_server(echo, options);
  RawClient client(server->port());
  ASSERT_FALSE(client.write(get("/a")));
  ASSERT_FALSE(client.read_response().ec);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(client.read_until_eof(), net::error::eof);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
}

TEST(HttpServer, HandlerThatDropsTheExchangeGets500) {
  auto server = start_server([](HttpRequest request, std::shared_ptr<HttpExchange>) {
    if (request.path == "/throw") throw std::runtime_error("handler bug");
  });
  RawClient client(server->port());
  for (const char* target : {"/drop", "/throw"}) {  // the connection stays usable
    ASSERT_FALSE(client.write(get(target)));
    auto reply = client.read_response();
    ASSERT_FALSE(reply.ec) << reply.ec.message();
    EXPECT_EQ(reply.message.result_int(), 500u);
    EXPECT_EQ(reply.message.body(),
              error_body("the request handler produced no response", "server_error"));
  }
}

TEST(HttpServer, ExtraHeadersGoOnEveryResponse) {
  auto options = test_options();
  options.body_limit = 16;
  options.extra_headers = {{"Access-Control-Allow-Origin", "*"}};
  auto server = start_server(
      [](HttpRequest request, std::shared_ptr<HttpExchange> e) {
        if (request.path == "/events") return stream_three(std::move(request), std::move(e));
        echo(std::move(request), std::move(e));
      },
      options);
  for (auto [target, body, status] : {std::tuple{"/plain", "", 200},
                                      {"/events", "", 200},
                                      {"/big", "way more than 16 bytes", 413}}) {
    auto response = http_fetch(server->port(), "POST", target, body);
    ASSERT_TRUE(response.is_ok()) << response.message();
    EXPECT_EQ(response->status, status) << target;
    EXPECT_EQ(response->headers["access-control-allow-origin"], "*") << target;
  }
}

TEST(HttpServer, ConnectionsBeyondTheLimitAreTurnedAway) {
  auto options = test_options();
  options.max_connections = 2;
  auto server = start_server(echo, options);
  RawClient first(server->port());
  RawClient second(server->port());
  for (RawClient* client : {&first, &second}) {
    ASSERT_FALSE(client->write(get("/a")));
    ASSERT_FALSE(client->read_response().ec);
  }
  RawClient third(server->port());
  EXPECT_EQ(third.read_until_eof(), net::error::eof);
  EXPECT_EQ(third.received().rfind("HTTP/1.1 503 ", 0), 0u);
  EXPECT_EQ(server->stats().connections_open, 2u);

  first.close();
  bool served = false;
  for (int attempt = 0; attempt < 1000 && !served; ++attempt) {
    auto response = http_fetch(server->port(), "GET", "/again");
    served = response.is_ok() && response->status == 200;
  }
  EXPECT_TRUE(served);
}

TEST(HttpServer, StopClosesConnectionsAndIsIdempotent) {
  auto server = start_server(echo);
  RawClient client(server->port());
  ASSERT_FALSE(client.write(get("/a")));
  ASSERT_FALSE(client.read_response().ec);
  server->stop();
  EXPECT_EQ(client.read_until_eof(), net::error::eof);
  server->stop();
  EXPECT_EQ(server->stats().connections_open, 0u);
  EXPECT_EQ(server->stats().connections_total, 1u);
  EXPECT_TRUE(server->drain(0ms));  // nothing left to wait for
}

TEST(HttpServer, StartOnATakenPortFails) {
  auto first = start_server(echo);
  auto options = test_options();
  options.port = first->port();
  HttpServer second(options, echo);
  Status status = second.start();
  ASSERT_FALSE(status.is_ok());
  const std::string prefix = "cannot listen on 127.0.0.1:" + std::to_string(first->port()) + ": ";
  EXPECT_EQ(status.message().rfind(prefix, 0), 0u) << status.message();
  EXPECT_GT(status.message().size(), prefix.size());
  EXPECT_FALSE(first->start().is_ok());  // already started
}

TEST(HttpFetch, ReportsErrorsInsteadOfThrowing) {
  uint16_t free_port;
  {
    auto server = start_server(echo);
    free_port = server->port();
  }
  auto refused = http_fetch(free_port, "GET", "/");
  EXPECT_FALSE(refused.is_ok());
  EXPECT_NE(refused.message().find("127.0.0.1:" + std::to_string(free_port)), std::string::npos);

  Exchanges exchanges;
  auto server =
      start_server([&](HttpRequest, std::shared_ptr<HttpExchange> e) { exchanges.put(e); });
  const auto start = std::chrono::steady_clock::now();
  auto timed_out = http_fetch(server->port(), "GET", "/never", "", {}, 200ms);
  EXPECT_FALSE(timed_out.is_ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, kWait);
}

}  // namespace
}  // namespace v4::router
