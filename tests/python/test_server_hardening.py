"""The server against hostile or unlucky clients: pathological request bodies must not stall
other clients, and a shutdown past --drain-timeout must still end every open request properly.

Each test starts its own `v4serve serve` on a free loopback port and bounds every wait."""

import concurrent.futures
import json
import subprocess
import pathlib
import sys
import threading
import time

import httpx
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from server import Server, metric_values  # noqa: E402

MODEL = "tiny"
USER = [{"role": "user", "content": "Tell me a short story about a lighthouse."}]


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


def vocab_size(url):
    """The vocabulary size, from the server's own logit_bias error (no outside knowledge)."""
    r = httpx.post(url + "/v1/chat/completions", timeout=30, json={
        "model": MODEL, "messages": USER, "logit_bias": {"999999999": 1}})
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    return int(message.rsplit(", ", 1)[1].rstrip(")"))


def wide_object_body(keys):
    """A valid chat request carrying an unknown member with `keys` keys (80k keys: ~1.2 MB)."""
    members = ",".join('"k%06d":%d' % (i, i) for i in range(keys))
    return ('{"model":"%s","messages":%s,"max_tokens":1,"metadata":{%s}}'
            % (MODEL, json.dumps(USER), members))


def wide_messages_body(keys):
    """The same width inside a member the server reads: refused with a 400 naming it."""
    members = ",".join('"k%06d":%d' % (i, i) for i in range(keys))
    return ('{"model":"%s","messages":[{"role":"user","content":"hi",%s}]}' % (MODEL, members))


def post(url, body, timeout=60):
    return httpx.post(url + "/v1/chat/completions", content=body, timeout=timeout,
                      headers={"Content-Type": "application/json"})


def test_pathological_bodies_do_not_stall_other_clients(v4serve, model):
    with Server(v4serve, model, "--served-model-name", MODEL, "--kv-memory", "256",
                "--max-queue", "1000") as s:
        vocab = vocab_size(s.url)
        full_bias = json.dumps({"model": MODEL, "messages": USER, "max_tokens": 16,
                                "logit_bias": {str(i): 0.5 for i in range(vocab)}})
        wide, refused = wide_object_body(80_000), wide_messages_body(80_000)
        assert len(wide) > 1_000_000
        r = post(s.url, refused)
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages", r.text
        assert "more than" in r.json()["error"]["message"]

        stop = threading.Event()
        attacks = {"wide": [], "bias": []}

        def attacker(name, bodies):
            with httpx.Client(timeout=60) as client:
                i = 0
                while not stop.is_set():
                    start = time.monotonic()
                    r = client.post(s.url + "/v1/chat/completions", content=bodies[i % 2],
                                    headers={"Content-Type": "application/json"})
                    attacks[name].append((r.status_code, time.monotonic() - start))
                    i += 1

        threads = [threading.Thread(target=attacker, args=("wide", [wide, refused])),
                   threading.Thread(target=attacker, args=("bias", [full_bias, full_bias]))]
        for t in threads:
            t.start()
        health, chats = [], []
        try:
            # Probe while both attackers are mid-stream: wait until each sent something.
            deadline = time.monotonic() + 60
            while not (attacks["wide"] and attacks["bias"]) and time.monotonic() < deadline:
                start = time.monotonic()
                assert httpx.get(s.url + "/health", timeout=5).status_code == 200
                health.append(time.monotonic() - start)
            with httpx.Client(timeout=5) as probe:
                for _ in range(10):
                    start = time.monotonic()
                    assert probe.get(s.url + "/health").status_code == 200
                    health.append(time.monotonic() - start)
                    start = time.monotonic()
                    r = probe.post(s.url + "/v1/chat/completions", json={
                        "model": MODEL, "messages": USER, "max_tokens": 4, "temperature": 0})
                    assert r.status_code == 200, r.text
                    chats.append(time.monotonic() - start)
        finally:
            stop.set()
            for t in threads:
                t.join(120)
        assert attacks["wide"] and attacks["bias"]
        assert {code for code, _ in attacks["wide"]} <= {200, 400}, attacks["wide"]
        assert {code for code, _ in attacks["bias"]} == {200}, attacks["bias"]
        assert max(health) < 1.0, health
        assert max(chats) < 1.0, chats
        # A bias over the whole vocabulary costs about what the tokens cost, not tens of seconds.
        assert min(t for _, t in attacks["bias"]) < 3.0, attacks["bias"]


def read_stream(lines):
    """Reads a chat event stream to its end: (last finish_reason, saw [DONE], error event)."""
    finish, done, error = None, False, None
    for line in lines:
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            done = True
            continue
        event = json.loads(line[6:])
        if "error" in event:
            error = event["error"]
        for choice in event.get("choices", []):
            finish = choice.get("finish_reason") or finish
    return finish, done, error


def in_flight(server):
    text = httpx.get(server.url + "/metrics", timeout=30).text
    return sum(sum(metric_values(text, name).values())
               for name in ("v4serve:num_requests_running", "v4serve:num_requests_waiting"))


def test_sigterm_past_the_drain_timeout_ends_every_request(v4serve, model):
    body = {"model": MODEL, "messages": USER, "max_tokens": 1500, "ignore_eos": True}
    streams = 6
    with Server(v4serve, model, "--served-model-name", MODEL, "--kv-memory", "256",
                "--ctx", "2048", "--drain-timeout", "1") as s:
        started = threading.Barrier(streams + 1, timeout=120)

        def stream(_):
            with httpx.Client(timeout=120) as client:
                with client.stream("POST", s.url + "/v1/chat/completions",
                                   json=dict(body, stream=True)) as r:
                    assert r.status_code == 200
                    lines = r.iter_lines()
                    for line in lines:  # the first content chunk: the request is running
                        if line.startswith("data: ") and '"content"' in line:
                            break
                    started.wait()
                    return read_stream(lines)

        def whole():
            return httpx.post(s.url + "/v1/chat/completions", json=body, timeout=120)

        with concurrent.futures.ThreadPoolExecutor(streams + 1) as pool:
            streamed = [pool.submit(stream, i) for i in range(streams)]
            single = pool.submit(whole)
            started.wait()
            deadline = time.monotonic() + 60
            while in_flight(s) < streams + 1:  # the whole-response request too
                assert time.monotonic() < deadline and not single.done()
                time.sleep(0.02)
            start = time.monotonic()
            assert s.stop(timeout=60) == 0
            stopped = time.monotonic() - start
            results = [f.result(timeout=60) for f in streamed]
            reply = single.result(timeout=60)
    assert stopped < 10, stopped
    for finish, done, error in results:
        assert done and (finish is not None or error is not None), results
    assert reply.status_code == 503, reply.text
    error = reply.json()["error"]
    assert error["message"] and error["type"] == "server_error"


def test_a_too_small_kv_memory_is_reported_in_mib(v4serve, model):
    result = subprocess.run([str(v4serve), "serve", "--model", str(model), "--port", "0",
                             "--kv-memory", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    line = [l for l in result.stderr.splitlines() if "--kv-memory" in l][-1]
    assert "--kv-memory 1.0 MiB is too small" in line, line
    assert "bytes" not in line, line
    least = int(line.split("give at least ")[1].split()[0])
    # The size it names is enough.
    with Server(v4serve, model, "--kv-memory", least) as s:
        assert httpx.get(s.url + "/health", timeout=30).status_code == 200
