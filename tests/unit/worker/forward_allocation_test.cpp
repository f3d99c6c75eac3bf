// Steady-state decode steps of the forward allocate nothing on the heap: activations live in the
// forward's workspace (sized from the step limit), scratch in the backend and the dispatcher,
// parallel loops take non-owning callbacks, and the KV store reuses its buffers. The count comes
// from replacing the global operator new of this test binary; it counts only while armed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

#include "tests/unit/worker/tiny_engine_fixture.h"
#include "worker/paged_kv_cache.h"
#include "worker/paged_sequence_kv.h"

namespace {

std::atomic<bool> g_armed{false};
std::atomic<uint64_t> g_allocations{0};

void* counted_alloc(std::size_t size) {
  if (g_armed.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}

void* counted_aligned_alloc(std::size_t size, std::align_val_t align) {
  if (g_armed.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
  const auto a = static_cast<std::size_t>(align);
  if (void* p = std::aligned_alloc(a, (std::max<std::size_t>(size, 1) + a - 1) / a * a)) return p;
  throw std::bad_alloc();
}

}  // namespace

// Every replaceable form, so that each allocation is counted and each pointer is freed the way it
// was allocated (the sanitizer build checks that pairing).
void* operator new(std::size_t size) { return counted_alloc(size); }
void* operator new[](std::size_t size) { return counted_alloc(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return counted_alloc(size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t& tag) noexcept {
  return operator new(size, tag);
}
void* operator new(std::size_t size, std::align_val_t align) {
  return counted_aligned_alloc(size, align);
}
void* operator new[](std::size_t size, std::align_val_t align) {
  return counted_aligned_alloc(size, align);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace v4 {
namespace {

class ForwardAllocationTest : public EngineTest, public ::testing::WithParamInterface<KvStorage> {};

TEST_P(ForwardAllocationTest, SteadyStateDecodeStepsAllocateNothing) {
  constexpr uint32_t kSeqs = 4, kPrompt = 130, kMaxChunk = 64 * kSeqs;
  const V4Config& c = weights().config;
  PagedKvOptions kv;
  kv.page_tokens = 128;
  kv.total_pages = 4 * kSeqs;
  kv.storage = GetParam();
  CpuBackend backend(2);
  PagedKvCache cache(c, kv, backend);
  V4Forward forward(weights(), backend, nullptr, ForwardLimits{kMaxChunk, 512});
  std::vector<std::unique_ptr<PagedSequenceKv>> states;
  std::vector<std::vector<int32_t>> prompts;
  for (uint32_t s = 0; s < kSeqs; ++s) {
    states.push_back(std::make_unique<PagedSequenceKv>(c, cache, kMaxChunk));
    std::vector<PageId> pages;
    for (uint32_t p = 0; p < 4; ++p) pages.push_back(s * 4 + p);
    states.back()->set_pages(pages);
    prompts.push_back(prompt(kPrompt, s));
  }
  // Prefill past position 128, so the ratio-128 layer has a compressed row and the indexer
  // chooses among more rows than its top-k.
  std::vector<SequenceInput> inputs;
  for (uint32_t s = 0; s < kSeqs; ++s) inputs.push_back({states[s].get(), prompts[s]});
  ForwardOutput out;
  ASSERT_TRUE(forward.forward(inputs, out));
  std::vector<int32_t> next(kSeqs);
  auto decode_step = [&] {
    for (uint32_t s = 0; s < kSeqs; ++s) {
      next[s] = static_cast<int32_t>((out.first_row[s] * 131 + s * 17 + 5) % kTestVocab);
      inputs[s] = {states[s].get(), std::span<const int32_t>(&next[s], 1)};
    }
    return forward.forward(inputs, out);
  };
  for (int step = 0; step < 6; ++step) ASSERT_TRUE(decode_step());  // warm-up
  g_allocations = 0;
  g_armed = true;
  constexpr int kSteps = 12;
  bool all_ok = true;
  for (int step = 0; step < kSteps; ++step) all_ok = all_ok && static_cast<bool>(decode_step());
  g_armed = false;
  ASSERT_TRUE(all_ok);
  EXPECT_EQ(g_allocations.load(), 0u) << "heap allocations in " << kSteps << " decode steps";
  ASSERT_EQ(out.logits.size(), size_t{kSeqs} * c.n_vocab);

  // The counter works: a step of a new shape (more tokens than before) does allocate.
  g_allocations = 0;
  g_armed = true;
  std::vector<int32_t> prefix = prompt(kMaxChunk + 8, 9);
  PagedSequenceKv fresh(c, cache, kMaxChunk + 8);
  fresh.set_pages({0, 1, 2, 3});
  SequenceInput big{&fresh, prefix};
  ForwardOutput big_out;
  const Status grown = forward.forward({&big, 1}, big_out);
  g_armed = false;
  ASSERT_TRUE(grown) << grown.message();
  EXPECT_GT(g_allocations.load(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Storages, ForwardAllocationTest,
                         ::testing::Values(KvStorage::kF32, KvStorage::kFp8),
                         [](const ::testing::TestParamInfo<KvStorage>& info) {
                           return std::string(info.param == KvStorage::kF32 ? "F32" : "Fp8");
                         });

}  // namespace
}  // namespace v4
