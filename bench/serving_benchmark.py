#!/usr/bin/env python3
"""Load benchmark of an OpenAI-compatible server (in the manner of vLLM's serving benchmark).

For each concurrency level it sends N streamed completion requests with random-token prompts
of a fixed length and a fixed output length (ignore_eos), keeping `concurrency` in flight, and
reports requests/s, output tokens/s, and p50 / p99 time to first token and inter-token latency
as a client measures them. When the server is v4serve, it also reports the server's own
overhead per request (HTTP parsing and writing, JSON, rendering, tokenization and
detokenization; not network or engine time), read from /metrics before and after each level.

    python bench/serving_benchmark.py --url http://127.0.0.1:8000 --model tiny \\
        --concurrency 1,4,16,64 --requests 64 --prompt-len 128 --output-len 32

Or let it start the server itself: --serve BUILD/apps/v4serve --gguf MODEL.gguf [-- ARGS].
"""

import argparse
import asyncio
import json
import random
import re
import statistics
import subprocess
import sys
import time

import httpx
import openai


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def overhead_totals(url):
    """(sum, count) of v4serve:request_overhead_seconds, or None for other servers."""
    try:
        text = httpx.get(url + "/metrics", timeout=30).text
    except httpx.HTTPError:
        return None
    total = count = None
    for line in text.splitlines():
        m = re.match(r"^v4serve:request_overhead_seconds_(sum|count)(\{[^}]*\})?\s+(\S+)$", line)
        if m:
            if m.group(1) == "sum":
                total = float(m.group(3))
            else:
                count = float(m.group(3))
    return None if total is None or count is None else (total, count)


async def one_request(client, model, prompt, output_len, record):
    start = time.perf_counter()
    first = None
    last = None
    gaps = []
    tokens = 0
    stream = await client.completions.create(
        model=model, prompt=prompt, max_tokens=output_len, temperature=0, stream=True,
        extra_body={"ignore_eos": True})
    async for chunk in stream:
        if not chunk.choices or not chunk.choices[0].text:
            continue
        now = time.perf_counter()
        if first is None:
            first = now
        else:
            gaps.append(now - last)
        last = now
        tokens += 1
    end = time.perf_counter()
    record.append({"ttft": (first or end) - start, "gaps": gaps, "latency": end - start,
                   "chunks": tokens})


async def run_level(url, model, prompts, output_len, concurrency):
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="bench", max_retries=0,
                                timeout=3600, http_client=None)
    record = []
    queue = list(prompts)
    usage_tokens = 0

    async def worker():
        while queue:
            prompt = queue.pop()
            await one_request(client, model, prompt, output_len, record)

    start = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    seconds = time.perf_counter() - start
    await client.close()
    usage_tokens = len(prompts) * output_len
    return seconds, record, usage_tokens


def make_prompts(count, length, seed):
    """Token-id prompts, so every prompt has exactly `length` tokens; ids avoid the special
    range at the top of the vocabulary."""
    rng = random.Random(seed)
    return [[rng.randrange(100, 100000) for _ in range(length)] for _ in range(count)]


def start_server(binary, gguf, extra):
    args = [binary, "serve", "--port", "0", "--log-level", "warn"]
    if gguf:
        args += ["--model", gguf]
    proc = subprocess.Popen(args + extra, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        m = re.match(r"v4serve: listening on (http://\S+)", line)
        if m:
            return proc, m.group(1)
    raise SystemExit("the server did not start")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="server base URL (without /v1)")
    ap.add_argument("--serve", help="v4serve binary to start (instead of --url)")
    ap.add_argument("--gguf", help="model for --serve (default: the tiny synthetic model)")
    ap.add_argument("--model", help="model id (default: the server's first)")
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--requests", type=int, default=64, help="requests per level")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object per level")
    ap.add_argument("server_args", nargs="*", help="extra `serve` flags after --")
    a = ap.parse_args()
    levels = []
    for item in a.concurrency.split(","):
        if not item.isdigit() or int(item) < 1:
            ap.error(f"--concurrency: {item!r} is not a positive integer")
        levels.append(int(item))
    if a.requests < 1 or a.prompt_len < 1 or a.output_len < 1:
        ap.error("--requests, --prompt-len and --output-len must be positive")
    proc = None
    url = a.url
    if a.serve:
        proc, url = start_server(a.serve, a.gguf, a.server_args)
    elif not url:
        ap.error("give --url or --serve")
    try:
        model = a.model or httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["id"]
        if not a.json:
            print(f"{'concurrency':>11} {'req/s':>8} {'out tok/s':>10} {'TTFT p50':>10} "
                  f"{'TTFT p99':>10} {'ITL p50':>9} {'ITL p99':>9} {'overhead/req':>13}")
        for level in levels:
            prompts = make_prompts(a.requests, a.prompt_len, a.seed + level)
            before = overhead_totals(url)
            seconds, record, out_tokens = asyncio.run(
                run_level(url, model, prompts, a.output_len, level))
            after = overhead_totals(url)
            ttft = [r["ttft"] for r in record]
            itl = [g for r in record for g in r["gaps"]]
            overhead = None
            if before and after and after[1] > before[1]:
                overhead = (after[0] - before[0]) / (after[1] - before[1])
            row = {"concurrency": level, "requests_per_s": len(record) / seconds,
                   "output_tokens_per_s": out_tokens / seconds,
                   "ttft_p50_ms": 1e3 * percentile(ttft, 50),
                   "ttft_p99_ms": 1e3 * percentile(ttft, 99),
                   "itl_p50_ms": 1e3 * percentile(itl, 50),
                   "itl_p99_ms": 1e3 * percentile(itl, 99),
                   "mean_latency_s": statistics.mean(r["latency"] for r in record),
                   "server_overhead_ms_per_request":
                       None if overhead is None else 1e3 * overhead}
            if a.json:
                print(json.dumps(row))
            else:
                oh = "n/a" if overhead is None else f"{1e3 * overhead:.3f} ms"
                print(f"{level:>11} {row['requests_per_s']:>8.2f} "
                      f"{row['output_tokens_per_s']:>10.2f} {row['ttft_p50_ms']:>8.1f}ms "
                      f"{row['ttft_p99_ms']:>8.1f}ms {row['itl_p50_ms']:>7.1f}ms "
                      f"{row['itl_p99_ms']:>7.1f}ms {oh:>13}")
            sys.stdout.flush()
    finally:
        if proc:
            proc.terminate()
            proc.wait(120)


if __name__ == "__main__":
    main()
