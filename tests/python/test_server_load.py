"""The server under concurrent load: nothing lost when clients disconnect, pages and memory
come back, and batching does not change greedy results (checked through HTTP)."""

import concurrent.futures
import json
import sys
import pathlib
import time

import httpx
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from server import Server, metric_values, rss_kib

MODEL = "tiny"


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


def metrics(server):
    return httpx.get(server.url + "/metrics", timeout=30).text


def gauge(server, name):
    values = metric_values(metrics(server), name)
    assert values, name
    return sum(values.values())


def wait_until_idle(server, timeout=60.0):
    """Polls /metrics until no request runs or waits and no KV page is in use."""
    deadline = time.monotonic() + timeout
    while True:
        text = metrics(server)
        busy = sum(sum(metric_values(text, n).values()) for n in (
            "v4serve:num_requests_running", "v4serve:num_requests_waiting",
            "v4serve:kv_cache_pages_used"))
        if busy == 0:
            return
        assert time.monotonic() < deadline, "server still busy:\n" + text
        time.sleep(0.05)


def stream_request(url, i, disconnect):
    """One streamed chat request; returns ("done", text) or ("left", None)."""
    body = {"model": MODEL, "stream": True, "temperature": 0, "max_tokens": 8 + i % 9,
            "messages": [{"role": "user", "content": f"request {i}: " + "words " * (i % 40)}]}
    text, events = "", 0
    with httpx.Client(timeout=120) as client:
        with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200, r.read()
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    return "done", text
                events += 1
                chunk = json.loads(line[6:])
                for choice in chunk["choices"]:
                    text += choice["delta"].get("content") or ""
                if disconnect and events >= 2:
                    return "left", None
    return "truncated", text


def burst(server, count, clients, disconnect_every):
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(stream_request, server.url, i,
                               disconnect_every and i % disconnect_every == 0)
                   for i in range(count)]
        return [f.result() for f in futures]


def test_disconnects_lose_nothing_and_free_everything(v4serve, model):
    with Server(v4serve, model, "--served-model-name", MODEL, "--max-seqs", "16",
                "--max-queue", "1000", "--kv-memory", "256") as s:
        # Warm-up burst of the same shape, so allocator pools reach their steady size.
        burst(s, 100, 50, 10)
        wait_until_idle(s)
        before = rss_kib(s.pid)
        results = burst(s, 200, 50, 10)
        wait_until_idle(s)
        after = rss_kib(s.pid)
        left = [r for r in results if r[0] == "left"]
        done = [r for r in results if r[0] == "done"]
        assert len(left) == 20 and len(done) == 180, [r[0] for r in results]
        assert gauge(s, "v4serve:kv_cache_pages_used") == 0
        statuses = metric_values(metrics(s), "v4serve:http_requests_total")
        assert sum(v for k, v in statuses.items() if 'status="499"' in k) >= 1
        assert abs(after - before) <= 0.05 * before, (before, after)


def completion(url, prompt, max_tokens):
    r = httpx.post(url + "/v1/completions", timeout=300, json={
        "model": MODEL, "prompt": prompt, "temperature": 0, "max_tokens": max_tokens,
        "logprobs": 1})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    return choice["text"], choice["logprobs"]["tokens"]


def test_batch_invariance_through_http(v4serve, model):
    prompts = [("In the year %d, " % (1900 + 7 * i)) + "story " * (i * 3) for i in range(32)]
    lengths = [4 + (i * 5) % 13 for i in range(32)]
    with Server(v4serve, model, "--served-model-name", MODEL, "--max-seqs", "32",
                "--no-prefix-caching") as s:
        alone = [completion(s.url, p, n) for p, n in zip(prompts, lengths)]
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            together = list(pool.map(lambda a: completion(s.url, *a), zip(prompts, lengths)))
        text = metrics(s)
    assert together == alone
    # The concurrent run did batch: some engine steps ran more than one sequence.
    buckets = metric_values(text, "v4serve:batch_size_bucket")
    single = sum(v for k, v in buckets.items() if float(k.split('le="')[1].split('"')[0]) == 1)
    steps = sum(metric_values(text, "v4serve:batch_size_count").values())
    assert steps > single
