// CpuBackend's attention reads (spec §3.4, §3.4.4): the lightning indexer's scores and top-k,
// and sparse attention over the raw window and the compressed rows, both reading the pages
// through the sequences' block tables. Encoded rows are decoded once per task into scratch.
#include <algorithm>
#include <numeric>

#include "kernels/cpu/attend_heads.h"
#include "model/backend/cpu_backend.h"
#include "model/backend/kv_address.h"

namespace v4 {
namespace {

// How many compressed rows token t sees: the indexer's count on ratio-4 layers, every finished
// row on ratio-128 layers, none without compression.
uint32_t visible_rows(const KvLayerAddress& l, const KvStep& step, const uint32_t* chosen_count,
                      int64_t t) {
  if (l.ratio == 0) return 0;
  if (l.ratio == 4) return chosen_count[t];
  return static_cast<uint32_t>((step.positions[t] + 1) / l.ratio);
}

uint32_t max_pages(const KvStep& step) {
  uint32_t pages = 0;
  for (int64_t s = 0; s < step.n_sequences; ++s) pages = std::max(pages, step.sequences[s].n_pages);
  return pages;
}

}  // namespace

void CpuBackend::indexer_topk(const KvPageFormat& f, const KvLayerAddress& l, const KvStep& step,
                              const float* q, const float* head_weights, float weight_scale,
                              int64_t heads, uint32_t top_k, uint32_t* chosen,
                              uint32_t* chosen_count) {
  const int64_t n = step.n_tokens, dim = f.shape.indexer_dim;
  // A sequence's block table bounds the keys it can have: scratch grows with the longest one.
  const size_t slice = size_t{max_pages(step)} * f.page_tokens / 4 + 1;
  const int64_t tasks = std::min<int64_t>(n, threads());
  uint32_t* ids = grow(index_ids_, static_cast<size_t>(tasks) * slice);
  float* scores = grow(index_scores_, static_cast<size_t>(tasks) * slice);
  float* keys = grow(index_key_, static_cast<size_t>(tasks * dim));
  const bool raw_f32 = f.storage == KvStorage::kF32;
  run(tasks, n * static_cast<int64_t>(slice) * heads * dim, [&](int64_t task0, int64_t task1) {
    for (int64_t task = task0; task < task1; ++task) {
      uint32_t* all = ids + task * slice;
      float* score = scores + task * slice;
      float* key = keys + task * dim;
      for (int64_t t = n * task / tasks; t < n * (task + 1) / tasks; ++t) {
        const KvSequenceView& seq = step.sequences[step.sequence_of[t]];
        const uint64_t visible = (step.positions[t] + 1) / 4;
        uint32_t* out = chosen + t * top_k;
        if (visible <= top_k) {
          std::iota(out, out + visible, 0u);
          chosen_count[t] = static_cast<uint32_t>(visible);
          continue;
        }
        const float* qt = q + t * heads * dim;
        const float* wt = head_weights + t * heads;
        for (uint64_t i = 0; i < visible; ++i) {
          const uint8_t* bytes = kv_indexer_row(f, l, seq, i);
          const float* k = reinterpret_cast<const float*>(bytes);
          if (!raw_f32) {
            decode_indexer_row(f.storage, f.shape, bytes, key);
            k = key;
          }
          float s = 0.0f;
          for (int64_t h = 0; h < heads; ++h) {
            float dot = 0.0f;
            for (int64_t d = 0; d < dim; ++d) dot += qt[h * dim + d] * k[d];
            s += wt[h] * weight_scale * std::max(0.0f, dot);
          }
          score[i] = s;
        }
        std::iota(all, all + visible, 0u);
        std::partial_sort(all, all + top_k, all + visible, [&](uint32_t a, uint32_t b) {
          return score[a] != score[b] ? score[a] > score[b] : a < b;
        });
        std::sort(all, all + top_k);
        std::copy_n(all, top_k, out);
        chosen_count[t] = top_k;
      }
    }
  });
}

void CpuBackend::sparse_attention(const KvPageFormat& f, const KvLayerAddress& l,
                                  const KvStep& step, uint32_t window, const float* q,
                                  int64_t n_head, const float* sinks, const uint32_t* chosen,
                                  const uint32_t* chosen_count, uint32_t top_k, float* o,
                                  const OutputRope* undo_rope) {
  const int64_t n = step.n_tokens, hd = f.shape.head_dim;
  if (n == 0) return;
  uint32_t most = 0;
  for (int64_t t = 0; t < n; ++t) most = std::max(most, visible_rows(l, step, chosen_count, t));
  const size_t slice = size_t{window} + most;
  // A task takes a token and a share of its heads, so a lone decode token still fills every
  // thread; each task decodes its token's compressed rows once for all of its heads.
  const int64_t splits = std::clamp<int64_t>((threads() + n - 1) / n, 1, n_head);
  const int64_t items = n * splits, tasks = std::min<int64_t>(items, threads());
  const int64_t heads_per_item = (n_head + splits - 1) / splits;
  const float** rows = grow(attn_rows_, static_cast<size_t>(tasks) * slice);
  float* scores = grow(attn_scores_, static_cast<size_t>(tasks * heads_per_item) * slice);
  const bool raw_f32 = f.storage == KvStorage::kF32;
  float* decoded = raw_f32 ? nullptr : grow(attn_decoded_, static_cast<size_t>(tasks) * most * hd);
  run(tasks, n * n_head * static_cast<int64_t>(slice) * hd * 2, [&](int64_t task0, int64_t task1) {
    for (int64_t task = task0; task < task1; ++task) {
      const float** task_rows = rows + task * slice;
      float* task_decoded = raw_f32 ? nullptr : decoded + task * most * hd;
      // Items are dealt round-robin: a prompt's later tokens see more rows than its first.
      for (int64_t i = task; i < items; i += tasks) {
        const int64_t t = i / splits, part = i % splits;
        const KvSequenceView& seq = step.sequences[step.sequence_of[t]];
        const uint64_t pos = step.positions[t];
        const uint64_t first = pos + 1 > window ? pos + 1 - window : 0;
        size_t j = 0;
        for (uint64_t p = first; p <= pos; ++p) task_rows[j++] = kv_raw_row(seq, l.raw_slot, hd, p);
        const uint32_t count = visible_rows(l, step, chosen_count, t);
        for (uint32_t c = 0; c < count; ++c) {
          const uint64_t index = l.ratio == 4 ? chosen[t * top_k + c] : c;
          const uint8_t* bytes = kv_main_row(f, l, seq, index);
          if (raw_f32) {
            task_rows[j++] = reinterpret_cast<const float*>(bytes);
          } else {
            float* row = task_decoded + size_t{c} * hd;
            decode_main_row(f.storage, f.shape, bytes, row);
            task_rows[j++] = row;
          }
        }
        const int64_t h0 = n_head * part / splits, h1 = n_head * (part + 1) / splits;
        const kernels::AttentionHeads heads{task_rows,  j,      hd, q + (t * n_head + h0) * hd,
                                            sinks + h0, h1 - h0};
        kernels::attend_heads(heads, scores + task * heads_per_item * slice,
                              o + (t * n_head + h0) * hd);
      }
    }
  });
  if (undo_rope) {
    rope(o, n, n_head, hd, hd - undo_rope->rope_dim, undo_rope->rope_dim, undo_rope->positions,
         undo_rope->freqs, true);
  }
}

}  // namespace v4
