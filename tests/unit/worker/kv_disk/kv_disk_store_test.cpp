// The disk store of prefix pages: files round-trip exactly, survive a reopen, and every file that
// does not match (another model or geometry, a lying header, truncation, a flipped byte, an
// unfinished write) is ignored with one warning line and never returned. The oracle is the page
// the test wrote itself.
#include "worker/kv_disk/kv_disk_store.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "scheduler/prefix_cache.h"

namespace v4 {
namespace {
namespace fs = std::filesystem;

KvPageGeometry geometry() {
  KvPageGeometry g;
  g.page_tokens = 128;
  g.storage = 1;
  g.page_bytes = 4096;
  g.snapshot_bytes = 1000;  // not a multiple of the checksum's 32-byte stride
  g.digest = 0x1234;
  return g;
}

// Page `index` of a chain over tokens derived from `seed`, with a payload only it has.
KvStoredPage make_page(uint32_t seed, uint64_t parent = 0) {
  KvStoredPage p;
  for (uint32_t i = 0; i < 128; ++i)
    p.header.tokens.push_back(static_cast<int32_t>(seed * 131 + i));
  p.header.parent = parent;
  p.header.hash = PrefixCache::chain_hash(parent, p.header.tokens);
  p.header.n_past = 128;
  p.payload.resize(geometry().page_bytes + geometry().snapshot_bytes);
  for (size_t i = 0; i < p.payload.size(); ++i) p.payload[i] = static_cast<uint8_t>(i * 7 + seed);
  return p;
}

class KvDiskStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kv-disk-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    // Warnings go to a string the test reads.
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
    previous_ = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", sink));
  }
  void TearDown() override {
    spdlog::set_default_logger(previous_);
    fs::remove_all(dir_);
  }

  std::unique_ptr<KvDiskStore> open(uint64_t identity = 7, KvPageGeometry g = geometry(),
                                    uint64_t max_bytes = uint64_t{1} << 30) {
    KvDiskOptions o;
    o.dir = dir_.string();
    o.max_bytes = max_bytes;
    o.model_identity = identity;
    Result<std::unique_ptr<KvDiskStore>> s = KvDiskStore::open(o, g);
    EXPECT_TRUE(s) << s.message();
    return s ? std::move(*s) : nullptr;
  }

  static bool find(KvDiskStore& s, const KvStoredPage& p) {
    return s.find(p.header.hash, p.header.parent, p.header.tokens, p.header.n_past);
  }

  // Writes `p` through a store and closes it: the file is on disk.
  void write(const KvStoredPage& p, uint64_t identity = 7) {
    auto s = open(identity);
    s->put(p, false);
    s->flush();
  }

  size_t warnings() const {
    const std::string text = log_.str();
    size_t n = 0;
    for (size_t at = text.find("[warning]"); at != std::string::npos;
         at = text.find("[warning]", at + 1))
      ++n;
    return n;
  }

  fs::path dir_;
  std::ostringstream log_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_F(KvDiskStoreTest, PageRoundTripsExactlyAndSurvivesAReopen) {
  const KvStoredPage p = make_page(1);
  write(p);
  auto s = open();
  EXPECT_EQ(s->stats().files, 1u);
  ASSERT_TRUE(find(*s, p));
  std::optional<KvStoredPage> back = s->take_staged(p.header.hash);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->payload, p.payload);
  EXPECT_EQ(back->header.tokens, p.header.tokens);
  EXPECT_EQ(back->header.n_past, p.header.n_past);
  EXPECT_EQ(back->header.parent, p.header.parent);
  EXPECT_EQ(s->stats().hits, 1u);
  EXPECT_EQ(s->stats().ignored, 0u);
  EXPECT_EQ(warnings(), 0u);
}

TEST_F(KvDiskStoreTest, QueuedPageIsFoundBeforeItsWrite) {
  auto s = open();
  const KvStoredPage p = make_page(2);
  s->put(p, false);
  ASSERT_TRUE(find(*s, p));  // from the queue or the file, whichever is first
  EXPECT_EQ(s->take_staged(p.header.hash)->payload, p.payload);
}

// A page loaded from disk and evicted again costs no second write.
TEST_F(KvDiskStoreTest, PageAlreadyOnDiskIsNotWrittenAgain) {
  const KvStoredPage p = make_page(12);
  auto s = open();
  s->put(p, false);
  s->flush();
  s->put(p, false);
  s->flush();
  EXPECT_EQ(s->stats().writes, 1u);
  EXPECT_EQ(s->stats().files, 1u);
}

// A 64-bit collision, a different parent or another position is a plain miss: no rows of another
// prefix.
TEST_F(KvDiskStoreTest, OtherTokensOrParentUnderTheSameHashMiss) {
  const KvStoredPage p = make_page(3);
  write(p);
  auto s = open();
  std::vector<int32_t> other = p.header.tokens;
  other[5] += 1;
  EXPECT_FALSE(s->find(p.header.hash, p.header.parent, other, p.header.n_past));
  EXPECT_FALSE(s->find(p.header.hash, p.header.parent + 1, p.header.tokens, p.header.n_past));
  // The same page at another depth of the chain: its snapshot is not this position's.
  EXPECT_FALSE(s->find(p.header.hash, p.header.parent, p.header.tokens, 2 * p.header.n_past));
  EXPECT_TRUE(find(*s, p));
}

// Every field that defines the bytes: a store of another model or geometry never loads them.
TEST_F(KvDiskStoreTest, EveryHeaderMismatchIsIgnoredWithOneWarning) {
  const KvStoredPage p = make_page(4);
  write(p);
  std::vector<std::pair<uint64_t, KvPageGeometry>> others;
  others.push_back({8, geometry()});  // model identity
  KvPageGeometry g = geometry();
  g.page_tokens = 256;
  others.push_back({7, g});
  g = geometry();
  g.storage = 2;
  others.push_back({7, g});
  g = geometry();
  g.page_bytes += 32;
  others.push_back({7, g});
  g = geometry();
  g.snapshot_bytes += 4;
  others.push_back({7, g});
  g = geometry();
  g.digest += 1;
  others.push_back({7, g});
  for (size_t i = 0; i < others.size(); ++i) {
    const size_t before = warnings();
    auto s = open(others[i].first, others[i].second);
    EXPECT_EQ(s->stats().files, 0u) << i;
    EXPECT_EQ(s->stats().ignored, others[i].first == 7 ? 1u : 0u) << i;
    EXPECT_FALSE(find(*s, p)) << i;
    EXPECT_EQ(warnings(), before + (others[i].first == 7 ? 1u : 0u)) << i;
  }
  // Another model's files (its identity is in their names) are left for it, without a warning.
  auto s = open();
  EXPECT_TRUE(find(*s, p));
}

TEST_F(KvDiskStoreTest, FileOfAnotherModelInItsPlaceIsIgnored) {
  const KvStoredPage p = make_page(5);
  write(p, 9);
  // Renamed to the name this engine would look for: the header still says model 9.
  for (const fs::directory_entry& e : fs::directory_iterator(dir_)) {
    auto s7 = open(7);
    fs::rename(e.path(), s7->path_of(p.header.hash));
    break;
  }
  const size_t before = warnings();
  auto s = open(7);
  EXPECT_FALSE(find(*s, p));
  EXPECT_EQ(s->stats().ignored, 1u);
  EXPECT_EQ(warnings(), before + 1);
}

// Rewrites the header so its hash is not the chain hash of (parent, tokens).
TEST_F(KvDiskStoreTest, HeaderThatLiesAboutItsChainIsIgnored) {
  KvStoredPage p = make_page(6);
  auto s = open();
  const fs::path path = s->path_of(p.header.hash);
  p.header.parent = 99;  // the hash stays that of parent 0
  p.header.model_identity = 7;
  p.header.geometry = geometry();
  p.header.payload_checksum = kv_page_checksum(p.payload);
  s.reset();
  std::ofstream out(path, std::ios::binary);
  const std::vector<uint8_t> header = encode_kv_page_header(p.header);
  out.write(reinterpret_cast<const char*>(header.data()),
            static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(p.payload.data()),
            static_cast<std::streamsize>(p.payload.size()));
  out.close();
  s = open();
  EXPECT_EQ(s->stats().ignored, 1u);
  EXPECT_FALSE(s->find(p.header.hash, 99, p.header.tokens, p.header.n_past));
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(warnings(), 1u);
}

TEST_F(KvDiskStoreTest, TruncatedFileIsIgnoredAndRemoved) {
  const KvStoredPage p = make_page(7);
  write(p);
  auto s = open();
  const fs::path path = s->path_of(p.header.hash);
  s.reset();
  for (uint64_t keep : {fs::file_size(path) - 1, uint64_t{100}, uint64_t{5}}) {
    write(p);
    fs::resize_file(path, keep);
    const size_t before = warnings();
    s = open();
    EXPECT_FALSE(find(*s, p)) << keep;
    EXPECT_EQ(s->stats().ignored, 1u) << keep;
    EXPECT_EQ(warnings(), before + 1) << keep;
    EXPECT_FALSE(fs::exists(path)) << keep;
    s.reset();
  }
}

// The scan reads headers only, so a flipped payload byte is caught when the page is read.
TEST_F(KvDiskStoreTest, FlippedPayloadByteFailsTheChecksumAndIsIgnored) {
  const KvStoredPage p = make_page(8);
  write(p);
  auto s = open();
  const fs::path path = s->path_of(p.header.hash);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(path) - 10));
    f.put('\x5a' ^ static_cast<char>(p.payload[p.payload.size() - 10]));
  }
  EXPECT_EQ(s->stats().files, 1u);
  EXPECT_FALSE(find(*s, p));
  EXPECT_EQ(s->stats().ignored, 1u);
  EXPECT_EQ(s->stats().files, 0u);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_NE(log_.str().find("payload checksum mismatch"), std::string::npos);
  EXPECT_EQ(warnings(), 1u);
}

TEST_F(KvDiskStoreTest, FlippedHeaderByteIsIgnored) {
  const KvStoredPage p = make_page(9);
  write(p);
  auto s = open();
  const fs::path path = s->path_of(p.header.hash);
  s.reset();
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);  // among the token ids
    f.put('\x77');
  }
  s = open();
  EXPECT_FALSE(find(*s, p));
  EXPECT_EQ(s->stats().ignored, 1u);
  EXPECT_EQ(warnings(), 1u);
}

// An unfinished write (the process died before the rename) is removed at start-up.
TEST_F(KvDiskStoreTest, TemporaryFileOfACrashIsCleanedUp) {
  const KvStoredPage p = make_page(10);
  write(p);
  auto s = open();
  const fs::path temp = s->path_of(make_page(11).header.hash).string() + ".tmp";
  s.reset();
  std::ofstream(temp) << "half a page";
  s = open();
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(s->stats().ignored, 1u);
  EXPECT_EQ(s->stats().files, 1u);
  EXPECT_TRUE(find(*s, p));
  EXPECT_EQ(warnings(), 1u);
}

// Room for three files: the fourth evicts the least recently used, and a hit refreshes a page.
TEST_F(KvDiskStoreTest, SizeBoundEvictsLeastRecentlyUsedFirst) {
  const KvStoredPage a = make_page(20), b = make_page(21), c = make_page(22), d = make_page(23);
  auto probe = open();
  const uint64_t file = [&] {
    probe->put(a, false);
    probe->flush();
    return fs::file_size(probe->path_of(a.header.hash));
  }();
  probe.reset();
  fs::remove_all(dir_);
  auto s = open(7, geometry(), 3 * file);
  for (const KvStoredPage* p : {&a, &b, &c}) {
    s->put(*p, false);
    s->flush();
  }
  EXPECT_EQ(s->stats().files, 3u);
  ASSERT_TRUE(find(*s, a));  // a is now the most recent; b the least
  s->drop_staged();
  s->put(d, false);
  s->flush();
  EXPECT_EQ(s->stats().files, 3u);
  EXPECT_EQ(s->stats().evictions, 1u);
  EXPECT_LE(s->stats().bytes, 3 * file);
  EXPECT_FALSE(find(*s, b));
  EXPECT_FALSE(fs::exists(s->path_of(b.header.hash)));
  for (const KvStoredPage* p : {&a, &c, &d}) EXPECT_TRUE(find(*s, *p));
  // A smaller bound at the next start evicts down to it.
  s.reset();
  s = open(7, geometry(), file);
  EXPECT_EQ(s->stats().files, 1u);
  EXPECT_EQ(s->stats().evictions, 2u);
}

TEST_F(KvDiskStoreTest, UnwritableDirectoryIsAClearError) {
  KvDiskOptions o;
  o.dir = "/proc/kv-disk-cannot-exist";
  o.max_bytes = 1 << 20;
  Result<std::unique_ptr<KvDiskStore>> s = KvDiskStore::open(o, geometry());
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("--kv-disk"), std::string::npos);
}

}  // namespace
}  // namespace v4
