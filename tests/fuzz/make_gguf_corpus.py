#!/usr/bin/env python3
"""Writes the GGUF seed corpus (tests/fuzz/corpus/gguf/) with ggml's own `gguf` package.

The files are made by an implementation independent of ours, so they double as oracle inputs:
tests/unit/model/gguf/gguf_corpus_test.cpp reads them with GgufFile, checks the values written here
and re-writes them with GgufWriter expecting identical bytes. Keep the two in sync.

Run with the project venv:  .venv/bin/python tests/fuzz/make_gguf_corpus.py
"""

import pathlib

import gguf
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "corpus" / "gguf"
T = gguf.GGUFValueType


def write(writer: gguf.GGUFWriter) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def every_type() -> None:
    """Metadata of all 13 value types, arrays (nested too) and tensors of four ggml types."""
    w = gguf.GGUFWriter(OUT / "every_type.gguf", "deepseek4")
    w.add_uint8("t.u8", 255)
    w.add_int8("t.i8", -128)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -32768)
    w.add_uint32("t.u32", 4294967295)
    w.add_int32("t.i32", -2147483648)
    w.add_float32("t.f32", 1.5)
    w.add_bool("t.bool", True)
    w.add_string("t.string", "<｜begin▁of▁sentence｜>")
    w.add_uint64("t.u64", 18446744073709551615)
    w.add_int64("t.i64", -9223372036854775808)
    w.add_float64("t.f64", 0.1)
    w.add_key_value("a.u32", [0, 4, 128], T.ARRAY, sub_type=T.UINT32)
    w.add_array("a.i32", [-1, 2])
    w.add_array("a.f32", [10.0, 0.25])
    w.add_array("a.bool", [True, False])
    w.add_array("a.string", ["Ġthe", "", "▁"])
    w.add_key_value("a.u8", [1, 2, 3], T.ARRAY, sub_type=T.UINT8)
    w.add_array("a.nested", [["x", "y"], [1, 2, 3]])
    w.add_tensor("token_embd.weight", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.add_tensor("output_norm.weight", np.arange(8, dtype=np.float16))
    w.add_tensor("blk.0.ffn_gate_tid2eid.weight", np.array([3, 1, 4, 1], dtype=np.int32))
    q8 = np.arange(2 * 34, dtype=np.uint8).reshape(2, 34)  # two Q8_0 blocks: rows of 32 values
    w.add_tensor("blk.0.attn_q_a.weight", q8, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    write(w)


def aligned_64() -> None:
    w = gguf.GGUFWriter(OUT / "align64.gguf", "deepseek4")
    w.add_custom_alignment(64)
    w.add_uint32("deepseek4.block_count", 43)
    w.add_tensor("a", np.ones(5, dtype=np.float32))
    w.add_tensor("b", np.full((2, 2), 7, dtype=np.int8))
    write(w)


def metadata_only() -> None:
    w = gguf.GGUFWriter(OUT / "metadata_only.gguf", "deepseek4")
    w.add_string("general.name", "tiny")
    write(w)


def split_pair() -> None:
    """Two parts of one tensor each, gguf-split naming and split.* keys."""
    w = gguf.GGUFWriter(OUT / "split.gguf", "deepseek4", split_max_tensors=1)
    w.add_uint32("deepseek4.block_count", 43)
    w.add_tensor("first", np.arange(4, dtype=np.float32))
    w.add_tensor("second", np.arange(3, dtype=np.int16))
    write(w)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    every_type()
    aligned_64()
    metadata_only()
    split_pair()
