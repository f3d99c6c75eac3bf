"""Quant formats of spec §6 against ggml's gguf package (gguf-py), the oracle.

1. Lookup tables: our generated tables (dumped by tests/tools/dump_quant_tables) equal the grids
   gguf-py decodes itself at first use (`init_grid`), its sign table and its MXFP4 values.
2. Dequantization: for every supported type, random blocks dequantize to the same float32 bits
   as `gguf.quants.dequantize`.
3. Quantization: where gguf-py has an encoder (Q8_0, MXFP4, BF16, F16 via numpy), our bytes equal
   its bytes.

The C++ test tests/unit/kernels/quant_tables_test.cpp checks the tables a second, independent way
(digests of ggml-common.h).
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES

from conftest import run

TOOL = "dump_quant_tables"

# Offsets of the fp16 scale fields in each block (ggml-common.h layouts, spec §6 table).
FP16_FIELDS = {
    Q.Q8_0: [0],
    Q.Q2_K: [80, 82],
    Q.Q4_K: [0, 2],
    Q.Q5_K: [0, 2],
    Q.Q6_K: [208],
    Q.IQ2_XXS: [0],
    Q.IQ2_XS: [0],
    Q.IQ1_S: [0],
}
BLOCK_TYPES = [Q.Q8_0, Q.Q2_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.IQ2_XXS, Q.IQ2_XS, Q.IQ1_S, Q.IQ1_M, Q.MXFP4]


def bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)


def random_blocks(qtype: Q, n_blocks: int, rng: np.random.Generator) -> np.ndarray:
    """Random bytes, except that fp16 scales are made finite: inf·0 would give NaNs whose payload
    depends on operand order rather than on the format."""
    _, type_size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for offset in FP16_FIELDS.get(qtype, []):
        h = blocks[:, offset:offset + 2].copy().view(np.uint16)
        h = np.where((h & 0x7C00) == 0x7C00, h & ~np.uint16(0x4000), h).astype(np.uint16)
        blocks[:, offset:offset + 2] = h.view(np.uint8)
    if qtype == Q.IQ1_M:
        # d's exponent top bit is bit 14 of d16 = bit 14 of the last u16 scale word (bytes 54-55).
        words = blocks[:, 48:56].copy().view(np.uint16)
        d16 = (words[:, 0] >> 12) | ((words[:, 1] >> 8) & 0xF0) | ((words[:, 2] >> 4) & 0xF00) | (words[:, 3] & 0xF000)
        words[:, 3] = np.where((d16 & 0x7C00) == 0x7C00, words[:, 3] & ~np.uint16(0x4000), words[:, 3])
        blocks[:, 48:56] = words.view(np.uint8)
    return blocks


def our_convert(tool, tmp_path: pathlib.Path, mode: str, qtype: Q, data: np.ndarray) -> bytes:
    src, dst = tmp_path / f"{mode}.in", tmp_path / f"{mode}.out"
    src.write_bytes(np.ascontiguousarray(data).tobytes())
    result = run([tool(TOOL), mode, qtype.name, src, dst])
    assert result.returncode == 0, result.stderr
    return dst.read_bytes()


@pytest.fixture(scope="module")
def our_tables(tool, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("tables")
    result = run([tool(TOOL), "tables", out])
    assert result.returncode == 0, result.stderr
    return {p.stem: p.read_bytes() for p in out.glob("*.bin")}


def gguf_grid(cls) -> np.ndarray:
    cls.init_grid()  # gguf-py decodes grid_hex lazily, on first dequantization
    assert cls.grid is not None
    return cls.grid.reshape(cls.grid_shape)


@pytest.mark.parametrize(
    "name, cls, dtype",
    [("iq2xxs_grid", quants.IQ2_XXS, np.uint8), ("iq2xs_grid", quants.IQ2_XS, np.uint8), ("iq1s_grid", quants.IQ1_S, np.int8)],
)
def test_grid_equals_gguf_decoded_grid(our_tables, name, cls, dtype):
    expected = gguf_grid(cls)
    # Each of our rows is a little-endian uint64 whose byte j is element j.
    ours = np.frombuffer(our_tables[name], dtype="<u8")
    ours = ours.view(np.uint8).reshape(-1, 8).view(dtype)
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours.astype(np.float32), expected)


def test_ksigns_equals_gguf(our_tables):
    assert our_tables["ksigns_iq2xs"] == quants.IQ2_XXS.ksigns


def test_kmask_selects_the_bit_gguf_unpacks(our_tables):
    # gguf-py takes sign j of a ksigns byte as (byte >> j) & 1; kmask_iq2xs[j] must be that bit.
    signs = np.frombuffer(quants.IQ2_XXS.ksigns, dtype=np.uint8)
    mask = np.frombuffer(our_tables["kmask_iq2xs"], dtype=np.uint8)
    for j in range(8):
        np.testing.assert_array_equal((signs & mask[j]) != 0, ((signs >> j) & 1) == 1)


def test_kvalues_mxfp4_equals_gguf(our_tables):
    assert list(np.frombuffer(our_tables["kvalues_mxfp4"], dtype=np.int8)) == list(quants.MXFP4.kvalues)


# MXFP4 exponents up to 255 overflow 12·2^127 to inf, in gguf-py as in ggml and here: expected.
@pytest.mark.filterwarnings("ignore:overflow encountered")
@pytest.mark.parametrize("qtype", BLOCK_TYPES, ids=lambda t: t.name)
def test_dequantize_bit_exact_with_gguf(tool, tmp_path, qtype):
    rng = np.random.default_rng(1000 + int(qtype))
    blocks = random_blocks(qtype, 512, rng)
    ours = np.frombuffer(our_convert(tool, tmp_path, "dequantize", qtype, blocks), dtype=np.float32)
    theirs = quants.dequantize(blocks, qtype).reshape(-1)
    assert ours.shape == theirs.shape
    mismatch = np.flatnonzero(bits(ours) != bits(theirs))
    assert mismatch.size == 0, f"{mismatch.size} values differ, first at {mismatch[0]}: ours {ours[mismatch[0]]!r} gguf {theirs[mismatch[0]]!r}"


@pytest.mark.parametrize("qtype", [Q.F16, Q.BF16], ids=lambda t: t.name)
def test_dequantize_float_types_bit_exact_with_gguf(tool, tmp_path, qtype):
    # Every one of the 65536 bit patterns, NaNs (quiet and signalling) and infinities included.
    raw = np.arange(1 << 16, dtype=np.uint16)
    ours = np.frombuffer(our_convert(tool, tmp_path, "dequantize", qtype, raw), dtype=np.float32)
    np.testing.assert_array_equal(bits(ours), bits(quants.dequantize(raw.view(np.uint8), qtype)))


def random_rows(rng: np.random.Generator, n_blocks: int, block: int) -> np.ndarray:
    """Gaussian blocks at scales spread over 2^-20..2^20, plus blocks designed for edge cases:
    all zero, one spike, and values on exact rounding ties of the Q8_0 code grid."""
    scales = np.exp2(rng.uniform(-20, 20, size=(n_blocks, 1))).astype(np.float32)
    x = (rng.standard_normal((n_blocks, block)).astype(np.float32) * scales).astype(np.float32)
    x[0] = 0
    x[1] = 0
    x[1, 3] = -7.5
    # amax = 127 makes Q8_0's d = 1 exactly, so the other values sit on ties k + 0.5 (roundf
    # rounds them away from zero, not to even) and MXFP4's scale 8 puts several on code midpoints.
    x[2] = np.arange(block, dtype=np.float32) - block / 2 + 0.5
    x[2, 0] = 127
    return x.reshape(-1)


# Inputs up to ~2^22 overflow F16 to inf, in numpy as in our conversion: expected.
@pytest.mark.filterwarnings("ignore:overflow encountered")
@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.MXFP4, Q.BF16, Q.F16], ids=lambda t: t.name)
def test_quantize_bit_exact_with_gguf(tool, tmp_path, qtype):
    rng = np.random.default_rng(2000 + int(qtype))
    block, _ = GGML_QUANT_SIZES[qtype]
    x = random_rows(rng, 1024, max(block, 32))
    if qtype == Q.BF16:
        x[:4] = [np.inf, -np.inf, np.nan, -0.0]  # BF16 rounding keeps specials (NaN made quiet)
        x[4:6] = np.array([0x7F800001, 0xFFBFFFFF], dtype=np.uint32).view(np.float32)  # sNaNs
    ours = np.frombuffer(our_convert(tool, tmp_path, "quantize", qtype, x), dtype=np.uint8)
    theirs = np.ascontiguousarray(quants.quantize(x.reshape(-1, max(block, 32)), qtype)).view(np.uint8).reshape(-1)
    assert ours.shape == theirs.shape
    mismatch = np.flatnonzero(ours != theirs)
    assert mismatch.size == 0, f"{mismatch.size} bytes differ, first at byte {mismatch[0]}"


@pytest.mark.parametrize("qtype", BLOCK_TYPES, ids=lambda t: t.name)
def test_our_quantized_blocks_dequantize_identically_in_gguf(tool, tmp_path, qtype):
    # Our encoders' output is a valid file payload: gguf-py reads it to the values we read.
    rng = np.random.default_rng(3000 + int(qtype))
    block, _ = GGML_QUANT_SIZES[qtype]
    x = (rng.standard_normal(256 * 16) * 0.02).astype(np.float32)
    blocks = np.frombuffer(our_convert(tool, tmp_path, "quantize", qtype, x), dtype=np.uint8)
    ours = np.frombuffer(our_convert(tool, tmp_path, "dequantize", qtype, blocks), dtype=np.float32)
    theirs = quants.dequantize(blocks.reshape(-1, GGML_QUANT_SIZES[qtype][1]), qtype).reshape(-1)
    np.testing.assert_array_equal(bits(ours), bits(theirs))
