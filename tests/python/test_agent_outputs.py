"""What agents rely on in the model's output, on all three APIs, against `v4serve serve` on the
tiny model with forced outputs (guided_choice):

- a tool call the model writes comes back as a tool call at every reasoning effort, thinking
  on or off;
- output that breaks the chat format (spec §5.8) never swallows the answer: malformed DSML, a
  block the model ends before it closes, or reasoning ended without </think> comes back as
  content, the request finishes normally, and v4serve:malformed_output_total counts it.
"""

import json
import pathlib
import sys

import anthropic
import httpx
import openai
import pytest

from server import Server, metric_values
from test_server_api import HF
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402

MODEL = "tiny"
D = "｜DSML｜"
TOOL = {"type": "function", "function": {
    "name": "read_file", "description": "Read a file.",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                   "required": ["path"]}}}
ANTHROPIC_TOOL = {"name": "read_file", "description": "Read a file.",
                  "input_schema": TOOL["function"]["parameters"]}
RESPONSES_TOOL = dict(TOOL["function"], type="function")
CALL = (f"\n\n<{D}tool_calls>\n<{D}invoke name=\"read_file\">\n<{D}parameter name=\"path\" "
        f"string=\"true\">a.py</{D}parameter>\n</{D}invoke>\n</{D}tool_calls>")
USER = [{"role": "user", "content": "Read a.py."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, v4serve):
    model = models.tiny_model(tmp_path_factory, v4serve)
    with Server(v4serve, model, "--served-model-name", MODEL, "--ctx", "2048",
                "--kv-memory", "256") as s:
        yield s


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def claude(server):
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


def forced(thinking, text):
    """The forced output: in thinking mode the reasoning comes first and ends with </think>."""
    return ("I will read it.</think>" if thinking else "") + text


@pytest.mark.parametrize("thinking", [False, True])
@pytest.mark.parametrize("effort", ["none", "minimal", "low", "medium", "high", "max"])
def test_chat_tool_call_at_every_effort(oai, effort, thinking):
    r = oai.chat.completions.create(
        model=MODEL, messages=USER, tools=[TOOL], temperature=0, max_tokens=200,
        reasoning_effort=effort,
        extra_body={"thinking": {"type": "enabled" if thinking else "disabled"},
                    "guided_choice": [forced(thinking, CALL)]})
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments))
            for c in choice.message.tool_calls] == [("read_file", {"path": "a.py"})]
    assert not choice.message.content


@pytest.mark.parametrize("effort", [None, "low", "medium", "high", "xhigh", "max"])
@pytest.mark.parametrize("thinking", ["disabled", "adaptive"])
def test_anthropic_tool_use_at_every_effort(claude, effort, thinking):
    extra = {"temperature": 0, "thinking": {"type": thinking},
             "guided_choice": [forced(thinking == "adaptive", CALL)]}
    if effort:
        extra["output_config"] = {"effort": effort}
    r = claude.messages.create(model=MODEL, max_tokens=200, tools=[ANTHROPIC_TOOL],
                               messages=USER, extra_body=extra)
    assert r.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in r.content if b.type == "tool_use"] == [
        ("read_file", {"path": "a.py"})]


@pytest.mark.parametrize("effort", [None, "none", "minimal", "low", "medium", "high", "xhigh"])
def test_responses_function_call_at_every_effort(oai, effort):
    thinking = effort not in (None, "none", "minimal")
    kw = {"reasoning": {"effort": effort}} if effort else {}
    r = oai.responses.create(model=MODEL, input="Read a.py.", tools=[RESPONSES_TOOL],
                             store=False, temperature=0, max_output_tokens=200,
                             extra_body={"guided_choice": [forced(thinking, CALL)]}, **kw)
    assert r.status == "completed"
    calls = [item for item in r.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("read_file", {"path": "a.py"})]


def malformed_count(server):
    return sum(metric_values(httpx.get(server.url + "/metrics").text,
                             "v4serve:malformed_output_total").values())


def chat_outcome(oai, text, thinking=False, stream=False):
    """(finish_reason, content, reasoning, tool calls) of a chat request forced to `text`."""
    kw = dict(model=MODEL, messages=USER, tools=[TOOL], temperature=0, max_tokens=200,
              extra_body={"thinking": {"type": "enabled" if thinking else "disabled"},
                          "guided_choice": [text]})
    if not stream:
        r = oai.chat.completions.create(**kw)
        m = r.choices[0].message
        return (r.choices[0].finish_reason, m.content or "",
                getattr(m, "reasoning_content", None) or "", m.tool_calls or [])
    content, reasoning, calls, finish = "", "", [], None
    for chunk in oai.chat.completions.create(stream=True, **kw):
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            calls += choice.delta.tool_calls or []
            finish = choice.finish_reason or finish
    return finish, content, reasoning, calls


BROKEN = f"Answer: 42.\n\n<{D}tool_calls>\n<{D}oops> and more text"
UNCLOSED = f"Checking.\n\n<{D}tool_calls>\n<{D}invoke name=\"read_file\">\n"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("text", [BROKEN, UNCLOSED], ids=["malformed", "unclosed"])
def test_chat_broken_markup_comes_back_as_content(server, oai, text, stream):
    before = malformed_count(server)
    finish, content, _, calls = chat_outcome(oai, text, stream=stream)
    assert (finish, content, calls) == ("stop", text, [])
    assert malformed_count(server) == before + 1


def byte_level_id(token_bytes):
    """The id of a token given its bytes, through the byte-level alphabet of DeepSeek's
    tokenizer.json (GPT-2's bytes_to_unicode)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    alphabet, extra = {}, 0
    for b in range(256):
        if b in printable:
            alphabet[b] = chr(b)
        else:
            alphabet[b] = chr(256 + extra)
            extra += 1
    return HF.token_to_id("".join(alphabet[b] for b in token_bytes))


@pytest.mark.parametrize("stream", [False, True])
def test_chat_reasoning_without_think_end_is_also_content(server, oai, stream):
    # guided_choice always closes the reasoning, so the model's own greedy reasoning is ended
    # with a stop token instead: the id of its third token, found from a first request.
    kw = dict(model=MODEL, messages=USER, temperature=0,
              extra_body={"thinking": {"type": "enabled"}})
    probe = oai.chat.completions.create(max_tokens=3, logprobs=True, **kw)
    reasoning = getattr(probe.choices[0].message, "reasoning_content", None) or ""
    assert probe.choices[0].finish_reason == "length" and reasoning
    assert not probe.choices[0].message.content  # cut by the limit: it stays reasoning
    tokens = [bytes(t.bytes) for t in probe.choices[0].logprobs.content]
    assert len(tokens) == 3 and tokens[2] not in tokens[:2]
    stop = byte_level_id(tokens[2])
    assert stop is not None
    expected = (tokens[0] + tokens[1]).decode()
    before = malformed_count(server)
    kw["extra_body"]["stop_token_ids"] = [stop]
    if stream:
        content, reasoning, finish = "", "", None
        for chunk in oai.chat.completions.create(max_tokens=16, stream=True, **kw):
            for choice in chunk.choices:
                content += choice.delta.content or ""
                reasoning += getattr(choice.delta, "reasoning_content", None) or ""
                finish = choice.finish_reason or finish
    else:
        r = oai.chat.completions.create(max_tokens=16, **kw)
        content, finish = r.choices[0].message.content, r.choices[0].finish_reason
        reasoning = getattr(r.choices[0].message, "reasoning_content", None)
    assert (finish, reasoning, content) == ("stop", expected, expected)
    assert malformed_count(server) == before + 1


def test_chat_call_before_broken_markup_is_kept(oai):
    text = CALL[:-len(f"\n</{D}tool_calls>")] + f"\n<{D}invoke name=\"x\">\nnoise"
    finish, content, _, calls = chat_outcome(oai, text)
    assert finish == "tool_calls"
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("read_file", {"path": "a.py"})]
    assert content.endswith(f"<{D}invoke name=\"x\">\nnoise")


def test_anthropic_and_responses_broken_markup_come_back_as_text(claude, oai):
    r = claude.messages.create(model=MODEL, max_tokens=200, tools=[ANTHROPIC_TOOL],
                               messages=USER,
                               extra_body={"temperature": 0, "guided_choice": [BROKEN]})
    assert r.stop_reason == "end_turn"
    assert "".join(b.text for b in r.content if b.type == "text") == BROKEN
    resp = oai.responses.create(model=MODEL, input="Read a.py.", tools=[RESPONSES_TOOL],
                                store=False, temperature=0, max_output_tokens=200,
                                extra_body={"guided_choice": [UNCLOSED]})
    assert resp.status == "completed"
    assert resp.output_text == UNCLOSED

