#include "worker/prefix_page_spill.h"

#include <cstring>
#include <string>
#include <vector>

#include "worker/kv_disk/kv_page_file.h"

namespace v4 {
namespace {

template <class T>
void append(std::vector<uint8_t>& out, const T& value) {
  const auto* p = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof value);
}

}  // namespace

KvPageGeometry kv_page_geometry(const V4Config& c, const PagedKvCache& cache) {
  const KvLayout& layout = cache.layout();
  const KvPageFormat& f = layout.format;
  std::vector<uint8_t> described;
  append(described, static_cast<uint32_t>(f.storage));
  append(described, f.shape);
  append(described, f.page_tokens);
  for (size_t bytes : {f.page_bytes, f.main_row_bytes, f.indexer_row_bytes, layout.carry_floats})
    append(described, static_cast<uint64_t>(bytes));
  for (const KvLayerAddress& l : layout.layers) {
    append(described, l.ratio);
    for (size_t v : {l.main_offset, l.indexer_offset, l.carry_offset, l.indexer_carry_offset})
      append(described, static_cast<uint64_t>(v));
    for (uint32_t v : {l.raw_slot, l.carry_rows, l.carry_width, l.indexer_carry_width})
      append(described, v);
  }
  append(described, c.sliding_window);
  KvPageGeometry g;
  g.page_tokens = cache.page_tokens();
  g.storage = static_cast<uint32_t>(cache.storage());
  g.page_bytes = cache.page_bytes();
  g.snapshot_bytes = PagedSequenceKv::snapshot_bytes(c, layout);
  g.digest = kv_page_checksum(described);
  return g;
}

Status spill_prefix_pages(std::span<const PageSpill> spills, const PagedKvCache& cache,
                          const std::unordered_map<PageId, KvSnapshot>& snapshots,
                          KvDiskStore& store, bool wait) {
  const KvPageGeometry& g = store.geometry();
  for (const PageSpill& spill : spills) {
    auto snap = snapshots.find(spill.page);
    if (snap == snapshots.end()) continue;  // never snapshotted: nothing a hit could resume from
    KvStoredPage page;
    page.header.hash = spill.key.hash;
    page.header.parent = spill.key.parent;
    page.header.tokens = spill.key.tokens;
    page.header.n_past = snap->second.n_past;
    page.payload = store.payload_buffer(g.page_bytes + g.snapshot_bytes);
    if (Status s = cache.read_page(spill.page, page.payload.data()); !s) return s;
    if (Status s = copy_snapshot_to_host(cache.backend(), snap->second,
                                         page.payload.data() + g.page_bytes, g.snapshot_bytes);
        !s)
      return s;
    store.put(std::move(page), wait);
  }
  return Status::ok();
}

Status load_prefix_pages(std::span<const PageLoad> loads, PagedKvCache& cache,
                         std::unordered_map<PageId, KvSnapshot>& snapshots, KvDiskStore& store) {
  const KvPageGeometry& g = store.geometry();
  for (const PageLoad& load : loads) {
    std::optional<KvStoredPage> page = store.take_staged(load.hash);
    if (!page) return Status::error("prefix page " + std::to_string(load.hash) + " was not staged");
    if (Status s = cache.write_page(load.page, page->payload.data()); !s) return s;
    Result<KvSnapshot> snap =
        snapshot_from_host(cache.backend(), page->header.n_past,
                           page->payload.data() + g.page_bytes, g.snapshot_bytes);
    if (!snap) return snap.status();
    snapshots[load.page] = std::move(*snap);
  }
  store.drop_staged();
  return Status::ok();
}

}  // namespace v4
