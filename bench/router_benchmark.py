#!/usr/bin/env python3
"""What the gRPC hop costs: time to first token and inter-token latency through `v4serve router`
over one `v4serve worker`, against `v4serve serve` (router and engine in one process), on the
same model and engine flags, in the same run, printed with their ratios (router / serve).

The two forms alternate for --rounds rounds (serve, then router + worker, each started afresh
on loopback ports chosen at run time), so a machine that slows down during the run weighs on
both; each figure is the median over rounds of the round's p50 / p99.

    python bench/router_benchmark.py --v4serve build/apps/v4serve [--gguf MODEL.gguf] \\
        [--concurrency 1,4] [--requests 32] [--prompt-len 64] [--output-len 32] [-- ENGINE FLAGS]
"""

import argparse
import asyncio
import json
import pathlib
import re
import statistics
import subprocess
import sys

import httpx

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from serving_benchmark import make_prompts, percentile, run_level  # noqa: E402


def start(args, pattern):
    """Starts a process and returns it with the address it printed (pattern's group 1)."""
    proc = subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        m = re.match(pattern, line)
        if m:
            return proc, m.group(1)
    proc.wait(60)
    raise SystemExit("%s did not start (exit %s)" % (" ".join(map(str, args[:2])), proc.returncode))


HTTP_LISTENING = r"v4serve: listening on (http://\S+)"


def start_cluster(binary, gguf, workers, engine_args, router_args=()):
    """`workers` worker processes and one router over them; the processes (router first) and
    the router's base URL. A worker that fails to start stops those already started."""
    model = ["--model", gguf] if gguf else []
    procs, addresses = [], []
    try:
        for _ in range(workers):
            worker, address = start([binary, "worker", "--listen", "127.0.0.1:0", "--log-level",
                                     "warn", *model, *engine_args],
                                    r"v4serve: worker listening on (\S+)")
            procs.append(worker)
            addresses.append(address)
        router, url = start([binary, "router", "--port", "0", "--log-level", "warn", "--workers",
                             ",".join(addresses), *model, *router_args], HTTP_LISTENING)
    except BaseException:
        stop(procs)
        raise
    return [router, *procs], url


def start_form(form, binary, gguf, engine_args):
    """The processes of `form` ("serve" or "router" over one worker) and its base URL."""
    if form == "serve":
        model = ["--model", gguf] if gguf else []
        proc, url = start([binary, "serve", "--port", "0", "--log-level", "warn", *model,
                           *engine_args], HTTP_LISTENING)
        return [proc], url
    return start_cluster(binary, gguf, 1, engine_args)


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(120)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(30)


def measure(url, prompts, output_len, concurrency):
    model = httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["id"]
    asyncio.run(run_level(url, model, prompts[:concurrency], output_len, concurrency))  # warm-up
    _, record, _ = asyncio.run(run_level(url, model, prompts, output_len, concurrency))
    ttft = [r["ttft"] for r in record]
    itl = [g for r in record for g in r["gaps"]]
    return {"ttft_p50_ms": 1e3 * percentile(ttft, 50), "ttft_p99_ms": 1e3 * percentile(ttft, 99),
            "itl_p50_ms": 1e3 * percentile(itl, 50), "itl_p99_ms": 1e3 * percentile(itl, 99)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--v4serve", required=True, help="the v4serve binary")
    ap.add_argument("--gguf", help="model (default: the tiny synthetic model)")
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--requests", type=int, default=32, help="requests per level and round")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--output-len", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print one JSON object per level")
    ap.add_argument("engine_args", nargs="*", help="engine flags for serve and worker, after --")
    a = ap.parse_args()
    levels = [int(x) for x in a.concurrency.split(",") if x.isdigit() and int(x) > 0]
    if len(levels) != len(a.concurrency.split(",")):
        ap.error(f"--concurrency: {a.concurrency!r} is not a list of positive integers")
    if min(a.requests, a.prompt_len, a.output_len, a.rounds) < 1:
        ap.error("--requests, --prompt-len, --output-len and --rounds must be positive")
    figures = {(form, level): [] for form in ("serve", "router") for level in levels}
    for round_index in range(a.rounds):
        for form in ("serve", "router"):
            procs, url = start_form(form, a.v4serve, a.gguf, a.engine_args)
            try:
                for level in levels:
                    prompts = make_prompts(a.requests, a.prompt_len, 1000 * round_index + level)
                    figures[(form, level)].append(measure(url, prompts, a.output_len, level))
            finally:
                stop(procs)
    keys = ("ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms")
    if not a.json:
        print(f"{'concurrency':>11} {'form':>7} " + " ".join(f"{k[:-3]:>12}" for k in keys))
    for level in levels:
        row = {"concurrency": level}
        for form in ("serve", "router"):
            row[form] = {k: statistics.median(f[k] for f in figures[(form, level)]) for k in keys}
        row["ratio"] = {k: row["router"][k] / row["serve"][k] for k in keys}
        if a.json:
            print(json.dumps(row))
            continue
        for form in ("serve", "router"):
            print(f"{level:>11} {form:>7} " + " ".join(f"{row[form][k]:>10.2f}ms" for k in keys))
        print(f"{level:>11} {'ratio':>7} " + " ".join(f"{row['ratio'][k]:>11.3f}x" for k in keys))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
