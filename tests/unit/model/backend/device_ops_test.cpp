// The device backends' element-wise, routing, hyper-connection and KV-simulation ops against
// CpuBackend on random inputs. These ops run the CPU's own V4_HD arithmetic per index, so the
// results are the CPU's bit for bit, except where the device's libm (expf, cos/sin) may round
// differently by an ulp: those comparisons allow a few float ulps. (The KV update, the indexer
// and sparse attention are compared through the whole forward: device_forward_test.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/cpu/hyper_connections.h"
#include "kernels/device/host_exec.h"
#include "model/backend/cpu_backend.h"
#include "model/backend/device/device_ops_hc.h"
#include "tests/unit/model/backend/device_test_util.h"

namespace v4 {
namespace {

using testing_device::download;
using testing_device::randoms;
using testing_device::upload;
using testing_device::zeros_on;

// |a − b| within `ulps` float ulps of the larger magnitude (libm differences), elementwise.
void expect_ulps(const std::vector<float>& got, const std::vector<float>& want, float ulps,
                 const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const float tol = ulps * std::numeric_limits<float>::epsilon() *
                      std::max({std::fabs(got[i]), std::fabs(want[i]), 1e-30f});
    ASSERT_NEAR(got[i], want[i], tol) << what << " element " << i;
  }
}

class DeviceOps : public testing_device::OnEachDevice {};

TEST_P(DeviceOps, RowAndElementOpsAreTheCpus) {
  const int64_t n = 100, rows = 5;  // n not a multiple of 32 or 64
  const std::vector<float> x = randoms(n * rows, 1), w = randoms(n, 2);
  std::vector<float> want(n * rows);
  cpu_.rms_norm(x.data(), w.data(), n, rows, 1e-6f, want.data());
  auto dx = upload(*be_, x), dw = upload(*be_, w);
  auto dy = zeros_on<float>(*be_, want.size());
  be_->rms_norm(dx.get(), dw.get(), n, rows, 1e-6f, dy.get());
  // The device sums the squares in fp64 in lane order, the CPU sequentially: the double sums
  // differ in their last bits, which the float scale does not show for these inputs.
  EXPECT_EQ(download(*be_, dy), want) << "rms_norm";

  // scale, add, fp8 round trip (blocks of 64, a short last block), the indexer's QAT transform.
  std::vector<float> a = x, b = w;
  cpu_.scale(a.data(), n * rows, 0.37f);
  be_->scale(dx.get(), n * rows, 0.37f);
  EXPECT_EQ(download(*be_, dx), a) << "scale";
  cpu_.add(b.data(), n, a.data());
  be_->add(dw.get(), n, dx.get());
  EXPECT_EQ(download(*be_, dx), a) << "add";
  cpu_.fp8_round_trip(a.data(), rows, n, n - 4, 64);
  be_->fp8_round_trip(dx.get(), rows, n, n - 4, 64);
  EXPECT_EQ(download(*be_, dx), a) << "fp8_round_trip";
  std::vector<float> q = randoms(4 * 64, 3);
  auto dq = upload(*be_, q);
  cpu_.indexer_qat(q.data(), 4, 64);
  be_->indexer_qat(dq.get(), 4, 64);
  EXPECT_EQ(download(*be_, dq), q) << "indexer_qat";
}

TEST_P(DeviceOps, RopeGatherAndSlotSumsAreTheCpus) {
  const int64_t tokens = 3, heads = 4, stride = 40, rope_dim = 16, offset = 24;
  std::vector<float> x = randoms(tokens * heads * stride, 4);
  const std::vector<float> freqs = randoms(rope_dim / 2, 5, 0.1f);
  const std::vector<uint64_t> pos = {0, 7, 4000};
  auto dx = upload(*be_, x);
  auto df = upload(*be_, freqs);
  auto dp = upload(*be_, pos);
  for (bool inverse : {false, true}) {
    cpu_.rope(x.data(), tokens, heads, stride, offset, rope_dim, pos.data(), freqs.data(), inverse);
    be_->rope(dx.get(), tokens, heads, stride, offset, rope_dim, dp.get(), df.get(), inverse);
    // cos/sin of the double angle: the device's may differ from glibc's by an ulp.
    expect_ulps(download(*be_, dx), x, 8, "rope");
    x = download(*be_, dx);
  }
  const int64_t width = 33;
  const std::vector<float> src = randoms(6 * width, 6);
  const std::vector<int64_t> rows = {5, 0, 0, 3, 2, 1, 4};
  std::vector<float> gathered(rows.size() * width), summed(2 * width);
  cpu_.gather_rows(src.data(), width, rows.data(), 7, gathered.data());
  const std::vector<int64_t> slot_rows = {2, 0, 1, 5, 3, 4};
  cpu_.sum_slots(src.data(), slot_rows.data(), 2, 3, width, summed.data());
  auto ds = upload(*be_, src);
  auto dr = upload(*be_, rows), dsr = upload(*be_, slot_rows);
  auto dg = zeros_on<float>(*be_, gathered.size()), dsum = zeros_on<float>(*be_, summed.size());
  be_->gather_rows(ds.get(), width, dr.get(), 7, dg.get());
  be_->sum_slots(ds.get(), dsr.get(), 2, 3, width, dsum.get());
  EXPECT_EQ(download(*be_, dg), gathered);
  EXPECT_EQ(download(*be_, dsum), summed);
  // Strided: 5 values of each indexed row at stride `width` into rows of 8 (the rest zero).
  std::vector<float> strided(rows.size() * 8, 0.0f);
  cpu_.copy_rows(src.data() + 3, width, rows.data(), 7, 5, strided.data(), 8);
  auto dst = zeros_on<float>(*be_, strided.size());
  be_->copy_rows(ds.get() + 3, width, dr.get(), 7, 5, dst.get(), 8);
  EXPECT_EQ(download(*be_, dst), strided);
}

// Backend::transform_heads runs the q, kv and indexer-query transforms of spec §3.4 in one
// launch: bit for bit the separate ops on the same device, and the CPU's within RoPE's ulps.
TEST_P(DeviceOps, HeadTransformsAreTheSeparateOpsInOneLaunch) {
  const int64_t tokens = 3, rope_dim = 16;
  const std::vector<float> freqs = randoms(rope_dim / 2, 5, 0.1f);
  const std::vector<uint64_t> pos = {0, 7, 4000};
  auto df = upload(*be_, freqs);
  auto dp = upload(*be_, pos);
  struct Case {
    const char* name;
    int64_t heads;
    int64_t dim;  // 96: an FP8 tail of 80 values, a short last block
    bool norm, weighted;
    int64_t fp8_block;
    bool qat;
  };
  const Case cases[] = {{"q: weightless norm, RoPE", 4, 96, true, false, 0, false},
                        {"kv: norm, RoPE, FP8", 1, 96, true, true, 64, false},
                        {"indexer query: RoPE, QAT", 3, 64, false, false, 0, true}};
  const std::vector<float> w = randoms(96, 9);
  auto dw = upload(*be_, w);
  std::vector<std::vector<float>> each_alone;  // each tensor transformed alone
  std::vector<testing_device::OnDevice<float>> together;
  std::vector<HeadRows> all;
  for (const Case& c : cases) {
    const std::vector<float> x = randoms(tokens * c.heads * c.dim, 8, 3.0f);
    HeadTransform t;
    t.norm = c.norm;
    t.norm_weight = c.weighted ? dw.get() : nullptr;
    t.eps = 1e-6f;
    t.rope_dim = rope_dim;
    t.positions = dp.get();
    t.freqs = df.get();
    t.fp8_block = c.fp8_block;
    t.qat = c.qat;
    auto fused = upload(*be_, x), separate = upload(*be_, x);
    const HeadRows one{fused.get(), c.heads, c.dim, t};
    const uint64_t before = be_->kernel_launches();
    be_->transform_heads(tokens, {&one, 1});
    if (be_->kernel_launches() != 0) {
      EXPECT_EQ(be_->kernel_launches() - before, 1u) << c.name;
    }
    const HeadRows apart{separate.get(), c.heads, c.dim, t};
    be_->Backend::transform_heads(tokens, {&apart, 1});
    const std::vector<float> got = download(*be_, fused);
    EXPECT_EQ(got, download(*be_, separate)) << c.name;
    std::vector<float> want = x;
    HeadTransform on_cpu = t;
    on_cpu.norm_weight = c.weighted ? w.data() : nullptr;
    on_cpu.positions = pos.data();
    on_cpu.freqs = freqs.data();
    const HeadRows host{want.data(), c.heads, c.dim, on_cpu};
    cpu_.transform_heads(tokens, {&host, 1});
    // RoPE's cos/sin may differ by an ulp (as above); FP8 and FP4 rounding can turn that into
    // a step of the format near a rounding boundary, so the CPU comparison is for the plain
    // transforms only, and the device's own separate ops are the bit-exact reference.
    if (c.fp8_block == 0 && !c.qat) expect_ulps(got, want, 8, c.name);
    together.push_back(upload(*be_, x));
    all.push_back({together.back().get(), c.heads, c.dim, t});
    each_alone.push_back(got);
  }
  // The three in one call: one launch, each tensor's bits as alone. Then four tensors, the
  // fourth taken by a second launch.
  const uint64_t before = be_->kernel_launches();
  be_->transform_heads(tokens, all);
  if (be_->kernel_launches() != 0) {
    EXPECT_EQ(be_->kernel_launches() - before, 1u);
  }
  for (size_t j = 0; j < all.size(); ++j) {
    EXPECT_EQ(download(*be_, together[j]), each_alone[j]) << cases[j].name << ", together";
  }
  std::vector<float> x4 = randoms(tokens * 2 * 96, 10, 3.0f);
  auto d4 = upload(*be_, x4), d4_alone = upload(*be_, x4);
  std::vector<HeadRows> four = all;
  for (size_t j = 0; j < all.size(); ++j) {
    together[j] = upload(*be_, randoms(tokens * cases[j].heads * cases[j].dim, 8, 3.0f));
    four[j].x = together[j].get();
  }
  four.push_back({d4.get(), 2, 96, all[1].t});
  const uint64_t before4 = be_->kernel_launches();
  be_->transform_heads(tokens, four);
  if (be_->kernel_launches() != 0) {
    EXPECT_EQ(be_->kernel_launches() - before4, 2u);
  }
  const HeadRows alone4{d4_alone.get(), 2, 96, all[1].t};
  be_->transform_heads(tokens, {&alone4, 1});
  EXPECT_EQ(download(*be_, d4), download(*be_, d4_alone)) << "a fourth tensor";
  for (size_t j = 0; j < all.size(); ++j) {
    EXPECT_EQ(download(*be_, together[j]), each_alone[j]) << cases[j].name << ", of four";
  }
}

TEST_P(DeviceOps, ExpertRoutingAndTheDispatchPlanAreTheCpus) {
  const uint32_t n_expert = 16, k = 6;
  const int64_t n = 9;
  std::vector<float> logits = randoms(n * n_expert, 7, 2.0f);
  logits[3] = logits[5];  // a tie: the lower id first
  const std::vector<float> bias = randoms(n_expert, 8, 0.1f);
  std::vector<int32_t> table(50 * k);
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>((i * 7) % n_expert);
  const std::vector<int32_t> tokens = {1, 49, 3, 3, 0, 17, 8, 2, 44};
  auto dl = upload(*be_, logits), db = upload(*be_, bias);
  auto dt = upload(*be_, table), dtok = upload(*be_, tokens);
  for (bool hashed : {false, true}) {
    ExpertRouting host{n_expert,
                       k,
                       1.5f,
                       true,
                       hashed ? nullptr : bias.data(),
                       hashed ? table.data() : nullptr,
                       hashed ? k : 0};
    ExpertRouting dev = host;
    dev.bias = hashed ? nullptr : db.get();
    dev.hash_table = hashed ? dt.get() : nullptr;
    std::vector<int32_t> experts(n * k);
    std::vector<float> weights(n * k);
    cpu_.route_experts(host, logits.data(), tokens.data(), n, experts.data(), weights.data());
    auto de = zeros_on<int32_t>(*be_, experts.size());
    auto dwt = zeros_on<float>(*be_, weights.size());
    be_->route_experts(dev, dl.get(), dtok.get(), n, de.get(), dwt.get());
    EXPECT_EQ(download(*be_, de), experts) << "hashed " << hashed;
    expect_ulps(download(*be_, dwt), weights, 8, "route weights");  // expf, log1pf

    std::vector<int64_t> offsets(n_expert + 1), source(n * k), slot_row(n * k);
    std::vector<float> row_scale(n * k);
    cpu_.group_by_expert(experts.data(), weights.data(), n, k, n_expert, offsets.data(),
                         source.data(), row_scale.data(), slot_row.data());
    auto dw2 = upload(*be_, weights);
    auto doff = zeros_on<int64_t>(*be_, offsets.size());
    auto dsrc = zeros_on<int64_t>(*be_, n * k), dslot = zeros_on<int64_t>(*be_, n * k);
    auto dscale = zeros_on<float>(*be_, n * k);
    be_->group_by_expert(de.get(), dw2.get(), n, k, n_expert, doff.get(), dsrc.get(), dscale.get(),
                         dslot.get());
    EXPECT_EQ(download(*be_, doff), offsets);
    EXPECT_EQ(download(*be_, dsrc), source);
    EXPECT_EQ(download(*be_, dscale), row_scale);
    EXPECT_EQ(download(*be_, dslot), slot_row);

    // The load counters, counted as the experts are chosen: every pair, then the first rows only
    // (bounded by a count in the backend's memory: a padded step's real rows), the same on both
    // backends, and nothing else changes.
    const std::vector<int64_t> bound{(n - 1) * k};
    const auto dbound = upload(*be_, bound);
    for (const bool bounded : {false, true}) {
      std::vector<uint64_t> counts(n_expert, 3);
      ExpertRouting host_counting = host;
      host_counting.counts = counts.data();
      host_counting.counted = bounded ? bound.data() : nullptr;
      std::vector<int32_t> counted_experts(n * k);
      std::vector<float> counted_weights(n * k);
      cpu_.route_experts(host_counting, logits.data(), tokens.data(), n, counted_experts.data(),
                         counted_weights.data());
      auto dc = upload(*be_, std::vector<uint64_t>(n_expert, 3));
      ExpertRouting dev_counting = dev;
      dev_counting.counts = dc.get();
      dev_counting.counted = bounded ? dbound.get() : nullptr;
      auto dce = zeros_on<int32_t>(*be_, experts.size());
      auto dcw = zeros_on<float>(*be_, weights.size());
      be_->route_experts(dev_counting, dl.get(), dtok.get(), n, dce.get(), dcw.get());
      EXPECT_EQ(download(*be_, dc), counts) << "bounded " << bounded;
      uint64_t total = 0;
      for (uint64_t c : counts) total += c - 3;
      EXPECT_EQ(total, static_cast<uint64_t>((bounded ? n - 1 : n) * k));
      EXPECT_EQ(counted_experts, experts);
      EXPECT_EQ(download(*be_, dce), experts);
    }
  }
}

// Exact score ties (zero bias, repeated logits: the lower id first), more experts than a team
// has threads, and a NaN logit (no place in the order: the CPU's serial choice decides).
TEST_P(DeviceOps, ExpertChoiceWithTiesAndNanIsTheCpus) {
  const uint32_t n_expert = 300, k = 8;
  const int64_t n = 3;
  std::vector<float> logits = randoms(n * n_expert, 13, 2.0f);
  for (uint32_t x = 0; x < n_expert; ++x) logits[x] = static_cast<float>(x % 7) * 0.25f;
  // Last: the CPU passes a NaN over (never the best), while it would precede every expert by count.
  logits[3 * n_expert - 1] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> bias(n_expert, 0.0f);
  const std::vector<int32_t> tokens = {0, 1, 2};
  auto dl = upload(*be_, logits), db = upload(*be_, bias);
  auto dtok = upload(*be_, tokens);
  const ExpertRouting host{n_expert, k, 1.0f, true, bias.data(), nullptr, 0};
  ExpertRouting dev = host;
  dev.bias = db.get();
  std::vector<int32_t> experts(n * k);
  std::vector<float> weights(n * k);
  cpu_.route_experts(host, logits.data(), tokens.data(), n, experts.data(), weights.data());
  auto de = zeros_on<int32_t>(*be_, experts.size());
  auto dwt = zeros_on<float>(*be_, weights.size());
  be_->route_experts(dev, dl.get(), dtok.get(), n, de.get(), dwt.get());
  EXPECT_EQ(download(*be_, de), experts);
  const std::vector<float> got = download(*be_, dwt);
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(weights[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << i;
    } else {
      EXPECT_NEAR(got[i], weights[i], 8 * std::numeric_limits<float>::epsilon()) << i;
    }
  }
}

TEST_P(DeviceOps, HyperConnectionsAreTheCpus) {
  const uint32_t h = 4;
  // Streams of 72 values: fn's rows are one chunk of the float product; of 1100: two (4400
  // values, the second chunk ragged), which the kernels that use the mixes add themselves.
  for (const int64_t d : {int64_t{72}, int64_t{1100}}) {
    SCOPED_TRACE(d);
    const int64_t n = 3, flat = h * d, mixes = 2 * h + h * h;
    const std::vector<float> fn = randoms(mixes * flat, 9, 0.05f);
    const std::vector<float> scale = {0.8f, 1.1f, 0.9f}, base = randoms(mixes, 10, 0.3f);
    const std::vector<float> x = randoms(n * flat, 11), f = randoms(n * d, 12);
    kernels::MatrixView hv{GgmlType::F32, reinterpret_cast<const uint8_t*>(fn.data()), flat, mixes,
                           flat * sizeof(float)};
    const HcMixing host{&hv, scale.data(), base.data(), h, d, 3, 1e-6f, 1e-6f};
    std::vector<float> y(n * d), post(n * h), comb(n * h * h), out(n * flat), z(n * d);
    cpu_.hc_pre(host, x.data(), n, y.data(), post.data(), comb.data());
    const std::vector<float> f_added = randoms(n * d, 13);
    std::vector<float> out_added(n * flat);
    cpu_.hc_post(f.data(), nullptr, x.data(), post.data(), comb.data(), n, h, d, out.data());
    cpu_.hc_post(f.data(), f_added.data(), x.data(), post.data(), comb.data(), n, h, d,
                 out_added.data());
    kernels::MatrixView head_view = hv;
    head_view.rows = h;
    const HcMixing head{&head_view, scale.data(), base.data(), h, d, 0, 1e-6f, 1e-6f};
    cpu_.hc_head(head, x.data(), n, z.data());

    auto dfn = upload(*be_, fn), dsc = upload(*be_, scale), dba = upload(*be_, base);
    auto dx = upload(*be_, x), dfv = upload(*be_, f);
    kernels::MatrixView dv = hv;
    dv.data = reinterpret_cast<const uint8_t*>(dfn.get());
    const HcMixing dev{&dv, dsc.get(), dba.get(), h, d, 3, 1e-6f, 1e-6f};
    auto dy = zeros_on<float>(*be_, y.size()), dpost = zeros_on<float>(*be_, post.size()),
         dcomb = zeros_on<float>(*be_, comb.size()), dout = zeros_on<float>(*be_, out.size()),
         dz = zeros_on<float>(*be_, z.size());
    const uint64_t before_pre = be_->kernel_launches();
    be_->hc_pre(dev, dx.get(), n, dy.get(), dpost.get(), dcomb.get());
    if (be_->kernel_launches() != 0) {
      // The fn product, then a team per token that scales its mixes by the RMS of its streams:
      // no launch of its own for the norm, none for the product's chunk sums.
      EXPECT_EQ(be_->kernel_launches() - before_pre, 2u);
    }
    be_->hc_post(dfv.get(), nullptr, dx.get(), dpost.get(), dcomb.get(), n, h, d, dout.get());
    // The CPU's post and comb, so that only the op itself is compared: with the second part of
    // the sub-layer output added in the kernel it is the CPU's bit for bit.
    auto dfa = upload(*be_, f_added), cpu_post = upload(*be_, post), cpu_comb = upload(*be_, comb);
    auto dout_added = zeros_on<float>(*be_, out.size());
    be_->hc_post(dfv.get(), dfa.get(), dx.get(), cpu_post.get(), cpu_comb.get(), n, h, d,
                 dout_added.get());
    kernels::MatrixView dhead = dv;
    dhead.rows = h;
    const HcMixing dev_head{&dhead, dsc.get(), dba.get(), h, d, 0, 1e-6f, 1e-6f};
    be_->hc_head(dev_head, dx.get(), n, dz.get());
    // The mixes come from a float matmul summed in another order than the CPU's double lanes and
    // scaled by the RMS after the sum (the reference's order) where the CPU scales the streams
    // before, and the gates pass through expf: relative differences of a few ulps, amplified by
    // the Sinkhorn divisions; 1e-4 relative is far below what a wrong index, stream or scale
    // would give.
    auto near = [](const std::vector<float>& got, const std::vector<float>& want,
                   const char* what) {
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], 1e-4f * std::max(1.0f, std::fabs(want[i])))
            << what << " " << i;
      }
    };
    near(download(*be_, dpost), post, "post");
    near(download(*be_, dcomb), comb, "comb");
    near(download(*be_, dy), y, "y");
    near(download(*be_, dout), out, "hc_post");
    const std::vector<float> got_added = download(*be_, dout_added);
    ASSERT_EQ(got_added.size(), out_added.size());
    EXPECT_EQ(std::memcmp(got_added.data(), out_added.data(), out_added.size() * sizeof(float)), 0);
    EXPECT_NE(got_added, out);
    near(download(*be_, dz), z, "hc_head");

    // Batch invariance: the middle token alone gives the batch's bits.
    auto dy1 = zeros_on<float>(*be_, d), dpost1 = zeros_on<float>(*be_, h),
         dcomb1 = zeros_on<float>(*be_, h * h), dz1 = zeros_on<float>(*be_, d);
    be_->hc_pre(dev, dx.get() + flat, 1, dy1.get(), dpost1.get(), dcomb1.get());
    be_->hc_head(dev_head, dx.get() + flat, 1, dz1.get());
    auto slice = [](const std::vector<float>& v, size_t at, size_t len) {
      return std::vector<float>(v.begin() + at * len, v.begin() + (at + 1) * len);
    };
    EXPECT_EQ(download(*be_, dy1), slice(download(*be_, dy), 1, d)) << "y alone";
    EXPECT_EQ(download(*be_, dpost1), slice(download(*be_, dpost), 1, h)) << "post alone";
    EXPECT_EQ(download(*be_, dcomb1), slice(download(*be_, dcomb), 1, h * h)) << "comb alone";
    EXPECT_EQ(download(*be_, dz1), slice(download(*be_, dz), 1, d)) << "hc_head alone";
  }
}

// HcMixing::out_norm: the team that writes a token's HC_pre or head row norms it too, bit for
// bit the RMSNorm op after it, one launch fewer.
TEST_P(DeviceOps, HyperConnectionRowsNormedByTheirTeamAreTheRmsNorms) {
  const uint32_t h = 4;
  const int64_t d = 1100, n = 3, flat = h * d, mixes = 2 * h + h * h;
  auto dfn = upload(*be_, randoms(mixes * flat, 9, 0.05f));
  auto dsc = upload(*be_, std::vector<float>{0.8f, 1.1f, 0.9f});
  auto dba = upload(*be_, randoms(mixes, 10, 0.3f)), dx = upload(*be_, randoms(n * flat, 11));
  auto dnorm = upload(*be_, randoms(d, 12));
  kernels::MatrixView fn{GgmlType::F32, reinterpret_cast<const uint8_t*>(dfn.get()), flat, mixes,
                         flat * sizeof(float)};
  kernels::MatrixView head_fn = fn;
  head_fn.rows = h;
  for (const bool head : {false, true}) {
    SCOPED_TRACE(head ? "hc_head" : "hc_pre");
    HcMixing mixing{head ? &head_fn : &fn, dsc.get(), dba.get(), h, d, 3, 1e-6f, 1e-6f};
    auto run = [&](float* y) {
      auto post = zeros_on<float>(*be_, n * h), comb = zeros_on<float>(*be_, n * h * h);
      const uint64_t before = be_->kernel_launches();
      if (head) {
        be_->hc_head(mixing, dx.get(), n, y);
      } else {
        be_->hc_pre(mixing, dx.get(), n, y, post.get(), comb.get());
      }
      return be_->kernel_launches() - before;
    };
    auto separate = zeros_on<float>(*be_, n * d), fused = zeros_on<float>(*be_, n * d);
    const uint64_t unfused_launches = run(separate.get());
    be_->rms_norm(separate.get(), dnorm.get(), d, n, 1e-6f, separate.get());
    mixing.out_norm = dnorm.get();
    const uint64_t fused_launches = run(fused.get());
    EXPECT_EQ(download(*be_, fused), download(*be_, separate));
    if (be_->kernel_launches() != 0) {
      EXPECT_EQ(fused_launches, unfused_launches);
    }
  }
}

// The Sinkhorn a team runs (a thread per element, a phase per row or column step) is the CPU's
// per-token function bit for bit, given the same mixes.
TEST(DeviceHyperConnections, TeamSinkhornIsTheCpusBitForBit) {
  const std::vector<float> scale = {0.8f, 1.1f, 0.9f};
  for (uint32_t h : {1u, 3u, 4u, 8u}) {
    const uint32_t rows = 2 * h + h * h;
    const std::vector<float> m = randoms(rows, 20 + h, 3.0f), base = randoms(rows, 40 + h, 0.5f);
    for (uint32_t iters : {1u, 2u, 20u}) {
      std::vector<float> pre(h), post(h), comb(h * h);
      kernels::hc_split_sinkhorn(m.data(), scale.data(), base.data(), h, iters, 1e-6f, pre.data(),
                                 post.data(), comb.data());
      std::vector<float> shared(rows + 3 * h * h), team_pre(h), team_post(h);
      const kernels::HostTeam team(device::kHcTeam, shared.data());
      const float* c =
          device::hc_sinkhorn_team(team, {m.data(), rows, 1}, 0, 1.0f, scale.data(), base.data(), h,
                                   iters, 1e-6f, team_pre.data(), team_post.data(), shared.data());
      EXPECT_EQ(team_pre, pre) << "h " << h << " iters " << iters;
      EXPECT_EQ(team_post, post) << "h " << h << " iters " << iters;
      EXPECT_EQ(std::vector<float>(c, c + h * h), comb) << "h " << h << " iters " << iters;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceOps, testing_device::device_backend_names());

}  // namespace
}  // namespace v4
