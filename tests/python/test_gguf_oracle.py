"""Our GGUF container and quant formats checked against ggml's own `gguf` Python package.

Both directions, for every type of spec §6 that v4serve reads:
- a file written by our writer (tensors quantized by our quantizers) is read by `gguf` with the
  same metadata and tensors, and `gguf`'s dequantization of our blocks equals ours bit for bit;
- a file written by `gguf` (quantized by `gguf` where it can, else random valid blocks) is read by
  our reader identically: same metadata, same tensor infos, same dequantized floats bit for bit.
"""

import json
import pathlib

import gguf
import numpy as np
import pytest

from conftest import run

Q = gguf.GGMLQuantizationType
TYPES = ["F32", "F16", "BF16", "Q8_0", "Q2_K", "Q4_K", "Q5_K", "Q6_K",
         "IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M", "MXFP4"]
ROW_LEN = 512  # a multiple of every block size (256)
ROWS = 6

# Metadata of every value type, arrays of each scalar type, and a nested array.
V = gguf.GGUFValueType
METADATA = [
    ("test.u8", V.UINT8, 200, None),
    ("test.i8", V.INT8, -100, None),
    ("test.u16", V.UINT16, 60000, None),
    ("test.i16", V.INT16, -30000, None),
    ("test.u32", V.UINT32, 4000000000, None),
    ("test.i32", V.INT32, -2000000000, None),
    ("test.f32", V.FLOAT32, 0.1, None),
    ("test.bool", V.BOOL, True, None),
    ("test.string", V.STRING, "DeepSeek｜V4 ▁ \u00e9\U0001f600", None),
    ("test.u64", V.UINT64, 2**63 + 5, None),
    ("test.i64", V.INT64, -(2**62), None),
    ("test.f64", V.FLOAT64, 3.141592653589793, None),
    ("test.arr_u8", V.ARRAY, [1, 2, 255], V.UINT8),
    ("test.arr_i8", V.ARRAY, [-1, 2, -128], V.INT8),
    ("test.arr_u16", V.ARRAY, [1, 65535], V.UINT16),
    ("test.arr_i16", V.ARRAY, [-32768, 7], V.INT16),
    ("test.arr_u32", V.ARRAY, [0, 4, 128, 4294967295], V.UINT32),
    ("test.arr_i32", V.ARRAY, [-5, 5], V.INT32),
    ("test.arr_f32", V.ARRAY, [10.0, -0.5, 1e-6], V.FLOAT32),
    ("test.arr_bool", V.ARRAY, [True, False, True], V.BOOL),
    ("test.arr_string", V.ARRAY, ["a", "", "<｜User｜>"], V.STRING),
    ("test.arr_u64", V.ARRAY, [2**64 - 1, 0], V.UINT64),
    ("test.arr_i64", V.ARRAY, [-(2**63), 2**63 - 1], V.INT64),
    ("test.arr_f64", V.ARRAY, [1e300, -2.5], V.FLOAT64),
]
TYPE_NAMES = {V.UINT8: "U8", V.INT8: "I8", V.UINT16: "U16", V.INT16: "I16", V.UINT32: "U32",
              V.INT32: "I32", V.FLOAT32: "F32", V.BOOL: "BOOL", V.STRING: "STRING",
              V.ARRAY: "ARRAY", V.UINT64: "U64", V.INT64: "I64", V.FLOAT64: "F64"}


def expected_value(vtype, value, sub):
    """The value as our JSON dump prints it: F32 values are float32-exact."""
    kind = sub if vtype == V.ARRAY else vtype
    conv = (lambda x: float(np.float32(x))) if kind == V.FLOAT32 else (lambda x: x)
    return [conv(x) for x in value] if vtype == V.ARRAY else conv(value)


def our_dump(tool, path):
    proc = run([tool("gguf_dump_json"), path])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def our_rows(v4serve, path, name):
    proc = run([v4serve, "inspect", path, "--dump", name])
    assert proc.returncode == 0, proc.stderr
    return np.array(json.loads(proc.stdout), dtype=np.float32)


def random_floats(rng, n):
    # Mixed magnitudes and a few exact zeros, so scales and signs are exercised.
    x = rng.standard_normal(n).astype(np.float32) * rng.choice([0.01, 1.0, 30.0], n).astype(np.float32)
    x[rng.integers(0, n, n // 50)] = 0.0
    return x


def gguf_dequantize(raw: np.ndarray, type_name: str) -> np.ndarray:
    return gguf.quants.dequantize(raw, Q[type_name]).astype(np.float32).reshape(-1)


@pytest.fixture(scope="module")
def ours(tool, tmp_path_factory):
    """A file written by our writer with every type and every metadata kind."""
    tmp = tmp_path_factory.mktemp("ours")
    rng = np.random.default_rng(20261124)
    spec = {"alignment": 64, "metadata": [], "tensors": []}
    for key, vtype, value, sub in METADATA:
        entry = {"key": key, "type": TYPE_NAMES[vtype], "value": value}
        if sub is not None:
            entry["element_type"] = TYPE_NAMES[sub]
        spec["metadata"].append(entry)
    spec["metadata"].append({"key": "test.nested", "type": "ARRAY", "element_type": "ARRAY",
                             "inner": {"element_type": "U32"}, "value": [[1, 2], [3]]})
    inputs = {}
    for t in TYPES:
        x = random_floats(rng, ROW_LEN * ROWS)
        f = tmp / f"{t}.f32"
        x.tofile(f)
        inputs[t] = x
        spec["tensors"].append({"name": f"t.{t}", "type": t, "dims": [ROW_LEN, ROWS],
                                "f32_file": str(f)})
    (tmp / "spec.json").write_text(json.dumps(spec))
    out = tmp / "ours.gguf"
    proc = run([tool("gguf_write_fixture"), tmp / "spec.json", out])
    assert proc.returncode == 0, proc.stderr
    return out, inputs


def test_gguf_reads_our_metadata(ours):
    path, _ = ours
    reader = gguf.GGUFReader(path)
    fields = reader.fields
    assert int(fields["general.alignment"].contents()) == 64
    for key, vtype, value, sub in METADATA:
        field = fields[key]
        assert field.types[0] == vtype, key
        if vtype == V.ARRAY:
            assert field.types[-1] == sub, key
        got = field.contents()
        want = expected_value(vtype, value, sub)
        if (sub or vtype) == V.FLOAT32:
            np.testing.assert_array_equal(np.float32(got), np.float32(want), err_msg=key)
        else:
            assert got == want, key
    nested = fields["test.nested"]
    assert nested.types[:2] == [V.ARRAY, V.ARRAY]


@pytest.mark.parametrize("type_name", TYPES)
def test_gguf_dequantizes_our_blocks_like_us(ours, v4serve, type_name):
    path, inputs = ours
    reader = gguf.GGUFReader(path)
    tensor = next(t for t in reader.tensors if t.name == f"t.{type_name}")
    assert tensor.tensor_type == Q[type_name]
    assert list(tensor.shape) == [ROW_LEN, ROWS]
    theirs = gguf_dequantize(np.asarray(tensor.data), type_name)
    mine = our_rows(v4serve, path, f"t.{type_name}")
    assert mine.shape == theirs.shape
    # Bit for bit: compare the float32 bit patterns, not values.
    np.testing.assert_array_equal(mine.view(np.uint32), theirs.view(np.uint32))
    # And the blocks are a real quantization of the input, not noise (loose: IQ1 is ~1.6 bpw).
    x = inputs[type_name]
    rel = np.sqrt(np.mean((theirs - x) ** 2)) / np.sqrt(np.mean(x ** 2))
    assert rel < 0.9, f"{type_name}: relative RMS error {rel}"


def test_our_quantization_equals_gguf_where_gguf_quantizes(ours):
    path, inputs = ours
    reader = gguf.GGUFReader(path)
    for type_name in ["F16", "BF16", "Q8_0", "MXFP4"]:
        tensor = next(t for t in reader.tensors if t.name == f"t.{type_name}")
        x = inputs[type_name].reshape(ROWS, ROW_LEN)
        theirs = gguf.quants.quantize(x, Q[type_name])
        np.testing.assert_array_equal(np.asarray(tensor.data).view(np.uint8).reshape(-1),
                                      theirs.view(np.uint8).reshape(-1), err_msg=type_name)


# --- files written by gguf, read by us ------------------------------------------------------

FP16_FIELDS = {  # byte offsets of fp16 scale fields inside one block (spec §6)
    "Q2_K": (84, [80, 82]), "Q4_K": (144, [0, 2]), "Q5_K": (176, [0, 2]), "Q6_K": (210, [208]),
    "IQ2_XXS": (66, [0]), "IQ2_XS": (74, [0]), "IQ1_S": (50, [0]),
}


def random_blocks(rng, type_name, n_blocks):
    """Random but finite blocks: random bits with every fp16 scale set to a sane value."""
    if type_name == "IQ1_M":
        blocks = rng.integers(0, 256, (n_blocks, 56), dtype=np.uint8)
        d = rng.uniform(0.001, 0.1, n_blocks).astype(np.float16).view(np.uint16)
        scales = blocks[:, 48:56].copy().view(np.uint16)  # 4 u16; d lives in the top nibbles
        for i in range(4):
            scales[:, i] = (scales[:, i] & 0x0FFF) | (((d >> (4 * i)) & 0xF) << 12)
        blocks[:, 48:56] = scales.view(np.uint8)
        return blocks
    size, offsets = FP16_FIELDS[type_name]
    blocks = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    for off in offsets:
        d = (rng.uniform(0.001, 0.1, n_blocks) * rng.choice([-1, 1], n_blocks)).astype(np.float16)
        blocks[:, off:off + 2] = d.view(np.uint8).reshape(n_blocks, 2)
    return blocks


@pytest.fixture(scope="module")
def theirs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("theirs")
    rng = np.random.default_rng(7)
    path = tmp / "theirs.gguf"
    writer = gguf.GGUFWriter(path, "deepseek4")
    for key, vtype, value, sub in METADATA:
        writer.add_key_value(key, value, vtype, sub_type=sub)
    raw = {}
    for t in TYPES:
        if t in ("F32", "F16", "BF16", "Q8_0", "MXFP4"):
            data = gguf.quants.quantize(random_floats(rng, ROW_LEN * ROWS).reshape(ROWS, ROW_LEN), Q[t])
            if t in ("F32", "F16"):
                writer.add_tensor(f"t.{t}", data)
            else:
                writer.add_tensor(f"t.{t}", data, raw_dtype=Q[t])
        else:
            n_blocks = ROW_LEN * ROWS // 256
            data = random_blocks(rng, t, n_blocks).reshape(ROWS, -1)
            writer.add_tensor(f"t.{t}", data, raw_dtype=Q[t])
        raw[t] = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, raw


def test_we_read_gguf_metadata(theirs, tool):
    path, _ = theirs
    dump = our_dump(tool, path)
    assert dump["version"] == 3
    by_key = {m["key"]: m for m in dump["metadata"]}
    assert by_key["general.architecture"]["value"] == "deepseek4"
    for key, vtype, value, sub in METADATA:
        m = by_key[key]
        assert m["type"] == TYPE_NAMES[vtype], key
        if sub is not None:
            assert m["element_type"] == TYPE_NAMES[sub], key
        want = expected_value(vtype, value, sub)
        if (sub or vtype) == V.FLOAT32:
            np.testing.assert_array_equal(np.float32(m["value"]), np.float32(want), err_msg=key)
        else:
            assert m["value"] == want, key


@pytest.mark.parametrize("type_name", TYPES)
def test_we_read_gguf_tensors_identically(theirs, tool, v4serve, type_name):
    path, raw = theirs
    dump = our_dump(tool, path)
    info = next(t for t in dump["tensors"] if t["name"] == f"t.{type_name}")
    assert info["type"] == type_name
    assert info["dims"] == [ROW_LEN, ROWS]
    assert info["n_bytes"] == raw[type_name].size
    want = gguf_dequantize(raw[type_name], type_name)
    assert np.all(np.isfinite(want))
    mine = our_rows(v4serve, path, f"t.{type_name}")
    np.testing.assert_array_equal(mine.view(np.uint32), want.view(np.uint32))


def test_we_read_gguf_split_files(tool, tmp_path):
    rng = np.random.default_rng(11)
    path = tmp_path / "split.gguf"
    writer = gguf.GGUFWriter(path, "deepseek4", split_max_tensors=2)
    tensors = {f"s.{i}": rng.standard_normal((4, 64)).astype(np.float32) for i in range(5)}
    for name, data in tensors.items():
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    parts = sorted(tmp_path.glob("split-*-of-*.gguf"))
    assert len(parts) == 3, parts
    dump = our_dump(tool, parts[0])
    assert dump["parts"] == 3
    assert sorted(t["name"] for t in dump["tensors"]) == sorted(tensors)


def test_gguf_reads_our_split_files(tool, tmp_path):
    rng = np.random.default_rng(12)
    spec = {"split_bytes": 3000, "metadata": [{"key": "general.architecture", "type": "STRING",
                                               "value": "deepseek4"}], "tensors": []}
    values = {}
    for i in range(4):
        x = rng.standard_normal(256 * 2).astype(np.float32)
        f = tmp_path / f"{i}.f32"
        x.tofile(f)
        values[f"s.{i}"] = x
        spec["tensors"].append({"name": f"s.{i}", "type": "F32", "dims": [256, 2], "f32_file": str(f)})
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    proc = run([tool("gguf_write_fixture"), tmp_path / "spec.json", tmp_path / "out.gguf"])
    assert proc.returncode == 0, proc.stderr
    parts = proc.stdout.split()
    assert len(parts) >= 2, parts
    seen = {}
    for i, part in enumerate(parts):
        reader = gguf.GGUFReader(part)
        assert int(reader.fields["split.no"].contents()) == i
        assert int(reader.fields["split.count"].contents()) == len(parts)
        for t in reader.tensors:
            seen[t.name] = np.asarray(t.data).reshape(-1)
    assert sorted(seen) == sorted(values)
    for name, x in values.items():
        np.testing.assert_array_equal(seen[name], x)
