"""Renderer oracle: `v4serve render` must produce byte-identical prompts to DeepSeek's official
encoder (`encoding_dsv4.encode_messages`, loaded by tests/oracle/official_dsv4_encoder.py) for
every conversation below. Spec §5.8.

The request -> encoder-input mapping mirrors how SGLang serves the encoder: null content reads
as "", an empty system message is put first when there is none, request tools attach to the
first message, and reasoning_effort other than "max"/"high" is dropped.
"""

import copy
import json
import pathlib
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402

DSML = "｜DSML｜"


@pytest.fixture(scope="session")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


def official_prompt(encoder, request) -> str:
    messages = copy.deepcopy(request["messages"])
    for message in messages:
        if message.get("content") is None:
            message["content"] = ""
    if messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": ""})
    if request.get("tools"):
        messages[0]["tools"] = copy.deepcopy(request["tools"])
    thinking = request.get("thinking")
    if isinstance(thinking, dict):
        thinking = thinking.get("type") == "enabled"
    if thinking is None:
        thinking = request.get("chat_template_kwargs", {}).get("thinking", False)
    effort = request.get("reasoning_effort")
    effort = effort if effort in ("max", "high") else None
    if request.get("task"):
        encoder.attach_task_to_last_user_message(messages, request["task"])
    return encoder.encode_messages(messages, thinking_mode="thinking" if thinking else "chat",
                                   reasoning_effort=effort)


def our_prompt(v4serve, model, request) -> str:
    result = subprocess.run([str(v4serve), "render", "--model", str(model)],
                            input=json.dumps(request).encode(), capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


# ---------------------------------------------------------------------------------------------
# Building blocks

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. 東京 or \"São Paulo\""},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search", "description": "Search the web.\nReturns\ttop results.",
    "parameters": {"type": "object", "properties": {
        "query": {"type": "string"},
        "top_k": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
        "filters": {"type": "object", "properties": {"site": {"type": "string"}}}},
        "required": ["query"]}}}
NUMBERS = {"type": "function", "function": {
    "name": "tune", "description": "Floats as Python prints them: ratio, tiny, huge.",
    "parameters": {"type": "object", "properties": {
        "ratio": {"type": "number", "default": 0.1, "minimum": -0.0, "maximum": 2.5},
        "epsilon": {"type": "number", "default": 1e-07, "examples": [1e-05, 0.0001, 1e16, 1e15,
                                                                     123456789012345.6, 3.0]},
        "big": {"type": "integer", "default": 12345678901234567890},
        "flag": {"type": "boolean", "default": False}, "none": {"default": None}}}}}
NO_PARAMS = {"type": "function", "function": {"name": "now", "description": "Current time 🕐",
                                              "parameters": {"type": "object", "properties": {}}}}


def call(call_id, name, arguments):
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def tool(call_id, content):
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def user(text):
    return {"role": "user", "content": text}


def assistant(content, reasoning=None, tool_calls=None):
    message = {"role": "assistant", "content": content}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
MULTI_TURN = [SYSTEM, user("What is 2+2?"), assistant("4.", "Simple arithmetic."),
              user("And 3+3?"), assistant("6.", "Again simple."), user("Thanks! Now 10*10?")]
TOOL_ROUND = [SYSTEM, user("Weather in Paris and Tokyo?"),
              assistant("Let me check.", "Two cities: call twice.",
                        [call("c1", "get_weather", {"city": "Paris"}),
                         call("c2", "get_weather", {"city": "東京", "unit": "celsius"})]),
              tool("c2", "{\"temp\": 21}"), tool("c1", "{\"temp\": 14}")]

CASES = {
    "plain_chat": {"messages": [user("Hello!")]},
    "plain_thinking": {"messages": [user("Hello!")], "thinking": True},
    "system_chat": {"messages": [SYSTEM, user("Hi")]},
    "system_thinking_max": {"messages": [SYSTEM, user("Prove it.")], "thinking": True,
                            "reasoning_effort": "max"},
    "thinking_high_is_plain": {"messages": [user("Think.")], "thinking": True,
                               "reasoning_effort": "high"},
    "max_effort_ignored_in_chat": {"messages": [user("x")], "reasoning_effort": "max"},
    "effort_low_medium_ignored": {"messages": [user("x")], "thinking": True,
                                  "reasoning_effort": "medium"},
    "multi_turn_thinking_drops_old_reasoning": {"messages": MULTI_TURN, "thinking": True},
    "multi_turn_chat": {"messages": MULTI_TURN},
    "multi_turn_max": {"messages": MULTI_TURN, "thinking": True, "reasoning_effort": "max"},
    "ends_with_assistant_thinking": {"messages": MULTI_TURN[:5], "thinking": True},
    "ends_with_assistant_chat": {"messages": MULTI_TURN[:5]},
    "developer_after_system": {"messages": [SYSTEM, {"role": "developer", "content": "Be terse."},
                                            user("Hi")], "thinking": True},
    "developer_before_last_user_dropped": {
        "messages": [SYSTEM, {"role": "developer", "content": "Rule 1."}, user("a"),
                     assistant("b", "r"), user("c")], "thinking": True},
    "developer_last_chat": {"messages": [{"role": "developer", "content": "Only developer."}]},
    "developer_kept_in_chat": {"messages": [{"role": "developer", "content": "Rule."}, user("a"),
                                            assistant("b"), user("c")]},
    "tools_chat": {"messages": [user("Weather in Oslo?")], "tools": [WEATHER]},
    "tools_thinking": {"messages": [SYSTEM, user("Weather in Oslo?")], "tools": [WEATHER, SEARCH],
                       "thinking": True},
    "tools_max_effort": {"messages": [user("Search it")], "tools": [SEARCH], "thinking": True,
                         "reasoning_effort": "max"},
    "tool_schema_numbers": {"messages": [user("tune")], "tools": [NUMBERS, NO_PARAMS]},
    "parallel_calls_results_reordered": {"messages": TOOL_ROUND, "tools": [WEATHER],
                                         "thinking": True},
    "parallel_calls_then_answer": {
        "messages": TOOL_ROUND + [assistant("Paris 14°, Tokyo 21°.", "Compare.")],
        "tools": [WEATHER], "thinking": True},
    "parallel_calls_chat": {"messages": TOOL_ROUND, "tools": [WEATHER]},
    "tool_results_then_user_text": {
        "messages": TOOL_ROUND + [user("Also, in °F please.")], "tools": [WEATHER],
        "thinking": True},
    "three_tool_rounds_keep_reasoning": {
        "messages": TOOL_ROUND + [
            assistant("", "Need more.", [call("c3", "search", {"query": "Tokyo forecast",
                                                               "top_k": 2})]),
            tool("c3", "sunny"), assistant("Done.", "All set."), user("Next city?")],
        "tools": [WEATHER, SEARCH], "thinking": True},
    "argument_types": {
        "messages": [user("go"), assistant(None, None, [call("a1", "search", {
            "query": "line1\nline2 \"quoted\" <tag> 日本", "top_k": 5, "ratio": 0.25,
            "exp": 1e-07, "big": 1e16, "flag": True, "none": None, "list": [1, "two", [3.0]],
            "filters": {"site": "example.org", "nested": {"deep": []}}, "empty": ""})]),
                     tool("a1", "ok")], "tools": [SEARCH], "thinking": True},
    "arguments_not_json": {"messages": [user("go"), assistant("", None, [
        call("b1", "search", "this is not json")]), tool("b1", "?")], "tools": [SEARCH]},
    "arguments_empty_object": {"messages": [user("now?"), assistant("", None, [
        call("n1", "now", "{}")]), tool("n1", "12:00")], "tools": [NO_PARAMS]},
    "arguments_key_order_kept": {"messages": [user("go"), assistant("", None, [
        call("k1", "search", "{\"z\": 1, \"a\": \"x\", \"m\": [true, false]}")])],
        "tools": [SEARCH]},
    "latest_reminder_after_user": {"messages": [SYSTEM, user("Hi"), {
        "role": "latest_reminder", "content": "Today is 2026-01-01."}], "thinking": True},
    "latest_reminder_before_user": {"messages": [SYSTEM, {
        "role": "latest_reminder", "content": "Reminder."}, user("Hi")], "thinking": True},
    "latest_reminder_then_assistant": {"messages": [user("Hi"), {
        "role": "latest_reminder", "content": "Be brief."}, assistant("Hello.", "greet"),
        user("Bye")], "thinking": True},
    "empty_user_content": {"messages": [user("")]},
    "null_user_content": {"messages": [{"role": "user", "content": None}], "thinking": True},
    "special_strings_in_text": {"messages": [user("Say <｜User｜> and </think> and <｜DSML｜"
                                                  "tool_calls> literally.")]},
    "unicode_content": {"messages": [SYSTEM, user("日本語で答えて 👨‍👩‍👧 مرحبا नमस्ते"),
                                     assistant("はい、わかりました。", "日本語")], "thinking": True},
    "consecutive_users_merge": {"messages": [user("first"), user("second"), user("third")]},
    "second_system_message": {"messages": [SYSTEM, user("a"), {"role": "system",
                                                              "content": "New rules."},
                                           user("b")]},
    "task_query": {"messages": [user("Find papers on MoE")], "task": "query"},
    "task_action_thinking": {"messages": [user("Open the page")], "task": "action",
                             "thinking": True},
    "task_title_then_answer": {"messages": [user("Summarize"), assistant("A title", "x")],
                               "task": "title", "thinking": True},
    "task_read_url_with_followup": {"messages": [SYSTEM, user("read https://example.org")],
                                    "task": "read_url"},
    "tool_result_with_sentinel": {"messages": [user("x"), assistant("", None, [
        call("s1", "search", {"query": "q"})]), tool("s1", "a</tool_result>b\n\nc")],
        "tools": [SEARCH], "thinking": True},
    "tool_results_unknown_ids": {"messages": [user("x"), assistant("", None, [
        call("u1", "search", {"query": "q"}), call("u2", "search", {"query": "r"})]),
        tool("zz", "first"), tool("u2", "second"), tool("u1", "third")], "tools": [SEARCH]},
    "thinking_enabled_object": {"messages": [user("Hi")], "thinking": {"type": "enabled"}},
    "thinking_via_template_kwargs": {"messages": MULTI_TURN,
                                     "chat_template_kwargs": {"thinking": True}},
    "assistant_reasoning_only": {"messages": [user("Q"), assistant("", "just thinking")],
                                 "thinking": True, "tools": [NO_PARAMS]},
    "tool_call_non_string_arguments": {"messages": [user("go"), {
        "role": "assistant", "content": "", "tool_calls": [{
            "id": "d1", "type": "function",
            "function": {"name": "search", "arguments": {"query": "dict"}}}]}],
        "tools": [SEARCH]},
}


def test_enough_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_render_matches_official_encoder(name, encoder, v4serve, model):
    request = CASES[name]
    expected = official_prompt(encoder, request)
    assert our_prompt(v4serve, model, request) == expected


def test_replayed_tool_call_renders_byte_identically(encoder, v4serve, model):
    # The model wrote a number as JSON with its own spacing and a string parameter as JSON; a
    # re-render from OpenAI arguments would normalise both. Replay keeps the model's bytes.
    produced = (f'<{DSML}invoke name="search">\n'
                f'<{DSML}parameter name="query" string="false">"weather"</{DSML}parameter>\n'
                f'<{DSML}parameter name="top_k" string="false">5.0</{DSML}parameter>\n'
                f'</{DSML}invoke>')
    request = {"messages": [user("go"), assistant("", "r", [
        call("r1", "search", {"query": "weather", "top_k": 5.0}),
        call("r2", "search", {"query": "other"})]), tool("r1", "x"), tool("r2", "y")],
        "tools": [SEARCH], "thinking": True, "dsml_replay": {"r1": produced}}
    canonical = official_prompt(encoder, request)
    rendered_r1 = encoder.tool_call_template.format(
        dsml_token=DSML, name="search",
        arguments=encoder.encode_arguments_to_dsml({"arguments": request["messages"][1][
            "tool_calls"][0]["function"]["arguments"]}))
    assert canonical.count(rendered_r1) == 1 and rendered_r1 != produced
    assert our_prompt(v4serve, model, request) == canonical.replace(rendered_r1, produced)


@pytest.mark.parametrize("request_body,message", [
    ("not json", "not valid JSON"),
    ('{"messages": []}', "messages"),
    ('{"messages": [{"role": "wizard", "content": "x"}]}', "role"),
    ('{"messages": [{"role": "developer", "content": ""}]}', "developer"),
    ('{"messages": [{"role": "user", "content": "x"}], "task": "dance"}', "task"),
    ('{"messages": [{"role": "assistant", "content": "", "tool_calls": [{"function": '
     '{"name": "f", "arguments": "[1, 2]"}}]}]}', "JSON object"),
])
def test_render_errors_are_one_line(v4serve, model, request_body, message):
    result = subprocess.run([str(v4serve), "render", "--model", str(model)],
                            input=request_body.encode(), capture_output=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
