"""`v4serve inspect` on a model published as NAME.gguf-00001-of-0000N: gguf-split shards and
plain byte chunks of one file are both accepted, and inspect says which it found."""

import os
import pathlib
import subprocess

import pytest

CHUNK = 1 << 20  # a whole number of pages


def run(*args, timeout=300):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def gen(v4serve, out, *extra):
    r = run(v4serve, "gen-model", "--preset", "tiny", "--layers", "1", "--experts", "8",
            "--vocab", "4096", "--quiet", "--out", out, *extra)
    assert r.returncode == 0, r.stderr


def rename_after_extension(paths, stem):
    """model-0000i-of-0000N.gguf -> model.gguf-0000i-of-0000N."""
    out = []
    for p in sorted(paths):
        numbers = p.name[len("model"):-len(".gguf")]  # "-00001-of-00003"
        target = stem.with_name(stem.name + numbers)
        p.rename(target)
        out.append(target)
    return out


def tensor_count(stdout):
    line = next(l for l in stdout.splitlines() if l.startswith("GGUF v"))
    return line.split(" tensors")[0].rsplit(" ", 1)[1]


def test_inspect_accepts_parts_named_after_the_extension(v4serve, tmp_path):
    whole = tmp_path / "whole.gguf"
    gen(v4serve, whole)
    reference = run(v4serve, "inspect", whole, "--no-tensors")
    assert reference.returncode == 0, reference.stderr

    # Plain byte chunks, as `split -b 1M` makes them.
    data = whole.read_bytes()
    count = (len(data) + CHUNK - 1) // CHUNK
    assert count >= 2
    stem = tmp_path / "chunks" / "model.gguf"
    stem.parent.mkdir()
    for k in range(count):
        (stem.parent / f"model.gguf-{k + 1:05d}-of-{count:05d}").write_bytes(
            data[k * CHUNK:(k + 1) * CHUNK])
    r = run(v4serve, "inspect", stem.parent / f"model.gguf-00001-of-{count:05d}", "--no-tensors")
    assert r.returncode == 0, r.stderr
    assert f"({count} byte chunks of one GGUF file, mapped as one)" in r.stdout
    assert tensor_count(r.stdout) == tensor_count(reference.stdout)

    # gguf-split shards under the same naming.
    shards = tmp_path / "shards"
    shards.mkdir()
    gen(v4serve, shards / "model.gguf", "--split-mb", "1")
    parts = rename_after_extension(list(shards.glob("model-*-of-*.gguf")), shards / "model.gguf")
    assert len(parts) >= 2
    r = run(v4serve, "inspect", parts[0], "--no-tensors")
    assert r.returncode == 0, r.stderr
    assert f"(gguf-split set of {len(parts)} parts, each a GGUF)" in r.stdout
    assert tensor_count(r.stdout) == tensor_count(reference.stdout)
