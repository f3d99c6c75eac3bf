"""Runs DeepSeek's PyTorch reference forward (inference/model.py of DeepSeek-V4-Flash) on the
weights of a synthetic v4serve GGUF and writes golden logits for tests/unit/model.

The reference module is not part of this repository: pass its path with --model-py. Its GPU
kernels (act_quant, fp4_act_quant, sparse_attn, hc_split_sinkhorn, fast_hadamard_transform) are
replaced by the plain-torch versions below, written from the kernels' definitions (spec §3.4.2,
§3.4.4, §3.2). Weights are loaded as float32 (the f32 recipe), so the reference's FP8 activation
simulation in front of FP8/FP4 GEMMs does not apply, exactly as for F32 weights in v4serve.

The run: prefill of --prompt tokens at start_pos 0 (the reference's prefill branch), then
--decode greedy steps of one token each (the reference's decode branch), logits at every position.
Nothing here reads v4serve's own outputs.
"""
import argparse
import importlib.util
import json
import math

import gguf
import numpy as np
import torch
import torch.nn.functional as F


# ---- plain-torch kernels -------------------------------------------------------------------

def act_quant(x, block_size, scale_fmt=None, scale_dtype=torch.float32, inplace=False):
    """FP8 E4M3 round-trip per block along the last dim with UE8M0 (power-of-two) scales. The
    last block is partial when the dim is not a multiple of block_size (reduced test models)."""
    assert inplace
    n = x.size(-1)
    for b0 in range(0, n, block_size):
        blk = x[..., b0:b0 + block_size]
        amax = blk.abs().amax(-1, keepdim=True).double().clamp(min=1e-4)
        s = torch.pow(2.0, torch.ceil(torch.log2(amax / 448.0)))
        q = (blk.double() / s).clamp(-448, 448).float().to(torch.float8_e4m3fn).double() * s
        blk.copy_(q.to(blk.dtype))
    return x


_E2M1 = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=torch.float64)


def fp4_act_quant(x, block_size=32, inplace=False):
    """FP4 E2M1 round-trip per block of 32 with power-of-two scales; ties to the even grid index."""
    assert inplace
    n = x.size(-1)
    for b0 in range(0, n, block_size):
        blk = x[..., b0:b0 + block_size]
        amax = blk.abs().amax(-1, keepdim=True).double().clamp(min=6 * 2.0 ** -126)
        s = torch.pow(2.0, torch.ceil(torch.log2(amax / 6.0)))
        q = (blk.double() / s).clamp(-6, 6)
        dist = (q.abs().unsqueeze(-1) - _E2M1).abs() + (torch.arange(8) % 2) * 1e-12
        r = _E2M1[dist.argmin(-1)] * torch.sign(q)
        blk.copy_((r * s).to(blk.dtype))
    return x


def hadamard_transform(x, scale):
    n = x.size(-1)
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.size(0) < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return ((x.double() @ h) * scale).to(x.dtype)


def sparse_attn(q, kv, attn_sink, topk_idxs, softmax_scale):
    idxs = topk_idxs.long()
    valid = idxs >= 0
    batch = torch.arange(kv.size(0)).view(-1, 1, 1)
    gathered = kv.float()[batch, idxs.clamp_min(0)]
    scores = torch.einsum("bshd,bstd->bsht", q.float(), gathered) * softmax_scale
    scores = scores.masked_fill(~valid.unsqueeze(2), float("-inf"))
    sink = attn_sink.float().view(1, 1, -1, 1).expand(scores.size(0), scores.size(1), -1, -1)
    weights = torch.softmax(torch.cat([scores, sink], dim=-1), dim=-1)[..., :-1]
    return torch.einsum("bsht,bstd->bshd", weights, gathered).to(q.dtype)


def hc_split_sinkhorn(mixes, hc_scale, hc_base, hc_mult=4, sinkhorn_iters=20, eps=1e-6):
    n = hc_mult
    pre = torch.sigmoid(mixes[..., :n] * hc_scale[0] + hc_base[:n]) + eps
    post = 2 * torch.sigmoid(mixes[..., n:2 * n] * hc_scale[1] + hc_base[n:2 * n])
    comb = mixes[..., 2 * n:].view(*mixes.shape[:-1], n, n) * hc_scale[2] + hc_base[2 * n:].view(n, n)
    comb = torch.softmax(comb, dim=-1) + eps
    comb = comb / (comb.sum(dim=-2, keepdim=True) + eps)
    for _ in range(max(sinkhorn_iters - 1, 0)):
        comb = comb / (comb.sum(dim=-1, keepdim=True) + eps)
        comb = comb / (comb.sum(dim=-2, keepdim=True) + eps)
    return pre, post, comb


# ---- GGUF → reference modules ---------------------------------------------------------------

def read_gguf(path):
    reader = gguf.GGUFReader(path)
    meta = {}
    for f in reader.fields.values():
        if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
            meta[f.name] = [f.parts[i].tolist()[0] if f.types[-1] != gguf.GGUFValueType.STRING else None
                            for i in f.data] if f.types[-1] != gguf.GGUFValueType.STRING else None
        elif f.types and f.types[0] == gguf.GGUFValueType.STRING:
            meta[f.name] = bytes(f.parts[f.data[0]]).decode()
        elif f.types:
            meta[f.name] = f.parts[f.data[0]].tolist()[0]
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    return meta, tensors


def model_args(module, meta, max_seq_len):
    k = lambda name: meta["deepseek4." + name]
    n_layer = k("block_count")
    return module.ModelArgs(
        max_batch_size=1, max_seq_len=max_seq_len, dtype="fp32", vocab_size=k("vocab_size"),
        dim=k("embedding_length"), moe_inter_dim=k("expert_feed_forward_length"),
        n_layers=n_layer, n_hash_layers=k("hash_layer_count"), n_mtp_layers=0,
        n_heads=k("attention.head_count"), n_routed_experts=k("expert_count"),
        n_shared_experts=1, n_activated_experts=k("expert_used_count"),
        score_func="sqrtsoftplus", route_scale=k("expert_weights_scale"),
        swiglu_limit=meta["deepseek4.swiglu_clamp_exp"][0], q_lora_rank=k("attention.q_lora_rank"),
        head_dim=k("attention.key_length"), rope_head_dim=k("rope.dimension_count"),
        norm_eps=k("attention.layer_norm_rms_epsilon"), o_groups=k("attention.output_group_count"),
        o_lora_rank=k("attention.output_lora_rank"), window_size=k("attention.sliding_window"),
        compress_ratios=tuple(meta["deepseek4.attention.compress_ratios"][:n_layer]),
        compress_rope_theta=k("attention.compress_rope_freq_base"),
        original_seq_len=k("rope.scaling.original_context_length"), rope_theta=k("rope.freq_base"),
        rope_factor=k("rope.scaling.factor"), beta_fast=k("rope.scaling.yarn_beta_fast"),
        beta_slow=k("rope.scaling.yarn_beta_slow"), index_n_heads=k("attention.indexer.head_count"),
        index_head_dim=k("attention.indexer.key_length"), index_topk=k("attention.indexer.top_k"),
        hc_mult=k("hyper_connection.count"), hc_sinkhorn_iters=k("hyper_connection.sinkhorn_iterations"),
        hc_eps=k("hyper_connection.epsilon"))


def block_state_dict(g, p, args, ratio, hash_routed):
    """One block's parameters: g(name) reads the GGUF tensor "<block prefix><name>"."""
    sd = {}
    for which in ("attn", "ffn"):
        sd[p + f"hc_{which}_fn"] = g(f"hc_{which}_fn.weight")
        sd[p + f"hc_{which}_base"] = g(f"hc_{which}_base.weight")
        sd[p + f"hc_{which}_scale"] = g(f"hc_{which}_scale.weight")
    sd[p + "attn_norm.weight"] = g("attn_norm.weight")
    sd[p + "ffn_norm.weight"] = g("ffn_norm.weight")
    a = p + "attn."
    for ours, theirs in [("attn_q_a", "wq_a.weight"), ("attn_q_a_norm", "q_norm.weight"),
                         ("attn_q_b", "wq_b.weight"), ("attn_kv", "wkv.weight"),
                         ("attn_kv_a_norm", "kv_norm.weight"), ("attn_sinks", "attn_sink"),
                         ("attn_output_a", "wo_a.weight"), ("attn_output_b", "wo_b.weight")]:
        sd[a + theirs] = g(ours + ".weight")
    if ratio:
        for stem, prefix in [("attn_compressor", a + "compressor.")] + (
                [("indexer_compressor", a + "indexer.compressor.")] if ratio == 4 else []):
            sd[prefix + "ape"] = g(stem + "_ape.weight")
            sd[prefix + "wkv.weight"] = g(stem + "_kv.weight")
            sd[prefix + "wgate.weight"] = g(stem + "_gate.weight")
            sd[prefix + "norm.weight"] = g(stem + "_norm.weight")
        if ratio == 4:
            sd[a + "indexer.wq_b.weight"] = g("indexer.attn_q_b.weight")
            sd[a + "indexer.weights_proj.weight"] = g("indexer.proj.weight")
    f = p + "ffn."
    sd[f + "gate.weight"] = g("ffn_gate_inp.weight")
    if hash_routed:
        sd[f + "gate.tid2eid"] = g("ffn_gate_tid2eid.weight")
    else:
        sd[f + "gate.bias"] = g("exp_probs_b.bias")
    for e in range(args.n_routed_experts):
        sd[f + f"experts.{e}.w1.weight"] = g("ffn_gate_exps.weight")[e]
        sd[f + f"experts.{e}.w3.weight"] = g("ffn_up_exps.weight")[e]
        sd[f + f"experts.{e}.w2.weight"] = g("ffn_down_exps.weight")[e]
    sd[f + "shared_experts.w1.weight"] = g("ffn_gate_shexp.weight")
    sd[f + "shared_experts.w3.weight"] = g("ffn_up_shexp.weight")
    sd[f + "shared_experts.w2.weight"] = g("ffn_down_shexp.weight")
    return sd


def to_torch(sd):
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}


def state_dict_from_gguf(t, args):
    """Maps GGUF names (spec §5.4) to the reference's parameter names. GGUF matrices [ne0, ne1]
    read as numpy (ne1, ne0) = torch [out, in]; expert stacks as (expert, out, in)."""
    sd = {"embed.weight": t["token_embd.weight"], "head.weight": t["output.weight"],
          "norm.weight": t["output_norm.weight"], "hc_head_fn": t["output_hc_fn.weight"],
          "hc_head_base": t["output_hc_base.weight"], "hc_head_scale": t["output_hc_scale.weight"]}
    for i in range(args.n_layers):
        sd.update(block_state_dict(lambda name: t[f"blk.{i}.{name}"], f"layers.{i}.", args,
                                   args.compress_ratios[i], i < args.n_hash_layers))
    return to_torch(sd)


def mtp_state_dict(t, args):
    """ds4's separate MTP file (spec §5.5): "mtp.0." names, a raw-window block plus the
    e/h projections, their norms and the MTP HC head."""
    sd = block_state_dict(lambda name: t["mtp.0." + name], "", args, 0, False)
    for ours, theirs in [("e_proj.weight", "e_proj.weight"), ("h_proj.weight", "h_proj.weight"),
                         ("enorm.weight", "enorm.weight"), ("hnorm.weight", "hnorm.weight"),
                         ("norm.weight", "norm.weight"), ("hc_head_fn.weight", "hc_head_fn"),
                         ("hc_head_base.weight", "hc_head_base"),
                         ("hc_head_scale.weight", "hc_head_scale")]:
        sd[theirs] = t["mtp.0." + ours]
    return to_torch(sd)


def summarize(logits, probe):
    rows = []
    for p in range(logits.size(0)):
        row = logits[p]
        top = torch.topk(row, 20)
        rows.append({"pos": p, "top_ids": top.indices.tolist(),
                     "top_logits": [round(v, 6) for v in top.values.tolist()],
                     "logsumexp": round(float(torch.logsumexp(row, 0)), 6),
                     "probe_logits": [round(float(row[i]), 6) for i in probe]})
    return rows


def run_mtp(module, margs, model, tensors_mtp, tokens):
    """MTP logits for the pairs (main-model HC state after the last layer at position t,
    token t+1), t = 0..n-2, as one prefill of the MTP block (its own sliding window)."""
    import dataclasses
    args = dataclasses.replace(margs, compress_ratios=tuple(margs.compress_ratios) + (0,))
    mtp = module.MTPBlock(margs.n_layers, args)
    mtp.float()
    sd = mtp_state_dict(tensors_mtp, args)
    missing, unexpected = mtp.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not m.endswith(("kv_state", "score_state", "kv_cache", "freqs_cis"))]
    assert not missing and not unexpected, (missing, unexpected)
    mtp.embed, mtp.head = model.embed, model.head
    hidden = []
    hook = model.layers[-1].register_forward_hook(lambda mod, inp, out: hidden.append(out) and None)
    with torch.inference_mode():
        model(torch.tensor([tokens]), 0)
        hook.remove()
        return mtp(hidden[0][:, :-1], 0, torch.tensor([tokens[1:]]))[0].double()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--model-py", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--probe-ids", type=int, default=64, help="logits of ids 0,s,2s,... kept per position")
    ap.add_argument("--mtp-gguf", help="ds4-layout MTP file: also write MTP logits to --mtp-out")
    ap.add_argument("--mtp-out")
    args_cli = ap.parse_args()

    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    spec = importlib.util.spec_from_file_location("dsv4_model", args_cli.model_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, fn in [("act_quant", act_quant), ("fp4_act_quant", fp4_act_quant),
                     ("sparse_attn", sparse_attn), ("hc_split_sinkhorn", hc_split_sinkhorn),
                     ("hadamard_transform", hadamard_transform)]:
        setattr(module, name, fn)
    # All positions' logits, not only the last (harness-side; the math is the same F.linear).
    module.ParallelHead.get_logits = lambda self, x: F.linear(x.float(), self.weight)

    meta, tensors = read_gguf(args_cli.gguf)
    total = args_cli.prompt + args_cli.decode
    margs = model_args(module, meta, max_seq_len=max(256, total))
    model = module.Transformer(margs)
    model.float()  # wo_a / weights_proj are declared bf16; the f32 recipe stores them exactly
    sd = state_dict_from_gguf(tensors, margs)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not m.endswith(("kv_state", "score_state", "kv_cache", "freqs_cis"))]
    assert not missing and not unexpected, (missing, unexpected)
    for i in range(margs.n_hash_layers):
        model.layers[i].ffn.gate.tid2eid.data = sd[f"layers.{i}.ffn.gate.tid2eid"].to(torch.int64)
    model.eval()

    vocab = margs.vocab_size
    rng = np.random.default_rng(20260101)
    prompt = [0] + rng.integers(1, vocab, size=args_cli.prompt - 1).tolist()  # BOS first
    tokens = list(prompt)
    logits_rows = []
    with torch.inference_mode():
        out = model(torch.tensor([prompt]), 0)[0]
        logits_rows.extend(out)
        for step in range(args_cli.decode):
            nxt = int(torch.argmax(logits_rows[-1]))
            pos = len(tokens)
            tokens.append(nxt)
            if pos >= total:
                break
            logits_rows.append(model(torch.tensor([[nxt]]), pos)[0, -1])
    tokens = tokens[:total]
    logits = torch.stack(logits_rows[:total]).double()
    stride = max(1, vocab // args_cli.probe_ids)
    probe = list(range(0, vocab, stride))[:args_cli.probe_ids]
    with open(args_cli.out, "w") as f:
        json.dump({"tokens": tokens, "prompt_len": args_cli.prompt, "probe_ids": probe,
                   "positions": summarize(logits, probe)}, f, separators=(",", ":"))
    if args_cli.mtp_gguf:
        _, tensors_mtp = read_gguf(args_cli.mtp_gguf)
        mtp_logits = run_mtp(module, margs, model, tensors_mtp, tokens)
        with open(args_cli.mtp_out, "w") as f:
            json.dump({"tokens": tokens, "probe_ids": probe,
                       "positions": summarize(mtp_logits, probe)}, f, separators=(",", ":"))
    np.save(args_cli.out + ".full.npy", logits.float().numpy())


if __name__ == "__main__":
    main()
