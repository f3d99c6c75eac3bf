#include "model/backend/profiled_backend.h"

#include "core/ggml_type.h"

namespace v4 {
namespace {

// "matmul Q8_0 4096x1024": the weight's type and shape (cols x rows).
std::string matrix_name(const char* op, const kernels::MatrixView& w) {
  return std::string(op) + " " + std::string(ggml_type_name(w.type)) + " " +
         std::to_string(w.cols) + "x" + std::to_string(w.rows);
}

}  // namespace

ProfiledBackend::~ProfiledBackend() { profile_.print("host op profile (V4_DEVICE_PROFILE)"); }

Status ProfiledBackend::copy_to_device(const void* host, const Tensor& dst, size_t offset,
                                       size_t bytes) {
  return timed("copy_to_device", [&] { return inner_->copy_to_device(host, dst, offset, bytes); });
}

Status ProfiledBackend::copy_to_host(const Tensor& src, size_t offset, void* host, size_t bytes) {
  return timed("copy_to_host", [&] { return inner_->copy_to_host(src, offset, host, bytes); });
}

Status ProfiledBackend::read_back(const void* src, void* host, size_t bytes) {
  return timed("read_back", [&] { return inner_->read_back(src, host, bytes); });
}

void ProfiledBackend::copy_on_device(const void* src, void* dst, size_t bytes) {
  timed("copy_on_device", [&] { inner_->copy_on_device(src, dst, bytes); });
}

void ProfiledBackend::matmul(const kernels::MatrixView& w, const float* x, int64_t x_stride,
                             int64_t n_tokens, float* y, int64_t y_stride) {
  timed(matrix_name("matmul", w), [&] { inner_->matmul(w, x, x_stride, n_tokens, y, y_stride); });
}

void ProfiledBackend::matmul_shared(const float* x, int64_t n_tokens,
                                    std::span<const MatmulTarget> targets) {
  // Named by the first weight: the targets of one call are one layer's projections of its input.
  const std::string name = targets.empty() ? std::string("matmul_shared")
                                           : matrix_name("matmul_shared", targets.front().w);
  timed(name, [&] { inner_->matmul_shared(x, n_tokens, targets); });
}

void ProfiledBackend::norm_matmul_shared(float* x, const float* norm_weight, int64_t width,
                                         float eps, int64_t n_tokens,
                                         std::span<const MatmulTarget> targets) {
  const std::string name = targets.empty() ? std::string("norm_matmul_shared")
                                           : matrix_name("norm_matmul_shared", targets.front().w);
  timed(name, [&] { inner_->norm_matmul_shared(x, norm_weight, width, eps, n_tokens, targets); });
}

void ProfiledBackend::matmul_groups(const kernels::MatrixView& w, int64_t groups, const float* x,
                                    int64_t n_tokens, float* y) {
  timed(matrix_name("matmul_groups", w), [&] { inner_->matmul_groups(w, groups, x, n_tokens, y); });
}

void ProfiledBackend::rms_norm(const float* x, const float* weight, int64_t n, int64_t n_rows,
                               float eps, float* y) {
  timed("rms_norm", [&] { inner_->rms_norm(x, weight, n, n_rows, eps, y); });
}

void ProfiledBackend::embed(const kernels::MatrixView& table, const int32_t* tokens,
                            int64_t n_tokens, uint32_t copies, float* x) {
  timed("embed", [&] { inner_->embed(table, tokens, n_tokens, copies, x); });
}

void ProfiledBackend::hc_pre(const HcMixing& hc, const float* x, int64_t n_tokens, float* y,
                             float* post, float* comb) {
  timed("hc_pre", [&] { inner_->hc_pre(hc, x, n_tokens, y, post, comb); });
}

void ProfiledBackend::hc_post(const float* f, const float* f_added, const float* x,
                              const float* post, const float* comb, int64_t n_tokens, uint32_t n_hc,
                              int64_t n_embd, float* x_out) {
  timed("hc_post",
        [&] { inner_->hc_post(f, f_added, x, post, comb, n_tokens, n_hc, n_embd, x_out); });
}

void ProfiledBackend::hc_head(const HcMixing& hc, const float* x, int64_t n_tokens, float* z) {
  timed("hc_head", [&] { inner_->hc_head(hc, x, n_tokens, z); });
}

void ProfiledBackend::rope(float* x, int64_t n_tokens, int64_t heads, int64_t head_stride,
                           int64_t offset, int64_t rope_dim, const uint64_t* positions,
                           const float* freqs, bool inverse) {
  timed("rope", [&] {
    inner_->rope(x, n_tokens, heads, head_stride, offset, rope_dim, positions, freqs, inverse);
  });
}

void ProfiledBackend::fp8_round_trip(float* x, int64_t n_rows, int64_t stride, int64_t n,
                                     int64_t block) {
  timed("fp8_round_trip", [&] { inner_->fp8_round_trip(x, n_rows, stride, n, block); });
}

void ProfiledBackend::indexer_qat(float* x, int64_t n_rows, int64_t dim) {
  timed("indexer_qat", [&] { inner_->indexer_qat(x, n_rows, dim); });
}

void ProfiledBackend::transform_heads(int64_t n_tokens, std::span<const HeadRows> rows) {
  timed("transform_heads", [&] { inner_->transform_heads(n_tokens, rows); });
}

void ProfiledBackend::scale(float* x, int64_t n, float s) {
  timed("scale", [&] { inner_->scale(x, n, s); });
}

void ProfiledBackend::route_experts(const ExpertRouting& routing, const float* logits,
                                    const int32_t* tokens, int64_t n_tokens, int32_t* experts,
                                    float* weights) {
  timed("route_experts",
        [&] { inner_->route_experts(routing, logits, tokens, n_tokens, experts, weights); });
}

void ProfiledBackend::group_by_expert(const int32_t* experts, const float* weights,
                                      int64_t n_tokens, uint32_t k, uint32_t n_expert,
                                      int64_t* expert_offsets, int64_t* source_token,
                                      float* row_scale, int64_t* slot_row) {
  timed("group_by_expert", [&] {
    inner_->group_by_expert(experts, weights, n_tokens, k, n_expert, expert_offsets, source_token,
                            row_scale, slot_row);
  });
}

void ProfiledBackend::grouped_expert_ffn(const ExpertFfnWeights& w, const int64_t* expert_offsets,
                                         uint32_t n_expert, int64_t n_rows, const float* x,
                                         const int64_t* x_rows, const float* row_scales, float* y) {
  timed(matrix_name("grouped_expert_ffn", w.gate.first), [&] {
    inner_->grouped_expert_ffn(w, expert_offsets, n_expert, n_rows, x, x_rows, row_scales, y);
  });
}

void ProfiledBackend::gather_rows(const float* src, int64_t width, const int64_t* rows, int64_t n,
                                  float* dst) {
  timed("gather_rows", [&] { inner_->gather_rows(src, width, rows, n, dst); });
}

void ProfiledBackend::copy_rows(const float* src, int64_t src_stride, const int64_t* rows,
                                int64_t n, int64_t width, float* dst, int64_t dst_stride) {
  timed("copy_rows", [&] { inner_->copy_rows(src, src_stride, rows, n, width, dst, dst_stride); });
}

void ProfiledBackend::sum_slots(const float* slots, const int64_t* slot_rows, int64_t n_tokens,
                                uint32_t k, int64_t width, float* out) {
  timed("sum_slots", [&] { inner_->sum_slots(slots, slot_rows, n_tokens, k, width, out); });
}

void ProfiledBackend::add(const float* a, int64_t n, float* y) {
  timed("add", [&] { inner_->add(a, n, y); });
}

void ProfiledBackend::top_logits(const float* logits, int64_t n_rows, int64_t n_vocab, uint32_t k,
                                 int32_t* ids, float* values, double* log_normalizer) {
  timed("top_logits",
        [&] { inner_->top_logits(logits, n_rows, n_vocab, k, ids, values, log_normalizer); });
}

void ProfiledBackend::draw_rows(const float* logits, int64_t n_rows, int64_t n_vocab,
                                const kernels::RowDrawParams* params, int32_t* tokens,
                                float* token_logits) {
  timed("draw_rows",
        [&] { inner_->draw_rows(logits, n_rows, n_vocab, params, tokens, token_logits); });
}

void ProfiledBackend::kv_append(const KvPageFormat& format, const KvLayerAddress& layer,
                                const KvStep& step, const float* kv_rows, const KvCompressor* main,
                                const KvCompressor* indexer) {
  timed("kv_append", [&] { inner_->kv_append(format, layer, step, kv_rows, main, indexer); });
}

void ProfiledBackend::indexer_topk(const KvPageFormat& format, const KvLayerAddress& layer,
                                   const KvStep& step, const float* q, const float* head_weights,
                                   float weight_scale, int64_t heads, uint32_t top_k,
                                   uint32_t* chosen, uint32_t* chosen_count) {
  timed("indexer_topk", [&] {
    inner_->indexer_topk(format, layer, step, q, head_weights, weight_scale, heads, top_k, chosen,
                         chosen_count);
  });
}

void ProfiledBackend::sparse_attention(const KvPageFormat& format, const KvLayerAddress& layer,
                                       const KvStep& step, uint32_t window, const float* q,
                                       int64_t n_head, const float* sinks, const uint32_t* chosen,
                                       const uint32_t* chosen_count, uint32_t top_k, float* o,
                                       const OutputRope* undo_rope) {
  timed("sparse_attention", [&] {
    inner_->sparse_attention(format, layer, step, window, q, n_head, sinks, chosen, chosen_count,
                             top_k, o, undo_rope);
  });
}

void ProfiledBackend::parallel_for(int64_t n, FunctionRef<void(int64_t, int64_t)> fn) {
  timed("parallel_for", [&] { inner_->parallel_for(n, fn); });
}

}  // namespace v4
