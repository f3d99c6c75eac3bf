"""Smoke test of bench/router_benchmark.py on the tiny model: both forms run in one invocation
and every figure and ratio is present and positive (no timing thresholds: the figures depend on
the machine)."""

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


def test_router_benchmark_reports_both_forms_and_ratios(v4serve, model):
    result = run([sys.executable, REPO / "bench" / "router_benchmark.py", "--v4serve", v4serve,
                  "--gguf", model, "--concurrency", "1,2", "--requests", "4", "--prompt-len", "16",
                  "--output-len", "4", "--rounds", "1", "--json", "--", "--threads", "1",
                  "--kv-memory", "256"], timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["concurrency"] for r in rows] == [1, 2]
    for r in rows:
        for part in ("serve", "router", "ratio"):
            for key in ("ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms"):
                assert r[part][key] > 0, (part, key, r)
        assert r["ratio"]["ttft_p50_ms"] == pytest.approx(
            r["router"]["ttft_p50_ms"] / r["serve"]["ttft_p50_ms"])
