"""Strict function tools (`strict: true`) enforced by constrained decoding, through the official
`openai` SDK (chat completions, Responses) and plain HTTP (Anthropic messages) against `serve` on
the random-weight tiny model.

The oracle is independent of our code: every returned call must name an offered tool, and its
arguments must parse with `json.loads` and validate with the `jsonschema` package against the
very parameters schema the request sent. The model is random, so only the constraint makes its
calls valid at all. Free strings and arrays carry maxLength / maxItems, so values end: a random
model left alone keeps a string open as long as max_tokens allows (plain strings, written raw
between the DSML tags, are checked by the grammar's unit tests).
"""

import concurrent.futures
import json

import httpx
import jsonschema
import openai
import pytest

from server import Server

import sys
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from test_structured_outputs import POINT, obj, s  # noqa: E402  (the schema builders)

MODEL = "tiny"
USER = [{"role": "user", "content": "Use the tools."}]
MAX_TOKENS = 1500


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


@pytest.fixture(scope="module")
def server(v4serve, model):
    with Server(v4serve, model, "--served-model-name", MODEL, "--ctx", "8192",
                "--kv-memory", "512") as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


TOOLS = {
    "get_weather": obj(required=["city"], city=s(12),
                       unit={"type": "string", "enum": ["celsius", "fahrenheit"]},
                       days={"type": "integer", "minimum": 1, "maximum": 14}),
    "add": obj(a={"type": "integer", "minimum": -1000, "maximum": 1000},
               b={"type": "integer", "minimum": -1000, "maximum": 1000}),
    "set_flag": obj(on={"type": "boolean"}),
    "tag_items": obj(tags={"type": "array", "items": s(6), "minItems": 1, "maxItems": 3}),
    "move": obj(to=POINT, speed={"type": "number"}),
    "search": obj(required=["query"], query=s(10),
                  limit={"type": "integer", "minimum": 1, "maximum": 50},
                  filters=obj(required=[], lang={"enum": ["en", "fr", "de"]})),
    "noop": {"type": "object", "properties": {}, "additionalProperties": False},
    "pick": obj(choice={"anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, s(5)]}),
    "maybe": obj(value={"type": ["integer", "null"], "minimum": 0, "maximum": 99}),
    "versioned": obj(kind={"const": "point"}, version={"const": 2}),
    "grid": obj(rows={"type": "array", "maxItems": 2,
                      "items": {"type": "array", "items": {"type": "boolean"}, "maxItems": 3}}),
    "route": {"$defs": {"point": POINT}, "type": "object", "additionalProperties": False,
              "required": ["path"],
              "properties": {"path": {"type": "array", "items": {"$ref": "#/$defs/point"},
                                      "maxItems": 2}}},
}


def chat_tools(names=None):
    return [{"type": "function",
             "function": {"name": name, "description": f"The {name} tool.",
                          "parameters": TOOLS[name], "strict": True}}
            for name in (names or sorted(TOOLS))]


def assert_call_valid(name, arguments, offered):
    assert name in offered, name
    value = json.loads(arguments) if isinstance(arguments, str) else arguments
    jsonschema.validate(value, TOOLS[name], cls=jsonschema.Draft202012Validator)


def test_there_are_at_least_ten_tool_schemas():
    assert len(TOOLS) >= 10
    for schema in TOOLS.values():
        jsonschema.Draft202012Validator.check_schema(schema)


def all_at_once(request, jobs):
    """request(job) for every job, sent together: the server batches them (its tokens do not
    depend on the batch), which takes a fraction of the time of one after another."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(request, jobs))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_required_calls_are_valid(client, seed):
    # Each tool both alone (every call must be to it) and among all twelve.
    jobs = [(name, offered) for name in sorted(TOOLS) for offered in ([name], sorted(TOOLS))]
    replies = all_at_once(lambda job: client.chat.completions.create(
        model=MODEL, messages=USER, tools=chat_tools(job[1]), tool_choice="required",
        seed=seed, temperature=1.0, max_tokens=MAX_TOKENS), jobs)
    calls = 0
    for (name, offered), r in zip(jobs, replies):
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls", (name, choice)
        assert choice.message.tool_calls, (name, choice)
        for call in choice.message.tool_calls:
            assert_call_valid(call.function.name, call.function.arguments, offered)
            calls += 1
    assert calls >= 2 * len(TOOLS)


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_named_tool_calls_are_valid(client, seed):
    names = sorted(TOOLS)
    replies = all_at_once(lambda name: client.chat.completions.create(
        model=MODEL, messages=USER, tools=chat_tools(), seed=seed, temperature=1.0,
        tool_choice={"type": "function", "function": {"name": name}},
        parallel_tool_calls=False, max_tokens=MAX_TOKENS), names)
    for name, r in zip(names, replies):
        choice = r.choices[0]
        assert choice.finish_reason == "tool_calls", (name, choice)
        [call] = choice.message.tool_calls
        assert call.function.name == name
        assert_call_valid(name, call.function.arguments, [name])


def test_streamed_calls_are_valid(client):
    calls = {}
    finish = None
    for chunk in client.chat.completions.create(
            model=MODEL, messages=USER, tools=chat_tools(), tool_choice="required", seed=7,
            max_tokens=MAX_TOKENS, stream=True):
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"name": "", "arguments": ""})
                entry["name"] += delta.function.name or ""
                entry["arguments"] += delta.function.arguments or ""
    assert finish == "tool_calls"
    assert calls
    for entry in calls.values():
        assert_call_valid(entry["name"], entry["arguments"], TOOLS)


def test_auto_leaves_text_free(client):
    # "auto": the random model writes text (it never opens a block at random); the constraint
    # must not get in its way.
    r = client.chat.completions.create(model=MODEL, messages=USER, tools=chat_tools(), seed=8,
                                       max_tokens=16)
    choice = r.choices[0]
    assert choice.finish_reason in ("length", "stop", "tool_calls")
    for call in choice.message.tool_calls or []:
        assert_call_valid(call.function.name, call.function.arguments, TOOLS)


def test_responses_required_calls_are_valid(client):
    tools = [{"type": "function", "name": name, "parameters": TOOLS[name], "strict": True}
             for name in sorted(TOOLS)]
    for seed in (1, 2, 3):
        r = client.responses.create(model=MODEL, input="Use the tools.", tools=tools,
                                    tool_choice="required", temperature=1.0,
                                    max_output_tokens=MAX_TOKENS, extra_body={"seed": seed})
        calls = [item for item in r.output if item.type == "function_call"]
        assert calls, r.output
        for call in calls:
            assert_call_valid(call.name, call.arguments, TOOLS)


def test_anthropic_any_tool_calls_are_valid(server):
    tools = [{"name": name, "input_schema": TOOLS[name], "strict": True}
             for name in sorted(TOOLS)]
    for _ in range(3):  # the messages API has no seed: three fresh random walks
        r = httpx.post(server.url + "/v1/messages", timeout=300, json={
            "model": MODEL, "max_tokens": MAX_TOKENS, "messages": USER, "tools": tools,
            "tool_choice": {"type": "any"}, "temperature": 1.0})
        assert r.status_code == 200, r.text
        body = r.json()
        uses = [block for block in body["content"] if block["type"] == "tool_use"]
        assert body["stop_reason"] == "tool_use", body
        assert uses, body
        for block in uses:
            assert_call_valid(block["name"], block["input"], TOOLS)


@pytest.mark.parametrize("parameters, keyword", [
    ({"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}}, "pattern"),
    ({"type": "object", "patternProperties": {"^a": {}}}, "patternProperties"),
])
def test_unsupported_keywords_are_a_clear_400(client, parameters, keyword):
    tools = [{"type": "function",
              "function": {"name": "f", "parameters": parameters, "strict": True}}]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, messages=USER, tools=tools, max_tokens=4)
    assert keyword in str(e.value)
    assert e.value.body["param"] == "tools"
    # The same schema without strict is accepted, as before.
    tools[0]["function"]["strict"] = False
    client.chat.completions.create(model=MODEL, messages=USER, tools=tools, max_tokens=4)
