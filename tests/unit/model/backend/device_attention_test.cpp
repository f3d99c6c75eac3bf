// The attention family of the device ops (kv_append, indexer_topk, sparse_attention) and the KV
// simulations against CpuBackend, on a small V4-shaped KV state: a ratio-4 layer (main rows and
// indexer keys), a ratio-128 layer and a window-only layer, several sequences of different
// lengths in one step, chunks crossing compression blocks, pages through reversed block tables.
//
// Tolerances: the emulated backend runs the CPU backend's arithmetic and must match it bit for
// bit. On CUDA, expf, sin and cos are not correctly rounded (a few ulp), so pooled rows and the
// softmax may differ in the last bits and, rarely, an FP8/FP4 rounding of a pooled value moves
// by one step: KV bytes may differ in a small fraction of places and attention outputs by a
// relative 1e-4. Indexer scores use no transcendental, so the top-k choice must be exact there.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "model/backend/cpu_backend.h"
#include "model/backend/device/scratch_bound.h"
#include "model/backend/kv_view.h"
#include "tests/unit/model/backend/device_test_util.h"

namespace v4 {
namespace {

using testing_device::download;
using testing_device::OnDevice;
using testing_device::randoms;
using testing_device::upload;

constexpr uint32_t kHeadDim = 144, kRopeDim = 32, kIndexerDim = 64, kPageTokens = 128;
constexpr uint32_t kRingRows = 64, kWindow = 16, kPagesPerSeq = 3, kHeads = 11, kIndexHeads = 6;
constexpr uint32_t kTopK = 5;
const std::vector<uint32_t> kRatios = {4, 128, 0};

KvLayout test_layout(KvStorage storage) {
  KvLayout l;
  KvPageFormat& f = l.format;
  f.storage = storage;
  f.shape = {kHeadDim, kRopeDim, kIndexerDim};
  f.page_tokens = kPageTokens;
  f.main_row_bytes = main_row_bytes(storage, f.shape);
  f.indexer_row_bytes = indexer_row_bytes(storage, f.shape);
  size_t page = 0, carry = 0;
  for (uint32_t il = 0; il < kRatios.size(); ++il) {
    KvLayerAddress a;
    a.raw_slot = il;
    a.ratio = kRatios[il];
    if (a.ratio != 0) {
      a.main_offset = page;
      page += kPageTokens / a.ratio * f.main_row_bytes;
      a.carry_rows = a.ratio == 4 ? 8 : a.ratio;
      a.carry_width = a.ratio == 4 ? 2 * kHeadDim : kHeadDim;
      a.carry_offset = carry;
      carry += 2 * size_t{a.carry_rows} * a.carry_width;
    }
    if (a.ratio == 4) {
      a.indexer_offset = page;
      page += kPageTokens / 4 * f.indexer_row_bytes;
      a.indexer_carry_width = 2 * kIndexerDim;
      a.indexer_carry_offset = carry;
      carry += 2 * size_t{8} * a.indexer_carry_width;
    }
    l.layers.push_back(a);
  }
  f.page_bytes = page;
  l.carry_floats = carry;
  l.initial_carry.assign(carry, 0.0f);
  for (const KvLayerAddress& a : l.layers) {
    auto fresh = [&](size_t offset, size_t n) {
      std::fill_n(&l.initial_carry[offset + n], n, -std::numeric_limits<float>::infinity());
    };
    if (a.ratio != 0) fresh(a.carry_offset, size_t{a.carry_rows} * a.carry_width);
    if (a.ratio == 4) fresh(a.indexer_carry_offset, size_t{8} * a.indexer_carry_width);
  }
  return l;
}

// The per-layer weights of the compressors (on one backend).
struct CompressorWeights {
  OnDevice<float> ape, norm, freqs;
};

CompressorWeights upload_weights(Backend& be, uint32_t ratio, uint32_t width, uint32_t dim,
                                 uint32_t seed) {
  std::vector<float> freqs(kRopeDim / 2);
  for (size_t k = 0; k < freqs.size(); ++k) freqs[k] = std::pow(0.7f, static_cast<float>(k));
  std::vector<float> norm = randoms(dim, seed + 1, 0.2f);
  for (float& x : norm) x += 1.0f;
  return {upload(be, randoms(size_t{ratio} * width, seed, 0.3f)), upload(be, norm),
          upload(be, freqs)};
}

// Every sequence's pages, carry and rings on one backend; sequence s owns pages in reverse
// order, so block tables matter.
struct KvWorld {
  KvWorld(Backend& be, KvStorage storage, uint32_t n_seq)
      : be(be), layout(test_layout(storage)), n_seq(n_seq) {
    const size_t slot = layout.state_floats(kRingRows);
    std::vector<uint32_t> table(size_t{n_seq} * kPagesPerSeq);
    for (uint32_t s = 0; s < n_seq; ++s) {
      for (uint32_t p = 0; p < kPagesPerSeq; ++p) {
        table[s * kPagesPerSeq + p] = (n_seq - s) * kPagesPerSeq - 1 - p;
      }
    }
    std::vector<float> state(slot * n_seq, 0.0f);
    for (uint32_t s = 0; s < n_seq; ++s) {
      std::copy(layout.initial_carry.begin(), layout.initial_carry.end(), &state[s * slot]);
    }
    pages = upload(be, std::vector<uint8_t>(layout.format.page_bytes * table.size(), 0));
    tables = upload(be, table);
    this->state = upload(be, state);
    for (uint32_t s = 0; s < n_seq; ++s) {
      KvSequenceView v;
      v.pages = pages.get();
      v.block_table = tables.get() + s * kPagesPerSeq;
      v.n_pages = kPagesPerSeq;
      v.carry = this->state.get() + s * slot;
      v.raw = v.carry + layout.carry_floats;
      v.ring_rows = kRingRows;
      views.push_back(v);
    }
    for (uint32_t il = 0; il < kRatios.size(); ++il) {
      const KvLayerAddress& a = layout.layers[il];
      if (a.ratio == 0) continue;
      main_w.push_back(upload_weights(be, a.ratio, a.carry_width, kHeadDim, 100 + il));
      if (a.ratio == 4) index_w = upload_weights(be, 4, a.indexer_carry_width, kIndexerDim, 200);
    }
  }

  Backend& be;
  KvLayout layout;
  uint32_t n_seq;
  OnDevice<uint8_t> pages;
  OnDevice<uint32_t> tables;
  OnDevice<float> state;
  std::vector<KvSequenceView> views;
  std::vector<CompressorWeights> main_w;
  CompressorWeights index_w;
};

// One step: sequence s (of `seqs`) takes counts[i] tokens from position starts[i].
struct StepOnDevice {
  OnDevice<KvSequenceView> sequences;
  OnDevice<int64_t> begin;
  OnDevice<uint32_t> of;
  OnDevice<uint64_t> positions;
  KvStep step;
};

StepOnDevice make_step(KvWorld& w, const std::vector<uint32_t>& seqs,
                       const std::vector<uint64_t>& starts, const std::vector<int64_t>& counts) {
  std::vector<KvSequenceView> views;
  std::vector<int64_t> begin = {0};
  std::vector<uint32_t> of;
  std::vector<uint64_t> positions;
  for (size_t i = 0; i < seqs.size(); ++i) {
    views.push_back(w.views[seqs[i]]);
    for (int64_t k = 0; k < counts[i]; ++k) {
      of.push_back(static_cast<uint32_t>(i));
      positions.push_back(starts[i] + static_cast<uint64_t>(k));
    }
    begin.push_back(begin.back() + counts[i]);
  }
  StepOnDevice d{
      upload(w.be, views), upload(w.be, begin), upload(w.be, of), upload(w.be, positions), {}};
  d.step = {d.sequences.get(),
            d.begin.get(),
            d.of.get(),
            d.positions.get(),
            static_cast<int64_t>(seqs.size()),
            static_cast<int64_t>(positions.size())};
  for (uint64_t p : positions) d.step.position_end = std::max(d.step.position_end, p + 1);
  for (const KvSequenceView& v : views) d.step.max_pages = std::max(d.step.max_pages, v.n_pages);
  return d;
}

// Appends the step's tokens to every layer; the tokens' inputs are drawn from their
// (sequence, position), so any split of the same tokens into steps sees the same values.
void append(KvWorld& w, const std::vector<uint32_t>& seqs, const std::vector<uint64_t>& starts,
            const std::vector<int64_t>& counts) {
  StepOnDevice d = make_step(w, seqs, starts, counts);
  auto per_token = [&](uint32_t width, uint32_t salt) {
    std::vector<float> v;
    for (size_t i = 0; i < seqs.size(); ++i) {
      for (int64_t k = 0; k < counts[i]; ++k) {
        const uint32_t seed = salt * 7919 + seqs[i] * 104729 + static_cast<uint32_t>(starts[i] + k);
        const std::vector<float> x = randoms(width, seed);
        v.insert(v.end(), x.begin(), x.end());
      }
    }
    return upload(w.be, v);
  };
  size_t mw = 0;
  for (uint32_t il = 0; il < kRatios.size(); ++il) {
    const KvLayerAddress& a = w.layout.layers[il];
    OnDevice<float> rows = per_token(kHeadDim, 1 + il);
    if (a.ratio == 0) {
      w.be.kv_append(w.layout.format, a, d.step, rows.get(), nullptr, nullptr);
      continue;
    }
    const CompressorWeights& cw = w.main_w[mw++];
    OnDevice<float> ma = per_token(a.carry_width, 10 + il), mg = per_token(a.carry_width, 20 + il);
    const KvCompressor main{a.ratio, a.carry_width,  cw.ape.get(), cw.norm.get(),
                            1e-6f,   cw.freqs.get(), ma.get(),     mg.get()};
    if (a.ratio != 4) {
      w.be.kv_append(w.layout.format, a, d.step, rows.get(), &main, nullptr);
      continue;
    }
    OnDevice<float> ia = per_token(a.indexer_carry_width, 30),
                    ig = per_token(a.indexer_carry_width, 31);
    const KvCompressor index{4,
                             a.indexer_carry_width,
                             w.index_w.ape.get(),
                             w.index_w.norm.get(),
                             1e-6f,
                             w.index_w.freqs.get(),
                             ia.get(),
                             ig.get()};
    w.be.kv_append(w.layout.format, a, d.step, rows.get(), &main, &index);
  }
}

// The steps of the KV tests: four sequences, chunks of many sizes crossing 4- and 128-blocks.
// Returns each sequence's length after them.
std::vector<uint64_t> run_steps(KvWorld& w, bool together) {
  const std::vector<std::vector<int64_t>> chunks = {
      {3, 1, 7, 130}, {9, 1, 1, 2}, {6, 125, 1, 2}, {1, 128, 2, 40}, {130, 3, 60, 1}};
  std::vector<uint64_t> length(w.n_seq, 0);
  for (const std::vector<int64_t>& c : chunks) {
    if (together) {
      append(w, {0, 1, 2, 3}, length, c);
    } else {
      for (uint32_t s = 0; s < w.n_seq; ++s) append(w, {s}, {length[s]}, {c[s]});
    }
    for (uint32_t s = 0; s < w.n_seq; ++s) length[s] += static_cast<uint64_t>(c[s]);
  }
  return length;
}

class DeviceAttention : public ::testing::TestWithParam<std::tuple<std::string, KvStorage>> {
 protected:
  void SetUp() override {
    std::string why;
    be_ = testing_device::make_device_backend(std::get<0>(GetParam()), &why);
    if (!be_) GTEST_SKIP() << why;
  }
  bool exact() const { return std::get<0>(GetParam()) == "emulated"; }
  KvStorage storage() const { return std::get<1>(GetParam()); }

  // Byte-exact on the emulated backend; on CUDA at most 2% of bytes may differ (see the top).
  void expect_bytes(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want) {
    ASSERT_EQ(got.size(), want.size());
    size_t differ = 0;
    for (size_t i = 0; i < got.size(); ++i) differ += got[i] != want[i];
    if (exact()) {
      EXPECT_EQ(differ, 0u);
    } else {
      EXPECT_LE(differ, got.size() / 50);
    }
  }
  void expect_floats(const std::vector<float>& got, const std::vector<float>& want, float rel) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      if (exact() || std::isinf(want[i])) {
        ASSERT_EQ(std::memcmp(&got[i], &want[i], 4), 0) << i << ": " << got[i] << " vs " << want[i];
      } else {
        ASSERT_NEAR(got[i], want[i], rel * (std::fabs(want[i]) + 1e-3f)) << i;
      }
    }
  }

  // Another backend of the same device whose attention scratch bound (1 byte) makes every token
  // group one token (DeviceOpOptions::attention_scratch_bytes). Null, with the reason printed,
  // where it cannot be made.
  std::unique_ptr<Backend> one_token_groups() const {
    device::DeviceOpOptions ops;
    ops.attention_scratch_bytes = 1;
    std::string why;
    std::unique_ptr<Backend> small =
        testing_device::make_device_backend(std::get<0>(GetParam()), &why, ops);
    if (!small) ADD_FAILURE() << why;
    return small;
  }

  std::unique_ptr<Backend> be_;
  CpuBackend cpu_{2};
};

TEST_P(DeviceAttention, KvAppendLeavesTheCpuBackendsState) {
  KvWorld ref(cpu_, storage(), 4), dev(*be_, storage(), 4);
  run_steps(ref, true);
  run_steps(dev, true);
  expect_bytes(download(*be_, dev.pages), download(cpu_, ref.pages));
  // Carry and rings hold inputs (a, g + ape, raw rows): exact on every backend.
  const std::vector<float> got = download(*be_, dev.state), want = download(cpu_, ref.state);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0);
}

TEST_P(DeviceAttention, KvAppendIsBatchInvariant) {
  KvWorld together(*be_, storage(), 4), alone(*be_, storage(), 4);
  run_steps(together, true);
  run_steps(alone, false);
  EXPECT_EQ(download(*be_, together.pages), download(*be_, alone.pages));
  EXPECT_EQ(download(*be_, together.state), download(*be_, alone.state));
}

// q for every token (heads × dim), head weights, sinks.
struct AttentionInputs {
  OnDevice<float> iq, iw, q, sinks;
  OnDevice<uint32_t> chosen, count;
  OnDevice<float> o;
};

AttentionInputs attention_inputs(Backend& be, int64_t n) {
  const std::vector<float> iq = randoms(size_t(n) * kIndexHeads * kIndexerDim, 5, 0.3f);
  return {upload(be, iq),
          upload(be, randoms(size_t(n) * kIndexHeads, 6)),
          upload(be, randoms(size_t(n) * kHeads * kHeadDim, 7, 0.1f)),
          upload(be, randoms(kHeads, 8)),
          testing_device::zeros_on<uint32_t>(be, size_t(n) * kTopK),
          testing_device::zeros_on<uint32_t>(be, size_t(n)),
          testing_device::zeros_on<float>(be, size_t(n) * kHeads * kHeadDim)};
}

// Indexer then attention on every layer; returns the chosen rows and outputs per layer.
struct AttentionResult {
  std::vector<uint32_t> chosen, count;
  std::vector<float> o;
};

// The ops run on `via` when given (another backend of the same device), else on the world's;
// `undo` is sparse attention's output RoPE.
std::vector<AttentionResult> attend(KvWorld& w, const StepOnDevice& d, AttentionInputs& in,
                                    Backend* via = nullptr, const OutputRope* undo = nullptr) {
  Backend& be = via ? *via : w.be;
  std::vector<AttentionResult> out;
  for (uint32_t il = 0; il < kRatios.size(); ++il) {
    const KvLayerAddress& a = w.layout.layers[il];
    if (a.ratio == 4) {
      be.indexer_topk(w.layout.format, a, d.step, in.iq.get(), in.iw.get(), 0.3f, kIndexHeads,
                      kTopK, in.chosen.get(), in.count.get());
    }
    be.sparse_attention(w.layout.format, a, d.step, kWindow, in.q.get(), kHeads, in.sinks.get(),
                        in.chosen.get(), in.count.get(), kTopK, in.o.get(), undo);
    out.push_back({download(be, in.chosen), download(be, in.count), download(be, in.o)});
  }
  return out;
}

// One step over the last tokens of each sequence (some with at most top_k indexer keys).
StepOnDevice last_tokens(KvWorld& w, const std::vector<uint64_t>& length,
                         const std::vector<uint32_t>& seqs) {
  const std::vector<int64_t> take = {33, 3, 60, 1};
  std::vector<uint64_t> starts;
  std::vector<int64_t> counts;
  for (uint32_t s : seqs) {
    starts.push_back(length[s] - static_cast<uint64_t>(take[s]));
    counts.push_back(take[s]);
  }
  return make_step(w, seqs, starts, counts);
}

TEST_P(DeviceAttention, IndexerAndSparseAttentionMatchTheCpuBackend) {
  KvWorld ref(cpu_, storage(), 4), dev(*be_, storage(), 4);
  const std::vector<uint64_t> length = run_steps(ref, true);
  // The device reads the very bytes the CPU wrote.
  const std::vector<uint8_t> pages = download(cpu_, ref.pages);
  const std::vector<float> state = download(cpu_, ref.state);
  ASSERT_TRUE(be_->copy_to_device(pages.data(), dev.pages.tensor(), 0, pages.size()).is_ok());
  ASSERT_TRUE(be_->copy_to_device(state.data(), dev.state.tensor(), 0, state.size() * 4).is_ok());
  const StepOnDevice ref_step = last_tokens(ref, length, {0, 1, 2, 3});
  const StepOnDevice dev_step = last_tokens(dev, length, {0, 1, 2, 3});
  AttentionInputs ref_in = attention_inputs(cpu_, ref_step.step.n_tokens);
  AttentionInputs dev_in = attention_inputs(*be_, dev_step.step.n_tokens);
  const std::vector<AttentionResult> want = attend(ref, ref_step, ref_in);
  const std::vector<AttentionResult> got = attend(dev, dev_step, dev_in);
  uint32_t some_full = 0, some_all = 0;
  for (size_t il = 0; il < want.size(); ++il) {
    SCOPED_TRACE(il);
    EXPECT_EQ(got[il].count, want[il].count);
    EXPECT_EQ(got[il].chosen, want[il].chosen);
    // CUDA's expf is within 2 ulp, and an output is a weighted sum of rows whose terms are
    // larger than the sum itself: an H200 gave differences up to 3.3e-8 on outputs near 1e-3.
    expect_floats(got[il].o, want[il].o, 1e-4f);
    for (uint32_t c : want[il].count) (c == kTopK ? some_full : some_all) += il == 0;
  }
  EXPECT_GT(some_full, 0u);  // tokens that select, and tokens that take every key
  EXPECT_GT(some_all, 0u);
}

TEST_P(DeviceAttention, IndexerAndSparseAttentionAreBatchInvariant) {
  KvWorld w(*be_, storage(), 4);
  const std::vector<uint64_t> length = run_steps(w, true);
  const StepOnDevice all = last_tokens(w, length, {0, 1, 2, 3});
  AttentionInputs in = attention_inputs(*be_, all.step.n_tokens);
  const std::vector<AttentionResult> together = attend(w, all, in);
  const StepOnDevice one = last_tokens(w, length, {2});
  // Sequence 2's tokens come after 33 + 3 in the joint step: the same inputs, shifted.
  const int64_t skip = 36, n = one.step.n_tokens;
  auto slice = [&](const std::vector<float>& v, int64_t per) {
    return std::vector<float>(v.begin() + skip * per, v.begin() + (skip + n) * per);
  };
  AttentionInputs in_one{upload(*be_, slice(download(*be_, in.iq), kIndexHeads * kIndexerDim)),
                         upload(*be_, slice(download(*be_, in.iw), kIndexHeads)),
                         upload(*be_, slice(download(*be_, in.q), kHeads * kHeadDim)),
                         upload(*be_, download(*be_, in.sinks)),
                         testing_device::zeros_on<uint32_t>(*be_, size_t(n) * kTopK),
                         testing_device::zeros_on<uint32_t>(*be_, size_t(n)),
                         testing_device::zeros_on<float>(*be_, size_t(n) * kHeads * kHeadDim)};
  const std::vector<AttentionResult> alone = attend(w, one, in_one);
  for (size_t il = 0; il < alone.size(); ++il) {
    const std::vector<float> o = slice(together[il].o, kHeads * kHeadDim);
    EXPECT_EQ(std::memcmp(o.data(), alone[il].o.data(), o.size() * 4), 0) << il;
    EXPECT_TRUE(std::equal(alone[il].chosen.begin(), alone[il].chosen.end(),
                           together[il].chosen.begin() + skip * kTopK))
        << il;
  }
}

// The attention ops take a step's tokens in groups whose scratch fits a bound
// (DeviceOpOptions::attention_scratch_bytes); a bound of one byte makes every group one token.
// Each token's work is its own, so the outputs are the same bits, in less scratch.
TEST_P(DeviceAttention, TokensInGroupsUnderAScratchBoundGiveTheSameBits) {
  KvWorld w(*be_, storage(), 4);
  const std::vector<uint64_t> length = run_steps(w, true);
  const StepOnDevice all = last_tokens(w, length, {0, 1, 2, 3});
  AttentionInputs in = attention_inputs(*be_, all.step.n_tokens);
  const std::vector<AttentionResult> whole = attend(w, all, in);
  const std::unique_ptr<Backend> small = one_token_groups();
  ASSERT_TRUE(small);
  const std::vector<AttentionResult> grouped = attend(w, all, in, small.get());
  ASSERT_EQ(grouped.size(), whole.size());
  for (size_t il = 0; il < whole.size(); ++il) {
    EXPECT_EQ(grouped[il].count, whole[il].count) << il;
    EXPECT_EQ(grouped[il].chosen, whole[il].chosen) << il;
    ASSERT_EQ(grouped[il].o.size(), whole[il].o.size());
    EXPECT_EQ(std::memcmp(grouped[il].o.data(), whole[il].o.data(), whole[il].o.size() * 4), 0)
        << il;
  }
  EXPECT_LT(small->scratch_bytes() * 4, be_->scratch_bytes());
}

// With undo_rope, sparse attention rotates each head's output tail back in the kernel that writes
// it: bit for bit the rope op after the attention, with no launch of its own, also when the
// tokens go in groups (each group's positions are its own tokens').
TEST_P(DeviceAttention, OutputRopeUndoneByTheAttentionKernelIsTheRopeOp) {
  KvWorld w(*be_, storage(), 4);
  const std::vector<uint64_t> length = run_steps(w, true);
  const StepOnDevice all = last_tokens(w, length, {0, 1, 2, 3});
  AttentionInputs in = attention_inputs(*be_, all.step.n_tokens);
  const int64_t n = all.step.n_tokens, rope_dim = kRopeDim;
  auto freqs = upload(*be_, randoms(rope_dim / 2, 9, 0.1f));
  const OutputRope undo{rope_dim, all.positions.get(), freqs.get()};
  const uint64_t launches0 = be_->kernel_launches();
  const std::vector<AttentionResult> plain = attend(w, all, in);
  const uint64_t launches1 = be_->kernel_launches();
  const std::vector<AttentionResult> rotated = attend(w, all, in, nullptr, &undo);
  EXPECT_EQ(be_->kernel_launches() - launches1, launches1 - launches0);
  const std::unique_ptr<Backend> small = one_token_groups();
  ASSERT_TRUE(small);
  const std::vector<AttentionResult> grouped = attend(w, all, in, small.get(), &undo);
  ASSERT_EQ(rotated.size(), plain.size());
  for (size_t il = 0; il < plain.size(); ++il) {
    SCOPED_TRACE(il);
    auto o = upload(*be_, plain[il].o);
    be_->rope(o.get(), n, kHeads, kHeadDim, kHeadDim - rope_dim, rope_dim, all.positions.get(),
              freqs.get(), true);
    const std::vector<float> want = download(*be_, o);
    EXPECT_NE(want, plain[il].o);
    EXPECT_EQ(std::memcmp(rotated[il].o.data(), want.data(), want.size() * 4), 0);
    EXPECT_EQ(std::memcmp(grouped[il].o.data(), want.data(), want.size() * 4), 0);
  }
}

// What the device fit check counts for the attention ops' scratch (device::scratch_need, one
// StepShapes::Attention per layer kind) is what they ask for, slot by slot: the indexer's scores
// and sparse attention's rows, decoded rows (encoded pages only), scores and sums, for a step of
// 97 tokens on a fresh backend of the same device, in groups under an 8 KiB bound. Reserved to it
// first (Backend::reserve_scratch), no slot grows.
TEST_P(DeviceAttention, ScratchNeedIsWhatTheAttentionOpsAskFor) {
  KvWorld w(*be_, storage(), 4);
  const std::vector<uint64_t> length = run_steps(w, true);
  const StepOnDevice all = last_tokens(w, length, {0, 1, 2, 3});
  AttentionInputs in = attention_inputs(*be_, all.step.n_tokens);
  device::DeviceOpOptions ops;
  ops.attention_scratch_bytes = 8 << 10;
  std::string why;
  const std::unique_ptr<Backend> fresh =
      testing_device::make_device_backend(std::get<0>(GetParam()), &why, ops);
  ASSERT_TRUE(fresh) << why;
  StepShapes shapes;
  const int64_t context = static_cast<int64_t>(all.step.position_end);
  for (uint32_t ratio : kRatios) {
    StepShapes::Attention a;
    a.tokens = all.step.n_tokens;
    a.window = kWindow;
    a.compressed = ratio == 0 ? 0 : ratio == 4 ? int64_t{kTopK} : context / ratio;
    a.index_keys = ratio == 4 ? context / 4 + 1 : 0;
    a.head_dim = kHeadDim;
    a.n_head = kHeads;
    a.decoded = storage() != KvStorage::kF32;
    shapes.attention.push_back(a);
  }
  const uint64_t need = device::scratch_need(shapes, ops).total();
  ASSERT_TRUE(fresh->reserve_scratch(shapes, {}));
  attend(w, all, in, fresh.get());
  EXPECT_EQ(fresh->scratch_requested_bytes(), need);
  EXPECT_EQ(fresh->scratch_bytes(), need);
  EXPECT_LT(need, device::scratch_need(shapes, {}).total());  // groups
}

TEST_P(DeviceAttention, KvSimulationsAreBitIdentical) {
  const int64_t rows = 7, stride = 200, n = 160, dim = 64;
  std::vector<float> x = randoms(rows * stride, 11, 3.0f);
  x[5] = 0.0f, x[70] = 1e-9f, x[140] = -600.0f;  // zero, tiny and saturating values
  OnDevice<float> a = upload(cpu_, x), b = upload(*be_, x);
  cpu_.fp8_round_trip(a.get(), rows, stride, n, 64);
  be_->fp8_round_trip(b.get(), rows, stride, n, 64);
  EXPECT_EQ(download(*be_, b), download(cpu_, a));
  std::vector<float> y(x.begin(), x.begin() + rows * dim);
  OnDevice<float> c = upload(cpu_, y), d = upload(*be_, y);
  cpu_.indexer_qat(c.get(), rows, dim);
  be_->indexer_qat(d.get(), rows, dim);
  EXPECT_EQ(download(*be_, d), download(cpu_, c));
  EXPECT_NE(download(cpu_, c), y);
}

INSTANTIATE_TEST_SUITE_P(Backends, DeviceAttention,
                         ::testing::Combine(testing_device::device_backend_names(),
                                            ::testing::Values(KvStorage::kF32, KvStorage::kF16,
                                                              KvStorage::kFp8)));

}  // namespace
}  // namespace v4
