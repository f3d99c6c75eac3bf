// Moves cached prefix pages between the page pool and the disk store (kv_disk/kv_disk_store.h):
// a page's rows and the state snapshot at its end (spec §4.4: the carry state is not derivable
// from cached rows) travel together as one payload, rows first.
#pragma once

#include <unordered_map>

#include "core/status.h"
#include "model/v4/v4_config.h"
#include "scheduler/step_plan.h"
#include "worker/kv_disk/kv_disk_store.h"
#include "worker/paged_kv_cache.h"
#include "worker/paged_sequence_kv.h"

namespace v4 {

// What the page files of this cache must agree on: page size, storage, the bytes of rows and
// snapshot, and a digest of the whole layout (per-layer offsets, row sizes, carry widths).
KvPageGeometry kv_page_geometry(const V4Config& config, const PagedKvCache& cache);

// Copies the plan's spilled pages (with their snapshots) out of the pool into the store's write
// queue. `wait`: block on a full queue rather than drop (a stopping engine).
Status spill_prefix_pages(std::span<const PageSpill> spills, const PagedKvCache& cache,
                          const std::unordered_map<PageId, KvSnapshot>& snapshots,
                          KvDiskStore& store, bool wait);
// Fills the plan's loaded pages from what the store staged for them, snapshots included, then
// drops whatever else it staged.
Status load_prefix_pages(std::span<const PageLoad> loads, PagedKvCache& cache,
                         std::unordered_map<PageId, KvSnapshot>& snapshots, KvDiskStore& store);

}  // namespace v4
