"""Prefix pages on disk (--kv-disk) across a restart of `v4serve serve`.

A conversation's first turn runs on one server; the server stops (SIGTERM) and a new one starts
on the same directory; the second turn finds the first turn's pages on disk (/metrics counts the
disk hits) and answers with exactly the tokens of a server that never cached anything (the
oracle: --no-prefix-caching). A page file with a flipped byte is ignored with a warning line, and
a model generated with another seed never loads the first model's pages.
"""

import pathlib
import subprocess
import time
import sys

import httpx
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from server import Server, metric_values  # noqa: E402

MODEL = "tiny"
# Two full pages of 256 tokens and more, so the second turn can hit whole pages.
FIRST = "Tell me about the lighthouse keeper and the sea. " * 60


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


def total(text, name):
    values = metric_values(text, name)
    assert values, f"{name} is missing"
    return sum(values.values())


def chat(server, messages):
    r = httpx.post(server.url + "/v1/chat/completions", timeout=300, json={
        "model": MODEL, "messages": messages, "max_tokens": 8, "temperature": 0,
        "logprobs": True})
    assert r.status_code == 200, r.text
    body = r.json()
    choice = body["choices"][0]
    tokens = [t["token"] for t in choice["logprobs"]["content"]]
    return choice["message"]["content"] or "", tokens, body["usage"]


def second_turn(reply):
    return [{"role": "user", "content": FIRST},
            {"role": "assistant", "content": reply},
            {"role": "user", "content": "And what did he see at night?"}]


def metrics(server):
    return httpx.get(server.url + "/metrics", timeout=30).text


def conversation(v4serve, model, *flags):
    """Both turns on one server: (first reply, second turn's tokens)."""
    with Server(v4serve, model, "--served-model-name", MODEL, *flags) as s:
        reply, _, _ = chat(s, [{"role": "user", "content": FIRST}])
        _, tokens, _ = chat(s, second_turn(reply))
    return reply, tokens


def test_conversation_resumed_after_a_restart_hits_its_pages_on_disk(v4serve, model, tmp_path):
    cold_reply, cold_tokens = conversation(v4serve, model, "--no-prefix-caching")
    disk = tmp_path / "kv"
    flags = ("--served-model-name", MODEL, "--kv-disk", disk, "--kv-disk-gb", "1")
    with Server(v4serve, model, *flags) as s:
        reply, _, _ = chat(s, [{"role": "user", "content": FIRST}])
    assert reply == cold_reply
    files = sorted(disk.glob("*.kvpage"))
    assert len(files) >= 2, list(disk.iterdir())

    with Server(v4serve, model, *flags) as s:
        _, tokens, usage = chat(s, second_turn(reply))
        text = metrics(s)
    assert tokens == cold_tokens
    assert usage["prompt_tokens_details"]["cached_tokens"] >= 512
    assert total(text, "v4serve:kv_disk_hits_total") >= 2
    assert total(text, "v4serve:prefix_cache_hits_total") >= 512
    assert total(text, "v4serve:kv_disk_ignored_files_total") == 0

    # A flipped byte near the end of the first page's payload: ignored with a warning, and the
    # turn is computed from that page on, still with the cold tokens.
    first_page = files[0]
    data = bytearray(first_page.read_bytes())
    data[-17] ^= 0x5A
    first_page.write_bytes(bytes(data))
    with Server(v4serve, model, *flags) as s:
        _, tokens, _ = chat(s, second_turn(reply))
        text = metrics(s)
        warnings = [line for line in s.stderr_lines if "kv-disk: ignoring" in line]
    assert tokens == cold_tokens
    assert total(text, "v4serve:kv_disk_ignored_files_total") == 1
    assert len(warnings) == 1 and "checksum" in warnings[0], s.stderr_lines[-20:]


def test_model_of_another_seed_never_loads_the_pages(v4serve, model, tmp_path):
    other = tmp_path / "tiny-seed-7.gguf"
    result = subprocess.run(
        [str(v4serve), "gen-model", "--preset", "tiny", "--recipe", "f32", "--seed", "7",
         "--out", str(other)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-1000:]
    disk = tmp_path / "kv"
    flags = ("--served-model-name", MODEL, "--kv-disk", disk)
    with Server(v4serve, model, *flags) as s:
        reply, _, _ = chat(s, [{"role": "user", "content": FIRST}])
    assert list(disk.glob("*.kvpage"))
    with Server(v4serve, other, *flags) as s:
        _, _, usage = chat(s, second_turn(reply))
        text = metrics(s)
    assert total(text, "v4serve:kv_disk_hits_total") == 0
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0


def test_kv_disk_needs_prefix_caching(v4serve, model, tmp_path):
    result = subprocess.run(
        [str(v4serve), "serve", "--model", str(model), "--port", "0", "--no-prefix-caching",
         "--kv-disk", str(tmp_path / "kv")], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "--kv-disk needs prefix caching" in result.stderr


def test_a_worker_behind_a_router_resumes_from_disk(v4serve, model, tmp_path):
    """The same across a restart of a `v4serve worker`: its disk counters reach the router's
    /metrics (through the worker's Stats)."""
    from cluster import Cluster  # noqa: E402
    _, cold_tokens = conversation(v4serve, model, "--no-prefix-caching")
    worker_args = ["--kv-disk", str(tmp_path / "kv"), "--kv-disk-gb", "1"]
    router_args = ["--served-model-name", MODEL]
    with Cluster(v4serve, model, workers=1, worker_args=worker_args,
                 router_args=router_args) as c:
        reply, _, _ = chat(c, [{"role": "user", "content": FIRST}])
        assert c.workers[0].terminate() == 0  # SIGTERM: drains and writes its cached pages
    with Cluster(v4serve, model, workers=1, worker_args=worker_args,
                 router_args=router_args) as c:
        _, tokens, usage = chat(c, second_turn(reply))
        assert tokens == cold_tokens
        assert usage["prompt_tokens_details"]["cached_tokens"] >= 512, usage
        # The router refreshes its workers' Stats every --health-interval-ms (200 in Cluster).
        deadline = time.monotonic() + 10
        while total(metrics(c), "v4serve:kv_disk_hits_total") < 2:
            assert time.monotonic() < deadline, metrics(c)[-3000:]
            time.sleep(0.2)
