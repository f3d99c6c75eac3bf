"""Exact tool-call replay across turns (spec §5.8), against `v4serve serve` on the tiny model.

A tool call the server returned comes back in the next request (an assistant message with
tool_calls, an Anthropic tool_use block, a Responses function_call item). The server must
render it with the bytes the model wrote, not re-render it from its arguments: then the new
prompt starts with the previous turn's prompt and output, token for token, and the prefix cache
holds their KV pages. The model is forced (guided_choice) to write an argument as compact JSON
(`[1,2]`), which a re-rendering would write as `[1, 2]` (the official encoder's json.dumps), so
the test tells replay from re-rendering.

Expectations come from outside our code: DeepSeek's official encoder renders the conversation
(with the canonical `[1, 2]`), the replayed prompt is that text with the model's bytes put back,
and DeepSeek's tokenizer counts both.
"""

import json
import pathlib
import sys

import anthropic
import httpx
import openai
import pytest

from server import Server, metric_values

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from test_chat_render import official_prompt  # noqa: E402
from test_server_api import encode, n_tokens  # noqa: E402

MODEL = "tiny"
D = "｜DSML｜"
EOS = "<｜end▁of▁sentence｜>"
TOOL = {"type": "function", "function": {
    "name": "read_file", "description": "Read lines of a file.",
    "parameters": {"type": "object", "properties": {
        "path": {"type": "string"}, "lines": {"type": "array", "items": {"type": "integer"}}},
        "required": ["path"]}}}
ANTHROPIC_TOOL = {"name": "read_file", "description": "Read lines of a file.",
                  "input_schema": TOOL["function"]["parameters"]}
RESPONSES_TOOL = dict(TOOL["function"], type="function")
# What the model writes (compact JSON), and what a re-rendering from the arguments would write.
WRITTEN = f'<{D}parameter name="lines" string="false">[1,2]</{D}parameter>'
RERENDERED = f'<{D}parameter name="lines" string="false">[1, 2]</{D}parameter>'
INVOKE = (f'<{D}invoke name="read_file">\n<{D}parameter name="path" string="true">a.py'
          f'</{D}parameter>\n{WRITTEN}\n</{D}invoke>')
OUTPUT = f"Reading it.\n\n<{D}tool_calls>\n{INVOKE}\n</{D}tool_calls>"
ARGUMENTS = {"path": "a.py", "lines": [1, 2]}
QUESTION = "What does a.py do? " + "Answer briefly. " * 120  # more than one 256-token page
RESULT = "print('hello')"


@pytest.fixture(scope="module")
def server(tmp_path_factory, v4serve):
    model = models.tiny_model(tmp_path_factory, v4serve)
    with Server(v4serve, model, "--served-model-name", MODEL, "--ctx", "4096",
                "--kv-memory", "256") as s:
        yield s


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def claude(server):
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


def page_tokens(server):
    text = httpx.get(server.url + "/metrics").text
    (labels,) = metric_values(text, "v4serve:cache_config_info").keys()
    return int(labels.split('block_size="')[1].split('"')[0])


def hits(server):
    return sum(metric_values(httpx.get(server.url + "/metrics").text,
                             "v4serve:prefix_cache_hits_total").values())


def expected_prompts(encoder, question, call_id, reasoning=None):
    """(turn 1 prompt, turn 2 prompt as replayed, turn 2 prompt as re-rendered), per the
    official encoder; the replayed one is the re-rendered one with the model's bytes. With
    `reasoning`, in thinking mode: the model wrote that reasoning and </think> first."""
    first = [{"role": "user", "content": question}]
    assistant = {"role": "assistant", "content": "Reading it.", "tool_calls": [
        {"id": call_id, "type": "function", "function": {
            "name": "read_file", "arguments": json.dumps(ARGUMENTS)}}]}
    if reasoning is not None:
        assistant["reasoning_content"] = reasoning
    follow = first + [assistant, {"role": "tool", "tool_call_id": call_id, "content": RESULT}]
    mode = {"thinking": reasoning is not None}
    turn1 = official_prompt(encoder, {"messages": first, "tools": [TOOL], **mode})
    rerendered = official_prompt(encoder, {"messages": follow, "tools": [TOOL], **mode})
    assert rerendered.count(RERENDERED) == 1
    replayed = rerendered.replace(RERENDERED, WRITTEN)
    # The replayed prompt is turn 1's prompt, then exactly what the model wrote, then EOS.
    written = OUTPUT if reasoning is None else reasoning + "</think>" + OUTPUT
    assert replayed.startswith(turn1 + written + EOS)
    assert n_tokens(replayed) != n_tokens(rerendered)  # the counts tell the two apart
    return turn1, replayed, rerendered


def check_cached(server, before, turn1_prompt_tokens, turn1_output_tokens):
    """The second turn found every full page of turn 1's prompt and output in the prefix cache
    (the output's last token, EOS, is never fed back: its KV does not exist)."""
    page = page_tokens(server)
    computed = turn1_prompt_tokens + turn1_output_tokens - 1
    assert computed >= 2 * page  # the prompt's own pages and at least one of the output's
    assert hits(server) - before >= computed // page * page


def test_chat_tool_calls_replay_exactly(server, oai, encoder):
    question = "chat: " + QUESTION
    r1 = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}],
                                     tools=[TOOL], temperature=0, max_tokens=200,
                                     extra_body={"guided_choice": [OUTPUT]})
    assert r1.choices[0].finish_reason == "tool_calls"
    (call,) = r1.choices[0].message.tool_calls
    assert json.loads(call.function.arguments) == ARGUMENTS
    assert call.id.startswith("call_") and len(call.id) > len("call_0")
    turn1, replayed, rerendered = expected_prompts(encoder, question, call.id)
    assert r1.usage.prompt_tokens == n_tokens(turn1)
    assert r1.usage.completion_tokens == len(encode(OUTPUT)) + 1  # with EOS

    def follow(call_id, arguments):
        return [{"role": "user", "content": question},
                {"role": "assistant", "content": r1.choices[0].message.content,
                 "tool_calls": [{"id": call_id, "type": "function", "function": {
                     "name": "read_file", "arguments": arguments}}]},
                {"role": "tool", "tool_call_id": call_id, "content": RESULT}]

    before = hits(server)
    r2 = oai.chat.completions.create(model=MODEL, messages=follow(call.id, call.function.arguments),
                                     tools=[TOOL], temperature=0, max_tokens=1)
    assert r2.usage.prompt_tokens == n_tokens(replayed)
    check_cached(server, before, r1.usage.prompt_tokens, r1.usage.completion_tokens)
    assert r2.usage.prompt_tokens_details.cached_tokens >= (
        r1.usage.prompt_tokens // page_tokens(server) * page_tokens(server))
    # Re-serialised arguments (another spacing) are the same call: still replayed.
    again = oai.chat.completions.create(
        model=MODEL, messages=follow(call.id, json.dumps(ARGUMENTS, separators=(",", ":"))),
        tools=[TOOL], temperature=0, max_tokens=1)
    assert again.usage.prompt_tokens == n_tokens(replayed)
    # An id the server never made, or a call whose arguments the client edited, renders from
    # its arguments, without an error.
    unknown = oai.chat.completions.create(
        model=MODEL, messages=follow("call_from_elsewhere", call.function.arguments),
        tools=[TOOL], temperature=0, max_tokens=1)
    assert unknown.usage.prompt_tokens == n_tokens(rerendered.replace(call.id,
                                                                      "call_from_elsewhere"))
    edited = oai.chat.completions.create(
        model=MODEL, messages=follow(call.id, json.dumps(dict(ARGUMENTS, lines=[1, 3]))),
        tools=[TOOL], temperature=0, max_tokens=1)
    assert edited.usage.prompt_tokens == n_tokens(rerendered.replace("[1, 2]", "[1, 3]"))
    replays = metric_values(httpx.get(server.url + "/metrics").text,
                            "v4serve:tool_call_replays_total")
    assert sum(replays.values()) >= 2


def test_chat_tool_calls_replay_exactly_in_thinking_mode(server, oai, encoder):
    # With tools the reasoning of earlier turns stays in the prompt (spec §5.8), so the client
    # sends it back with the calls, and the prompt still extends the previous turn's tokens.
    question = "thinking: " + QUESTION
    reasoning = "The user wants a.py; read it."
    thinking = {"thinking": {"type": "enabled"}}
    r1 = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": question}], tools=[TOOL],
        temperature=0, max_tokens=200,
        extra_body=dict(thinking, guided_choice=[reasoning + "</think>" + OUTPUT]))
    message = r1.choices[0].message
    assert (message.reasoning_content, message.content) == (reasoning, "Reading it.")
    (call,) = message.tool_calls
    turn1, replayed, _ = expected_prompts(encoder, question, call.id, reasoning)
    assert r1.usage.prompt_tokens == n_tokens(turn1)
    follow = [{"role": "user", "content": question},
              {"role": "assistant", "content": message.content,
               "reasoning_content": message.reasoning_content,
               "tool_calls": [{"id": call.id, "type": "function", "function": {
                   "name": "read_file", "arguments": call.function.arguments}}]},
              {"role": "tool", "tool_call_id": call.id, "content": RESULT}]
    before = hits(server)
    r2 = oai.chat.completions.create(model=MODEL, messages=follow, tools=[TOOL], temperature=0,
                                     max_tokens=1, extra_body=thinking)
    assert r2.usage.prompt_tokens == n_tokens(replayed)
    check_cached(server, before, r1.usage.prompt_tokens, r1.usage.completion_tokens)


def test_chat_tool_call_ids_are_unique_across_requests(oai):
    ids = set()
    for _ in range(3):
        r = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                        tools=[TOOL], temperature=0, max_tokens=200,
                                        extra_body={"guided_choice": [OUTPUT]})
        ids.update(c.id for c in r.choices[0].message.tool_calls)
    assert len(ids) == 3
    r = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                    tools=[TOOL], temperature=0, max_tokens=200, n=2,
                                    extra_body={"guided_choice": [OUTPUT]})
    assert len({c.message.tool_calls[0].id for c in r.choices}) == 2


def test_anthropic_tool_use_replays_exactly(server, claude, encoder):
    question = "messages: " + QUESTION
    r1 = claude.messages.create(model=MODEL, max_tokens=200, tools=[ANTHROPIC_TOOL],
                                messages=[{"role": "user", "content": question}],
                                extra_body={"temperature": 0, "guided_choice": [OUTPUT]})
    assert r1.stop_reason == "tool_use"
    (use,) = [b for b in r1.content if b.type == "tool_use"]
    assert use.id.startswith("toolu_") and use.input == ARGUMENTS
    _, replayed, _ = expected_prompts(encoder, question, use.id)
    before = hits(server)
    follow = [{"role": "user", "content": question},
              {"role": "assistant", "content": r1.content},
              {"role": "user", "content": [
                  {"type": "tool_result", "tool_use_id": use.id, "content": RESULT}]}]
    r2 = claude.messages.create(model=MODEL, max_tokens=1, tools=[ANTHROPIC_TOOL],
                                messages=follow, extra_body={"temperature": 0})
    assert r2.usage.input_tokens == n_tokens(replayed)
    check_cached(server, before, r1.usage.input_tokens, r1.usage.output_tokens)


def test_responses_function_call_replays_exactly(server, oai, encoder):
    question = "responses: " + QUESTION
    r1 = oai.responses.create(model=MODEL, input=question, tools=[RESPONSES_TOOL], store=False,
                              temperature=0, max_output_tokens=200,
                              extra_body={"guided_choice": [OUTPUT]})
    (fc,) = [item for item in r1.output if item.type == "function_call"]
    assert json.loads(fc.arguments) == ARGUMENTS
    _, replayed, _ = expected_prompts(encoder, question, fc.call_id)
    before = hits(server)
    follow = [{"role": "user", "content": question}]
    follow += [item.model_dump(exclude_none=True) for item in r1.output]
    follow += [{"type": "function_call_output", "call_id": fc.call_id, "output": RESULT}]
    r2 = oai.responses.create(model=MODEL, input=follow, tools=[RESPONSES_TOOL], store=False,
                              temperature=0, max_output_tokens=1)
    assert r2.usage.input_tokens == n_tokens(replayed)
    check_cached(server, before, r1.usage.input_tokens, r1.usage.output_tokens)


def test_without_a_replay_store_calls_render_from_their_arguments(tmp_path_factory, v4serve,
                                                                 encoder):
    # --tool-call-replay-mib 0 keeps nothing: the same conversation renders the canonical
    # `[1, 2]`, which is what tells the replay above from a re-rendering.
    model = models.tiny_model(tmp_path_factory, v4serve)
    with Server(v4serve, model, "--served-model-name", MODEL, "--ctx", "4096",
                "--kv-memory", "256", "--tool-call-replay-mib", "0") as s:
        client = openai.OpenAI(base_url=s.base_url, api_key="unused", max_retries=0,
                               timeout=120)
        question = "no store: " + QUESTION
        r1 = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": question}], tools=[TOOL],
            temperature=0, max_tokens=200, extra_body={"guided_choice": [OUTPUT]})
        (call,) = r1.choices[0].message.tool_calls
        _, _, rerendered = expected_prompts(encoder, question, call.id)
        follow = [{"role": "user", "content": question},
                  {"role": "assistant", "content": r1.choices[0].message.content,
                   "tool_calls": [{"id": call.id, "type": "function", "function": {
                       "name": "read_file", "arguments": call.function.arguments}}]},
                  {"role": "tool", "tool_call_id": call.id, "content": RESULT}]
        r2 = client.chat.completions.create(model=MODEL, messages=follow, tools=[TOOL],
                                            temperature=0, max_tokens=1)
        assert r2.usage.prompt_tokens == n_tokens(rerendered)
