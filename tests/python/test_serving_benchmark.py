"""Smoke test of bench/serving_benchmark.py against `v4serve serve` on the tiny model: every
figure is present and positive and the server's own overhead is read from /metrics (no timing
thresholds: the figures depend on the machine)."""

import json
import pathlib
import sys

import pytest

from conftest import REPO, run
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle.models import tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return tiny_model(tmp_path_factory, v4serve)


def test_benchmark_reports_every_figure(v4serve, model):
    result = run([sys.executable, REPO / "bench" / "serving_benchmark.py", "--serve", v4serve,
                  "--gguf", model, "--concurrency", "1,3", "--requests", "6",
                  "--prompt-len", "16", "--output-len", "4", "--json"], timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["concurrency"] for r in rows] == [1, 3]
    for r in rows:
        for key in ("requests_per_s", "output_tokens_per_s", "ttft_p50_ms", "ttft_p99_ms",
                    "itl_p50_ms", "itl_p99_ms", "server_overhead_ms_per_request"):
            assert r[key] is not None and r[key] > 0, (key, r)
        assert r["ttft_p99_ms"] >= r["ttft_p50_ms"]


def test_bad_concurrency_is_refused():
    result = run([sys.executable, REPO / "bench" / "serving_benchmark.py", "--url",
                  "http://127.0.0.1:9", "--concurrency", "1,x"])
    assert result.returncode == 2 and "--concurrency" in result.stderr
