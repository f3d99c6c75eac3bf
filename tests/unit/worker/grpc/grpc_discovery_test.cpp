// Workers from DNS: a resolver whose records change over time adds and removes workers; the
// requests of a removed worker move on as from a lost one (same tokens); a resolver that
// cannot answer keeps the workers; the system resolver turns `localhost` into loopback
// addresses. The router's Prometheus series follow (state, routed, ejections, failovers).
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <sstream>

#include "router/grpc/router_grpc_metrics.h"
#include "router/grpc/worker_discovery.h"
#include "tests/unit/worker/grpc/grpc_test_fixture.h"

namespace v4 {
namespace {

// Records a test sets while the router resolves them on its own thread.
class FakeDns {
 public:
  void set(std::vector<std::string> records) {
    std::lock_guard<std::mutex> lock(mutex_);
    records_ = std::move(records);
    failing_ = false;
  }
  void fail() {
    std::lock_guard<std::mutex> lock(mutex_);
    failing_ = true;
  }
  router_grpc::WorkerResolver resolver() {
    return [this](const std::string& host,
                  const std::string& port) -> Result<std::vector<std::string>> {
      std::lock_guard<std::mutex> lock(mutex_);
      EXPECT_EQ(host, "workers.test");
      EXPECT_EQ(port, "50051");
      if (failing_) return Status::error("temporary failure in name resolution");
      return records_;
    };
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> records_;
  bool failing_ = false;
};

template <class Pred>
bool eventually(Pred done, std::chrono::seconds timeout = std::chrono::seconds(30)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string scrape(prometheus::Registry& registry) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry.Collect());
  return out.str();
}

class GrpcDiscoveryTest : public GrpcWorkerTest {
 protected:
  router_grpc::GrpcClientOptions dns_options(FakeDns& dns) {
    router_grpc::GrpcClientOptions o = client_options({});
    o.health_interval = std::chrono::milliseconds(50);
    router_grpc::DnsDiscoveryOptions d;
    d.host = "workers.test";
    d.port = "50051";
    d.interval = std::chrono::milliseconds(50);
    d.resolve = dns.resolver();
    o.dns = d;
    o.metrics = std::make_shared<router_grpc::RouterGrpcMetrics>(registry_);
    return o;
  }
  prometheus::Registry registry_;
};

TEST(WorkerDiscovery, ParsesNameAndPort) {
  Result<router_grpc::DnsDiscoveryOptions> d =
      router_grpc::parse_dns_target("v4-workers.default.svc.cluster.local:50051");
  ASSERT_TRUE(d) << d.message();
  EXPECT_EQ(d->host, "v4-workers.default.svc.cluster.local");
  EXPECT_EQ(d->port, "50051");
  Result<router_grpc::DnsDiscoveryOptions> v6 = router_grpc::parse_dns_target("[::1]:7");
  ASSERT_TRUE(v6) << v6.message();
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"workers", "workers:", ":50051", "workers:http", "workers:70000"})
    EXPECT_FALSE(router_grpc::parse_dns_target(bad)) << bad;
}

TEST(WorkerDiscovery, SystemResolverTurnsLocalhostIntoLoopback) {
  Result<std::vector<std::string>> found =
      router_grpc::resolve_with_getaddrinfo("localhost", "50051");
  ASSERT_TRUE(found) << found.message();
  ASSERT_FALSE(found->empty());
  for (const std::string& a : *found)
    EXPECT_TRUE(a == "127.0.0.1:50051" || a == "[::1]:50051") << a;
  Result<std::vector<std::string>> none =
      router_grpc::resolve_with_getaddrinfo("no-such-host.invalid", "50051");
  // .invalid never resolves (RFC 6761): no records, or a resolver error where none is reachable.
  EXPECT_TRUE(!none || none->empty());
}

TEST_F(GrpcDiscoveryTest, RecordsThatComeAndGoAddAndRemoveWorkers) {
  TestWorker a(weights(), options()), b(weights(), options());
  FakeDns dns;
  dns.set({a.address});
  router_grpc::GrpcEngineClient client(dns_options(dns));
  client.start();
  EXPECT_EQ(client.usable_workers(), 1u);
  dns.set({a.address, b.address});
  ASSERT_TRUE(eventually([&] { return client.usable_workers() == 2; }))
      << "a new record did not add its worker";

  // Long enough that both workers are still generating when `a`'s record goes.
  const std::vector<GenerationRequest> rs = requests(8, 160);
  Collector c;
  for (size_t i = 0; i < rs.size(); ++i)
    ASSERT_TRUE(client.submit(to_engine_request(rs[i]), c.callback(i)));
  ASSERT_TRUE(c.wait([&](const auto& s) {
    if (s.size() < rs.size()) return false;
    for (const auto& [i, events] : s)
      if (events.size() < 2) return false;
    return true;
  }));
  dns.set({b.address});
  ASSERT_TRUE(c.wait([&](const auto& s) { return all_final(s, rs.size()); }));
  expect_reference(rs, c.streams());
  EXPECT_GT(client.counters().resubmitted, 0u) << "no request was running on the removed worker";
  EXPECT_EQ(client.worker_addresses(), std::vector<std::string>{b.address});
  EXPECT_EQ(client.usable_workers(), 1u);

  const std::string metrics = scrape(registry_);
  EXPECT_NE(metrics.find("v4serve:router_worker_ejections_total{reason=\"removed\",worker=\"" +
                         a.address + "\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_EQ(metrics.find("v4serve:router_worker_state{state=\"usable\",worker=\"" + a.address),
            std::string::npos)
      << "a removed worker keeps its state series\n"
      << metrics;
  EXPECT_NE(
      metrics.find("v4serve:router_worker_state{state=\"usable\",worker=\"" + b.address + "\"} 1"),
      std::string::npos)
      << metrics;
  EXPECT_EQ(metrics.find("v4serve:router_failovers_total 0"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("v4serve:router_requests_routed_total{worker=\"" + b.address),
            std::string::npos);
  EXPECT_NE(metrics.find("v4serve:router_worker_health_rtt_seconds_count{worker=\"" + b.address),
            std::string::npos);
  // The Submit counters agree with the client's own (every message and request, both workers).
  const router_grpc::GrpcClientCounters counters = client.counters();
  EXPECT_NE(metrics.find("v4serve:router_submit_messages_total " +
                         std::to_string(counters.submit_messages) + "\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("v4serve:router_submitted_requests_total " +
                         std::to_string(counters.submitted) + "\n"),
            std::string::npos)
      << metrics;

  // The record comes back: the worker serves again.
  dns.set({a.address, b.address});
  ASSERT_TRUE(eventually([&] { return client.usable_workers() == 2; }));
  // No records at all: no worker, so requests are refused at once.
  dns.set({});
  ASSERT_TRUE(eventually([&] { return client.usable_workers() == 0; }));
  EXPECT_FALSE(client.submit(to_engine_request(rs[0]), c.callback(99)));
}

TEST_F(GrpcDiscoveryTest, ResolverThatCannotAnswerKeepsTheWorkers) {
  TestWorker a(weights(), options());
  FakeDns dns;
  dns.set({a.address});
  router_grpc::GrpcEngineClient client(dns_options(dns));
  client.start();
  ASSERT_EQ(client.usable_workers(), 1u);
  dns.fail();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // several resolutions
  EXPECT_EQ(client.usable_workers(), 1u);
  EXPECT_EQ(client.worker_addresses(), std::vector<std::string>{a.address});
}

TEST_F(GrpcDiscoveryTest, ConfiguredWorkersStayWhenTheirRecordGoes) {
  TestWorker a(weights(), options());
  FakeDns dns;
  dns.set({a.address});
  router_grpc::GrpcClientOptions o = dns_options(dns);
  o.workers = {a.address};
  router_grpc::GrpcEngineClient client(o);
  client.start();
  EXPECT_EQ(client.worker_addresses().size(), 1u) << "one address, one worker";
  dns.set({});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(client.usable_workers(), 1u);
}

}  // namespace
}  // namespace v4
