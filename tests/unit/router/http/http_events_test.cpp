#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "router/http/http_server.h"
#include "tests/unit/router/http/http_test_client.h"

namespace v4::router {
namespace {

using namespace test;
using namespace std::chrono_literals;

TEST(HttpExchange, Http10EventStreamEndsWithTheConnection) {
  auto server = start_server(stream_three);
  RawClient client(server->port());
  ASSERT_FALSE(client.write("GET /events HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(client.read_until_eof(), net::error::eof);
  const std::string& raw = client.received();
  EXPECT_EQ(raw.find("Transfer-Encoding"), std::string::npos);  // HTTP/1.0 has no chunking
  EXPECT_EQ(raw.substr(raw.find("\r\n\r\n") + 4), "data: 1\n\ndata: 2\n\ndata: [DONE]\n\n");
}

TEST(HttpExchange, EventsArriveInOrderDeChunkedAndKeepAlive) {
  auto server = start_server(stream_three);
  RawClient client(server->port());
  for (int round = 0; round < 2; ++round) {
    ASSERT_FALSE(client.write(get("/events")));
    auto reply = client.read_response();
    ASSERT_FALSE(reply.ec) << reply.ec.message();
    EXPECT_EQ(reply.message.result_int(), 200u);
    EXPECT_EQ(reply.message["Content-Type"], "text/event-stream");
    EXPECT_EQ(reply.message["Cache-Control"], "no-cache");
    EXPECT_TRUE(reply.message.chunked());
    EXPECT_EQ(reply.message.body(), "data: 1\n\ndata: 2\n\ndata: [DONE]\n\n");
  }
  auto fetched = http_fetch(server->port(), "GET", "/events");
  ASSERT_TRUE(fetched.is_ok()) << fetched.message();
  EXPECT_EQ(fetched->body, "data: 1\n\ndata: 2\n\ndata: [DONE]\n\n");
  EXPECT_EQ(fetched->headers["transfer-encoding"], "chunked");
}

TEST(HttpExchange, EventsSentFromAnotherThreadAreFlushedAsTheyCome) {
  Exchanges exchanges;
  auto server =
      start_server([&](HttpRequest, std::shared_ptr<HttpExchange> e) { exchanges.put(e); });
  RawClient client(server->port());
  ASSERT_FALSE(client.write(get("/events")));
  auto exchange = exchanges.take();
  ASSERT_TRUE(exchange);
  (*exchange)->start_events();
  (*exchange)->send_event("data: one\n\n");
  // Received before the stream ends: events are not held back until end_events().
  ASSERT_FALSE(client.read_until("data: one\n\n"));
  std::thread producer([&] {
    for (const char* event : {"data: two\n\n", "data: three\n\n"}) (*exchange)->send_event(event);
    (*exchange)->end_events();
  });
  producer.join();
  ASSERT_FALSE(client.read_until("\r\n0\r\n\r\n"));
  const std::string& raw = client.received();
  EXPECT_LT(raw.find("data: one"), raw.find("data: two"));
  EXPECT_LT(raw.find("data: two"), raw.find("data: three"));
  EXPECT_NE(raw.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
}

TEST(HttpExchange, ClientDisconnectMidStreamFiresOnDisconnectOnce) {
  std::atomic<int> fired{0};
  Mailbox<int> disconnects;
  Exchanges exchanges;
  auto server = start_server([&](HttpRequest, std::shared_ptr<HttpExchange> e) {
    e->on_disconnect([&] {
      fired++;
      disconnects.put(1);
    });
    e->start_events();
    e->send_event("data: first\n\n");
    exchanges.put(e);
  });
  RawClient client(server->port());
  ASSERT_FALSE(client.write(get("/events")));
  ASSERT_FALSE(client.read_until("data: first"));
  auto exchange = exchanges.take();
  ASSERT_TRUE(exchange);
  client.close();
  ASSERT_TRUE(disconnects.take());
  EXPECT_TRUE((*exchange)->disconnected());
  EXPECT_EQ(server->stats().exchanges_open, 0u);
  (*exchange)->send_event("data: dropped\n\n");
  (*exchange)->end_events();
  (*exchange)->respond(200, "text/plain", "late");
  server->stop();  // joins the threads: any second invocation would have happened by now
  EXPECT_EQ(fired.load(), 1);
}

TEST(HttpExchange, OnDisconnectRegisteredAfterTheDisconnectRunsAtOnce) {
  Mailbox<int> first;
  Mailbox<int> second;
  Exchanges exchanges;
  auto server = start_server([&](HttpRequest, std::shared_ptr<HttpExchange> e) {
    e->on_disconnect([&] { first.put(1); });
    exchanges.put(e);  // no response at all: a whole response is pending
  });
  RawClient client(server->port());
  ASSERT_FALSE(client.write(get("/slow")));
  auto exchange = exchanges.take();
  ASSERT_TRUE(exchange);
  client.close();
  ASSERT_TRUE(first.take());
  (*exchange)->on_disconnect([&] { second.put(2); });
  EXPECT_TRUE(second.take());
}

// The exchange's HTTP time covers parsing and writing only: the client pausing mid-body and
// the handler taking its time both happen between the server's pieces of work and are left
// out. The pauses are the waits that must not be counted, not synchronisation.
TEST(HttpExchange, OnFinishedReportsHttpWorkButNotWaiting) {
  constexpr auto kPause = 300ms;
  Exchanges exchanges;
  Mailbox<std::string> bodies;
  auto server = start_server([&](HttpRequest request, std::shared_ptr<HttpExchange> e) {
    bodies.put(request.body);
    exchanges.put(e);
  });
  RawClient client(server->port());
  ASSERT_FALSE(client.write("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\nabcd"));
  std::this_thread::sleep_for(kPause);
  ASSERT_FALSE(client.write("efgh"));
  auto exchange = exchanges.take();
  ASSERT_TRUE(exchange);
  EXPECT_EQ(bodies.take(), "abcdefgh");
  Mailbox<double> first, second;
  (*exchange)->on_finished([&](double seconds) { first.put(seconds); });
  std::this_thread::sleep_for(kPause);
  (*exchange)->respond(200, "text/plain", std::string(size_t{1} << 20, 'x'));
  auto reply = client.read_response();
  ASSERT_FALSE(reply.ec) << reply.ec.message();
  EXPECT_EQ(reply.message.body().size(), size_t{1} << 20);
  const std::optional<double> seconds = first.take();
  ASSERT_TRUE(seconds);
  EXPECT_GT(*seconds, 0.0);
  EXPECT_LT(*seconds, std::chrono::duration<double>(kPause).count());
  // Registered after the end: runs at once, with the same total.
  (*exchange)->on_finished([&](double s) { second.put(s); });
  EXPECT_EQ(second.take(), seconds);
}

TEST(HttpExchange, PipelinedRequestIsNotMistakenForADisconnect) {
  std::atomic<int> disconnects{0};
  Exchanges slow;
  auto server = start_server([&](HttpRequest request, std::shared_ptr<HttpExchange> e) {
    if (request.path == "/last" || request.path == "/ping")
      return e->respond(200, "text/plain", "ok");
    e->on_disconnect([&] { disconnects++; });
    if (request.path == "/slow") return slow.put(e);
    e->respond(200, "text/plain", "fast");
  });
  RawClient client(server->port());
  ASSERT_FALSE(client.write(get("/slow")));
  auto exchange = slow.take();
  ASSERT_TRUE(exchange);
  // Sent while "/slow" is pending, so they reach the read that watches for a disconnect. The
  // round trip on another connection gives that read time to complete before the response.
  ASSERT_FALSE(client.write(get("/fast") + get("/last")));
  ASSERT_TRUE(http_fetch(server->port(), "GET", "/ping").is_ok());
  (*exchange)->respond(200, "text/plain", "slow");
  for (const char* expected : {"slow", "fast", "ok"}) {
    auto reply = client.read_response();
    ASSERT_FALSE(reply.ec) << reply.ec.message();
    EXPECT_EQ(reply.message.body(), expected);
  }
  // "/last" is read only once "/fast" has ended, so both watched exchanges are over by now.
  EXPECT_FALSE((*exchange)->disconnected());
  EXPECT_EQ(disconnects.load(), 0);
}

TEST(HttpExchange, ClientThatStopsReadingTimesOutAsADisconnect) {
  Mailbox<int> disconnects;
  Exchanges exchanges;
  auto options = test_options();
  options.write_timeout = 200ms;
  auto server = start_server(
      [&](HttpRequest, std::shared_ptr<HttpExchange> e) {
        e->on_disconnect([&] { disconnects.put(1); });
        exchanges.put(e);
      },
      options);
  RawClient client(server->port());
  ASSERT_FALSE(client.write(get("/events")));
  auto exchange = exchanges.take();
  ASSERT_TRUE(exchange);
  (*exchange)->start_events();
  // Far more than loopback socket buffers hold, so the server's writes stall.
  const std::string event = "data: " + std::string(64 * 1024, 'x') + "\n\n";
  for (int i = 0; i < 512 && !(*exchange)->disconnected(); ++i) (*exchange)->send_event(event);
  EXPECT_TRUE(disconnects.take());
  EXPECT_TRUE((*exchange)->disconnected());
}

TEST(HttpExchange, DrainLetsAnOpenStreamFinishAndClosesIdleConnections) {
  Exchanges exchanges;
  auto server = start_server([&](HttpRequest request, std::shared_ptr<HttpExchange> e) {
    if (request.path == "/ping") return e->respond(200, "text/plain", "pong");
    e->start_events();
    exchanges.put(e);
  });
  RawClient idle(server->port());
  ASSERT_FALSE(idle.write(get("/ping")));
  ASSERT_FALSE(idle.read_response().ec);
  RawClient streaming(server->port());
  ASSERT_FALSE(streaming.write(get("/events")));
  ASSERT_FALSE(streaming.read_until("\r\n\r\n"));
  auto exchange = exchanges.take();
  ASSERT_TRUE(exchange);

  auto drained = std::async(std::launch::async, [&] { return server->drain(kWait); });
  // Draining stops accepting: wait for a request that no longer gets through.
  bool refused = false;
  for (int attempt = 0; attempt < 1000 && !refused; ++attempt) {
    refused = !http_fetch(server->port(), "GET", "/ping", "", {}, 2s).is_ok();
  }
  ASSERT_TRUE(refused);
  EXPECT_EQ(idle.read_until_eof(), net::error::eof);
  EXPECT_NE(drained.wait_for(0s), std::future_status::ready);

  (*exchange)->send_event("data: late\n\n");
  (*exchange)->end_events();
  EXPECT_FALSE(streaming.read_until("data: late\n\n\r\n0\r\n\r\n"));
  EXPECT_EQ(streaming.read_until_eof(), net::error::eof);
  ASSERT_EQ(drained.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(drained.get());
}

TEST(HttpExchange, DrainGivesUpOnAStuckExchangeAtTheDeadline) {
  Mailbox<int> disconnects;
  Exchanges exchanges;
  auto server = start_server([&](HttpRequest, std::shared_ptr<HttpExchange> e) {
    e->on_disconnect([&] { disconnects.put(1); });
    e->start_events();
    exchanges.put(e);
  });
  RawClient client(server->port());
  ASSERT_FALSE(client.write(get("/events")));
  ASSERT_FALSE(client.read_until("\r\n\r\n"));
  auto exchange = exchanges.take();
  ASSERT_TRUE(exchange);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(server->drain(200ms));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  EXPECT_TRUE(disconnects.take());  // closing it cut the client off
  EXPECT_TRUE((*exchange)->disconnected());
  EXPECT_EQ(client.read_until_eof(), net::error::eof);
  (*exchange)->send_event("data: after\n\n");  // ignored, no crash
}

// At the deadline the server first lets the handler end what is open (a final event), with the
// connection still up, and only then closes: the client sees the end of its stream.
TEST(HttpExchange, DrainEndsOpenExchangesAtTheDeadlineBeforeClosing) {
  Exchanges exchanges;
  auto server = start_server([&](HttpRequest, std::shared_ptr<HttpExchange> e) {
    e->start_events();
    exchanges.put(e);
  });
  RawClient client(server->port());
  ASSERT_FALSE(client.write(get("/events")));
  ASSERT_FALSE(client.read_until("\r\n\r\n"));
  auto exchange = exchanges.take();
  ASSERT_TRUE(exchange);
  std::atomic<int> called{0};
  EXPECT_FALSE(server->drain(200ms, [&] {
    called++;
    (*exchange)->send_event("data: final\n\n");
    (*exchange)->end_events();
  }));
  EXPECT_EQ(called.load(), 1);
  EXPECT_FALSE(client.read_until("data: final\n\n\r\n0\r\n\r\n"));
  EXPECT_EQ(client.read_until_eof(), net::error::eof);
}

TEST(HttpExchange, ExchangeOutlivingTheServerIsInert) {
  Exchanges exchanges;
  std::atomic<int> fired{0};
  auto server =
      start_server([&](HttpRequest, std::shared_ptr<HttpExchange> e) { exchanges.put(e); });
  RawClient client(server->port());
  ASSERT_FALSE(client.write(get("/a")));
  auto exchange = exchanges.take();
  ASSERT_TRUE(exchange);
  server.reset();
  EXPECT_TRUE((*exchange)->disconnected());
  (*exchange)->respond(200, "text/plain", "too late");
  (*exchange)->start_events();
  (*exchange)->send_event("data: x\n\n");
  (*exchange)->on_disconnect([&] { fired++; });  // runs at once: the client was cut off
  EXPECT_EQ(fired.load(), 1);
}

}  // namespace
}  // namespace v4::router
