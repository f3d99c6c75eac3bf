"""Expert memory tiers as the user runs them: `serve --device emulated --expert-tiers TRACE`
keeps each layer's hot experts (from a recorded trace) in device memory and runs the others on
the CPU from host memory. Its tokens and logprobs do not depend on the batch (requests one at a
time and all at once agree bit for bit), `bench` reports the CPU's share, and bad uses get a
clear error: tiers on the CPU device, in a worker group, a trace of another model."""

import concurrent.futures
import json
import pathlib
import subprocess
import sys

import httpx
import openai
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from server import Server  # noqa: E402

N_REQUESTS = 8


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


def one(base_url, i):
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=300)
    name = client.models.list().data[0].id
    kwargs = dict(prompt="Tier request %d: %s" % (i, "lorem ipsum " * (1 + i % 4)), max_tokens=8,
                  logprobs=2, extra_body={"ignore_eos": True})
    if i % 2:
        kwargs.update(temperature=0.8, seed=900 + i)
    else:
        kwargs.update(temperature=0.0)
    c = client.completions.create(model=name, **kwargs).choices[0]
    return c.text, c.logprobs.tokens, c.logprobs.token_logprobs, c.logprobs.top_logprobs


def run(base_url, parallel):
    if not parallel:
        return [one(base_url, i) for i in range(N_REQUESTS)]
    with concurrent.futures.ThreadPoolExecutor(N_REQUESTS) as pool:
        return list(pool.map(lambda i: one(base_url, i), range(N_REQUESTS)))


@pytest.fixture(scope="module")
def trace(v4serve, model, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiers") / "stats.prom"
    with Server(v4serve, model, "--threads", "1", "--kv-memory", "256",
                "--metrics-expert-detail") as server:
        run(server.base_url, parallel=True)
        path.write_text(httpx.get(server.url + "/metrics", timeout=30).text)
    assert "v4serve:expert_selections_total{" in path.read_text()
    return path


def test_tiered_serve_is_batch_invariant(v4serve, model, trace):
    with Server(v4serve, model, "--device", "emulated", "--expert-tiers", str(trace),
                "--hot-coverage", "0.6", "--threads", "1", "--kv-memory", "256") as server:
        alone = run(server.base_url, parallel=False)
        together = run(server.base_url, parallel=True)
    assert together == alone
    log = "".join(server.stderr_lines)
    assert "routed experts stay in host memory and run on the CPU" in log, log[-2000:]


def test_bench_reports_the_cpu_share(v4serve, model, trace):
    out = subprocess.run([str(v4serve), "bench", "--model", str(model), "--device", "emulated",
                          "--expert-tiers", str(trace), "--hot-coverage", "0.6",
                          "--prompt-tokens", "16", "--decode-tokens", "4", "--batch", "1",
                          "--bandwidth-mib", "16"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    share = [line for line in out.stdout.splitlines() if line.startswith("expert tiers:")]
    assert share, out.stdout
    percent = float(share[0].split()[2].rstrip("%"))
    assert 0 < percent < 100, share
    out = subprocess.run([str(v4serve), "bench", "--model", str(model), "--device", "emulated",
                          "--expert-tiers", str(trace), "--hot-coverage", "0.6",
                          "--prompt-tokens", "16", "--decode-tokens", "4", "--batch", "1",
                          "--bandwidth-mib", "16", "--json"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    tiers = json.loads(out.stdout)["expert_tiers"]
    assert tiers["cpu_pairs"] > 0 and tiers["device_pairs"] > 0, tiers


def test_bad_uses_are_refused(v4serve, model, trace, tmp_path):
    def fails(args, message):
        out = subprocess.run([str(v4serve), *args], capture_output=True, text=True, timeout=300)
        assert out.returncode != 0, (args, out.stdout)
        assert message in out.stderr + out.stdout, (args, out.stderr[-2000:])

    fails(["serve", "--port", "0", "--model", str(model), "--expert-tiers", str(trace)],
          "--expert-tiers needs a device")
    fails(["worker", "--listen", "127.0.0.1:0", "--model", str(model),
           "--expert-tiers", str(trace), "--group", "g", "--rank", "0", "--ranks", "2",
           "--group-leader", "127.0.0.1:1"], "--expert-tiers is for a worker of its own")
    other = tmp_path / "other.prom"
    other.write_text('v4serve:expert_selections_total{layer="99",expert="0"} 5\n')
    fails(["serve", "--port", "0", "--model", str(model), "--device", "emulated",
           "--expert-tiers", str(other)], "--expert-tiers " + str(other))
    fails(["bench", "--synthetic", "tiny", "--device", "emulated", "--expert-tiers", str(trace)],
          "needs --model, not --synthetic")
