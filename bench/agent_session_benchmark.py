#!/usr/bin/env python3
"""Prefix-cache hit rate of a multi-turn agent session with tool calls.

An agent loop sends the whole conversation back each turn: the system prompt and tools, the
user's task, then every assistant turn with its tool calls and every tool result. When the
server renders those turns exactly as the model wrote them (spec §5.8: DSML replay), each
turn's prompt starts with the previous turn's prompt and output, and the engine finds their KV
pages in its prefix cache. This benchmark replays such a session through OpenAI's chat
completions API, Anthropic's Messages API and OpenAI's Responses API (with store false, as a
client that keeps its own history) and reports, for the turns after the first, the
share of prompt tokens served from the prefix cache (v4serve:prefix_cache_hits_total from
/metrics, over the prompt tokens the responses report).

Every assistant turn is forced with `guided_choice` (a v4serve extension), so the session has
the same shape on any model, the random-weight test model included: turns 1..N-1 call a tool,
the last answers. The calls write one argument as compact JSON (`[1,2]`), as models often do,
where a re-rendering from the arguments would write `[1, 2]`: without replay the prompt would
diverge from the cached tokens at the first call.

    python bench/agent_session_benchmark.py --url http://127.0.0.1:8000 --turns 6
    python bench/agent_session_benchmark.py --serve build/apps/v4serve --gguf tiny.gguf \\
        -- --ctx 16384

--no-replay-baseline also runs each session with the tool-call ids rewritten by the client,
so the server cannot find the calls it made and renders them from their arguments.
"""

import argparse
import json
import re
import subprocess
import sys

import httpx

DSML = "｜DSML｜"
# Long enough that a session looks like an agent's: a system prompt of a few thousand tokens
# (pages hold 256 tokens, so the unfinished last page of each turn weighs little).
SYSTEM_RULES = [
    "Read the files you change before you change them.",
    "Prefer small, reviewable edits; explain each in one sentence.",
    "Run the project's tests after every change and report failures verbatim.",
    "Never invent file paths: list the directory first when unsure.",
    "Keep answers short; use the tools to look things up instead of guessing.",
]
TOOLS = [
    {"name": "read_file", "description": "Read a text file of the workspace and return it.",
     "parameters": {"type": "object", "properties": {
         "path": {"type": "string", "description": "Path relative to the workspace root"},
         "lines": {"type": "array", "items": {"type": "integer"},
                   "description": "First and last line to return (1-based, inclusive)"}},
         "required": ["path"]}},
    {"name": "run_tests", "description": "Run the test suite, or the tests matching a filter.",
     "parameters": {"type": "object", "properties": {
         "filter": {"type": "string", "description": "Substring of the test names to run"}},
         "required": []}},
    {"name": "search", "description": "Search the workspace for a string.",
     "parameters": {"type": "object", "properties": {
         "query": {"type": "string"}, "max_results": {"type": "integer"}},
         "required": ["query"]}},
]


def system_prompt(repeat):
    lines = ["You are a coding agent working in a software repository."]
    for i in range(repeat):
        for j, rule in enumerate(SYSTEM_RULES):
            lines.append(f"Rule {i * len(SYSTEM_RULES) + j + 1}: {rule}")
    return "\n".join(lines)


def invoke(name, string_params, json_params):
    """One DSML invoke (spec §5.8); JSON parameters are written compactly."""
    parts = [f'<{DSML}invoke name="{name}">']
    for key, value in string_params.items():
        parts.append(f'<{DSML}parameter name="{key}" string="true">{value}</{DSML}parameter>')
    for key, value in json_params.items():
        text = json.dumps(value, separators=(",", ":"))
        parts.append(f'<{DSML}parameter name="{key}" string="false">{text}</{DSML}parameter>')
    parts.append(f"</{DSML}invoke>")
    return "\n".join(parts)


def forced_call(turn):
    """The output of tool-calling turn `turn`: a sentence, then one or two calls."""
    calls = [invoke("read_file", {"path": f"src/module_{turn}.py"}, {"lines": [1, 40 + turn]})]
    if turn % 2 == 0:
        calls.append(invoke("search", {"query": f"def handler_{turn}"}, {"max_results": 5}))
    block = f"\n\n<{DSML}tool_calls>\n" + "\n".join(calls) + f"\n</{DSML}tool_calls>"
    return f"Step {turn}: looking at the code." + block


def tool_result(turn, index):
    return f"(turn {turn}, call {index}) " + " ".join(f"line {k}: pass" for k in range(12))


class Metrics:
    def __init__(self, url):
        self.url = url

    def hits(self):
        text = httpx.get(self.url + "/metrics", timeout=30).text
        total = 0.0
        for line in text.splitlines():
            m = re.match(r"^v4serve:prefix_cache_hits_total(\{[^}]*\})?\s+(\S+)$", line)
            if m:
                total += float(m.group(2))
        return total


def chat_session(http, url, model, a, rewrite_ids, after_turn):
    """The session through /v1/chat/completions: [(prompt_tokens, cached_tokens)] per turn."""
    tools = [{"type": "function", "function": t} for t in TOOLS]
    messages = [{"role": "system", "content": system_prompt(a.system_repeat)},
                {"role": "user", "content": "The tests of module 3 fail; find out why."}]
    turns = []
    for turn in range(1, a.turns + 1):
        last = turn == a.turns
        forced = "The failure comes from module 3's handler." if last else forced_call(turn)
        body = {"model": model, "messages": messages, "tools": tools, "temperature": 0,
                "max_tokens": a.max_tokens, "guided_choice": [forced]}
        r = http.post(url + "/v1/chat/completions", json=body)
        r.raise_for_status()
        out = r.json()
        usage = out["usage"]
        turns.append((usage["prompt_tokens"],
                      (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)))
        after_turn()
        message = out["choices"][0]["message"]
        calls = message.get("tool_calls") or []
        if last:
            break
        if out["choices"][0]["finish_reason"] != "tool_calls" or not calls:
            raise SystemExit(f"chat turn {turn}: expected tool calls, got {out['choices'][0]}")
        if rewrite_ids:
            for k, call in enumerate(calls):
                call["id"] = f"client_{turn}_{k}"
        messages.append({"role": "assistant", "content": message.get("content"),
                         "tool_calls": calls})
        for k, call in enumerate(calls):
            messages.append({"role": "tool", "tool_call_id": call["id"],
                             "content": tool_result(turn, k)})
    return turns


def messages_session(http, url, model, a, rewrite_ids, after_turn):
    """The session through /v1/messages: [(input_tokens, None)] per turn."""
    tools = [{"name": t["name"], "description": t["description"],
              "input_schema": t["parameters"]} for t in TOOLS]
    messages = [{"role": "user", "content": "The tests of module 4 fail; find out why."}]
    turns = []
    for turn in range(1, a.turns + 1):
        last = turn == a.turns
        forced = "The failure comes from module 4's handler." if last else forced_call(turn)
        body = {"model": model, "system": system_prompt(a.system_repeat), "messages": messages,
                "tools": tools, "temperature": 0, "max_tokens": a.max_tokens,
                "guided_choice": [forced]}
        r = http.post(url + "/v1/messages", json=body,
                      headers={"anthropic-version": "2023-06-01"})
        r.raise_for_status()
        out = r.json()
        turns.append((out["usage"]["input_tokens"], None))
        after_turn()
        if last:
            break
        uses = [b for b in out["content"] if b["type"] == "tool_use"]
        if out["stop_reason"] != "tool_use" or not uses:
            raise SystemExit(f"messages turn {turn}: expected tool_use, got {out}")
        if rewrite_ids:
            for k, block in enumerate(uses):
                block["id"] = f"client_{turn}_{k}"
        messages.append({"role": "assistant", "content": out["content"]})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": b["id"], "content": tool_result(turn, k)}
            for k, b in enumerate(uses)]})
    return turns


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="server base URL (without /v1)")
    ap.add_argument("--serve", help="v4serve binary to start (instead of --url)")
    ap.add_argument("--gguf", help="model for --serve")
    ap.add_argument("--model", help="model id (default: the server's first)")
    ap.add_argument("--turns", type=int, default=6, help="assistant turns per session (>= 2)")
    ap.add_argument("--system-repeat", type=int, default=40,
                    help="how many times the system prompt's rules repeat (its length)")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--api", choices=["chat", "messages", "responses", "all"], default="all")
    ap.add_argument("--no-replay-baseline", action="store_true",
                    help="also run each session with client-rewritten tool-call ids")
    ap.add_argument("--json", action="store_true", help="print one JSON object per session")
    ap.add_argument("server_args", nargs="*", help="extra `serve` flags after --")
    a = ap.parse_args()
    if a.turns < 2:
        ap.error("--turns must be at least 2")
    proc = None
    url = a.url
    if a.serve:
        args = [a.serve, "serve", "--port", "0", "--log-level", "warn"]
        if a.gguf:
            args += ["--model", a.gguf]
        proc = subprocess.Popen(args + a.server_args, stdout=subprocess.PIPE, text=True)
        for line in proc.stdout:
            m = re.match(r"v4serve: listening on (http://\S+)", line)
            if m:
                url = m.group(1)
                break
        if not url:
            raise SystemExit("the server did not start")
    elif not url:
        ap.error("give --url or --serve")
    try:
        with httpx.Client(timeout=600) as http:
            model = a.model or http.get(url + "/v1/models").json()["data"][0]["id"]
            sessions = {"chat": chat_session, "messages": messages_session,
                        "responses": responses_session}
            names = list(sessions) if a.api == "all" else [a.api]
            modes = [False, True] if a.no_replay_baseline else [False]
            for name in names:
                for rewrite in modes:
                    row = run_session(sessions[name], http, url, model, a, rewrite)
                    row.update({"api": name, "replay": not rewrite})
                    if a.json:
                        print(json.dumps(row))
                    else:
                        print(f"{name:>9} replay={'on ' if not rewrite else 'off'} "
                              f"turns={row['turns']} prompt tokens after turn 1="
                              f"{row['prompt_tokens_after_first']} "
                              f"prefix-cache hit rate={row['hit_rate']:.3f}")
                    sys.stdout.flush()
    finally:
        if proc:
            proc.terminate()
            proc.wait(120)


def responses_session(http, url, model, a, rewrite_ids, after_turn):
    """The session through /v1/responses (store false: the client sends every item back):
    [(input_tokens, cached_tokens)] per turn."""
    tools = [dict(t, type="function") for t in TOOLS]
    items = [{"role": "user", "content": "The tests of module 5 fail; find out why."}]
    turns = []
    for turn in range(1, a.turns + 1):
        last = turn == a.turns
        forced = "The failure comes from module 5's handler." if last else forced_call(turn)
        body = {"model": model, "instructions": system_prompt(a.system_repeat), "input": items,
                "tools": tools, "store": False, "temperature": 0,
                "max_output_tokens": a.max_tokens, "guided_choice": [forced]}
        r = http.post(url + "/v1/responses", json=body)
        r.raise_for_status()
        out = r.json()
        usage = out["usage"]
        turns.append((usage["input_tokens"],
                      (usage.get("input_tokens_details") or {}).get("cached_tokens", 0)))
        after_turn()
        if last:
            break
        calls = [item for item in out["output"] if item["type"] == "function_call"]
        if not calls:
            raise SystemExit(f"responses turn {turn}: expected function calls, got {out}")
        if rewrite_ids:
            for k, item in enumerate(calls):
                item["call_id"] = f"client_{turn}_{k}"
        items += out["output"]
        items += [{"type": "function_call_output", "call_id": item["call_id"],
                   "output": tool_result(turn, k)} for k, item in enumerate(calls)]
    return turns


def run_session(session, http, url, model, a, rewrite_ids):
    """One session; the prefix-cache hits of its turns after the first, from /metrics read
    after each turn (one request at a time, so the difference is that turn's)."""
    metrics = Metrics(url)
    marks = []
    turns = session(http, url, model, a, rewrite_ids, lambda: marks.append(metrics.hits()))
    hits = marks[-1] - marks[0]
    prompt = sum(p for p, _ in turns[1:])
    row = {"turns": len(turns), "prompt_tokens_after_first": prompt,
           "cached_tokens_after_first": hits, "hit_rate": hits / prompt if prompt else 0.0,
           "prompt_tokens_per_turn": [p for p, _ in turns]}
    if all(c is not None for _, c in turns):
        # OpenAI's usage (chat and Responses) reports each turn's cached tokens too.
        row["usage_cached_tokens_after_first"] = sum(c for _, c in turns[1:])
    return row


if __name__ == "__main__":
    main()
