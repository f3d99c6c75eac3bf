#!/usr/bin/env python3
"""What one `v4serve router` does with several `v4serve worker` processes, on loopback ports
chosen at run time (bench/router_benchmark.py has the gRPC hop's TTFT and ITL against `serve`):

  throughput  requests/s one router sustains over 1, 2 and 4 workers (short requests, high
              concurrency, a fixed request count), with the ratio to 1 worker;
  batching    the same load with one request per Submit message (--batch-max 1), with the
              default --batch-window-us 0 (each message carries what queued while the last was
              written) and with a window: Submit messages per request (the router's
              v4serve:router_submit_messages_total / router_submitted_requests_total),
              requests/s and TTFT p50;
  prefix      multi-turn conversations (each turn's prompt is the previous turns, their replies
              and a new user message) through the chat API with the `openai` SDK, over 4
              workers routed by prefix affinity, over 4 routed round-robin, and over 1 worker:
              the workers' prefix-cache hit rate (their Stats counters, which the router sums
              into v4serve:prefix_cache_hits_total / prefix_cache_queries_total), and
              affinity's hits as a fraction of one worker's (the cache's best case).

Every process is started afresh per configuration and stopped at its end; each configuration's
load is bounded in time (--timeout-s), and so is each conversation turn. Workers and router share this machine's cores, so on a small machine the
throughput figure measures the router's overhead and how it scales here, not capacity.

    python bench/router_scaling.py --v4serve build/apps/v4serve [--gguf MODEL.gguf] \\
        [--sections throughput,batching,prefix] [--json] [-- ENGINE FLAGS]
"""

import argparse
import asyncio
import concurrent.futures
import json
import os
import pathlib
import random
import re
import statistics
import sys
import time

import httpx
import openai

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from router_benchmark import start_cluster, stop  # noqa: E402
from serving_benchmark import make_prompts, percentile, run_level  # noqa: E402

SECTIONS = ("throughput", "batching", "prefix")


def scrape(url):
    """The router's /metrics as {metric name: sum of its series' values} (the counters read
    here carry at most a model_name label, so the sum is the one series)."""
    out = {}
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", line)
        if m:
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


def model_id(url):
    return httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["id"]


def load(url, a, seed):
    """The short-request load: warm-up, then a.requests requests at a.concurrency; requests/s,
    TTFT p50, and the Submit counters' growth over the measured part."""
    model = model_id(url)
    prompts = make_prompts(a.requests, a.prompt_len, seed)

    def bounded(level_prompts):
        return asyncio.run(asyncio.wait_for(
            run_level(url, model, level_prompts, a.output_len, a.concurrency), a.timeout_s))

    bounded(prompts[:a.concurrency])  # warm-up
    before = scrape(url)
    seconds, record, _ = bounded(prompts)
    after = scrape(url)

    def grew(name):
        return after.get(name, 0.0) - before.get(name, 0.0)

    messages = grew("v4serve:router_submit_messages_total")
    requests = grew("v4serve:router_submitted_requests_total")
    return {"requests_per_s": len(record) / seconds,
            "ttft_p50_ms": 1e3 * percentile([r["ttft"] for r in record], 50),
            "submit_messages": messages, "submitted_requests": requests,
            "messages_per_request": messages / requests if requests else float("nan")}


def medians(rounds):
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def throughput(a):
    rows = []
    for workers in (1, 2, 4):
        rounds = []
        for i in range(a.rounds):
            procs, url = start_cluster(a.v4serve, a.gguf, workers, a.engine_args)
            try:
                rounds.append(load(url, a, 1000 * i + workers))
            finally:
                stop(procs)
        m = medians(rounds)
        rows.append({"workers": workers, "requests_per_s": m["requests_per_s"],
                     "ttft_p50_ms": m["ttft_p50_ms"]})
    for r in rows:
        r["ratio_to_1_worker"] = r["requests_per_s"] / rows[0]["requests_per_s"]
    return {"section": "throughput", "cores": os.cpu_count(), "requests": a.requests,
            "concurrency": a.concurrency, "prompt_len": a.prompt_len,
            "output_len": a.output_len, "rows": rows}


def batching(a):
    forms = [("batch-max 1", ["--batch-window-us", "0", "--batch-max", "1"]),
             ("window 0 (default)", ["--batch-window-us", "0"]),
             (f"window {a.batch_window_us}us", ["--batch-window-us", str(a.batch_window_us)])]
    rows = []
    for name, router_args in forms:
        rounds = []
        for i in range(a.rounds):
            procs, url = start_cluster(a.v4serve, a.gguf, a.batching_workers, a.engine_args,
                                       router_args)
            try:
                rounds.append(load(url, a, 2000 + 1000 * i))
            finally:
                stop(procs)
        rows.append({"form": name, "router_args": router_args, **medians(rounds)})
    return {"section": "batching", "workers": a.batching_workers, "requests": a.requests,
            "concurrency": a.concurrency, "rows": rows}


WORDS = ("agent tool call result file patch test build error log trace shell read write plan "
         "step check diff repo branch commit config value output input query answer").split()


def text(rng, words):
    return " ".join(rng.choice(WORDS) for _ in range(words))


def conversation(url, model, index, a):
    """One conversation's turns, in order; each prompt carries the whole conversation so far."""
    rng = random.Random(index)
    client = openai.OpenAI(base_url=url + "/v1", api_key="bench", max_retries=0,
                           timeout=a.timeout_s)
    # A system prompt of its own, so conversations share no prefix and every hit is their own.
    messages = [{"role": "system",
                 "content": f"Conversation {index}. " + text(rng, a.system_words)}]
    for turn in range(a.turns):
        messages.append({"role": "user", "content": f"Turn {turn}: " + text(rng, a.user_words)})
        out = client.chat.completions.create(model=model, messages=messages,
                                             max_tokens=a.reply_len, temperature=0,
                                             extra_body={"ignore_eos": True})
        messages.append({"role": "assistant", "content": out.choices[0].message.content or ""})


def replay(url, a):
    """All conversations at once (each one's turns in order); the prefix counters' growth."""
    model = model_id(url)
    before = scrape(url)
    with concurrent.futures.ThreadPoolExecutor(a.conversations) as pool:
        for f in [pool.submit(conversation, url, model, s, a) for s in range(a.conversations)]:
            f.result(timeout=a.timeout_s)
    # The router learns the workers' counters from their Stats, every --health-interval-ms.
    time.sleep(1.0)
    after = scrape(url)
    # The series appear with the first Stats answers, so a fresh router may not have them yet.
    hits = (after["v4serve:prefix_cache_hits_total"]
            - before.get("v4serve:prefix_cache_hits_total", 0.0))
    queries = (after["v4serve:prefix_cache_queries_total"]
               - before.get("v4serve:prefix_cache_queries_total", 0.0))
    return {"hit_tokens": hits, "query_tokens": queries,
            "hit_rate": hits / queries if queries else float("nan")}


def prefix(a):
    forms = [("affinity", 4, ["--routing", "affinity"]),
             ("round-robin", 4, ["--routing", "round-robin"]),
             ("single worker", 1, [])]
    rows = []
    for name, workers, router_args in forms:
        procs, url = start_cluster(a.v4serve, a.gguf, workers, a.engine_args,
                                   [*router_args, "--health-interval-ms", "100"])
        try:
            rows.append({"form": name, "workers": workers, **replay(url, a)})
        finally:
            stop(procs)
    single = rows[-1]["hit_tokens"]
    for r in rows:
        r["hits_vs_single_worker"] = r["hit_tokens"] / single if single else float("nan")
    return {"section": "prefix", "conversations": a.conversations, "turns": a.turns, "rows": rows}


def print_text(result):
    s = result["section"]
    if s == "throughput":
        print(f"throughput: {result['requests']} requests, concurrency {result['concurrency']}, "
              f"{result['prompt_len']} prompt + {result['output_len']} output tokens")
        print(f"  router and workers share this machine's {result['cores']} cores: the figure "
              "measures the router's overhead and scaling here, not capacity")
        print(f"  {'workers':>7} {'requests/s':>11} {'vs 1':>7} {'ttft p50':>10}")
        for r in result["rows"]:
            print(f"  {r['workers']:>7} {r['requests_per_s']:>11.1f} "
                  f"{r['ratio_to_1_worker']:>6.2f}x {r['ttft_p50_ms']:>8.2f}ms")
    elif s == "batching":
        print(f"batching: {result['requests']} requests, concurrency {result['concurrency']}, "
              f"{result['workers']} worker(s)")
        print(f"  {'form':>20} {'messages/request':>17} {'requests/s':>11} {'ttft p50':>10}")
        for r in result["rows"]:
            print(f"  {r['form']:>20} {r['messages_per_request']:>17.3f} "
                  f"{r['requests_per_s']:>11.1f} {r['ttft_p50_ms']:>8.2f}ms")
    else:
        print(f"prefix cache: {result['conversations']} conversations x {result['turns']} turns "
              "(chat API), hit rate = prompt tokens found / looked up, on the workers")
        print(f"  {'form':>14} {'workers':>7} {'hit rate':>9} {'hit tokens':>11} "
              f"{'vs 1 worker':>12}")
        for r in result["rows"]:
            print(f"  {r['form']:>14} {r['workers']:>7} {r['hit_rate']:>9.3f} "
                  f"{int(r['hit_tokens']):>11} {r['hits_vs_single_worker']:>11.1%}")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--v4serve", required=True, help="the v4serve binary")
    ap.add_argument("--gguf", help="model (default: the tiny synthetic model)")
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--requests", type=int, default=256, help="requests per configuration")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--output-len", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1, help="rounds per configuration (median)")
    ap.add_argument("--batching-workers", type=int, default=1)
    ap.add_argument("--batch-window-us", type=int, default=1000, help="the window compared")
    ap.add_argument("--conversations", type=int, default=32)
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--system-words", type=int, default=400,
                    help="words of each conversation's system prompt (KV pages are 256 tokens)")
    ap.add_argument("--user-words", type=int, default=60)
    ap.add_argument("--reply-len", type=int, default=32, help="tokens per assistant reply")
    ap.add_argument("--timeout-s", type=float, default=900,
                    help="bound on each configuration's load, and on one turn's request")
    ap.add_argument("--json", action="store_true", help="print one JSON object per section")
    ap.add_argument("engine_args", nargs="*", help="worker engine flags, after --")
    a = ap.parse_args()
    sections = a.sections.split(",")
    if not sections or any(s not in SECTIONS for s in sections):
        ap.error(f"--sections: a comma-separated subset of {','.join(SECTIONS)}")
    counts = (a.requests, a.concurrency, a.prompt_len, a.output_len, a.rounds,
              a.batching_workers, a.conversations, a.turns, a.system_words, a.user_words, a.reply_len)
    if min(counts) < 1 or a.batch_window_us < 1 or a.timeout_s <= 0:
        ap.error("counts, lengths and --batch-window-us must be positive")
    for s in sections:
        result = {"throughput": throughput, "batching": batching, "prefix": prefix}[s](a)
        if a.json:
            print(json.dumps(result))
            sys.stdout.flush()
        else:
            print_text(result)


if __name__ == "__main__":
    main()
