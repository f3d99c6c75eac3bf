// Expert parallelism against one rank: N real processes (forked, meeting through Gloo's file
// store, bounded in time) each run their own sequences (data-parallel attention) while the MoE
// layers exchange rows; every rank's logits must equal, bit for bit, those of the same batches
// run on one rank that holds every expert. A rank with nothing to do joins with an empty step.
// On the emulated device each rank holds only its own experts in its device memory, and the rows
// travel between the ranks' device buffers, as a GPU rank's do over NCCL.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include "model/v4/device_weights.h"
#include "tests/unit/model/backend/device_test_util.h"
#include "tests/unit/worker/tiny_engine_fixture.h"
#include "worker/ep/ep_expert_dispatcher.h"
#include "worker/ep/gloo_expert_comm.h"

namespace v4 {
namespace {

constexpr int kSteps = 4;
// The most tokens a rank's step holds (its prefill: at most 111 for rank 2).
constexpr int64_t kMaxStepTokens = 128;

// Rank r's sequences: r + 1 of them, prompts of different lengths; at step 2 rank 1 has nothing
// to run and joins with an empty step.
struct Plan {
  std::vector<std::vector<int32_t>> prompts;
  bool idle(int step) const { return rank == 1 && step == 2; }
  // The tokens the rank runs at `step`: its prompts, then one per sequence.
  int64_t step_tokens(int step) const {
    if (idle(step)) return 0;
    if (step > 0) return static_cast<int64_t>(prompts.size());
    int64_t n = 0;
    for (const std::vector<int32_t>& p : prompts) n += static_cast<int64_t>(p.size());
    return n;
  }
  int rank = 0;
};

Plan plan_for(int rank, const std::function<std::vector<int32_t>(size_t, uint32_t)>& prompt) {
  Plan p;
  p.rank = rank;
  for (int j = 0; j <= rank; ++j) {
    p.prompts.push_back(prompt(20 + 7 * rank + 3 * j, static_cast<uint32_t>(10 * rank + j)));
  }
  return p;
}

size_t argmax(const float* row, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i) best = row[i] > row[best] ? i : best;
  return best;
}

// Runs a rank's plan on `forward`: a prefill step, then greedy decode steps. Returns every
// step's logits end to end, or an error.
Result<std::vector<float>> run_plan(V4Forward& forward, const Plan& plan, uint32_t vocab,
                                    const std::function<void(int)>& before_step = {}) {
  std::vector<std::unique_ptr<ContiguousKvState>> states;
  for (size_t s = 0; s < plan.prompts.size(); ++s) {
    states.push_back(
        std::make_unique<ContiguousKvState>(forward.weights().config, forward.backend()));
  }
  std::vector<std::vector<int32_t>> next = plan.prompts;
  std::vector<float> all;
  ForwardOutput out;
  for (int step = 0; step < kSteps; ++step) {
    std::vector<SequenceInput> inputs;
    if (!plan.idle(step)) {
      for (size_t s = 0; s < states.size(); ++s) inputs.push_back({states[s].get(), next[s]});
    }
    if (before_step) before_step(step);
    if (Status st = forward.forward(inputs, out); !st) return st;
    all.insert(all.end(), out.logits.begin(), out.logits.end());
    for (size_t s = 0; s < inputs.size(); ++s) {
      const float* row = &out.logits[(out.first_row[s] + out.row_count[s] - 1) * vocab];
      next[s] = {static_cast<int32_t>(argmax(row, vocab))};
    }
  }
  return all;
}

class EpDispatcherTest : public EngineTest {
 protected:
  // When set, every rank uses it instead of contiguous shards (the forked ranks inherit it).
  static inline std::optional<ExpertPlacement> placement_;
  // Whether the exchanges run beside the ranks' own compute (the dispatcher's default) or inline.
  static inline bool overlap_ = true;
  // Whether the ranks (and the one-rank reference) run on the emulated device.
  static inline bool device_ = false;
  // Whether the ranks split their steps in two micro-batches (the reference never does).
  static inline bool micro_ = false;
  // A rank that announces one row more than it sends to rank 0 (its counts' all-gather lies).
  static inline int liar_ = -1;

  // Passes every call through, but adds one row to what this rank announces for rank 0.
  class OneRowTooManyComm final : public ExpertComm {
   public:
    explicit OneRowTooManyComm(ExpertComm& inner) : inner_(inner) {}
    int rank() const override { return inner_.rank(); }
    int size() const override { return inner_.size(); }
    Status all_gather(const int64_t* in, int64_t n, int64_t* out) override {
      std::vector<int64_t> told(in, in + n);
      if (n == size() + 1) ++told[0];  // the counts (and the layer, last)
      return inner_.all_gather(told.data(), n, out);
    }
    Status all_to_all(const void* send, std::span<const int64_t> send_bytes, void* recv,
                      std::span<const int64_t> recv_bytes) override {
      return inner_.all_to_all(send, send_bytes, recv, recv_bytes);
    }

   private:
    ExpertComm& inner_;
  };

  // Forks `ranks` processes; each writes its logits (or an error) to dir/rank<r>.
  static void run_group(int ranks, const std::filesystem::path& dir, int deserter = -1,
                        bool may_fail = false) {
    std::vector<pid_t> children;
    for (int r = 0; r < ranks; ++r) {
      const pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) ::_exit(rank_main(r, ranks, dir, deserter));
      children.push_back(pid);
    }
    // Bounded: a rank that hangs is killed, and the test fails on its missing output.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    size_t done = 0;
    while (done < children.size() && std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid > 0) {
        ++done;
        EXPECT_TRUE(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || deserter >= 0 || may_fail))
            << "rank process " << pid;
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    for (pid_t pid : children) ::kill(pid, SIGKILL);
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    EXPECT_EQ(done, children.size()) << "ranks still running after the deadline";
  }

  // With `deserter` set, that rank connects and then leaves before the first step.
  static int rank_main(int rank, int ranks, const std::filesystem::path& dir, int deserter = -1) {
    std::ofstream out(dir / ("rank" + std::to_string(rank)), std::ios::binary);
    GlooRendezvous rv;
    rv.store_dir = (dir / "store").string();
    rv.group = "test";
    rv.rank = rank;
    rv.size = ranks;
    rv.timeout = std::chrono::seconds(deserter >= 0 || liar_ >= 0 ? 5 : 60);
    Result<std::unique_ptr<GlooExpertComm>> comm = GlooExpertComm::connect(rv);
    if (!comm) {
      out << "error: " << comm.message();
      return 1;
    }
    if (rank == deserter) return 0;
    const ExpertPlacement placement =
        placement_ ? *placement_ : ExpertPlacement(weights().config.n_expert, ranks);
    std::unique_ptr<Backend> backend = std::make_unique<CpuBackend>(1);
    const V4Weights* w = &weights();
    std::unique_ptr<DeviceWeights> on_device;
    if (device_) {
      // Only this rank's experts go to its device memory (ids ascending in each stack).
      std::string why;
      backend = testing_device::make_device_backend("emulated", &why);
      const ExpertTiers held = held_experts(placement, rank, weights().config.n_layer);
      Result<std::unique_ptr<DeviceWeights>> up =
          DeviceWeights::upload(weights(), *backend, {}, {}, &held);
      if (!backend || !up) {
        out << "error: " << (backend ? up.message() : why);
        return 1;
      }
      on_device = std::move(*up);
      w = &on_device->weights();
    }
    OneRowTooManyComm liar(**comm);
    EpExpertDispatcher experts(*backend, rank == liar_ ? static_cast<ExpertComm&>(liar) : **comm,
                               placement, overlap_, device_);
    ForwardLimits limits;
    limits.two_micro_batches = micro_;
    limits.max_tokens = kMaxStepTokens;
    V4Forward forward(*w, *backend, &experts, limits);
    // Each step every rank knows the others' token counts, as WorkerGroup::agree tells it.
    const auto expect = [&](int step) {
      std::vector<int64_t> tokens;
      for (int q = 0; q < ranks; ++q) tokens.push_back(plan_for(q, prompt).step_tokens(step));
      experts.expect_step(tokens);
    };
    Result<std::vector<float>> logits =
        run_plan(forward, plan_for(rank, prompt), w->config.n_vocab, expect);
    if (!logits) {
      out << "error: " << logits.message();
      return 1;
    }
    out.write(reinterpret_cast<const char*>(logits->data()),
              static_cast<std::streamsize>(logits->size() * sizeof(float)));
    std::ofstream(dir / ("rank" + std::to_string(rank) + ".rows"))
        << experts.rows_sent() << " " << experts.rows_served() << " " << experts.traffic().exchanges
        << " " << experts.buffer_bytes();
    return out ? 0 : 1;
  }

  // Balanced placement from a made-up skewed trace: expert e of layer l is hot when
  // (e·stride + l) mod period is 0. False when the placement is refused.
  static bool place_from_skewed_trace(int ranks, uint32_t redundant, uint32_t stride,
                                      uint32_t period) {
    const V4Config& c = weights().config;
    ExpertLoad load(c.n_layer, std::vector<uint64_t>(c.n_expert, 1));
    for (uint32_t l = 0; l < c.n_layer; ++l)
      for (uint32_t e = 0; e < c.n_expert; ++e)
        load[l][e] = (e * stride + l) % period == 0 ? 100 : 1 + e;
    Result<ExpertPlacement> p = ExpertPlacement::balanced(load, ranks, redundant);
    if (p) placement_ = *p;
    return static_cast<bool>(p);
  }

  void check_group(int ranks) {
    char tmpl[] = "/tmp/v4-ep-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    const std::filesystem::path dir(tmpl);
    std::filesystem::create_directory(dir / "store");
    run_group(ranks, dir);
    std::string why;
    std::unique_ptr<Backend> backend = device_
                                           ? testing_device::make_device_backend("emulated", &why)
                                           : std::make_unique<CpuBackend>(1);
    ASSERT_TRUE(backend) << why;
    std::unique_ptr<DeviceWeights> on_device;
    if (device_) {
      Result<std::unique_ptr<DeviceWeights>> up = DeviceWeights::upload(weights(), *backend);
      ASSERT_TRUE(up) << up.message();
      on_device = std::move(*up);
    }
    V4Forward one_rank(on_device ? on_device->weights() : weights(), *backend);
    for (int r = 0; r < ranks; ++r) {
      std::ifstream in(dir / ("rank" + std::to_string(r)), std::ios::binary);
      const std::string bytes((std::istreambuf_iterator<char>(in)), {});
      ASSERT_NE(bytes.rfind("error: ", 0), 0u) << "rank " << r << ": " << bytes;
      Result<std::vector<float>> want =
          run_plan(one_rank, plan_for(r, prompt), weights().config.n_vocab);
      ASSERT_TRUE(want) << want.message();
      ASSERT_EQ(bytes.size(), want->size() * sizeof(float)) << "rank " << r;
      EXPECT_EQ(0, std::memcmp(bytes.data(), want->data(), bytes.size()))
          << "rank " << r << " of " << ranks << " differs from one rank";
      // The experts really ran elsewhere: every rank shipped rows out and served its peers'.
      uint64_t sent = 0, served = 0, exchanges = 0, buffers = 0;
      std::ifstream(dir / ("rank" + std::to_string(r) + ".rows")) >> sent >> served >> exchanges >>
          buffers;
      EXPECT_GT(sent, 0u) << "rank " << r;
      EXPECT_GT(served, 0u) << "rank " << r;
      // Every MoE layer of every step, idle or not: twice with two micro-batches.
      EXPECT_EQ(exchanges, uint64_t{kSteps} * weights().config.n_layer * (micro_ ? 2 : 1))
          << "rank " << r;
      // The exchange buffers were sized when the forward was made, for every rank's steps of up
      // to kMaxStepTokens (what the device fit check counts), and no step grew them.
      const V4Config& c = weights().config;
      EXPECT_EQ(buffers, EpExpertDispatcher::bytes_for(ranks, kMaxStepTokens, c.n_expert_used,
                                                       c.n_embd, c.n_expert))
          << "rank " << r;
    }
    std::filesystem::remove_all(dir);
  }
};

TEST_F(EpDispatcherTest, TwoRanksMatchOneRankBitForBit) { check_group(2); }

TEST_F(EpDispatcherTest, ThreeRanksWithUnevenShardsMatchOneRank) { check_group(3); }

// With the exchanges inline instead of beside the compute: the same logits.
TEST_F(EpDispatcherTest, ThreeRanksWithoutOverlapMatchOneRank) {
  overlap_ = false;
  check_group(3);
  overlap_ = true;
}

// Balanced placement with replicas of the hottest experts (a skewed made-up trace): rows go to
// other ranks than under contiguous shards, and to replicas, yet every logit stays the same.
TEST_F(EpDispatcherTest, BalancedPlacementWithReplicasMatchesOneRank) {
  ASSERT_TRUE(place_from_skewed_trace(3, 2, 7, 5));
  check_group(3);
  placement_.reset();
}

// Two micro-batches: rank 0 has one sequence (its second half is empty), the others two and
// three, and rank 1 idles at one step (two empty exchanges per layer); every logit is one rank's.
TEST_F(EpDispatcherTest, TwoMicroBatchesMatchOneRank) {
  micro_ = true;
  check_group(3);
  micro_ = false;
}

// The same on the emulated device, whose ops read the halves' KV steps and rows on the device.
TEST_F(EpDispatcherTest, TwoMicroBatchesOnDeviceRanksMatchOneDevice) {
  micro_ = true;
  device_ = true;
  check_group(2);
  device_ = false;
  micro_ = false;
}

// Ranks on the emulated device, each holding only its share of the experts: the one-device
// forward's logits, bit for bit (the device's kernels run a row the same in any call).
TEST_F(EpDispatcherTest, DeviceRanksHoldingTheirOwnExpertsMatchOneDevice) {
  device_ = true;
  check_group(3);
  device_ = false;
}

// The same with balanced placement and replicas: a rank's stacks hold an uneven, scattered set.
TEST_F(EpDispatcherTest, DeviceRanksWithBalancedPlacementMatchOneDevice) {
  ASSERT_TRUE(place_from_skewed_trace(2, 1, 5, 7));
  device_ = true;
  check_group(2);
  device_ = false;
  placement_.reset();
}

// A peer that leaves the group turns into an error on the rank waiting for it, within the
// communicator's timeout: no hang, no crash.
TEST_F(EpDispatcherTest, ALostPeerIsAnErrorNotAHang) {
  char tmpl[] = "/tmp/v4-ep-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir(tmpl);
  std::filesystem::create_directory(dir / "store");
  run_group(2, dir, 1);
  std::ifstream in(dir / "rank0");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text.rfind("error: expert parallelism: ", 0), 0u) << text.substr(0, 200);
  std::filesystem::remove_all(dir);
}

// A peer's announced rows are bounded by the tokens it agreed to run this step times k: one row
// more is refused before any buffer is sized for it, on the ranks it told.
TEST_F(EpDispatcherTest, APeerAnnouncingOneRowTooManyIsRefused) {
  char tmpl[] = "/tmp/v4-ep-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir(tmpl);
  std::filesystem::create_directory(dir / "store");
  liar_ = 1;
  run_group(2, dir, -1, true);
  liar_ = -1;
  std::ifstream in(dir / "rank0");
  const std::string text((std::istreambuf_iterator<char>(in)), {});
  const Plan plan = plan_for(1, prompt);
  const std::string want = "error: expert parallelism: rank 1 announced ";
  EXPECT_EQ(text.rfind(want, 0), 0u) << text.substr(0, 200);
  EXPECT_NE(text.find(" rows of its " + std::to_string(plan.step_tokens(0)) + " tokens this step"),
            std::string::npos)
      << text.substr(0, 200);
  std::filesystem::remove_all(dir);
}

TEST(GlooExpertComm, RejectsARankOutsideTheGroup) {
  GlooRendezvous rv;
  rv.store_dir = "/tmp";
  rv.rank = 2;
  rv.size = 2;
  Result<std::unique_ptr<GlooExpertComm>> comm = GlooExpertComm::connect(rv);
  ASSERT_FALSE(comm);
  EXPECT_NE(comm.message().find("outside a group of 2"), std::string::npos) << comm.message();
}

}  // namespace
}  // namespace v4
