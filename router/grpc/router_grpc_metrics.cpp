#include "router/grpc/router_grpc_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "proto/worker.pb.h"

namespace v4::router_grpc {

namespace {

constexpr std::string_view kStates[] = {"usable", "draining", "ejected"};

// A Health call on a healthy link takes well under a millisecond on loopback and a few on a
// network; the deadline (--rpc-timeout-ms, 2 s by default) bounds the top.
const prometheus::Histogram::BucketBoundaries kHealthBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5};

}  // namespace

RouterGrpcMetrics::RouterGrpcMetrics(prometheus::Registry& r)
    : state_(prometheus::BuildGauge()
                 .Name("v4serve:router_worker_state")
                 .Help("1 for the worker's state (usable, draining, ejected), 0 for the others")
                 .Register(r)),
      routed_(prometheus::BuildCounter()
                  .Name("v4serve:router_requests_routed_total")
                  .Help("Requests (and continuations) the router sent to the worker")
                  .Register(r)),
      ejections_(prometheus::BuildCounter()
                     .Name("v4serve:router_worker_ejections_total")
                     .Help("Times a usable worker stopped being usable, by reason")
                     .Register(r)),
      health_seconds_(prometheus::BuildHistogram()
                          .Name("v4serve:router_worker_health_rtt_seconds")
                          .Help("Round trip of the router's Health call to the worker")
                          .Register(r)),
      failovers_(prometheus::BuildCounter()
                     .Name("v4serve:router_failovers_total")
                     .Help("Requests resubmitted to another worker as continuations")
                     .Register(r)
                     .Add({})),
      submit_messages_(prometheus::BuildCounter()
                           .Name("v4serve:router_submit_messages_total")
                           .Help("Submit messages sent to workers (each carries one or more "
                                 "requests gathered within --batch-window-us)")
                           .Register(r)
                           .Add({})),
      submitted_requests_(prometheus::BuildCounter()
                              .Name("v4serve:router_submitted_requests_total")
                              .Help("Requests (and continuations) the Submit messages carried")
                              .Register(r)
                              .Add({})),
      worker_prefix_queries_(prometheus::BuildCounter()
                                 .Name("v4serve:router_worker_prefix_cache_queries_total")
                                 .Help("Prompt tokens the worker looked up in its prefix cache")
                                 .Register(r)),
      worker_prefix_hits_(prometheus::BuildCounter()
                              .Name("v4serve:router_worker_prefix_cache_hits_total")
                              .Help("Prompt tokens the worker found in its prefix cache")
                              .Register(r)),
      worker_step_seconds_(prometheus::BuildCounter()
                               .Name("v4serve:router_worker_step_seconds_total")
                               .Help("Wall time of the worker's engine steps")
                               .Register(r)),
      worker_ep_bytes_(prometheus::BuildCounter()
                           .Name("v4serve:router_worker_ep_alltoall_bytes_total")
                           .Help("A worker group rank's bytes sent to other ranks, by direction")
                           .Register(r)),
      worker_ep_seconds_(prometheus::BuildCounter()
                             .Name("v4serve:router_worker_ep_moe_phase_seconds_total")
                             .Help("A worker group rank's MoE exchange time, by phase")
                             .Register(r)) {}

void RouterGrpcMetrics::worker_stats(const std::string& worker,
                                     const v4serve::worker::v1::StatsResponse& s) {
  std::map<std::string, double>& last = last_[worker];
  auto grow = [&](prometheus::Family<prometheus::Counter>& family, prometheus::Labels labels,
                  const std::string& key, double now) {
    labels["worker"] = worker;
    prometheus::Counter& c = family.Add(labels);
    double& seen = last[key];
    if (now > seen) {
      c.Increment(now - seen);
      seen = now;
    }
  };
  grow(worker_prefix_queries_, {}, "pq", static_cast<double>(s.prefix_queries()));
  grow(worker_prefix_hits_, {}, "ph", static_cast<double>(s.prefix_hits()));
  grow(worker_step_seconds_, {}, "ss", s.step_seconds_sum());
  if (!s.has_group()) return;
  const auto& g = s.group();
  grow(worker_ep_bytes_, {{"direction", "dispatch"}}, "bd",
       static_cast<double>(g.dispatch_bytes()));
  grow(worker_ep_bytes_, {{"direction", "combine"}}, "bc", static_cast<double>(g.combine_bytes()));
  grow(worker_ep_seconds_, {{"phase", "dispatch"}}, "sd", g.dispatch_seconds());
  grow(worker_ep_seconds_, {{"phase", "experts"}}, "se", g.expert_seconds());
  grow(worker_ep_seconds_, {{"phase", "combine"}}, "sc", g.combine_seconds());
}

void RouterGrpcMetrics::set_state(const std::string& worker, WorkerState state) {
  for (size_t i = 0; i < std::size(kStates); ++i)
    state_.Add({{"worker", worker}, {"state", std::string(kStates[i])}})
        .Set(i == static_cast<size_t>(state) ? 1.0 : 0.0);
}

void RouterGrpcMetrics::remove_worker(const std::string& worker) {
  for (std::string_view s : kStates)
    state_.Remove(&state_.Add({{"worker", worker}, {"state", std::string(s)}}));
  if (last_.erase(worker) == 0) return;
  for (auto* family : {&worker_prefix_queries_, &worker_prefix_hits_, &worker_step_seconds_})
    family->Remove(&family->Add({{"worker", worker}}));
  for (const char* d : {"dispatch", "combine"})
    worker_ep_bytes_.Remove(&worker_ep_bytes_.Add({{"worker", worker}, {"direction", d}}));
  for (const char* p : {"dispatch", "experts", "combine"})
    worker_ep_seconds_.Remove(&worker_ep_seconds_.Add({{"worker", worker}, {"phase", p}}));
}

void RouterGrpcMetrics::routed(const std::string& worker) {
  routed_.Add({{"worker", worker}}).Increment();
}

void RouterGrpcMetrics::failover() { failovers_.Increment(); }

void RouterGrpcMetrics::ejected(const std::string& worker, std::string_view reason) {
  ejections_.Add({{"worker", worker}, {"reason", std::string(reason)}}).Increment();
}

void RouterGrpcMetrics::submit_message(size_t requests) {
  submit_messages_.Increment();
  submitted_requests_.Increment(static_cast<double>(requests));
}

void RouterGrpcMetrics::health_round_trip(const std::string& worker, double seconds) {
  health_seconds_.Add({{"worker", worker}}, kHealthBuckets).Observe(seconds);
}

}  // namespace v4::router_grpc
