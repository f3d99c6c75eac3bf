"""The `logits` and `generate` subcommands on the tiny synthetic model: output format, chunked
prefill and decode agreeing exactly (each token's arithmetic does not depend on the chunking),
and deterministic greedy generation."""

import json
import pathlib
import sys

import pytest

from conftest import run

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle.models import tiny_model  # noqa: E402

TOKENS = "0,1043,77,9001,12,5,128803,300,41,7,2048,99"


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return tiny_model(tmp_path_factory, v4serve)


def logits(v4serve, model, *extra):
    result = run([v4serve, "logits", "--model", model, "--tokens", TOKENS, *extra])
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_logits_prints_top20_and_logsumexp_per_position(v4serve, model):
    rows = logits(v4serve, model)
    assert [r["pos"] for r in rows] == list(range(len(TOKENS.split(","))))
    for r in rows:
        values = [v for _, v in r["top"]]
        assert len(r["top"]) == 20
        assert values == sorted(values, reverse=True)
        assert r["logsumexp"] >= values[0]


def test_chunked_prefill_and_decode_print_identical_logits(v4serve, model):
    whole = logits(v4serve, model)
    assert logits(v4serve, model, "--chunk", "5") == whole
    assert logits(v4serve, model, "--decode", "--threads", "1") == whole


def test_greedy_generation_is_deterministic_and_reports_speed(v4serve, model):
    args = [v4serve, "generate", "--model", model, "--tokens", "1043,77", "-n", "6", "--temp", "0",
            "--ids"]
    first, second = run(args), run(args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert len(first.stdout.strip().split(",")) == 6
    assert "prefill:" in first.stderr and "decode:" in first.stderr and "tokens/s" in first.stderr


def test_generate_streams_text_from_a_prompt(v4serve, model):
    result = run([v4serve, "generate", "--model", model, "-p", "Hello", "-n", "4", "--seed", "3",
                  "--temp", "0.8", "--top-p", "0.9", "--top-k", "40", "--min-p", "0.01"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() != ""


def test_logits_rejects_out_of_vocabulary_ids(v4serve, model):
    result = run([v4serve, "logits", "--model", model, "--tokens", "0,999999"])
    assert result.returncode != 0
    assert "outside the vocabulary" in result.stderr


def test_chat_prompt_is_the_rendered_turn(v4serve, model):
    """--chat feeds exactly the tokens of the DSML prompt that `render` produces."""
    request = json.dumps({"messages": [{"role": "user", "content": "Hello there"}],
                          "thinking": True})
    rendered = run([v4serve, "render", "--model", model], input=request)
    assert rendered.returncode == 0, rendered.stderr
    ids = run([v4serve, "tokenize", "--model", model, "--specials"], input=rendered.stdout)
    assert ids.returncode == 0, ids.stderr
    n_prompt = len(json.loads(ids.stdout))
    out = run([v4serve, "generate", "--model", model, "-p", "Hello there", "--chat", "--think",
               "-n", "1", "--ids"])
    assert out.returncode == 0, out.stderr
    assert f"prefill: {n_prompt} tokens" in out.stderr


def test_the_device_kernels_emulated_on_the_host_give_the_cpu_logits(v4serve, model):
    # --device emulated runs the CUDA backend's kernels on the host, weights uploaded as to a GPU;
    # on float weights only the order of the dot products' sums differs (~1e-6, see
    # device_forward_test), and the printed values have 6 significant digits.
    cpu = logits(v4serve, model)
    emulated = logits(v4serve, model, "--device", "emulated")
    for a, b in zip(cpu, emulated):
        assert [t for t, _ in a["top"]] == [t for t, _ in b["top"]]
        assert a["logsumexp"] == pytest.approx(b["logsumexp"], abs=1e-4)


def test_an_unusable_device_is_refused_with_one_clear_line(v4serve, model):
    bad = run([v4serve, "logits", "--model", model, "--tokens", "1,2", "--device", "gpu"])
    assert bad.returncode != 0
    assert "--device wants cpu, cuda or cuda:N" in bad.stderr
    far = run([v4serve, "logits", "--model", model, "--tokens", "1,2", "--device", "cuda:999"])
    assert far.returncode != 0
    assert far.stderr.startswith("error: ") and len(far.stderr.strip().splitlines()) == 1
    assert "CUDA" in far.stderr or "cuda" in far.stderr
