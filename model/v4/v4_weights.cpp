#include "model/v4/v4_weights.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "kernels/cpu/quant.h"
#include "model/gguf/gguf_reader.h"

namespace v4 {
namespace {

std::string dims_text(const std::vector<uint64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Looks tensors up under one name prefix and checks their shape and type; the first problem is
// kept as a one-line error naming the file and the tensor.
class Binder {
 public:
  Binder(const GgufFile& file, std::string prefix) : file_(file), prefix_(std::move(prefix)) {}

  const Status& status() const { return status_; }

  WeightMatrix matrix(const std::string& name, uint64_t cols, uint64_t rows, uint64_t mats = 1) {
    WeightMatrix m;
    const GgufTensorInfo* t = find(name, mats > 1 ? std::vector<uint64_t>{cols, rows, mats}
                                                  : std::vector<uint64_t>{cols, rows});
    if (!t) return m;
    if (!kernels::can_dequantize(t->type)) {
      return fail(name, "type " + std::string(ggml_type_name(t->type)) + " has no CPU dot product"),
             m;
    }
    const std::optional<uint64_t> row_bytes = ggml_row_size(t->type, cols);
    if (!row_bytes)
      return fail(name,
                  "row length " + std::to_string(cols) + " is not a multiple of the block size"),
             m;
    m.view = {t->type, t->data, static_cast<int64_t>(cols), static_cast<int64_t>(rows),
              static_cast<size_t>(*row_bytes)};
    m.n_mats = static_cast<int64_t>(mats);
    m.mat_bytes = static_cast<size_t>(*row_bytes * rows);
    return m;
  }

  std::vector<float> vec(const std::string& name, std::vector<uint64_t> dims) {
    const GgufTensorInfo* t = find(name, dims);
    if (!t) return {};
    if (!kernels::can_dequantize(t->type) || ggml_type_traits(t->type).block_size != 1) {
      return fail(name, "type " + std::string(ggml_type_name(t->type)) +
                            " for a small tensor (expected F32, F16 or BF16)"),
             std::vector<float>{};
    }
    std::vector<float> out(t->n_elements);
    kernels::dequantize_row(t->type, t->data, out.data(), static_cast<int64_t>(t->n_elements));
    return out;
  }

  std::vector<float> vec(const std::string& name, uint64_t n) {
    return vec(name, std::vector<uint64_t>{n});
  }

  // ffn_gate_tid2eid: [width, vocab] I32 (or I64); width may differ from expert_used_count.
  std::vector<int32_t> hash_table(const std::string& name, uint32_t n_vocab, uint32_t n_expert,
                                  uint32_t& width) {
    const GgufTensorInfo* t = lookup(name);
    if (!t) return {};
    if (t->dims.size() != 2 || t->dims[1] != n_vocab || t->dims[0] == 0) {
      return fail(name, "expected dims [k, " + std::to_string(n_vocab) + "], found " +
                            dims_text(t->dims)),
             std::vector<int32_t>{};
    }
    if (t->type != GgmlType::I32 && t->type != GgmlType::I64) {
      return fail(name, "type " + std::string(ggml_type_name(t->type)) + " (expected I32 or I64)"),
             std::vector<int32_t>{};
    }
    width = static_cast<uint32_t>(t->dims[0]);
    std::vector<int32_t> out(t->n_elements);
    for (uint64_t i = 0; i < t->n_elements; ++i) {
      int64_t v = 0;
      if (t->type == GgmlType::I32) {
        int32_t x;
        std::memcpy(&x, t->data + 4 * i, 4);
        v = x;
      } else {
        std::memcpy(&v, t->data + 8 * i, 8);
      }
      if (v < 0 || v >= n_expert) {
        return fail(name, "expert id " + std::to_string(v) + " at element " + std::to_string(i) +
                              " is outside 0.." + std::to_string(n_expert - 1)),
               std::vector<int32_t>{};
      }
      out[i] = static_cast<int32_t>(v);
    }
    return out;
  }

  bool has(const std::string& name) const { return file_.find_tensor(prefix_ + name) != nullptr; }

 private:
  const GgufTensorInfo* lookup(const std::string& name) {
    if (!status_) return nullptr;
    const GgufTensorInfo* t = file_.find_tensor(prefix_ + name);
    if (!t) fail(name, "missing");
    return t;
  }

  const GgufTensorInfo* find(const std::string& name, const std::vector<uint64_t>& dims) {
    const GgufTensorInfo* t = lookup(name);
    if (!t) return nullptr;
    if (t->dims != dims) {
      fail(name, "expected dims " + dims_text(dims) + ", found " + dims_text(t->dims));
      return nullptr;
    }
    return t;
  }

  void fail(const std::string& name, const std::string& what) {
    if (status_)
      status_ = Status::error(file_.paths().front() + ": tensor " + prefix_ + name + ": " + what);
  }

  const GgufFile& file_;
  std::string prefix_;
  Status status_;
};

void bind_hc(Binder& b, const V4Config& c, const std::string& which, HcWeights& hc) {
  const uint64_t mixes = 2ull * c.n_hc + uint64_t{c.n_hc} * c.n_hc;
  hc.fn = b.matrix("hc_" + which + "_fn.weight", uint64_t{c.n_hc} * c.n_embd, mixes);
  hc.scale = b.vec("hc_" + which + "_scale.weight", 3);
  hc.base = b.vec("hc_" + which + "_base.weight", mixes);
}

void bind_hc_head(Binder& b, const V4Config& c, const std::string& stem, HcHeadWeights& h) {
  h.fn = b.matrix(stem + "_fn.weight", uint64_t{c.n_hc} * c.n_embd, c.n_hc);
  h.scale = b.vec(stem + "_scale.weight", 1);
  h.base = b.vec(stem + "_base.weight", c.n_hc);
}

void bind_compressor(Binder& b, const V4Config& c, const std::string& stem, uint32_t ratio,
                     uint32_t head, CompressorWeights& w) {
  w.ratio = ratio;
  w.width = ratio == 4 ? 2 * head : head;
  w.kv = b.matrix(stem + "_kv.weight", c.n_embd, w.width);
  w.gate = b.matrix(stem + "_gate.weight", c.n_embd, w.width);
  w.ape = b.vec(stem + "_ape.weight", std::vector<uint64_t>{w.width, ratio});
  w.norm = b.vec(stem + "_norm.weight", head);
}

void bind_attention(Binder& b, const V4Config& c, uint32_t ratio, LayerWeights& l) {
  const uint64_t q_dim = uint64_t{c.n_head} * c.head_dim;
  l.attn_norm = b.vec("attn_norm.weight", c.n_embd);
  l.q_a = b.matrix("attn_q_a.weight", c.n_embd, c.q_lora_rank);
  l.q_a_norm = b.vec("attn_q_a_norm.weight", c.q_lora_rank);
  l.q_b = b.matrix("attn_q_b.weight", c.q_lora_rank, q_dim);
  l.kv = b.matrix("attn_kv.weight", c.n_embd, c.head_dim);
  l.kv_a_norm = b.vec("attn_kv_a_norm.weight", c.head_dim);
  l.sinks = b.vec("attn_sinks.weight", c.n_head);
  l.output_a =
      b.matrix("attn_output_a.weight", q_dim / c.o_groups, uint64_t{c.o_groups} * c.o_lora_rank);
  l.output_b = b.matrix("attn_output_b.weight", uint64_t{c.o_groups} * c.o_lora_rank, c.n_embd);
  if (ratio == 0) return;
  bind_compressor(b, c, "attn_compressor", ratio, c.head_dim, l.compressor);
  if (ratio != 4) return;
  l.indexer.q_b = b.matrix("indexer.attn_q_b.weight", c.q_lora_rank,
                           uint64_t{c.indexer_n_head} * c.indexer_head_dim);
  l.indexer.proj = b.matrix("indexer.proj.weight", c.n_embd, c.indexer_n_head);
  bind_compressor(b, c, "indexer_compressor", 4, c.indexer_head_dim, l.indexer.compressor);
}

void bind_moe(Binder& b, const V4Config& c, bool hash_routed, LayerWeights& l) {
  l.ffn_norm = b.vec("ffn_norm.weight", c.n_embd);
  l.router = b.matrix("ffn_gate_inp.weight", c.n_embd, c.n_expert);
  if (hash_routed) {
    l.tid2eid = b.hash_table("ffn_gate_tid2eid.weight", c.n_vocab, c.n_expert, l.tid2eid_width);
  } else {
    l.exp_probs_b = b.vec("exp_probs_b.bias", c.n_expert);
  }
  l.gate_exps = b.matrix("ffn_gate_exps.weight", c.n_embd, c.n_ff_exp, c.n_expert);
  l.up_exps = b.matrix("ffn_up_exps.weight", c.n_embd, c.n_ff_exp, c.n_expert);
  l.down_exps = b.matrix("ffn_down_exps.weight", c.n_ff_exp, c.n_embd, c.n_expert);
  const uint64_t shared_ff = uint64_t{c.n_ff_exp} * c.n_expert_shared;
  l.gate_shexp = b.matrix("ffn_gate_shexp.weight", c.n_embd, shared_ff);
  l.up_shexp = b.matrix("ffn_up_shexp.weight", c.n_embd, shared_ff);
  l.down_shexp = b.matrix("ffn_down_shexp.weight", shared_ff, c.n_embd);
}

LayerWeights bind_block(Binder& b, const V4Config& c, uint32_t ratio, bool hash_routed) {
  LayerWeights l;
  l.compress_ratio = ratio;
  bind_hc(b, c, "attn", l.hc_attn);
  bind_attention(b, c, ratio, l);
  bind_hc(b, c, "ffn", l.hc_ffn);
  bind_moe(b, c, hash_routed, l);
  return l;
}

Result<MtpWeights> bind_ds4_mtp(const GgufFile& file, const V4Config& c) {
  Binder b(file, "mtp.0.");
  MtpWeights m;
  bind_hc_head(b, c, "hc_head", m.hc_head);
  m.e_proj = b.matrix("e_proj.weight", c.n_embd, c.n_embd);
  m.h_proj = b.matrix("h_proj.weight", c.n_embd, c.n_embd);
  m.enorm = b.vec("enorm.weight", c.n_embd);
  m.hnorm = b.vec("hnorm.weight", c.n_embd);
  m.norm = b.vec("norm.weight", c.n_embd);
  m.block = bind_block(b, c, 0, false);
  if (!b.status()) return b.status();
  return m;
}

Result<MtpWeights> bind_llamacpp_mtp(const GgufFile& file, const V4Config& c) {
  Binder b(file, "blk." + std::to_string(c.n_layer) + ".");
  MtpWeights m;
  m.block = bind_block(b, c, 0, false);
  m.eh_proj = b.matrix("nextn.eh_proj.weight", 2ull * c.n_embd, c.n_embd);
  m.enorm = b.vec("nextn.enorm.weight", c.n_embd);
  m.hnorm = b.vec("nextn.hnorm.weight", c.n_embd);
  m.norm = b.vec("nextn.shared_head_norm.weight", c.n_embd);
  bind_hc_head(b, c, "nextn.hc_head", m.hc_head);
  if (!b.status()) return b.status();
  return m;
}

}  // namespace

kernels::MatrixView WeightMatrix::matrix(int64_t index) const {
  kernels::MatrixView v = view;
  v.data += static_cast<size_t>(index) * mat_bytes;
  return v;
}

kernels::MatrixView WeightMatrix::row_range(int64_t first, int64_t count) const {
  kernels::MatrixView v = view;
  v.data += static_cast<size_t>(first) * view.row_bytes;
  v.rows = count;
  return v;
}

Result<V4Weights> bind_v4_weights(const GgufFile& file, const V4Config& c,
                                  const GgufFile* mtp_file) {
  if (Status s = c.validate(); !s) return s;
  V4Weights w;
  w.config = c;
  Binder global(file, "");
  w.token_embd = global.matrix("token_embd.weight", c.n_embd, c.n_vocab);
  w.output = global.matrix("output.weight", c.n_embd, c.n_vocab);
  bind_hc_head(global, c, "output_hc", w.output_hc);
  w.output_norm = global.vec("output_norm.weight", c.n_embd);
  if (!global.status()) return global.status();
  for (uint32_t il = 0; il < c.n_layer; ++il) {
    Binder b(file, "blk." + std::to_string(il) + ".");
    w.layers.push_back(bind_block(b, c, c.compress_ratios[il], il < c.n_hash_layers));
    if (!b.status()) return b.status();
  }
  if (mtp_file) {
    Result<MtpWeights> m = bind_ds4_mtp(*mtp_file, c);
    if (!m) return m.status();
    w.mtp = std::move(*m);
  } else if (file.find_tensor("blk." + std::to_string(c.n_layer) + ".nextn.eh_proj.weight")) {
    Result<MtpWeights> m = bind_llamacpp_mtp(file, c);
    if (!m) return m.status();
    w.mtp = std::move(*m);
  }
  return w;
}

V4Weights first_layers(const V4Weights& weights, uint32_t n) {
  V4Weights out = weights;
  n = std::clamp<uint32_t>(n, 1, weights.config.n_layer);
  out.config.n_layer = n;
  out.config.n_hash_layers = std::min(out.config.n_hash_layers, n);
  out.config.compress_ratios.resize(n);
  out.layers.resize(n);
  return out;
}

}  // namespace v4
