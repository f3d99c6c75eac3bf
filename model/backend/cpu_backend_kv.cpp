// CpuBackend's KV update (spec §3.4.2–§3.4.4, §4.1): raw rows into the window rings, the
// streaming compressors, and finished rows encoded into the pages of the block tables.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "model/backend/cpu_backend.h"
#include "model/backend/kv_append.h"

namespace v4 {

void CpuBackend::copy_on_device(const void* src, void* dst, size_t bytes) {
  if (bytes != 0) std::memmove(dst, src, bytes);
}

void CpuBackend::kv_append(const KvPageFormat& f, const KvLayerAddress& l, const KvStep& step,
                           const float* kv_rows, const KvCompressor* main,
                           const KvCompressor* indexer) {
  const uint32_t hd = f.shape.head_dim, idim = f.shape.indexer_dim;
  const int64_t tasks = std::min<int64_t>(step.n_sequences, threads());
  float* pooled =
      grow(kv_pooled_, static_cast<size_t>(std::max<int64_t>(tasks, 1)) * std::max(hd, idim));
  run(tasks, step.n_tokens * int64_t{hd} * 64, [&](int64_t task0, int64_t task1) {
    for (int64_t task = task0; task < task1; ++task) {
      float* row = pooled + task * std::max(hd, idim);
      for (int64_t s = step.n_sequences * task / tasks; s < step.n_sequences * (task + 1) / tasks;
           ++s) {
        kv_append_sequence(f, l, step, s, kv_rows, main, indexer, row);
      }
    }
  });
}

}  // namespace v4
