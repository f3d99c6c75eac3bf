"""bench/expert_parallel_benchmark.py runs end to end on the tiny model (serve, and a group of 2
ranks with its exchanges beside the compute, inline, and in two micro-batches) and its byte counts obey what the wire
format fixes: a selected expert owned elsewhere
costs n_embd + 2 floats out and n_embd floats back, so combine / dispatch bytes is exactly
n_embd / (n_embd + 2), and no token can send more than k·(n_embd + 2)·4 bytes per MoE layer."""

import json
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench" / "expert_parallel_benchmark.py"


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


def test_benchmark_counts_what_the_wire_format_fixes(v4serve, model):
    out = subprocess.run(
        [sys.executable, str(BENCH), "--v4serve", str(v4serve), "--gguf", str(model), "--ranks",
         "2", "--requests", "6", "--concurrency", "3", "--prompt-len", "24", "--output-len", "4",
         "--timeout-s", "300", "--micro-batches", "--json"],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    serve, overlapped, inline, micro = result["rows"]
    assert serve["form"] == "serve" and serve["dispatch_bytes_per_token_layer"] == 0
    n_embd, k = result["n_embd"], result["experts_per_token"]
    for group in (overlapped, inline, micro):
        d, c = group["dispatch_bytes_per_token_layer"], group["combine_bytes_per_token_layer"]
        assert 0 < d <= k * (n_embd + 2) * 4
        assert c / d == pytest.approx(n_embd / (n_embd + 2), rel=1e-9)
        assert group["output_tok_s"] > 0 and 0 < group["comm_share"] < 1
    # Only the overlapped group hid exchange time under its compute.
    assert overlapped["overlap"] and overlapped["hidden_share"] > 0
    assert not inline["overlap"] and inline["hidden_share"] == 0
    # Two micro-batches: each exchange beside the other half's attention hides time too.
    assert micro["micro_batches"] == 2 and micro["hidden_share"] > 0 and "2 micro" in micro["form"]
