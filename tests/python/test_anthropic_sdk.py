"""Anthropic's Messages API (/v1/messages, /v1/messages/count_tokens), driven by the official
`anthropic` Python SDK.

Expectations come from outside our code: DeepSeek's official encoder and tokenizer give the
prompt token counts and the exact text of tool-call and thinking output, the SDK's own types
and stream accumulator validate every response shape, and a greedy Messages request must give
what the equivalent OpenAI chat request gives (the same DSML prompt). The tiny model is random,
so outputs whose content matters are forced with `guided_choice`. The SDK's newest `create`
no longer takes temperature / top_p / top_k (current Claude models fix them), so those travel
in extra_body too, as the API still defines them.
"""

import concurrent.futures
import json
import pathlib
import sys

import anthropic
import httpx
import openai
import pytest

from server import Server

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from test_chat_render import WEATHER, official_prompt  # noqa: E402
from test_server_api import assistant_output, n_tokens  # noqa: E402

MODEL = "tiny"
USER = [{"role": "user", "content": "Tell me a short story about a lighthouse."}]
# The OpenAI function WEATHER as an Anthropic tool (same name, description and schema).
WEATHER_TOOL = {"name": WEATHER["function"]["name"],
                "description": WEATHER["function"]["description"],
                "input_schema": WEATHER["function"]["parameters"]}


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


@pytest.fixture(scope="module")
def server(v4serve, model):
    with Server(v4serve, model, "--served-model-name", MODEL, "--ctx", "2048",
                "--kv-memory", "256") as s:
        yield s


@pytest.fixture(scope="module")
def claude(server):
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


SAMPLING = ("temperature", "top_p", "top_k", "guided_choice")


def sdk_kwargs(kw):
    """Moves the members the SDK's signature lacks into extra_body."""
    kw = dict(kw)
    kw.setdefault("max_tokens", 16)
    extra = dict(kw.pop("extra_body", {}))
    for key in SAMPLING:
        if key in kw:
            extra[key] = kw.pop(key)
    if extra:
        kw["extra_body"] = extra
    return kw


def create(claude, messages, **kw):
    return claude.messages.create(model=MODEL, messages=messages, **sdk_kwargs(kw))


def forced(text):
    return {"guided_choice": [text]}


def raw_events(claude, messages, **kw):
    """The stream's events as the SDK parses them (it drops only `ping`)."""
    return list(claude.messages.create(model=MODEL, messages=messages, stream=True,
                                       **sdk_kwargs(kw)))


def final_message(claude, messages, **kw):
    """The message the SDK's stream helper accumulates from the events."""
    with claude.messages.stream(model=MODEL, messages=messages, **sdk_kwargs(kw)) as stream:
        return stream.get_final_message()


def check_event_order(events):
    """Anthropic's documented order: message_start, then each content block's start, deltas
    and stop (one block open at a time, indexes 0, 1, ...), message_delta, message_stop."""
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"], types
    open_index, next_index = None, 0
    for e in events[1:-2]:
        if e.type == "content_block_start":
            assert open_index is None and e.index == next_index, types
            open_index = e.index
        elif e.type == "content_block_delta":
            assert e.index == open_index, types
        else:
            assert e.type == "content_block_stop" and e.index == open_index, types
            open_index, next_index = None, next_index + 1
    assert open_index is None


def text_of(message):
    return "".join(b.text for b in message.content if b.type == "text")


def test_create_returns_a_message(claude, encoder):
    r = create(claude, USER, temperature=0, max_tokens=8)
    assert r.type == "message" and r.role == "assistant" and r.model == MODEL
    assert r.id.startswith("msg_")
    assert r.stop_reason in ("end_turn", "max_tokens")
    assert r.stop_sequence is None
    assert all(b.type == "text" for b in r.content)
    assert r.usage.input_tokens == n_tokens(official_prompt(encoder, {"messages": USER}))
    assert 1 <= r.usage.output_tokens <= 8


def test_greedy_messages_equal_openai_chat(claude, oai):
    system = "You are a terse assistant."
    r = create(claude, USER, system=system, temperature=0, max_tokens=24)
    c = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": system}] + USER, temperature=0,
        max_tokens=24)
    assert text_of(r) == c.choices[0].message.content
    assert r.usage.input_tokens == c.usage.prompt_tokens
    assert r.usage.output_tokens == c.usage.completion_tokens
    # Thinking: the same reasoning and answer as a chat request in thinking mode.
    r = create(claude, USER, temperature=0, max_tokens=24, thinking={"type": "adaptive"})
    c = oai.chat.completions.create(model=MODEL, messages=USER, temperature=0, max_tokens=24,
                                    extra_body={"thinking": {"type": "enabled"}})
    thinking = "".join(b.thinking for b in r.content if b.type == "thinking")
    assert thinking == (getattr(c.choices[0].message, "reasoning_content", None) or "")
    assert text_of(r) == (c.choices[0].message.content or "")
    assert r.usage.input_tokens == c.usage.prompt_tokens


def test_stream_event_order_and_final_message(claude, server):
    whole = create(claude, USER, temperature=0, max_tokens=12)
    events = raw_events(claude, USER, temperature=0, max_tokens=12)
    check_event_order(events)
    start = events[0].message
    assert start.id.startswith("msg_") and start.content == [] and start.stop_reason is None
    assert start.usage.input_tokens == whole.usage.input_tokens
    assert events[-2].delta.stop_reason == whole.stop_reason
    assert events[-2].usage.output_tokens == whole.usage.output_tokens
    streamed = "".join(e.delta.text for e in events
                       if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert streamed == text_of(whole)
    final = final_message(claude, USER, temperature=0, max_tokens=12)
    assert text_of(final) == text_of(whole) and final.stop_reason == whole.stop_reason
    # `ping` follows message_start on the wire (the SDK drops it).
    body = {"model": MODEL, "messages": USER, "max_tokens": 2, "stream": True}
    with httpx.stream("POST", server.url + "/v1/messages", json=body, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        names = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
    assert names[:2] == ["message_start", "ping"], names


def test_thinking_blocks_stream_with_signature(claude, encoder):
    output = "The user wants a story.</think>Once there was a light."
    # budget_tokens must be below max_tokens; the forced output ends long before either.
    kw = dict(temperature=0, max_tokens=1100,
              thinking={"type": "enabled", "budget_tokens": 1024}, **forced(output))
    r = create(claude, USER, **kw)
    assert [b.type for b in r.content] == ["thinking", "text"]
    assert r.content[0].thinking == "The user wants a story."
    assert r.content[0].signature
    assert r.content[1].text == "Once there was a light."
    assert r.stop_reason == "end_turn"
    oracle = {"messages": USER, "thinking": {"type": "enabled"}}
    assert r.usage.input_tokens == n_tokens(official_prompt(encoder, oracle))
    events = raw_events(claude, USER, **kw)
    check_event_order(events)
    deltas = [e.delta.type for e in events if e.type == "content_block_delta"]
    assert deltas[0] == "thinking_delta"
    # The signature closes the thinking block, before the text block's deltas.
    assert deltas.index("signature_delta") < deltas.index("text_delta")
    final = final_message(claude, USER, **kw)
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in r.content]


def test_tool_use_round_trip(claude, oai, encoder):
    question = [{"role": "user", "content": "Weather in Paris and in 東京?"}]
    calls = [{"city": "Paris"}, {"city": "東京", "unit": "celsius"}]
    openai_calls = [{"id": "call_%d" % i, "type": "function", "function": {
        "name": "get_weather", "arguments": json.dumps(c, ensure_ascii=False)}}
        for i, c in enumerate(calls)]
    request = {"messages": question, "tools": [WEATHER]}
    output = assistant_output(encoder, request,
                              {"role": "assistant", "content": "", "tool_calls": openai_calls})
    kw = dict(tools=[WEATHER_TOOL], temperature=0, max_tokens=200, **forced(output))
    r = create(claude, question, **kw)
    assert r.stop_reason == "tool_use"
    uses = [b for b in r.content if b.type == "tool_use"]
    assert [(b.name, b.input) for b in uses] == [("get_weather", c) for c in calls]
    assert len({b.id for b in uses}) == 2 and all(b.id.startswith("toolu_") for b in uses)
    assert r.usage.input_tokens == n_tokens(official_prompt(encoder, request))
    # Streamed: input_json_delta pieces that the SDK assembles into the same inputs.
    events = raw_events(claude, question, **kw)
    check_event_order(events)
    assert events[-2].delta.stop_reason == "tool_use"
    final = final_message(claude, question, **kw)
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == [
        ("get_weather", c) for c in calls]
    # Second turn: the assistant's blocks as returned, then the results (out of order, one
    # failed); the prompt must be what the official encoder renders for that conversation.
    follow = question + [
        {"role": "assistant", "content": r.content},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": uses[1].id, "content": "22°C, rain"},
            {"type": "tool_result", "tool_use_id": uses[0].id,
             "content": [{"type": "text", "text": "timeout"}], "is_error": True}]}]
    answer = create(claude, follow, tools=[WEATHER_TOOL], temperature=0, max_tokens=64,
                    **forced("Tokyo is rainy; Paris timed out."))
    assert text_of(answer) == "Tokyo is rainy; Paris timed out."
    assert answer.stop_reason == "end_turn"
    oracle_follow = question + [
        {"role": "assistant", "content": "", "tool_calls": openai_calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "22°C, rain"},
        {"role": "tool", "tool_call_id": "call_0", "content": "Error: timeout"}]
    expected = n_tokens(official_prompt(encoder, {"messages": oracle_follow, "tools": [WEATHER]}))
    assert answer.usage.input_tokens == expected
    counted = claude.messages.count_tokens(model=MODEL, messages=follow, tools=[WEATHER_TOOL])
    assert counted.input_tokens == expected
    # Equal counts could hide a changed word; greedy text from the random model does not: the
    # same conversation as a chat request must continue with the very same tokens.
    chat_follow = question + [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": b.id, "type": "function",
             "function": {"name": b.name, "arguments": json.dumps(b.input, ensure_ascii=False)}}
            for b in uses]},
        {"role": "tool", "tool_call_id": uses[1].id, "content": "22°C, rain"},
        {"role": "tool", "tool_call_id": uses[0].id, "content": "Error: timeout"}]
    greedy = create(claude, follow, tools=[WEATHER_TOOL], temperature=0, max_tokens=16)
    chat = oai.chat.completions.create(model=MODEL, messages=chat_follow, tools=[WEATHER],
                                       temperature=0, max_tokens=16)
    assert text_of(greedy) == (chat.choices[0].message.content or "")
    assert greedy.usage.output_tokens == chat.usage.completion_tokens


def test_stop_sequences(claude):
    text = "alpha beta gamma delta"
    kw = dict(temperature=0, max_tokens=32, stop_sequences=[" gamma", "zeta"], **forced(text))
    r = create(claude, USER, **kw)
    assert text_of(r) == "alpha beta"
    assert r.stop_reason == "stop_sequence" and r.stop_sequence == " gamma"
    events = raw_events(claude, USER, **kw)
    check_event_order(events)
    assert events[-2].delta.stop_reason == "stop_sequence"
    assert events[-2].delta.stop_sequence == " gamma"
    cut = create(claude, USER, temperature=0, max_tokens=3, **forced("one two three four five"))
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3


@pytest.mark.parametrize("extra", [
    {},
    {"system": [{"type": "text", "text": "Be kind."}, {"type": "text", "text": "Be brief."}]},
    {"tools": [WEATHER_TOOL], "tool_choice": {"type": "auto"}},
    {"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
])
def test_count_tokens_equals_usage(claude, extra):
    counted = claude.messages.count_tokens(model=MODEL, messages=USER, **extra)
    r = create(claude, USER, temperature=0, max_tokens=2, **extra)
    assert counted.input_tokens == r.usage.input_tokens > 0


def test_effort_max_renders_think_max(claude, encoder):
    r = claude.messages.count_tokens(model=MODEL, messages=USER, thinking={"type": "adaptive"},
                                     output_config={"effort": "max"})
    oracle = {"messages": USER, "thinking": True, "reasoning_effort": "max"}
    assert r.input_tokens == n_tokens(official_prompt(encoder, oracle))


def anthropic_error(response, status, error_type):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


def test_error_shapes(claude, server):
    # The SDK insists on max_tokens: the raw request shows the server's own answer.
    missing = httpx.post(server.url + "/v1/messages", json={"model": MODEL, "messages": USER},
                         headers={"anthropic-version": "2023-06-01"}, timeout=60)
    assert "max_tokens" in anthropic_error(missing, 400, "invalid_request_error")
    image = [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]
    with pytest.raises(anthropic.BadRequestError) as e:
        create(claude, image)
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "images are not supported" in e.value.body["error"]["message"]
    assert "messages.0.content.1" in e.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as e:
        create(claude, USER, temperature=1.5)  # Anthropic's range is 0..1
    assert "temperature" in e.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as e:
        claude.messages.create(model="claude-none", messages=USER, max_tokens=4)
    assert e.value.body["error"]["type"] == "not_found_error"
    anthropic_error(httpx.get(server.url + "/v1/messages"), 405, "invalid_request_error")
    anthropic_error(httpx.post(server.url + "/v1/messages/batches", json={}), 404,
                    "not_found_error")


def test_api_key_as_x_api_key_or_bearer(v4serve, model):
    with Server(v4serve, model, "--served-model-name", MODEL, "--api-key", "s3cret") as s:
        good = anthropic.Anthropic(base_url=s.url, api_key="s3cret", max_retries=0)
        assert create(good, USER, max_tokens=2).type == "message"
        bearer = anthropic.Anthropic(base_url=s.url, auth_token="s3cret", max_retries=0)
        assert bearer.messages.count_tokens(model=MODEL, messages=USER).input_tokens > 0
        bad = anthropic.Anthropic(base_url=s.url, api_key="wrong", max_retries=0)
        with pytest.raises(anthropic.AuthenticationError) as e:
            create(bad, USER, max_tokens=2)
        assert e.value.body["error"]["type"] == "authentication_error"
        anthropic_error(httpx.post(s.url + "/v1/messages/count_tokens",
                                   json={"model": MODEL, "messages": USER}), 401,
                        "authentication_error")
        # x-api-key opens the OpenAI routes too.
        assert httpx.get(s.url + "/v1/models", headers={"x-api-key": "s3cret"}).status_code == 200
        assert httpx.get(s.url + "/v1/models", headers={"x-api-key": "nope"}).status_code == 401


def test_overload_is_529_overloaded_error(v4serve, model):
    with Server(v4serve, model, "--served-model-name", MODEL, "--max-queue", "1",
                "--max-seqs", "1") as s:
        body = {"model": MODEL, "max_tokens": 2,
                "messages": [{"role": "user", "content": "tick " * 600}]}

        def one(_):
            return httpx.post(s.url + "/v1/messages", json=body, timeout=120)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(one, range(8)))
        codes = sorted(r.status_code for r in responses)
        assert set(codes) <= {200, 529} and 200 in codes and 529 in codes, codes
        rejected = [r for r in responses if r.status_code == 529]
        assert all(r.headers.get("retry-after") for r in rejected)
        anthropic_error(rejected[0], 529, "overloaded_error")
