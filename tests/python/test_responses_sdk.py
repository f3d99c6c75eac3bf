"""OpenAI's Responses API (/v1/responses), driven by the official `openai` SDK's Responses
client and by the `openai-agents` SDK's agent loop.

Expectations come from outside our code: DeepSeek's official encoder and tokenizer give the
prompt token counts and the exact text of tool-call and reasoning output, the SDK's own types
and stream accumulator check every response shape and the event order, and a greedy Responses
request must give what the equivalent chat completion gives (the same DSML prompt). The tiny
model is random, so outputs whose content matters are forced with `guided_choice` (a v4serve
extension, sent in extra_body).
"""

import asyncio
import json
import pathlib
import sys

import httpx
import openai
import pytest

from server import Server

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from test_chat_render import WEATHER, official_prompt  # noqa: E402
from test_server_api import assistant_output, n_tokens  # noqa: E402

MODEL = "tiny"
QUESTION = "Tell me a short story about a lighthouse."
USER = [{"role": "user", "content": QUESTION}]
# The chat function WEATHER as a Responses function tool (same name, description and schema).
WEATHER_TOOL = {"type": "function", "name": WEATHER["function"]["name"],
                "description": WEATHER["function"]["description"],
                "parameters": WEATHER["function"]["parameters"]}


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


@pytest.fixture(scope="module")
def server(v4serve, model):
    with Server(v4serve, model, "--served-model-name", MODEL, "--ctx", "2048",
                "--kv-memory", "256") as s:
        yield s


@pytest.fixture(scope="module")
def oai(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def forced(text, **extra):
    return {"extra_body": dict(extra, guided_choice=[text])}


def create(oai, input, **kw):
    kw.setdefault("max_output_tokens", 16)
    return oai.responses.create(model=MODEL, input=input, **kw)


def events_of(oai, input, **kw):
    kw.setdefault("max_output_tokens", 16)
    return list(oai.responses.create(model=MODEL, input=input, stream=True, **kw))


def final_response(oai, input, **kw):
    """The response the SDK's stream helper accumulates from the events."""
    kw.setdefault("max_output_tokens", 16)
    with oai.responses.stream(model=MODEL, input=input, **kw) as stream:
        return stream.get_final_response()


def check_event_order(events):
    """OpenAI's documented order: response.created, response.in_progress, then each output
    item's added, parts and deltas, done (one item open at a time, output indexes 0, 1, ...),
    then the terminal event; sequence numbers count up from 0."""
    types = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events))), types
    assert types[:2] == ["response.created", "response.in_progress"], types
    assert types[-1] in ("response.completed", "response.incomplete"), types
    open_index, next_index = None, 0
    for e in events[2:-1]:
        if e.type == "response.output_item.added":
            assert open_index is None and e.output_index == next_index, types
            open_index = e.output_index
        elif e.type == "response.output_item.done":
            assert e.output_index == open_index, types
            open_index, next_index = None, next_index + 1
        else:
            assert e.output_index == open_index, types
    assert open_index is None
    assert len(events[-1].response.output) == next_index


def items(response):
    """Output items as the inputs of a next turn (what a client sends back)."""
    return [item.model_dump(exclude_none=True) for item in response.output]


def test_create_returns_a_response(oai, encoder):
    r = create(oai, QUESTION, temperature=0, max_output_tokens=8)
    assert r.object == "response" and r.id.startswith("resp_") and r.model == MODEL
    assert r.status in ("completed", "incomplete")
    assert [item.type for item in r.output] == ["message"]
    message = r.output[0]
    assert message.role == "assistant" and message.id.startswith("msg_")
    assert [part.type for part in message.content] == ["output_text"]
    assert r.output_text == message.content[0].text
    assert r.usage.input_tokens == n_tokens(official_prompt(encoder, {"messages": USER}))
    assert 1 <= r.usage.output_tokens <= 8
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    if r.status == "incomplete":
        assert r.incomplete_details.reason == "max_output_tokens" and r.usage.output_tokens == 8


def test_greedy_responses_equal_chat(oai, encoder):
    system = "You are a terse assistant."
    r = create(oai, QUESTION, instructions=system, temperature=0, max_output_tokens=24)
    c = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "system", "content": system}] + USER, temperature=0,
        max_tokens=24)
    assert r.output_text == c.choices[0].message.content
    assert r.usage.input_tokens == c.usage.prompt_tokens
    assert r.usage.output_tokens == c.usage.completion_tokens
    assert r.instructions == system
    # Reasoning: the same reasoning and answer as a chat request in thinking mode.
    r = create(oai, QUESTION, temperature=0, max_output_tokens=24, reasoning={"effort": "high"})
    c = oai.chat.completions.create(model=MODEL, messages=USER, temperature=0, max_tokens=24,
                                    extra_body={"thinking": {"type": "enabled"}})
    reasoning = "".join(part.text for item in r.output if item.type == "reasoning"
                        for part in item.content)
    assert reasoning == (getattr(c.choices[0].message, "reasoning_content", None) or "")
    assert r.output_text == (c.choices[0].message.content or "")
    assert r.usage.input_tokens == c.usage.prompt_tokens
    assert r.usage.output_tokens_details.reasoning_tokens == \
        c.usage.completion_tokens_details.reasoning_tokens
    # xhigh: Think-Max, as the official encoder renders it.
    r = create(oai, QUESTION, max_output_tokens=1, reasoning={"effort": "xhigh"})
    oracle = {"messages": USER, "thinking": True, "reasoning_effort": "max"}
    assert r.usage.input_tokens == n_tokens(official_prompt(encoder, oracle))
    r = create(oai, QUESTION, max_output_tokens=1, reasoning={"effort": "none"})
    assert r.usage.input_tokens == n_tokens(official_prompt(encoder, {"messages": USER}))


def test_stream_event_order_and_final_response(oai, server):
    whole = create(oai, QUESTION, temperature=0, max_output_tokens=12)
    events = events_of(oai, QUESTION, temperature=0, max_output_tokens=12)
    check_event_order(events)
    created = events[0].response
    assert created.id.startswith("resp_") and created.status == "in_progress"
    assert created.output == []
    done = events[-1].response
    assert done.id == created.id and done.status == whole.status
    assert done.output_text == whole.output_text
    assert done.usage.model_dump() == whole.usage.model_dump()
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert streamed == whole.output_text
    types = [e.type for e in events]
    assert types.index("response.content_part.added") < types.index("response.output_text.done")
    # The SDK's helper accumulates completed streams (a cut one ends with response.incomplete).
    kw = dict(temperature=0, max_output_tokens=12, **forced("A lamp, a storm."))
    final = final_response(oai, QUESTION, **kw)
    assert final.status == "completed" and final.output_text == "A lamp, a storm."
    assert final.output_text == create(oai, QUESTION, **kw).output_text
    # The wire: each event is named, and no [DONE] follows.
    body = {"model": MODEL, "input": QUESTION, "max_output_tokens": 2, "stream": True}
    with httpx.stream("POST", server.url + "/v1/responses", json=body, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = list(r.iter_lines())
    names = [line[7:] for line in lines if line.startswith("event: ")]
    data = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert names == [d["type"] for d in data] and names[0] == "response.created"


def test_reasoning_items(oai, encoder):
    output = "The user wants a story.</think>Once there was a light."
    kw = dict(temperature=0, max_output_tokens=64, reasoning={"effort": "medium"}, **forced(output))
    r = create(oai, QUESTION, **kw)
    assert [item.type for item in r.output] == ["reasoning", "message"]
    assert r.output[0].id.startswith("rs_")
    assert [(p.type, p.text) for p in r.output[0].content] == [
        ("reasoning_text", "The user wants a story.")]
    assert r.output_text == "Once there was a light."
    assert r.status == "completed"
    assert r.usage.input_tokens == n_tokens(official_prompt(encoder, {
        "messages": USER, "thinking": {"type": "enabled"}}))
    events = events_of(oai, QUESTION, **kw)
    check_event_order(events)
    deltas = [e.type for e in events if e.type.endswith(".delta")]
    assert deltas[0] == "response.reasoning_text.delta" and deltas[-1] == \
        "response.output_text.delta"
    text = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert text == "The user wants a story."
    final = final_response(oai, QUESTION, **kw)
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text == "The user wants a story."
    assert final.output_text == r.output_text


def test_function_tool_round_trip(oai, encoder):
    question = "Weather in Paris and in 東京?"
    calls = [{"city": "Paris"}, {"city": "東京", "unit": "celsius"}]
    chat_calls = [{"id": "call_%d" % i, "type": "function", "function": {
        "name": "get_weather", "arguments": json.dumps(c, ensure_ascii=False)}}
        for i, c in enumerate(calls)]
    request = {"messages": [{"role": "user", "content": question}], "tools": [WEATHER]}
    output = assistant_output(encoder, request,
                              {"role": "assistant", "content": "", "tool_calls": chat_calls})
    kw = dict(tools=[WEATHER_TOOL], temperature=0, max_output_tokens=200, **forced(output))
    r = create(oai, question, **kw)
    assert r.status == "completed"
    fcs = [item for item in r.output if item.type == "function_call"]
    assert [item.type for item in r.output] == ["function_call"] * 2
    assert [(f.name, json.loads(f.arguments)) for f in fcs] == [("get_weather", c) for c in calls]
    assert len({f.call_id for f in fcs}) == 2 and all(f.id.startswith("fc_") for f in fcs)
    assert r.usage.input_tokens == n_tokens(official_prompt(encoder, request))
    # Streamed: each call's arguments in function_call_arguments events.
    events = events_of(oai, question, **kw)
    check_event_order(events)
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments) for e in done] == calls
    final = final_response(oai, question, **kw)
    assert [(f.name, json.loads(f.arguments)) for f in final.output] == [
        ("get_weather", c) for c in calls]
    # Second turn: the calls as returned, then their outputs (out of order); the prompt must
    # be what the official encoder renders for that conversation.
    follow = [{"role": "user", "content": question}] + items(r) + [
        {"type": "function_call_output", "call_id": fcs[1].call_id, "output": "22°C, rain"},
        {"type": "function_call_output", "call_id": fcs[0].call_id, "output": "timeout"}]
    answer = create(oai, follow, tools=[WEATHER_TOOL], temperature=0, max_output_tokens=64,
                    **forced("Tokyo is rainy; Paris timed out."))
    assert answer.output_text == "Tokyo is rainy; Paris timed out."
    oracle_follow = request["messages"] + [
        {"role": "assistant", "content": "", "tool_calls": chat_calls},
        {"role": "tool", "tool_call_id": "call_1", "content": "22°C, rain"},
        {"role": "tool", "tool_call_id": "call_0", "content": "timeout"}]
    expected = n_tokens(official_prompt(encoder, {"messages": oracle_follow, "tools": [WEATHER]}))
    assert answer.usage.input_tokens == expected
    # Equal counts could hide a changed word; greedy text from the random model does not: the
    # same conversation as a chat request must continue with the very same tokens.
    chat_follow = request["messages"] + [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": f.call_id, "type": "function",
             "function": {"name": f.name, "arguments": f.arguments}} for f in fcs]},
        {"role": "tool", "tool_call_id": fcs[1].call_id, "content": "22°C, rain"},
        {"role": "tool", "tool_call_id": fcs[0].call_id, "content": "timeout"}]
    greedy = create(oai, follow, tools=[WEATHER_TOOL], temperature=0, max_output_tokens=16)
    chat = oai.chat.completions.create(model=MODEL, messages=chat_follow, tools=[WEATHER],
                                       temperature=0, max_tokens=16)
    assert greedy.output_text == (chat.choices[0].message.content or "")
    assert greedy.usage.output_tokens == chat.usage.completion_tokens
    # The same turn through previous_response_id: only the outputs are sent.
    chained = create(oai, follow[-2:], previous_response_id=r.id, tools=[WEATHER_TOOL],
                     temperature=0, max_output_tokens=16)
    assert chained.usage.input_tokens == expected
    assert chained.output_text == greedy.output_text
    assert chained.previous_response_id == r.id


def test_previous_response_id_chaining(oai, encoder):
    first = create(oai, QUESTION, temperature=0, max_output_tokens=8)
    second = create(oai, "And then?", previous_response_id=first.id, temperature=0,
                    max_output_tokens=8)
    conversation = USER + [{"role": "assistant", "content": first.output_text},
                           {"role": "user", "content": "And then?"}]
    assert second.usage.input_tokens == n_tokens(official_prompt(encoder,
                                                                 {"messages": conversation}))
    chat = oai.chat.completions.create(model=MODEL, messages=conversation, temperature=0,
                                       max_tokens=8)
    assert second.output_text == chat.choices[0].message.content
    # Instructions are not inherited; a new request's instructions lead the conversation.
    third = create(oai, "And then?", previous_response_id=first.id, instructions="Be brief.",
                   max_output_tokens=1)
    oracle = [{"role": "system", "content": "Be brief."}] + conversation
    assert third.usage.input_tokens == n_tokens(official_prompt(encoder, {"messages": oracle}))
    # Chains go on: the third turn sees all earlier ones.
    fourth = create(oai, "The end.", previous_response_id=second.id, max_output_tokens=1)
    long = conversation + [{"role": "assistant", "content": second.output_text},
                           {"role": "user", "content": "The end."}]
    assert fourth.usage.input_tokens == n_tokens(official_prompt(encoder, {"messages": long}))
    # Stored responses read back as they were returned, and can be deleted.
    assert oai.responses.retrieve(first.id).model_dump() == first.model_dump()
    oai.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError) as e:
        create(oai, "x", previous_response_id=second.id)
    assert e.value.body["code"] == "previous_response_not_found"
    assert e.value.body["param"] == "previous_response_id"
    # store=false: answered, never kept.
    unstored = create(oai, QUESTION, store=False, max_output_tokens=1)
    with pytest.raises(openai.NotFoundError):
        create(oai, "x", previous_response_id=unstored.id)


def test_evicted_previous_response_is_a_clear_404(v4serve, model):
    # Room for a few small responses only.
    with Server(v4serve, model, "--served-model-name", MODEL, "--ctx", "2048",
                "--responses-store-mib", "0.02") as s:
        client = openai.OpenAI(base_url=s.base_url, api_key="unused", max_retries=0, timeout=120)
        ids = [create(client, "story %d " % i + "tick " * 300, max_output_tokens=1).id
               for i in range(8)]
        assert client.responses.retrieve(ids[-1]).id == ids[-1]
        with pytest.raises(openai.NotFoundError) as e:
            create(client, "more", previous_response_id=ids[0])
        assert e.value.body["code"] == "previous_response_not_found"
        assert "evicted" in e.value.body["message"] and ids[0] in e.value.body["message"]
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(ids[0])
        # Never issued here: a plain not found.
        with pytest.raises(openai.NotFoundError) as e:
            create(client, "more", previous_response_id="resp_0123456789")
        assert "evicted" not in e.value.body["message"]
        # The newest chain still works.
        assert create(client, "more", previous_response_id=ids[-1],
                      max_output_tokens=1).previous_response_id == ids[-1]


def test_error_shapes(oai, server):
    image = [{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]
    with pytest.raises(openai.BadRequestError) as e:
        create(oai, image)
    assert e.value.body["type"] == "invalid_request_error"
    assert "input[0].content[1].type" in e.value.body["message"]
    assert "images are not supported" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        create(oai, QUESTION, temperature=3)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as e:
        create(oai, QUESTION, tools=[{"type": "web_search"}])
    assert "tools[0].type" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        create(oai, QUESTION, text={"format": {"type": "json_schema", "name": "d",
                                               "schema": {"type": "string", "format": "date"}}})
    assert "text.format" in e.value.body["message"]
    with pytest.raises(openai.NotFoundError) as e:
        oai.responses.create(model="gpt-none", input=QUESTION)
    assert e.value.body["code"] == "model_not_found"
    r = httpx.get(server.url + "/v1/responses", timeout=60)
    assert r.status_code == 405 and r.json()["error"]["type"] == "invalid_request_error"
    r = httpx.post(server.url + "/v1/responses", content=b"{", timeout=60)
    assert r.status_code == 400 and r.json()["error"]["message"]


def test_openai_agents_tool_loop(server, encoder):
    """A tool-using agent from the `openai-agents` SDK against this server: the SDK runs the
    loop (call the model, run the tool, send the call and its output back, get the answer)
    over the Responses API. The random model's output is forced per turn by a transport that
    adds guided_choice: a call while the tool has not run, then the answer."""
    import agents  # openai-agents (requirements.txt)
    agents.set_tracing_disabled(True)
    call = {"id": "call_0", "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}
    call_text = assistant_output(
        encoder, {"messages": [{"role": "user", "content": "?"}], "tools": [WEATHER]},
        {"role": "assistant", "content": "", "tool_calls": [call]})
    seen = []

    import httpx2  # the openai SDK's own HTTP package, a fork of httpx

    class Forcing(httpx2.AsyncBaseTransport):
        def __init__(self):
            self.inner = httpx2.AsyncHTTPTransport()

        async def handle_async_request(self, request):
            body = json.loads(request.content)
            seen.append(body)
            answered = any(isinstance(i, dict) and i.get("type") == "function_call_output"
                           for i in body["input"])
            body["guided_choice"] = ["It is sunny in Paris."] if answered else [call_text]
            forced_request = httpx2.Request(request.method, request.url,
                                           headers={k: v for k, v in request.headers.items()
                                                    if k.lower() != "content-length"},
                                           content=json.dumps(body).encode())
            return await self.inner.handle_async_request(forced_request)

    calls = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        calls.append(city)
        return "sunny, 24°C"

    async def run(stream):
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0,
                                    http_client=httpx2.AsyncClient(transport=Forcing(),
                                                                   timeout=120))
        agent = agents.Agent(name="weather", instructions="Answer with the tool's help.",
                             tools=[get_weather],
                             model=agents.OpenAIResponsesModel(model=MODEL, openai_client=client),
                             model_settings=agents.ModelSettings(temperature=0,
                                                                 max_tokens=128))
        if not stream:
            return await agents.Runner.run(agent, "What is the weather in Paris?")
        result = agents.Runner.run_streamed(agent, "What is the weather in Paris?")
        async for _ in result.stream_events():
            pass
        return result

    for stream in (False, True):
        calls.clear()
        seen.clear()
        result = asyncio.run(run(stream))
        assert calls == ["Paris"]
        assert result.final_output == "It is sunny in Paris."
        assert len(seen) == 2
        # The second turn carried the call back with its output.
        kinds = [i.get("type") for i in seen[1]["input"] if isinstance(i, dict)]
        assert "function_call" in kinds and "function_call_output" in kinds
