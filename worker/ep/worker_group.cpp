#include "worker/ep/worker_group.h"

#include <algorithm>
#include <cctype>
#include <vector>

namespace v4 {

Status validate(const WorkerGroupOptions& o) {
  if (o.name.empty() || o.name.size() > 128)
    return Status::error("--group: a name of 1 to 128 characters");
  for (char c : o.name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return Status::error("--group '" + o.name + "': use letters, digits, '-', '_' and '.'");
  }
  if (o.ranks < 1 || o.ranks > 1024)
    return Status::error("--ranks " + std::to_string(o.ranks) + ": a group has 1 to 1024 ranks");
  if (o.rank < 0 || o.rank >= o.ranks)
    return Status::error("--rank " + std::to_string(o.rank) + " is outside a group of " +
                         std::to_string(o.ranks) + " ranks (0 to " + std::to_string(o.ranks - 1) +
                         ")");
  const auto has_port = [](const std::string& a) {
    const size_t colon = a.rfind(':');
    return colon != std::string::npos && colon > 0 && colon + 1 < a.size();
  };
  if (!has_port(o.leader))
    return Status::error("--group-leader '" + o.leader + "': rank 0's rendezvous as host:port");
  if (!o.leader_listen.empty() && !has_port(o.leader_listen))
    return Status::error("--group-listen '" + o.leader_listen + "': host:port");
  if (o.host.empty()) return Status::error("--group-host: this rank's address for its peers");
  if (o.timeout.count() <= 0) return Status::error("--group-timeout-s must be positive");
  if (o.expert_stats.empty() && o.redundant_experts > 0)
    return Status::error("--redundant-experts needs --expert-stats (balanced placement)");
  return Status::ok();
}

Result<ExpertPlacement> make_placement(const WorkerGroupOptions& o, const V4Config& c) {
  if (o.expert_stats.empty()) {
    if (o.redundant_experts > 0)
      return Status::error("--redundant-experts needs --expert-stats (balanced placement)");
    return ExpertPlacement::contiguous(c.n_expert, o.ranks);
  }
  Result<ExpertLoad> load = read_expert_load(o.expert_stats, c.n_layer, c.n_expert);
  if (!load) return load.status();
  return ExpertPlacement::balanced(*load, o.ranks, o.redundant_experts);
}

WorkerGroup::~WorkerGroup() {
  // Peers may still be reading from the store while this rank leaves: a short grace only.
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
}

Result<std::unique_ptr<WorkerGroup>> WorkerGroup::join(const WorkerGroupOptions& o,
                                                       Backend& backend, const V4Config& config,
                                                       const GroupDevice& device) {
  if (Status s = validate(o); !s) return s;
  // A bad trace fails here, before any peer waits on this rank.
  Result<ExpertPlacement> placement = make_placement(o, config);
  if (!placement) return placement.status();
  std::unique_ptr<WorkerGroup> group(new WorkerGroup());
  if (o.rank == 0) {
    group->service_ = std::make_unique<RendezvousService>();
    grpc::ServerBuilder builder;
    int port = 0;
    const std::string listen = o.leader_listen.empty() ? o.leader : o.leader_listen;
    builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(group->service_.get());
    group->server_ = builder.BuildAndStart();
    if (!group->server_ || port == 0)
      return Status::error("group " + o.name + ": rank 0 cannot listen on " + listen +
                           " for the rendezvous");
  }
  group->store_ = std::make_unique<GrpcRendezvousStore>(o.leader, o.timeout);
  GlooRendezvous meet;
  meet.store = group->store_.get();
  meet.group = o.name;
  meet.rank = o.rank;
  meet.size = o.ranks;
  meet.host = o.host;
  meet.timeout = o.timeout;
  Result<std::unique_ptr<GlooExpertComm>> comm = GlooExpertComm::connect(meet);
  if (!comm)
    return Status::error("group " + o.name + " rank " + std::to_string(o.rank) + ": " +
                         comm.message());
  group->comm_ = std::move(*comm);
  group->two_micro_batches_ = o.two_micro_batches;
  group->max_step_tokens_ = o.max_step_tokens;
  if (Status s = group->compare_models(config, placement->digest()); !s)
    return Status::error("group " + o.name + " rank " + std::to_string(o.rank) + ": " +
                         s.message());
  // Every rank has met on Gloo and agreed on the model: the rows' own communicator, if any, now.
  if (device.exchange) {
    Result<std::unique_ptr<ExpertComm>> exchange = device.exchange(*group->store_);
    if (!exchange)
      return Status::error("group " + o.name + " rank " + std::to_string(o.rank) + ": " +
                           exchange.message());
    group->exchange_ = std::move(*exchange);
    if (group->exchange_->rank() != o.rank || group->exchange_->size() != o.ranks)
      return Status::error("group " + o.name +
                           ": the rows' communicator numbers its ranks "
                           "otherwise than the group");
  }
  ExpertComm& rows = group->exchange_ ? *group->exchange_ : *group->comm_;
  group->dispatcher_ = std::make_unique<EpExpertDispatcher>(backend, rows, std::move(*placement),
                                                            o.overlap, device.held_only);
  return group;
}

// Ranks with different models would exchange rows of different widths (Gloo aborts on a size
// mismatch) or route to experts a peer lacks: compare the shapes that matter once, up front.
Status WorkerGroup::compare_models(const V4Config& c, uint64_t placement_digest) {
  const int64_t mine[] = {c.n_layer,
                          c.n_embd,
                          c.n_vocab,
                          c.n_expert,
                          c.n_expert_used,
                          static_cast<int64_t>(placement_digest),
                          two_micro_batches_ ? 1 : 0,
                          max_step_tokens_};
  constexpr int64_t n = sizeof mine / sizeof mine[0];
  std::vector<int64_t> all(static_cast<size_t>(n * comm_->size()));
  if (Status s = comm_->all_gather(mine, n, all.data()); !s) return s;
  for (int r = 0; r < comm_->size(); ++r) {
    if (!std::equal(mine, mine + n, all.begin() + r * n)) {
      return Status::error(
          "rank " + std::to_string(r) +
          " loaded a model of another shape (layers, width, vocabulary, experts, experts per "
          "token), placed the experts otherwise or sizes or splits its steps otherwise: every "
          "rank of a group must load the same model with the same --expert-stats, "
          "--redundant-experts, --max-batch-tokens and --two-micro-batches");
    }
  }
  return Status::ok();
}

GroupTraffic WorkerGroup::traffic() const {
  GroupTraffic t = dispatcher_->traffic();
  t.joined_steps = joined_steps_;
  return t;
}

Result<uint64_t> WorkerGroup::agree(uint64_t local_tokens) {
  // The turn number rides along so that ranks whose loops drifted apart are caught here rather
  // than exchanging rows of different layers.
  const int64_t mine[2] = {static_cast<int64_t>(turn_), static_cast<int64_t>(local_tokens)};
  std::vector<int64_t> all(2 * static_cast<size_t>(ranks()));
  if (Status s = comm_->all_gather(mine, 2, all.data()); !s) return s;
  uint64_t total = 0;
  std::vector<int64_t> tokens(static_cast<size_t>(ranks()));
  for (int r = 0; r < ranks(); ++r) {
    if (all[2 * r] != mine[0])
      return Status::error("rank " + std::to_string(r) + " is at loop turn " +
                           std::to_string(all[2 * r]) + ", this rank at " +
                           std::to_string(mine[0]) + ": the group is out of step");
    const int64_t t = all[2 * r + 1];
    const int64_t most = max_step_tokens_ > 0 ? int64_t{max_step_tokens_} : int64_t{1} << 32;
    if (t < 0 || t > most)
      return Status::error(
          "rank " + std::to_string(r) + " announced " + std::to_string(t) + " tokens for a step" +
          (max_step_tokens_ > 0 ? ", beyond --max-batch-tokens " + std::to_string(max_step_tokens_)
                                : std::string()));
    tokens[static_cast<size_t>(r)] = t;
    total += static_cast<uint64_t>(t);
  }
  // The peers' rows in this step's MoE layers are bounded by the tokens they announced here.
  dispatcher_->expect_step(tokens);
  ++turn_;
  if (total > 0 && local_tokens == 0) ++joined_steps_;
  return total;
}

}  // namespace v4
