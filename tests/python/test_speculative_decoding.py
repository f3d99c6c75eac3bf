"""Speculative decoding end to end: the same completions (text, tokens, logprobs) with 0 to 3 MTP
drafts per step, greedy and seeded, one at a time and concurrently, over a model whose MTP
block agrees with it (most drafts accepted) and one with random MTP weights (most rejected);
the spec_decode counters on /metrics; validation of the request field and the server flag."""

import concurrent.futures
import pathlib
import subprocess
import sys

import httpx
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from server import Server, metric_values  # noqa: E402

MODEL = "tiny"


def gen_model(tmp_path_factory, v4serve, name, *flags):
    path = tmp_path_factory.getbasetemp() / name
    if not path.exists():
        result = subprocess.run(
            [str(v4serve), "gen-model", "--preset", "tiny", "--recipe", "f32", "--out", str(path),
             *flags], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-1000:]
    return path


@pytest.fixture(scope="module")
def agreeing(tmp_path_factory, v4serve):
    """A ds4-layout model: the MTP block in its own file."""
    path = gen_model(tmp_path_factory, v4serve, "spec-agrees.gguf", "--mtp", "ds4", "--mtp-agrees")
    return path, path.with_name("spec-agrees-mtp.gguf")


@pytest.fixture(scope="module")
def random_lcpp(tmp_path_factory, v4serve):
    return gen_model(tmp_path_factory, v4serve, "spec-random-lcpp.gguf", "--mtp", "lcpp")


def requests():
    out = []
    for i in range(4):
        body = {"model": MODEL, "prompt": "The lighthouse keeper %d wrote" % i, "max_tokens": 20,
                "ignore_eos": True, "logprobs": 2}
        if i % 2:
            body.update(temperature=0.8, top_p=0.95, seed=100 + i)
        else:
            body.update(temperature=0)
        out.append(body)
    return out


def complete(url, body):
    r = httpx.post(url + "/v1/completions", json=body, timeout=300)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    lp = choice["logprobs"]
    return choice["text"], lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]


def run_all(url, drafts, together):
    bodies = []
    for body in requests():
        body = dict(body)
        if drafts is not None:
            body["speculative_tokens"] = drafts
        bodies.append(body)
    if not together:
        return [complete(url, b) for b in bodies]
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(lambda b: complete(url, b), bodies))


def spec_counts(url):
    text = httpx.get(url + "/metrics", timeout=30).text
    counts = {}
    for name in ("num_drafts", "num_draft_tokens", "num_accepted_tokens"):
        values = metric_values(text, "v4serve:spec_decode_%s_total" % name)
        assert values, name
        counts[name] = sum(values.values())
    counts["per_pos"] = metric_values(text, "v4serve:spec_decode_num_accepted_tokens_per_pos_total")
    return counts


@pytest.mark.parametrize("layout", ["ds4 agreeing", "lcpp random"])
def test_drafts_never_change_the_completions(v4serve, agreeing, random_lcpp, layout):
    if layout == "ds4 agreeing":
        model, extra = agreeing[0], ["--mtp", agreeing[1]]
    else:
        model, extra = random_lcpp, []
    with Server(v4serve, model, "--served-model-name", MODEL, "--kv-memory", "256",
                "--speculative-tokens", "2", "--speculative-max-batch", "8", *extra) as s:
        baseline = run_all(s.url, 0, together=False)
        # None: the server default (2); batches of up to 8 verify drafts too
        for drafts in (0, 1, 2, 3, None):
            for together in (False, True):
                assert run_all(s.url, drafts, together) == baseline, (drafts, together)
        counts = spec_counts(s.url)
    assert counts["num_drafts"] > 0
    assert counts["num_draft_tokens"] >= counts["num_drafts"]
    assert sum(counts["per_pos"].values()) == counts["num_accepted_tokens"]
    assert any('position="0"' in labels for labels in counts["per_pos"])
    rate = counts["num_accepted_tokens"] / counts["num_draft_tokens"]
    if layout == "ds4 agreeing":
        assert rate > 0.3, counts
    else:
        assert rate < 0.3, counts


def test_request_field_and_server_flag_are_validated(v4serve, agreeing, random_lcpp):
    with Server(v4serve, random_lcpp, "--served-model-name", MODEL, "--kv-memory", "256") as s:
        for bad in (4, -1, "2", 1.5):
            r = httpx.post(s.url + "/v1/completions", timeout=60, json={
                "model": MODEL, "prompt": "hi", "max_tokens": 2, "speculative_tokens": bad})
            assert r.status_code == 400, (bad, r.text)
            assert "speculative_tokens" in r.text
    # No MTP block (the ds4 main file without its MTP file): the flag is refused at start.
    result = subprocess.run(
        [str(v4serve), "serve", "--port", "0", "--model", str(agreeing[0]),
         "--speculative-tokens", "1", "--kv-memory", "256"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "--speculative-tokens needs a model with an MTP block" in result.stderr + result.stdout
    result = subprocess.run(
        [str(v4serve), "serve", "--port", "0", "--model", str(random_lcpp),
         "--speculative-tokens", "4"], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
