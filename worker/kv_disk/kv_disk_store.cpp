#include "worker/kv_disk/kv_disk_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace v4 {
namespace fs = std::filesystem;
namespace {

constexpr const char* kPageSuffix = ".kvpage";
constexpr const char* kTempSuffix = ".tmp";
// Written pages' buffers kept for reuse: enough for a burst of evictions in one step.
constexpr size_t kSpareBuffers = 4;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A file descriptor closed on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Status read_exact(int fd, uint8_t* to, size_t bytes, uint64_t offset) {
  while (bytes > 0) {
    const ssize_t n = ::pread(fd, to, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::error(n == 0 ? "truncated" : std::strerror(errno));
    to += n;
    offset += static_cast<uint64_t>(n);
    bytes -= static_cast<size_t>(n);
  }
  return Status::ok();
}

Status write_all(int fd, const uint8_t* from, size_t bytes) {
  while (bytes > 0) {
    const ssize_t n = ::write(fd, from, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::error(std::strerror(errno));
    from += n;
    bytes -= static_cast<size_t>(n);
  }
  return Status::ok();
}

}  // namespace

KvDiskStore::KvDiskStore(const KvDiskOptions& options, const KvPageGeometry& geometry)
    : options_(options), geometry_(geometry) {}

Result<std::unique_ptr<KvDiskStore>> KvDiskStore::open(const KvDiskOptions& options,
                                                       const KvPageGeometry& geometry) {
  std::error_code error;
  fs::create_directories(options.dir, error);
  if (error || !fs::is_directory(options.dir))
    return Status::error("--kv-disk " + options.dir + ": cannot create the directory" +
                         (error ? ": " + error.message() : ""));
  if (::access(options.dir.c_str(), R_OK | W_OK | X_OK) != 0)
    return Status::error("--kv-disk " + options.dir + ": not writable");
  std::unique_ptr<KvDiskStore> store(new KvDiskStore(options, geometry));
  store->scan();
  store->writer_ = std::thread([s = store.get()] { s->write_loop(); });
  return store;
}

KvDiskStore::~KvDiskStore() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  queue_changed_.notify_all();
  if (writer_.joinable()) writer_.join();
}

fs::path KvDiskStore::path_of(uint64_t hash) const {
  char name[64];
  std::snprintf(name, sizeof name, "%016llx-%016llx%s",
                static_cast<unsigned long long>(options_.model_identity),
                static_cast<unsigned long long>(hash), kPageSuffix);
  return fs::path(options_.dir) / name;
}

void KvDiskStore::ignore(const fs::path& path, const std::string& why, bool remove) {
  spdlog::warn("kv-disk: ignoring {}: {}{}", path.string(), why, remove ? " (removed)" : "");
  if (remove) {
    std::error_code error;
    fs::remove(path, error);
  }
  std::lock_guard lock(mutex_);
  ++counts_.ignored;
}

Result<KvPageFileHeader> KvDiskStore::read_header(const fs::path& path, uint64_t* file_bytes) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return Status::error(std::strerror(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) return Status::error(std::strerror(errno));
  *file_bytes = static_cast<uint64_t>(st.st_size);
  std::vector<uint8_t> bytes(kKvPageFixedHeaderBytes);
  if (Status s = read_exact(f.fd, bytes.data(), bytes.size(), 0); !s)
    return Status::error("truncated header");
  Result<uint32_t> length = kv_page_header_bytes(bytes);
  if (!length) return length.status();
  bytes.resize(*length);
  if (Status s = read_exact(f.fd, bytes.data() + kKvPageFixedHeaderBytes,
                            *length - kKvPageFixedHeaderBytes, kKvPageFixedHeaderBytes);
      !s)
    return Status::error("truncated header");
  Result<KvPageFileHeader> header = decode_kv_page_header(bytes);
  if (!header) return header.status();
  if (Status s = check_kv_page_header(*header, options_.model_identity, geometry_); !s) return s;
  if (*file_bytes != *length + header->payload_bytes())
    return Status::error("file of " + std::to_string(*file_bytes) + " bytes, header says " +
                         std::to_string(*length + header->payload_bytes()) + " (truncated?)");
  return header;
}

void KvDiskStore::scan() {
  struct Found {
    fs::file_time_type used;
    uint64_t hash, parent, bytes;
  };
  std::vector<Found> found;
  std::error_code error;
  // Files named for another model identity belong to another model sharing the directory.
  const std::string ours = path_of(0).filename().string().substr(0, 17);
  uint64_t others = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(options_.dir, error)) {
    const std::string name = e.path().filename().string();
    if (ends_with(name, std::string(kPageSuffix) + kTempSuffix)) {
      // A write that never reached its rename: the process stopped mid-write.
      ignore(e.path(), "unfinished write", true);
      continue;
    }
    if (!ends_with(name, kPageSuffix) || !e.is_regular_file()) continue;
    if (name.compare(0, ours.size(), ours) != 0) {
      ++others;
      continue;
    }
    uint64_t bytes = 0;
    Result<KvPageFileHeader> h = read_header(e.path(), &bytes);
    if (!h) {
      // Another model's or another geometry's pages may share the directory: leave them.
      const bool foreign = h.message().find("differs from this engine") != std::string::npos;
      ignore(e.path(), h.message(), !foreign);
      continue;
    }
    if (e.path() != path_of(h->hash)) {
      ignore(e.path(), "file name does not match its header", true);
      continue;
    }
    found.push_back({e.last_write_time(error), h->hash, h->parent, bytes});
  }
  std::sort(found.begin(), found.end(),
            [](const Found& a, const Found& b) { return a.used < b.used; });
  std::lock_guard lock(mutex_);
  for (const Found& f : found) index_locked(f.hash, f.parent, f.bytes);
  spdlog::info("kv-disk: {} pages ({:.1f} MiB) in {}, budget {:.1f} MiB; {} files of other models",
               index_.size(), indexed_bytes_ / 1048576.0, options_.dir,
               options_.max_bytes / 1048576.0, others);
}

void KvDiskStore::index_locked(uint64_t hash, uint64_t parent, uint64_t bytes) {
  erase_locked(hash);
  lru_.push_back(hash);
  index_[hash] = {parent, bytes, std::prev(lru_.end())};
  indexed_bytes_ += bytes;
  while (indexed_bytes_ > options_.max_bytes && !lru_.empty()) {
    const uint64_t oldest = lru_.front();
    std::error_code error;
    fs::remove(path_of(oldest), error);
    erase_locked(oldest);
    ++counts_.evictions;
  }
}

void KvDiskStore::erase_locked(uint64_t hash) {
  auto it = index_.find(hash);
  if (it == index_.end()) return;
  indexed_bytes_ -= it->second.bytes;
  lru_.erase(it->second.lru);
  index_.erase(it);
}

Result<KvStoredPage> KvDiskStore::read_page(const fs::path& path) {
  uint64_t file_bytes = 0;
  Result<KvPageFileHeader> h = read_header(path, &file_bytes);
  if (!h) return h.status();
  KvStoredPage page{std::move(*h), {}};
  page.payload.resize(page.header.payload_bytes());
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return Status::error(std::strerror(errno));
  const uint64_t offset = file_bytes - page.payload.size();
  if (Status s = read_exact(f.fd, page.payload.data(), page.payload.size(), offset); !s)
    return Status::error("payload: " + s.message());
  if (kv_page_checksum(page.payload) != page.header.payload_checksum)
    return Status::error("payload checksum mismatch");
  return page;
}

bool KvDiskStore::find(uint64_t hash, uint64_t parent, std::span<const int32_t> tokens,
                       uint64_t end) {
  // The snapshot must describe this page's end: a resumed sequence continues from there.
  auto same = [&](const KvPageFileHeader& h) {
    return h.hash == hash && h.parent == parent && h.n_past == end &&
           std::equal(h.tokens.begin(), h.tokens.end(), tokens.begin(), tokens.end());
  };
  if (auto it = staged_.find(hash); it != staged_.end()) return same(it->second.header);
  {
    std::unique_lock lock(mutex_);
    if (auto it = pending_.find(hash); it != pending_.end()) {
      if (!same(it->second->header)) return false;
      staged_[hash] = *it->second;  // still queued: copy it rather than wait for the write
      ++counts_.hits;
      return true;
    }
    auto it = index_.find(hash);
    if (it == index_.end() || it->second.parent != parent) return false;
  }
  const fs::path path = path_of(hash);
  Result<KvStoredPage> page = read_page(path);
  if (!page) {
    ignore(path, page.message(), true);
    std::lock_guard lock(mutex_);
    erase_locked(hash);
    return false;
  }
  if (!same(page->header)) return false;  // a 64-bit collision: another prefix's page
  {
    std::lock_guard lock(mutex_);
    if (auto it = index_.find(hash); it != index_.end()) {
      lru_.splice(lru_.end(), lru_, it->second.lru);
    }
    ++counts_.hits;
  }
  // The modification time is the LRU order a restart rebuilds.
  ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0);
  staged_[hash] = std::move(*page);
  return true;
}

std::optional<KvStoredPage> KvDiskStore::take_staged(uint64_t hash) {
  auto it = staged_.find(hash);
  if (it == staged_.end()) return std::nullopt;
  KvStoredPage page = std::move(it->second);
  staged_.erase(it);
  return page;
}

void KvDiskStore::put(KvStoredPage page, bool wait) {
  page.header.model_identity = options_.model_identity;
  page.header.geometry = geometry_;
  const uint64_t bytes = page.payload.size();
  std::unique_lock lock(mutex_);
  // A page loaded from disk and evicted again is already there: refresh its place, write nothing.
  if (auto it = index_.find(page.header.hash);
      it != index_.end() && it->second.parent == page.header.parent) {
    lru_.splice(lru_.end(), lru_, it->second.lru);
    lock.unlock();
    ::utimensat(AT_FDCWD, path_of(page.header.hash).c_str(), nullptr, 0);
    return;
  }
  if (wait) {
    queue_changed_.wait(
        lock, [&] { return queued_bytes_ == 0 || queued_bytes_ + bytes <= options_.queue_bytes; });
  } else if (queued_bytes_ > 0 && queued_bytes_ + bytes > options_.queue_bytes) {
    ++counts_.dropped;
    return;
  }
  auto shared = std::make_shared<KvStoredPage>(std::move(page));
  pending_[shared->header.hash] = shared;
  queue_.push_back(std::move(shared));
  queued_bytes_ += bytes;
  queue_changed_.notify_all();
}

std::vector<uint8_t> KvDiskStore::payload_buffer(size_t bytes) {
  std::vector<uint8_t> buffer;
  {
    std::lock_guard lock(mutex_);
    if (!spare_buffers_.empty()) {
      buffer = std::move(spare_buffers_.back());
      spare_buffers_.pop_back();
    }
  }
  buffer.resize(bytes);  // a recycled buffer has this size already: nothing is filled
  return buffer;
}

void KvDiskStore::flush() {
  std::unique_lock lock(mutex_);
  queue_changed_.wait(lock, [&] { return queue_.empty() && !writing_; });
}

KvDiskStats KvDiskStore::stats() const {
  std::lock_guard lock(mutex_);
  KvDiskStats s = counts_;
  s.files = index_.size();
  s.bytes = indexed_bytes_;
  return s;
}

void KvDiskStore::write_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    queue_changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping with nothing left to write
    std::shared_ptr<KvStoredPage> page = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    lock.unlock();
    uint64_t bytes = 0;
    const Status written = write_file(*page, &bytes);
    if (!written)
      spdlog::warn("kv-disk: page {:016x} not written: {}", page->header.hash, written.message());
    lock.lock();
    const uint64_t hash = page->header.hash;
    if (auto it = pending_.find(hash); it != pending_.end() && it->second == page)
      pending_.erase(it);
    queued_bytes_ -= page->payload.size();
    if (written) {
      index_locked(hash, page->header.parent, bytes);
      ++counts_.writes;
    }
    // No reader holds the page now (find() copies under the lock): its buffer can be reused.
    if (spare_buffers_.size() < kSpareBuffers) spare_buffers_.push_back(std::move(page->payload));
    writing_ = false;
    queue_changed_.notify_all();
  }
}

// Written under a temporary name, synced, then renamed: a crash leaves either the old state or
// the whole new file, never a torn page under the final name (and the checksum would catch one).
Status KvDiskStore::write_file(const KvStoredPage& page, uint64_t* bytes) {
  const fs::path final_path = path_of(page.header.hash);
  const fs::path temp_path = final_path.string() + kTempSuffix;
  // The checksum is computed here, off the step loop.
  KvPageFileHeader with_checksum = page.header;
  with_checksum.payload_checksum = kv_page_checksum(page.payload);
  const std::vector<uint8_t> header = encode_kv_page_header(with_checksum);
  Fd f{::open(temp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)};
  if (f.fd < 0) return Status::error(temp_path.string() + ": " + std::strerror(errno));
  Status s = write_all(f.fd, header.data(), header.size());
  if (s) s = write_all(f.fd, page.payload.data(), page.payload.size());
  if (s && ::fsync(f.fd) != 0) s = Status::error(std::string("fsync: ") + std::strerror(errno));
  if (s && ::rename(temp_path.c_str(), final_path.c_str()) != 0)
    s = Status::error(std::string("rename: ") + std::strerror(errno));
  if (!s) {
    std::error_code error;
    fs::remove(temp_path, error);
    return s;
  }
  *bytes = header.size() + page.payload.size();
  return Status::ok();
}

}  // namespace v4
