"""Smoke tests of bench/router_benchmark.py and bench/router_scaling.py on the tiny model, in
small configurations: every figure and ratio is present and positive or within its range (no
timing thresholds: the figures depend on the machine)."""

import math

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


def test_router_scaling_reports_every_section(v4serve, model):
    result = run([sys.executable, REPO / "bench" / "router_scaling.py", "--v4serve", v4serve,
                  "--gguf", model, "--requests", "8", "--concurrency", "4", "--conversations", "3",
                  "--turns", "2", "--system-words", "300", "--user-words", "10", "--reply-len",
                  "2", "--json", "--", "--threads", "1", "--kv-memory", "256"], timeout=600)
    assert result.returncode == 0, result.stderr
    sections = {r["section"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert list(sections) == ["throughput", "batching", "prefix"]

    rows = sections["throughput"]["rows"]
    assert [r["workers"] for r in rows] == [1, 2, 4]
    for r in rows:
        assert r["requests_per_s"] > 0 and r["ttft_p50_ms"] > 0, r
    assert rows[0]["ratio_to_1_worker"] == 1
    assert rows[2]["ratio_to_1_worker"] == pytest.approx(
        rows[2]["requests_per_s"] / rows[0]["requests_per_s"])

    rows = {r["form"]: r for r in sections["batching"]["rows"]}
    assert len(rows) == 3
    for r in rows.values():
        assert r["requests_per_s"] > 0 and r["ttft_p50_ms"] > 0, r
        # Every measured request went in some message, and a message carries at least one.
        assert r["submitted_requests"] == 8, r
        assert 0 < r["messages_per_request"] <= 1, r
    assert rows["batch-max 1"]["messages_per_request"] == 1

    rows = {r["form"]: r for r in sections["prefix"]["rows"]}
    assert list(rows) == ["affinity", "round-robin", "single worker"]
    for r in rows.values():
        assert r["query_tokens"] > 0 and 0 <= r["hit_tokens"] <= r["query_tokens"], r
        assert r["hit_rate"] == pytest.approx(r["hit_tokens"] / r["query_tokens"])
        assert not math.isnan(r["hits_vs_single_worker"]), r
    # A second turn's prompt holds the first turn's system prompt (over one 256-token page).
    assert rows["single worker"]["hit_tokens"] > 0
    assert rows["single worker"]["hits_vs_single_worker"] == 1
