// Cached prefix pages on disk, bounded by size, surviving a restart (docs/design.md, KvCache:
// save/restore of prefix pages). One file per page (kv_page_file.h), named by model identity and
// chain hash; an in-memory index of the files, rebuilt at start-up from their headers, in
// least-recently-used order (file modification times carry that order across restarts).
//
// Writes go through a background thread with a bounded queue: the step loop only copies a page
// out of the pool (it must, before the page id is reused), and the file write, fsync and rename
// happen beside it. A full queue drops the page (it is a cache; counted) rather than stall a
// step. Reads happen on the step loop, when the scheduler's lookup reaches a page missing in
// memory: the page is needed before the step can run anyway.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "scheduler/prefix_page_store.h"
#include "worker/kv_disk/kv_page_file.h"

namespace v4 {

struct KvDiskOptions {
  std::string dir;
  uint64_t max_bytes = 0;       // files beyond this are evicted, least recently used first
  uint64_t model_identity = 0;  // model_identity.h
  uint64_t queue_bytes = uint64_t{256} << 20;  // pages waiting for the writer thread
};

struct KvDiskStats {
  uint64_t hits = 0;       // pages read back and verified
  uint64_t writes = 0;     // page files written
  uint64_t evictions = 0;  // files removed to stay within max_bytes
  uint64_t ignored = 0;    // files refused: another model or geometry, corrupt, truncated, temp
  uint64_t dropped = 0;    // pages not written because the queue was full
  uint64_t files = 0, bytes = 0;  // in the index now
};

// One page as the worker hands it over and gets it back: the header's identity fields (hash,
// parent, tokens, n_past) and the payload (page rows, then the snapshot).
struct KvStoredPage {
  KvPageFileHeader header;
  std::vector<uint8_t> payload;
};

class KvDiskStore final : public PrefixPageStore {
 public:
  // Creates the directory if needed and indexes the files in it (headers only); files that do
  // not match are ignored with one warning each, leftover temporary files removed.
  static Result<std::unique_ptr<KvDiskStore>> open(const KvDiskOptions& options,
                                                   const KvPageGeometry& geometry);
  // Writes every queued page, then stops the writer.
  ~KvDiskStore() override;
  KvDiskStore(const KvDiskStore&) = delete;
  KvDiskStore& operator=(const KvDiskStore&) = delete;

  // Reads and verifies the page (header fields, tokens, payload checksum) and keeps it staged for
  // take_staged(). A file that fails verification is removed with a warning: a miss.
  bool find(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens, uint64_t end) override;
  // The page staged by find(), moved out; none if find() did not stage it.
  std::optional<KvStoredPage> take_staged(uint64_t hash);
  // Forgets staged pages nobody took (their admission did not fit this step).
  void drop_staged() { staged_.clear(); }

  // Queues a page for writing (model identity, geometry and checksum are filled in here). With
  // `wait` a full queue blocks instead of dropping the page (a stopping engine keeps everything).
  // A page whose file is already indexed is not written again, only made most recent.
  void put(KvStoredPage page, bool wait);
  // A payload buffer of `bytes` (contents unspecified) for the next put(), recycled when one is.
  std::vector<uint8_t> payload_buffer(size_t bytes);
  // Blocks until every queued page is on disk (or dropped for an I/O error).
  void flush();
  KvDiskStats stats() const;
  const KvPageGeometry& geometry() const { return geometry_; }
  std::filesystem::path path_of(uint64_t hash) const;

 private:
  struct IndexEntry {
    uint64_t parent = 0;
    uint64_t bytes = 0;
    std::list<uint64_t>::iterator lru;
  };

  KvDiskStore(const KvDiskOptions& options, const KvPageGeometry& geometry);
  void scan();
  // The header of `path` if it is ours and whole (size agrees); otherwise why not.
  Result<KvPageFileHeader> read_header(const std::filesystem::path& path, uint64_t* file_bytes);
  Result<KvStoredPage> read_page(const std::filesystem::path& path);
  void ignore(const std::filesystem::path& path, const std::string& why, bool remove);
  void write_loop();
  Status write_file(const KvStoredPage& page, uint64_t* bytes);
  // Under mutex_: add to the index as most recent, then evict to fit max_bytes.
  void index_locked(uint64_t hash, uint64_t parent, uint64_t bytes);
  void erase_locked(uint64_t hash);

  KvDiskOptions options_;
  KvPageGeometry geometry_;
  mutable std::mutex mutex_;
  std::condition_variable queue_changed_;
  std::unordered_map<uint64_t, IndexEntry> index_;
  std::list<uint64_t> lru_;  // front: evicted first
  uint64_t indexed_bytes_ = 0;
  // Queued for the writer, and findable meanwhile by hash.
  std::deque<std::shared_ptr<KvStoredPage>> queue_;
  std::unordered_map<uint64_t, std::shared_ptr<KvStoredPage>> pending_;
  uint64_t queued_bytes_ = 0;
  // Payload buffers of written pages, for the next spill: reusing them spares the step loop the
  // page faults of fresh memory (about ten times the copy itself for a full-model page).
  std::vector<std::vector<uint8_t>> spare_buffers_;
  bool writing_ = false, stopping_ = false;
  KvDiskStats counts_;
  std::unordered_map<uint64_t, KvStoredPage> staged_;  // step-loop thread only
  std::thread writer_;
};

}  // namespace v4
