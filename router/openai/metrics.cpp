#include "router/openai/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <map>
#include <sstream>

namespace v4::router {

namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// vLLM's request-latency buckets (seconds), so dashboards built for vLLM read ours alike.
const Histogram::BucketBoundaries kTtftBuckets = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08,
                                                  0.1,   0.25,  0.5,  0.75, 1.0,  2.5,  5.0,
                                                  7.5,   10.0,  20.0, 40.0, 80.0, 160.0};
const Histogram::BucketBoundaries kItlBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                                 0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0,
                                                 7.5,  10.0,  20.0, 40.0,  80.0};
const Histogram::BucketBoundaries kRequestBuckets = {
    0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
const Histogram::BucketBoundaries kTokenBuckets = {
    1,    2,    5,     10,    20,    50,     100,    200,    500,    1000,
    2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000, 1000000};
const Histogram::BucketBoundaries kTpotBuckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,
                                                  0.3,  0.4,   0.5,  0.75,  1.0, 2.5,  5.0,
                                                  7.5,  10.0,  20.0, 40.0,  80.0};
const Histogram::BucketBoundaries kParamsNBuckets = {1, 2, 5, 10, 20};
const Histogram::BucketBoundaries kOverheadBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0};

}  // namespace

struct ServerMetrics::Series {
  prometheus::Family<prometheus::Counter>* http_requests;
  prometheus::Family<prometheus::Counter>* request_success;
  prometheus::Counter* prompt_tokens;
  prometheus::Counter* generation_tokens;
  prometheus::Histogram* ttft;
  prometheus::Histogram* itl;
  prometheus::Histogram* e2e;
  prometheus::Histogram* queue;
  prometheus::Histogram* request_prompt_tokens;
  prometheus::Histogram* request_generation_tokens;
  prometheus::Histogram* overhead;
  prometheus::Histogram* tpot;
  prometheus::Histogram* inference;
  prometheus::Histogram* prefill;
  prometheus::Histogram* decode;
  prometheus::Histogram* params_n;
  prometheus::Histogram* params_max_tokens;
  prometheus::Histogram* max_generation_tokens;
  prometheus::Family<prometheus::Gauge>* cache_config;
  prometheus::Family<prometheus::Histogram>* iteration_tokens_family;
  prometheus::Histogram* iteration_tokens = nullptr;  // made at the first scrape
  prometheus::Gauge* running;
  prometheus::Gauge* waiting;
  prometheus::Gauge* pages_used;
  prometheus::Gauge* pages_free;
  prometheus::Gauge* kv_usage;
  prometheus::Gauge* prefix_hit_ratio;
  prometheus::Counter* prefix_queries;
  prometheus::Counter* prefix_hits;
  prometheus::Counter* malformed_outputs;
  prometheus::Counter* replayed_tool_calls;
  prometheus::Counter* preemptions;
  // (counter, its EngineSnapshot field) for the engine's plain counts: the KV disk store's and
  // the step graphs'.
  std::vector<std::pair<prometheus::Counter*, uint64_t EngineSnapshot::*>> counts;
  // The same for speculative decoding; the per-position counters are made as positions appear.
  std::vector<std::pair<prometheus::Counter*, uint64_t EngineSnapshot::*>> spec;
  prometheus::Family<prometheus::Counter>* spec_per_position_family;
  std::vector<prometheus::Counter*> spec_per_position;
  prometheus::Family<prometheus::Histogram>* batch_size_family;
  prometheus::Family<prometheus::Histogram>* step_seconds_family;
  prometheus::Histogram* batch_size = nullptr;  // made at the first scrape (bounds from engine)
  prometheus::Histogram* step_seconds = nullptr;
  prometheus::Family<prometheus::Counter>* expert_selections;
  std::map<std::pair<size_t, size_t>, prometheus::Counter*> expert_counters;
  // The default summary, per layer: selections, and max/mean load over the last scrape interval.
  prometheus::Family<prometheus::Counter>* layer_selections;
  prometheus::Family<prometheus::Gauge>* layer_imbalance;
  std::vector<prometheus::Counter*> layer_counters;
  std::vector<prometheus::Gauge*> layer_gauges;
  // Expert-parallel worker groups (made at the first scrape that reports a group).
  prometheus::Family<prometheus::Counter>* ep_bytes_family;
  prometheus::Family<prometheus::Counter>* ep_seconds_family;
  prometheus::Family<prometheus::Counter>* ep_exchanges_family;
  prometheus::Family<prometheus::Counter>* ep_overlapped_family;
  prometheus::Family<prometheus::Counter>* ep_joins_family;
  prometheus::Counter *ep_dispatch_bytes = nullptr, *ep_combine_bytes = nullptr;
  prometheus::Counter *ep_dispatch_seconds = nullptr, *ep_expert_seconds = nullptr,
                      *ep_combine_seconds = nullptr, *ep_overlapped_seconds = nullptr;
  prometheus::Counter *ep_exchanges = nullptr, *ep_joins = nullptr;
};

ServerMetrics::ServerMetrics(std::string model_name, bool expert_detail)
    : model_(std::move(model_name)),
      expert_detail_(expert_detail),
      registry_(std::make_shared<prometheus::Registry>()),
      s_(std::make_unique<Series>()) {
  prometheus::Registry& r = *registry_;
  const prometheus::Labels model = {{"model_name", model_}};
  auto counter = [&](const char* name, const char* help) -> prometheus::Counter& {
    return BuildCounter().Name(name).Help(help).Register(r).Add(model);
  };
  auto gauge = [&](const char* name, const char* help) -> prometheus::Gauge& {
    return BuildGauge().Name(name).Help(help).Register(r).Add(model);
  };
  auto histogram = [&](const char* name, const char* help,
                       const Histogram::BucketBoundaries& buckets) -> Histogram& {
    return BuildHistogram().Name(name).Help(help).Register(r).Add(model, buckets);
  };
  Series& s = *s_;
  s.http_requests = &BuildCounter()
                         .Name("v4serve:http_requests_total")
                         .Help("HTTP requests answered, by handler and status (499: client left)")
                         .Register(r);
  s.request_success = &BuildCounter()
                           .Name("v4serve:request_success_total")
                           .Help("Finished generation requests by finish reason")
                           .Register(r);
  s.prompt_tokens = &counter("v4serve:prompt_tokens_total", "Prefill tokens processed");
  s.generation_tokens = &counter("v4serve:generation_tokens_total", "Generated tokens");
  s.ttft = &histogram("v4serve:time_to_first_token_seconds", "Time to first token", kTtftBuckets);
  s.itl =
      &histogram("v4serve:inter_token_latency_seconds", "Time between output tokens", kItlBuckets);
  s.e2e = &histogram("v4serve:e2e_request_latency_seconds", "End-to-end request latency",
                     kRequestBuckets);
  s.queue = &histogram("v4serve:request_queue_time_seconds",
                       "Time a request waited before its first engine step", kRequestBuckets);
  s.request_prompt_tokens =
      &histogram("v4serve:request_prompt_tokens", "Prompt tokens per request", kTokenBuckets);
  s.request_generation_tokens = &histogram("v4serve:request_generation_tokens",
                                           "Generated tokens per request", kTokenBuckets);
  s.overhead = &histogram("v4serve:request_overhead_seconds",
                          "Server CPU time per request outside the engine: HTTP parsing and "
                          "writing, JSON parsing, rendering, tokenization, detokenization and "
                          "JSON output",
                          kOverheadBuckets);
  s.tpot = &histogram("v4serve:request_time_per_output_token_seconds",
                      "Mean time per output token of a request (decode time / (tokens - 1))",
                      kTpotBuckets);
  s.inference =
      &histogram("v4serve:request_inference_time_seconds",
                 "Time a request spent in the engine after its queue wait", kRequestBuckets);
  s.prefill =
      &histogram("v4serve:request_prefill_time_seconds",
                 "Time from a request's first engine step to its first token", kRequestBuckets);
  s.decode = &histogram("v4serve:request_decode_time_seconds",
                        "Time from a request's first token to its last", kRequestBuckets);
  s.params_n =
      &histogram("v4serve:request_params_n", "The n parameter of requests", kParamsNBuckets);
  s.params_max_tokens =
      &histogram("v4serve:request_params_max_tokens",
                 "The max_tokens parameter of requests (as resolved)", kTokenBuckets);
  s.max_generation_tokens =
      &histogram("v4serve:request_max_num_generation_tokens",
                 "Generated tokens of the longest choice of a request", kTokenBuckets);
  s.malformed_outputs =
      &counter("v4serve:malformed_output_total",
               "Choices whose output broke the chat format (malformed DSML, no </think>) and "
               "was returned as content");
  s.replayed_tool_calls =
      &counter("v4serve:tool_call_replays_total",
               "Tool calls sent back by clients that rendered with the exact DSML generated");
  s.cache_config = &BuildGauge()
                        .Name("v4serve:cache_config_info")
                        .Help("Information of the KV cache configuration (labels)")
                        .Register(r);
  s.iteration_tokens_family = &BuildHistogram()
                                   .Name("v4serve:iteration_tokens_total")
                                   .Help("Tokens (prefill and decode) per engine step")
                                   .Register(r);
  s.running = &gauge("v4serve:num_requests_running", "Requests in the running batch");
  s.waiting = &gauge("v4serve:num_requests_waiting", "Requests waiting to be scheduled");
  s.pages_used = &gauge("v4serve:kv_cache_pages_used", "KV cache pages held by requests");
  s.pages_free = &gauge("v4serve:kv_cache_pages_free",
                        "KV cache pages free, with cached prefix pages no request holds");
  s.kv_usage = &gauge("v4serve:kv_cache_usage_perc", "Fraction of KV cache pages in use (0-1)");
  s.prefix_hit_ratio =
      &gauge("v4serve:prefix_cache_hit_ratio", "Prefix cache hits / queries in tokens since start");
  s.prefix_queries =
      &counter("v4serve:prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache");
  s.prefix_hits =
      &counter("v4serve:prefix_cache_hits_total", "Prompt tokens found in the prefix cache");
  s.preemptions = &counter("v4serve:num_preemptions_total", "Requests preempted (recomputed)");
  s.counts = {
      {&counter("v4serve:kv_disk_hits_total", "Prefix pages loaded from the KV disk store"),
       &EngineSnapshot::kv_disk_hits},
      {&counter("v4serve:kv_disk_writes_total", "Prefix page files written to the KV disk store"),
       &EngineSnapshot::kv_disk_writes},
      {&counter("v4serve:kv_disk_evictions_total",
                "Page files removed from the KV disk store to stay within --kv-disk-gb"),
       &EngineSnapshot::kv_disk_evictions},
      {&counter("v4serve:kv_disk_ignored_files_total",
                "Page files ignored: another model or geometry, corrupt, truncated or unfinished"),
       &EngineSnapshot::kv_disk_ignored},
      {&counter("v4serve:kv_disk_dropped_total",
                "Evicted prefix pages not written because the write queue was full"),
       &EngineSnapshot::kv_disk_dropped},
      {&counter("v4serve:step_graph_captures_total",
                "Decode steps recorded as a graph (CUDA graph) for their shape"),
       &EngineSnapshot::step_graph_captures},
      {&counter("v4serve:step_graph_replays_total",
                "Decode steps launched from a recording instead of kernel by kernel"),
       &EngineSnapshot::step_graph_replays}};
  s.spec = {{&counter("v4serve:spec_decode_num_drafts_total",
                      "Speculative decoding: steps of a request that verified drafts"),
             &EngineSnapshot::spec_num_drafts},
            {&counter("v4serve:spec_decode_num_draft_tokens_total",
                      "Speculative decoding: draft tokens verified"),
             &EngineSnapshot::spec_num_draft_tokens},
            {&counter("v4serve:spec_decode_num_accepted_tokens_total",
                      "Speculative decoding: draft tokens accepted (equal to the sampled token)"),
             &EngineSnapshot::spec_num_accepted_tokens}};
  s.spec_per_position_family =
      &BuildCounter()
           .Name("v4serve:spec_decode_num_accepted_tokens_per_pos_total")
           .Help("Speculative decoding: accepted draft tokens by position in the step's drafts")
           .Register(r);
  s.batch_size_family =
      &BuildHistogram().Name("v4serve:batch_size").Help("Sequences per engine step").Register(r);
  s.step_seconds_family = &BuildHistogram()
                               .Name("v4serve:step_duration_seconds")
                               .Help("Wall time of one engine step")
                               .Register(r);
  s.layer_selections = &BuildCounter()
                            .Name("v4serve:expert_layer_selections_total")
                            .Help("Routed-expert selections per MoE layer")
                            .Register(r);
  s.layer_imbalance = &BuildGauge()
                           .Name("v4serve:expert_load_imbalance")
                           .Help(
                               "Per MoE layer, the busiest expert's selections over the mean, "
                               "in the last scrape interval with any (1: balanced)")
                           .Register(r);
  s.ep_bytes_family = &BuildCounter()
                           .Name("v4serve:ep_alltoall_bytes_total")
                           .Help(
                               "Expert parallelism: bytes the ranks sent to other ranks, by "
                               "direction (dispatch: token rows out; combine: results back)")
                           .Register(r);
  s.ep_seconds_family = &BuildCounter()
                             .Name("v4serve:ep_moe_phase_seconds_total")
                             .Help(
                                 "Expert parallelism: wall time of the MoE layers' phases, summed "
                                 "over ranks (dispatch, experts, combine)")
                             .Register(r);
  s.ep_overlapped_family =
      &BuildCounter()
           .Name("v4serve:ep_overlapped_seconds_total")
           .Help(
               "Expert parallelism: exchange time that ran while the ranks computed (the shared "
               "expert, their own rows), summed over ranks; the phases count only the waits")
           .Register(r);
  s.ep_exchanges_family = &BuildCounter()
                               .Name("v4serve:ep_moe_exchanges_total")
                               .Help("Expert parallelism: MoE layers run across a group, per rank")
                               .Register(r);
  s.ep_joins_family =
      &BuildCounter()
           .Name("v4serve:ep_idle_step_joins_total")
           .Help("Expert parallelism: steps a rank joined with no tokens of its own")
           .Register(r);
  s.expert_selections =
      &BuildCounter()
           .Name("v4serve:expert_selections_total")
           .Help("Routed-expert selections per layer and expert (--metrics-expert-detail)")
           .Register(r);
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::http_request(const std::string& handler, int status) {
  s_->http_requests->Add({{"handler", handler}, {"status", std::to_string(status)}}).Increment();
}

void ServerMetrics::time_to_first_token(double seconds) { s_->ttft->Observe(seconds); }

void ServerMetrics::inter_token_latency(double seconds) { s_->itl->Observe(seconds); }

void ServerMetrics::request_finished(const FinishedRequest& r) {
  Series& s = *s_;
  s.e2e->Observe(r.e2e_seconds);
  s.queue->Observe(r.queue_seconds);
  s.inference->Observe(std::max(0.0, r.e2e_seconds - r.queue_seconds));
  if (r.first_token_seconds) {
    s.prefill->Observe(std::max(0.0, *r.first_token_seconds - r.queue_seconds));
    s.decode->Observe(r.decode_seconds);
  }
  // As vLLM: a mean over the gaps between tokens, so a request needs two of them.
  if (r.max_generation_tokens > 1)
    s.tpot->Observe(r.decode_seconds / static_cast<double>(r.max_generation_tokens - 1));
  s.prompt_tokens->Increment(r.prompt_tokens);
  s.generation_tokens->Increment(r.generation_tokens);
  s.request_prompt_tokens->Observe(r.prompt_tokens);
  s.request_generation_tokens->Observe(r.generation_tokens);
  s.params_n->Observe(r.n);
  s.params_max_tokens->Observe(r.max_tokens);
  s.max_generation_tokens->Observe(r.max_generation_tokens);
  s.request_success->Add({{"model_name", model_}, {"finished_reason", r.finish_reason}})
      .Increment();
}

void ServerMetrics::set_cache_config(
    const std::vector<std::pair<std::string, std::string>>& labels) {
  prometheus::Labels all(labels.begin(), labels.end());
  all["model_name"] = model_;
  s_->cache_config->Add(all).Set(1);
}

void ServerMetrics::request_overhead(double seconds) { s_->overhead->Observe(seconds); }

void ServerMetrics::malformed_output() { s_->malformed_outputs->Increment(); }

void ServerMetrics::tool_calls_replayed(size_t calls) {
  s_->replayed_tool_calls->Increment(static_cast<double>(calls));
}

// Engine histograms are cumulative (counts[i] = observations <= bounds[i]); prometheus-cpp
// takes per-bucket increments.
void ServerMetrics::advance(prometheus::Histogram& histogram, const EngineHistogram& now,
                            EngineHistogram& last) {
  if (now.counts.size() != now.bounds.size() + 1) return;
  if (last.counts.size() != now.counts.size()) last.counts.assign(now.counts.size(), 0);
  std::vector<double> increments(now.counts.size());
  uint64_t below_now = 0, below_last = 0;
  for (size_t i = 0; i < now.counts.size(); ++i) {
    const uint64_t bucket_now = now.counts[i] - below_now;
    const uint64_t bucket_last = last.counts[i] - below_last;
    increments[i] = static_cast<double>(bucket_now - std::min(bucket_now, bucket_last));
    below_now = now.counts[i];
    below_last = last.counts[i];
  }
  histogram.ObserveMultiple(increments, std::max(0.0, now.sum - last.sum));
  last = now;
}

void ServerMetrics::refresh(const EngineSnapshot& now) {
  Series& s = *s_;
  s.running->Set(now.running);
  s.waiting->Set(now.waiting);
  s.pages_used->Set(now.pages_used);
  s.pages_free->Set(now.pages_free);
  const double pages = static_cast<double>(now.pages_used) + now.pages_free;
  s.kv_usage->Set(pages > 0 ? now.pages_used / pages : 0.0);
  s.prefix_hit_ratio->Set(now.prefix_queries > 0 ? static_cast<double>(now.prefix_hits) /
                                                       static_cast<double>(now.prefix_queries)
                                                 : 0.0);
  auto grow = [](prometheus::Counter& c, uint64_t now_value, uint64_t last_value) {
    if (now_value > last_value) c.Increment(static_cast<double>(now_value - last_value));
  };
  grow(*s.prefix_queries, now.prefix_queries, last_.prefix_queries);
  grow(*s.prefix_hits, now.prefix_hits, last_.prefix_hits);
  grow(*s.preemptions, now.preemptions, last_.preemptions);
  for (auto [c, field] : s.counts) {
    grow(*c, now.*field, last_.*field);
    last_.*field = std::max(now.*field, last_.*field);
  }
  const prometheus::Labels model = {{"model_name", model_}};
  if (!s.batch_size && !now.batch_size.bounds.empty())
    s.batch_size = &s.batch_size_family->Add(model, now.batch_size.bounds);
  if (!s.step_seconds && !now.step_seconds.bounds.empty())
    s.step_seconds = &s.step_seconds_family->Add(model, now.step_seconds.bounds);
  if (s.batch_size) advance(*s.batch_size, now.batch_size, last_.batch_size);
  if (s.step_seconds) advance(*s.step_seconds, now.step_seconds, last_.step_seconds);
  if (!s.iteration_tokens && !now.step_tokens.bounds.empty())
    s.iteration_tokens = &s.iteration_tokens_family->Add(model, now.step_tokens.bounds);
  if (s.iteration_tokens) advance(*s.iteration_tokens, now.step_tokens, last_.step_tokens);
  refresh_expert_load(now);
  refresh_group_traffic(now.group);
  refresh_speculative(now);
  last_.running = now.running;
  last_.prefix_queries = std::max(now.prefix_queries, last_.prefix_queries);
  last_.prefix_hits = std::max(now.prefix_hits, last_.prefix_hits);
  last_.preemptions = std::max(now.preemptions, last_.preemptions);
  last_.expert_selections = now.expert_selections;
}

void ServerMetrics::refresh_speculative(const EngineSnapshot& now) {
  Series& s = *s_;
  // Sums over the workers drop when a worker leaves: count only growth past the highest seen.
  auto grow = [](prometheus::Counter& c, uint64_t now_value, uint64_t& last_value) {
    if (now_value > last_value) {
      c.Increment(static_cast<double>(now_value - last_value));
      last_value = now_value;
    }
  };
  for (auto [c, field] : s.spec) grow(*c, now.*field, last_.*field);
  std::vector<uint64_t>& last = last_.spec_accepted_per_position;
  for (size_t p = 0; p < now.spec_accepted_per_position.size(); ++p) {
    if (s.spec_per_position.size() <= p) {
      s.spec_per_position.push_back(&s.spec_per_position_family->Add(
          {{"model_name", model_}, {"position", std::to_string(p)}}));
      last.resize(p + 1, 0);
    }
    grow(*s.spec_per_position[p], now.spec_accepted_per_position[p], last[p]);
  }
}

void ServerMetrics::refresh_group_traffic(const EngineGroupTraffic& now) {
  Series& s = *s_;
  if (!s.ep_exchanges) {
    if (now.exchanges == 0 && now.joined_steps == 0) return;
    const prometheus::Labels model = {{"model_name", model_}};
    auto with = [&](const char* key, const char* value) {
      prometheus::Labels l = model;
      l[key] = value;
      return l;
    };
    s.ep_dispatch_bytes = &s.ep_bytes_family->Add(with("direction", "dispatch"));
    s.ep_combine_bytes = &s.ep_bytes_family->Add(with("direction", "combine"));
    s.ep_dispatch_seconds = &s.ep_seconds_family->Add(with("phase", "dispatch"));
    s.ep_expert_seconds = &s.ep_seconds_family->Add(with("phase", "experts"));
    s.ep_combine_seconds = &s.ep_seconds_family->Add(with("phase", "combine"));
    s.ep_overlapped_seconds = &s.ep_overlapped_family->Add(model);
    s.ep_exchanges = &s.ep_exchanges_family->Add(model);
    s.ep_joins = &s.ep_joins_family->Add(model);
  }
  // Sums over the workers drop when a worker leaves: count only growth past the highest seen.
  auto grow = [](prometheus::Counter& c, auto now_value, auto& last_value) {
    if (now_value > last_value) {
      c.Increment(static_cast<double>(now_value - last_value));
      last_value = now_value;
    }
  };
  EngineGroupTraffic& last = last_.group;
  grow(*s.ep_dispatch_bytes, now.dispatch_bytes, last.dispatch_bytes);
  grow(*s.ep_combine_bytes, now.combine_bytes, last.combine_bytes);
  grow(*s.ep_dispatch_seconds, now.dispatch_seconds, last.dispatch_seconds);
  grow(*s.ep_expert_seconds, now.expert_seconds, last.expert_seconds);
  grow(*s.ep_combine_seconds, now.combine_seconds, last.combine_seconds);
  grow(*s.ep_overlapped_seconds, now.overlapped_seconds, last.overlapped_seconds);
  grow(*s.ep_exchanges, now.exchanges, last.exchanges);
  grow(*s.ep_joins, now.joined_steps, last.joined_steps);
}

void ServerMetrics::refresh_expert_load(const EngineSnapshot& now) {
  Series& s = *s_;
  for (size_t layer = 0; layer < now.expert_selections.size(); ++layer) {
    const std::vector<uint64_t>& counts = now.expert_selections[layer];
    const std::vector<uint64_t>* last =
        layer < last_.expert_selections.size() ? &last_.expert_selections[layer] : nullptr;
    auto before = [&](size_t expert) {
      return last && expert < last->size() ? (*last)[expert] : uint64_t{0};
    };
    if (!expert_detail_) {
      if (s.layer_counters.size() <= layer) {
        s.layer_counters.resize(layer + 1, nullptr);
        s.layer_gauges.resize(layer + 1, nullptr);
      }
      const prometheus::Labels labels = {{"model_name", model_}, {"layer", std::to_string(layer)}};
      if (!s.layer_counters[layer]) {
        s.layer_counters[layer] = &s.layer_selections->Add(labels);
        s.layer_gauges[layer] = &s.layer_imbalance->Add(labels);
      }
      uint64_t total = 0, most = 0;
      for (size_t e = 0; e < counts.size(); ++e) {
        const uint64_t d = counts[e] >= before(e) ? counts[e] - before(e) : 0;
        total += d;
        most = std::max(most, d);
      }
      if (total == 0) continue;  // nothing routed since the last scrape: keep the last figure
      s.layer_counters[layer]->Increment(static_cast<double>(total));
      // max / mean: 1 when every expert got the same share, n_expert when one got everything.
      s.layer_gauges[layer]->Set(static_cast<double>(most) * static_cast<double>(counts.size()) /
                                 static_cast<double>(total));
      continue;
    }
    for (size_t expert = 0; expert < counts.size(); ++expert) {
      if (counts[expert] <= before(expert)) continue;
      prometheus::Counter*& c = s.expert_counters[{layer, expert}];
      if (!c)
        c = &s.expert_selections->Add({{"model_name", model_},
                                       {"layer", std::to_string(layer)},
                                       {"expert", std::to_string(expert)}});
      c->Increment(static_cast<double>(counts[expert] - before(expert)));
    }
  }
}

std::string ServerMetrics::scrape(const EngineSnapshot& snapshot) {
  std::lock_guard<std::mutex> lock(mutex_);
  refresh(snapshot);
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, registry_->Collect());
  return out.str();
}

}  // namespace v4::router
