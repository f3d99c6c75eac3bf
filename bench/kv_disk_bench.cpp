// The disk store of prefix pages (--kv-disk): what an evicted page costs the step loop, how fast
// the writer thread writes page files (write + fsync + rename, checksum included), and how fast a
// lookup reads one back and verifies it. Pages have the geometry of the real model (V4Config
// defaults, spec §1) and of the tiny test model, at 256 tokens per page in fp8 storage.
//
//   build/bench/kv_disk_bench [DIR]   (default: a directory under /tmp; it is removed after)
//
// "step loop per evicted page" is what spill_prefix_pages does on the step loop on the CPU
// backend: a payload buffer, the copy out of the pool, the enqueue (the queue has room).
//
// Reads come from the page cache when the files are still there (no root to drop it), so the
// read figure is a best case; the write figure includes fsync.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "model/synthetic/synthetic_model.h"
#include "model/v4/kv_layout.h"
#include "model/v4/v4_config.h"
#include "scheduler/prefix_cache.h"
#include "worker/kv_disk/kv_disk_store.h"

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

v4::KvPageGeometry geometry_of(const v4::V4Config& c) {
  const v4::KvLayout layout = v4::make_kv_layout(c, v4::KvStorage::kFp8, 256, false);
  v4::KvPageGeometry g;
  g.page_tokens = 256;
  g.storage = static_cast<uint32_t>(v4::KvStorage::kFp8);
  g.page_bytes = layout.format.page_bytes;
  g.snapshot_bytes = layout.state_floats(c.sliding_window) * sizeof(float);
  g.digest = 1;
  return g;
}

v4::KvStoredPage page_for(uint32_t i, const v4::KvPageGeometry& g) {
  v4::KvStoredPage p;
  for (uint32_t t = 0; t < g.page_tokens; ++t)
    p.header.tokens.push_back(static_cast<int32_t>(i * 977 + t));
  p.header.hash = v4::PrefixCache::chain_hash(0, p.header.tokens);
  p.header.n_past = g.page_tokens;
  return p;
}

void run(const char* name, const v4::V4Config& c, const std::string& dir, uint32_t pages) {
  const v4::KvPageGeometry g = geometry_of(c);
  const uint64_t payload = g.page_bytes + g.snapshot_bytes;
  std::filesystem::remove_all(dir);
  v4::KvDiskOptions o;
  o.dir = dir;
  o.max_bytes = uint64_t{64} << 30;
  o.model_identity = 1;
  // Room for every page: the step-loop figure is the copy and the enqueue, never a wait.
  o.queue_bytes = payload * pages;
  auto store = v4::KvDiskStore::open(o, g).value();
  // The page pool a spill copies from (on the CPU backend read_page is this memcpy).
  std::vector<uint8_t> pool(payload, 0x5a);
  // What spill_prefix_pages does on the step loop for one page.
  auto spill = [&](uint32_t i) {
    const Clock::time_point t = Clock::now();
    v4::KvStoredPage p = page_for(i, g);
    p.payload = store->payload_buffer(payload);
    std::memcpy(p.payload.data(), pool.data(), payload);
    store->put(std::move(p), false);
    return seconds_since(t);
  };
  // A burst: every page evicted back to back, each into a fresh buffer.
  double burst = 0;
  const Clock::time_point start = Clock::now();
  for (uint32_t i = 0; i < pages; ++i) burst += spill(i);
  store->flush();
  const double write_s = seconds_since(start);
  // Steady state: evictions spread over steps, each finding a written page's buffer to reuse.
  double steady = 0;
  for (uint32_t i = pages; i < 2 * pages; ++i) {
    steady += spill(i);
    store->flush();
  }
  const uint64_t written = store->stats().writes;
  store.reset();
  store = v4::KvDiskStore::open(o, g).value();
  const Clock::time_point read_start = Clock::now();
  uint32_t found = 0;
  for (uint32_t i = 0; i < pages; ++i) {
    const v4::KvStoredPage p = page_for(i, g);
    found += store->find(p.header.hash, 0, p.header.tokens, p.header.n_past) ? 1 : 0;
    store->drop_staged();
  }
  const double read_s = seconds_since(read_start);
  const double mb = static_cast<double>(payload) * pages / 1e6;
  std::printf("%-6s payload %8.2f MB/page (rows %.2f + snapshot %.2f), %u pages\n", name,
              payload / 1e6, g.page_bytes / 1e6, g.snapshot_bytes / 1e6, pages);
  std::printf(
      "       step loop per evicted page: %8.3f ms in a burst, %8.3f ms steady "
      "(buffer, copy out, enqueue)\n",
      1e3 * burst / pages, 1e3 * steady / pages);
  std::printf(
      "       write (checksum, write, fsync, rename): %8.1f MB/s, %8.3f ms/page, %llu written\n",
      mb / write_s, 1e3 * write_s / pages, static_cast<unsigned long long>(written));
  std::printf("       read + verify (page cache): %8.1f MB/s, %8.3f ms/page, %u/%u found\n",
              mb / read_s, 1e3 * read_s / pages, found, pages);
  store.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/tmp/kv_disk_bench-" + std::to_string(::getpid());
  v4::V4Config full;  // defaults are the real model
  full.compress_ratios = v4::v4_default_compress_ratios(full.n_layer);
  run("full", full, dir, 16);
  run("tiny", *v4::synthetic_preset("tiny"), dir, 256);
  return 0;
}
