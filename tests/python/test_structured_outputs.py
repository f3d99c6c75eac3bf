"""Structured outputs (response_format json_schema / json_object, vLLM's guided_json) through
the official `openai` SDK against `serve` on the random-weight tiny model.

The oracle is independent of our code: every output must parse with `json.loads` and validate
with the `jsonschema` package against the very schema the request sent. The model is random, so
only the constraint makes its output JSON at all. Free strings and arrays in the schemas carry
maxLength / maxItems: a random model left alone keeps a string open as long as max_tokens allows.
"""

import concurrent.futures
import json
import re
import sys
import pathlib

import httpx
import jsonschema
import openai
import pytest

from server import Server

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from cluster import Cluster  # noqa: E402

MODEL = "tiny"
USER = [{"role": "user", "content": "Describe a person as JSON."}]
MAX_TOKENS = 1500


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


@pytest.fixture(scope="module")
def server(v4serve, model):
    with Server(v4serve, model, "--served-model-name", MODEL, "--ctx", "4096",
                "--kv-memory", "512") as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


def s(max_length=8, **kw):
    return dict(type="string", maxLength=max_length, **kw)


def obj(required=None, **properties):
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required,
            "additionalProperties": False}


POINT = obj(x={"type": "integer", "minimum": -100, "maximum": 100},
            y={"type": "integer", "minimum": -100, "maximum": 100})

SCHEMAS = {
    "person": obj(name=s(), age={"type": "integer", "minimum": 0, "maximum": 120}),
    "flag": obj(ok={"type": "boolean"}),
    "color_enum": obj(color={"enum": ["red", "green", "blue"]}),
    "bounded_int": {"type": "integer", "minimum": -50, "maximum": 50},
    "number": obj(value={"type": "number"}),
    "int_list": {"type": "array", "items": {"type": "integer"}, "maxItems": 4},
    "enum_list": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 1,
                  "maxItems": 3},
    "nested_user": obj(user=obj(id={"type": "integer", "minimum": 1, "maximum": 9999},
                                email=s(10)),
                       active={"type": "boolean"}),
    "any_of_scalar": obj(v={"anyOf": [s(5), {"type": "integer"}]}),
    "one_of_objects": obj(shape={"oneOf": [obj(radius={"type": "integer", "minimum": 0,
                                                       "maximum": 10}),
                                           obj(side={"type": "number"})]}),
    "defs_ref": {"$defs": {"point": POINT}, "type": "array",
                 "items": {"$ref": "#/$defs/point"}, "maxItems": 3},
    "definitions_ref": {"definitions": {"name": s(6)}, "type": "object",
                        "properties": {"first": {"$ref": "#/definitions/name"},
                                       "last": {"$ref": "#/definitions/name"}},
                        "required": ["first", "last"], "additionalProperties": False},
    "const": obj(version={"const": 2}, kind={"const": "point"}),
    "null": obj(nothing={"type": "null"}),
    "nullable_int": obj(n={"type": ["integer", "null"], "minimum": 0, "maximum": 9}),
    "optional_props": obj(required=["id"], id={"type": "integer", "minimum": 0, "maximum": 99},
                          nickname=s(6), score={"type": "number"}),
    "strict_five": obj(a=s(4), b={"type": "integer", "minimum": 0, "maximum": 5},
                       c={"type": "boolean"}, d={"enum": ["x", "y"]}, e={"type": "null"}),
    "deep": obj(l1=obj(l2=obj(l3=obj(leaf={"type": "boolean"})))),
    "matrix": {"type": "array", "maxItems": 3,
               "items": {"type": "array", "items": {"type": "boolean"}, "maxItems": 3}},
    "string_bounds": obj(code=s(6, minLength=3)),
    "mixed_enum": obj(v={"enum": [1, "one", None, True, 2.5]}),
    "empty_object": {"type": "object", "properties": {}, "additionalProperties": False},
    "exclusive": obj(n={"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 20}),
    "any_of_items": {"type": "array", "maxItems": 4,
                     "items": {"anyOf": [{"type": "number"}, {"type": "boolean"},
                                         {"type": "null"}]}},
    "pair": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
    "annotated": {"title": "Weather", "description": "A forecast",
                  "type": "object", "additionalProperties": False, "required": ["city", "temp"],
                  "properties": {"city": s(10, description="city name"),
                                 "temp": {"type": "integer", "minimum": -40, "maximum": 50,
                                          "description": "celsius"}}},
    "all_of_one": {"allOf": [obj(k={"type": "boolean"})]},
    "unicode_enum": obj(word={"enum": ["café", "niño", "日本"]}),
    "wide_int": obj(n={"type": "integer", "minimum": -10**12, "maximum": 10**12}),
    "shared_refs": {"$defs": {"point": POINT, "segment": obj(start={"$ref": "#/$defs/point"},
                                                             end={"$ref": "#/$defs/point"})},
                    "type": "object", "additionalProperties": False, "required": ["path"],
                    "properties": {"path": {"type": "array", "maxItems": 2,
                                            "items": {"$ref": "#/$defs/segment"}}}},
    "tool_args": obj(location=s(12), unit={"enum": ["celsius", "fahrenheit"]}),
    "top_level_enum": {"enum": ["yes", "no", "maybe"]},
    "bool_top": {"type": "boolean"},
    "free_value_member": obj(anything={"type": "array", "maxItems": 2,
                                       "items": {"type": ["integer", "boolean"]}}),
}


def response_format(schema, name="out"):
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema,
                                                   "strict": True}}


def structured(client, schema, seed, temperature=1.0, **kw):
    return client.chat.completions.create(
        model=MODEL, messages=USER, response_format=response_format(schema), seed=seed,
        temperature=temperature, max_tokens=MAX_TOKENS, **kw)


def assert_valid(schema, text):
    value = json.loads(text)
    jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)
    return value


def test_there_are_at_least_thirty_schemas():
    assert len(SCHEMAS) >= 30
    for schema in SCHEMAS.values():
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_output_validates(client, name):
    schema = SCHEMAS[name]
    # Seeded sampling and greedy: two quite different walks through the grammar.
    for seed, temperature in ((1, 1.0), (2, 1.0), (3, 0.0)):
        r = structured(client, schema, seed, temperature)
        choice = r.choices[0]
        assert choice.finish_reason == "stop", (name, seed, choice.message.content)
        assert_valid(schema, choice.message.content)


def test_streamed_output_validates(client):
    schema = SCHEMAS["nested_user"]
    text, finish = "", None
    for chunk in client.chat.completions.create(
            model=MODEL, messages=USER, response_format=response_format(schema), seed=4,
            max_tokens=MAX_TOKENS, stream=True):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert finish == "stop"
    assert_valid(schema, text)


def test_guided_json_extension(client):
    schema = SCHEMAS["person"]
    r = client.chat.completions.create(model=MODEL, messages=USER, seed=5, max_tokens=MAX_TOKENS,
                                       extra_body={"guided_json": schema})
    assert_valid(schema, r.choices[0].message.content)


def test_json_object_mode_gives_an_object(client):
    r = client.chat.completions.create(model=MODEL, messages=USER, seed=6, max_tokens=MAX_TOKENS,
                                       response_format={"type": "json_object"})
    choice = r.choices[0]
    if choice.finish_reason == "length":
        pytest.skip("the random model kept a free string open until max_tokens")
    assert isinstance(json.loads(choice.message.content), dict)


def test_thinking_requests_answer_in_json_without_reasoning(client):
    schema = SCHEMAS["person"]
    r = structured(client, schema, 7, extra_body={"thinking": {"type": "enabled"}})
    message = r.choices[0].message
    assert not getattr(message, "reasoning_content", None)
    assert_valid(schema, message.content)


def test_several_choices_each_validate(client):
    schema = SCHEMAS["optional_props"]
    r = structured(client, schema, 8, n=4)
    assert len(r.choices) == 4
    for choice in r.choices:
        assert_valid(schema, choice.message.content)


def test_same_seed_same_output_alone_and_in_a_concurrent_batch(client):
    schema = SCHEMAS["shared_refs"]
    alone = structured(client, schema, 1234).choices[0].message.content
    others = [(SCHEMAS[name], 100 + i) for i, name in enumerate(sorted(SCHEMAS)[:15])]
    jobs = [(schema, 1234)] + others + [(schema, 1234)]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(lambda job: structured(client, *job), jobs))
    assert results[0].choices[0].message.content == alone
    assert results[-1].choices[0].message.content == alone
    for (job_schema, _), r in zip(jobs, results):
        assert_valid(job_schema, r.choices[0].message.content)


REFUSED = [
    ({"type": "string", "pattern": "^a+$"}, "pattern"),
    ({"type": "string", "format": "email"}, "format"),
    (obj(n={"type": "number", "minimum": 0}), "minimum"),
    ({"type": "object", "patternProperties": {"^x": {}}}, "patternProperties"),
    ({"$defs": {"node": obj(kids={"type": "array", "items": {"$ref": "#/$defs/node"}})},
      "$ref": "#/$defs/node"}, "$ref"),
    ({"type": "array", "items": [{"type": "integer"}]}, "items"),
    ({"type": "array", "uniqueItems": True}, "uniqueItems"),
    ({"not": {"type": "string"}}, "not"),
]


@pytest.mark.parametrize("schema,keyword", REFUSED, ids=[k for _, k in REFUSED])
def test_unsupported_keywords_are_a_400_naming_them(client, schema, keyword):
    with pytest.raises(openai.BadRequestError) as error:
        structured(client, schema, 1)
    message = error.value.response.json()["error"]["message"]
    assert f"'{keyword}'" in message, message
    assert error.value.response.json()["error"]["param"].startswith("response_format")


def test_malformed_response_formats_are_a_400(server):
    url = server.base_url + "/chat/completions"
    bad = [
        {"type": "json_schema"},
        {"type": "json_schema", "json_schema": {"name": "x"}},
        {"type": "json_schema", "json_schema": {"name": "x", "schema": 3}},
        {"type": "yaml"},
        "json",
    ]
    for fmt in bad:
        r = httpx.post(url, json={"model": MODEL, "messages": USER, "response_format": fmt},
                       timeout=60)
        assert r.status_code == 400, (fmt, r.text)
    r = httpx.post(url, json={"model": MODEL, "messages": USER, "guided_regex": "(?=a)b"},
                   timeout=60)
    assert r.status_code == 400 and "guided_regex" in r.text
    r = httpx.post(url, json={"model": MODEL, "messages": USER, "guided_choice": ["a"],
                              "response_format": {"type": "json_object"}}, timeout=60)
    assert r.status_code == 400


def test_responses_text_format(client):
    schema = SCHEMAS["nested_user"]
    fmt = {"type": "json_schema", "name": "user", "schema": schema, "strict": True}
    r = client.responses.create(model=MODEL, input="Describe a user.", temperature=1.0,
                                max_output_tokens=MAX_TOKENS, text={"format": fmt},
                                extra_body={"seed": 9})
    assert r.status == "completed"
    assert_valid(schema, r.output_text)
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=MODEL, input="x", text={"format": dict(
            fmt, schema={"type": "string", "pattern": "x"})})
    assert "'pattern'" in error.value.response.json()["error"]["message"]


def test_router_and_worker_over_grpc_give_the_same_outputs(v4serve, model, client):
    """The schema travels router -> worker in the proto; the worker masks with its own copy of
    the vocabulary: outputs validate and equal the in-process server's for the same seed."""
    names = ["person", "shared_refs", "mixed_enum", "any_of_items"]
    with Cluster(v4serve, model, workers=1) as cluster:
        remote = openai.OpenAI(base_url=cluster.base_url, api_key="unused", max_retries=0,
                               timeout=300)
        served = remote.models.list().data[0].id
        for name in names:
            schema = SCHEMAS[name]
            r = remote.chat.completions.create(
                model=served, messages=USER, response_format=response_format(schema), seed=21,
                temperature=1.0, max_tokens=MAX_TOKENS)
            text = r.choices[0].message.content
            assert_valid(schema, text)
            assert text == structured(client, schema, 21).choices[0].message.content, name
        with pytest.raises(openai.BadRequestError):
            remote.chat.completions.create(
                model=served, messages=USER, max_tokens=5,
                response_format=response_format({"type": "string", "format": "uri"}))


REGEXES = [r"\d{3}-\d{4}", r"(yes|no|maybe)", r"[A-Z][a-z]{2,8}( [A-Z][a-z]{2,8}){0,2}",
           r"-?\d{1,5}(\.\d{1,3})?", r"[a-z0-9._]{1,10}@[a-z]{2,8}\.(com|org|net)",
           r"#[0-9a-fA-F]{6}", r"(GET|POST) /[a-z]{1,8}(/[a-z0-9]{1,6}){0,2}"]


@pytest.mark.parametrize("pattern", REGEXES)
def test_guided_regex_outputs_match(client, pattern):
    """Python's `re` is the oracle: the whole output must match."""
    for seed, temperature in ((1, 1.0), (2, 0.0)):
        r = client.chat.completions.create(model=MODEL, messages=USER, seed=seed,
                                           temperature=temperature, max_tokens=200,
                                           extra_body={"guided_regex": pattern})
        choice = r.choices[0]
        assert choice.finish_reason == "stop", (pattern, choice.message.content)
        assert re.fullmatch(pattern, choice.message.content), (pattern, choice.message.content)
