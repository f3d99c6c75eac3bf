// STUB: replaced by the family implementation.
#pragma once

#include <cstdlib>

#include "model/backend/device/device_ops.h"

namespace v4::device {

template <class E>
void kv_append(E& e, DeviceScratch<E>& s, const KvPageFormat& format, const KvLayerAddress& layer,
               const KvStep& step, const float* kv_rows, const KvCompressor* main,
               const KvCompressor* indexer) {
  std::abort();
}

template <class E>
void indexer_topk(E& e, DeviceScratch<E>& s, const KvPageFormat& format,
                  const KvLayerAddress& layer, const KvStep& step, const float* q,
                  const float* head_weights, int64_t heads, uint32_t top_k, uint32_t* chosen,
                  uint32_t* chosen_count) {
  std::abort();
}

template <class E>
void sparse_attention(E& e, DeviceScratch<E>& s, const KvPageFormat& format,
                      const KvLayerAddress& layer, const KvStep& step, uint32_t window,
                      const float* q, int64_t n_head, const float* sinks, const uint32_t* chosen,
                      const uint32_t* chosen_count, uint32_t top_k, float* o) {
  std::abort();
}

}  // namespace v4::device
