#!/usr/bin/env python3
"""What expert parallelism costs and moves: `serve` (every expert in one process) against worker
groups of N ranks (`v4serve worker --group`, processes on loopback, the routed experts sharded
across them, Gloo all-to-all every MoE layer) behind one router, under the same closed-loop
load. For each configuration it prints

  tok/s        output tokens per second;
  dispatch B   bytes the ranks sent to other ranks per token per MoE layer (token rows to the
               experts' owners: n_embd floats plus expert id and weight per selected expert
               owned elsewhere), beside the bound k·(n_embd+2)·4·(N−1)/N for uniform routing;
  combine B    the same for the results coming back (n_embd floats per pair);
  comm share   the MoE exchanges' dispatch + combine time over the ranks' step time (what the
               forward waited for: with overlap, only the part its own work did not hide);
  experts      the share of step time in the experts themselves;
  hidden       exchange time that ran while the ranks computed (the shared expert during the
               dispatch, their own rows during the combine), over the step time.

Each group size runs with the exchanges beside the compute (the default, `--expert-overlap`)
and inline (`--expert-overlap false`), so the two can be compared in one run; with
`--micro-batches`, also in two micro-batches (`--two-micro-batches`: each layer's exchange of
one half of the step beside the other half's attention).

The figures come from the router's /metrics (v4serve:ep_alltoall_bytes_total,
v4serve:ep_moe_phase_seconds_total, v4serve:ep_overlapped_seconds_total, summed over the
ranks). All processes share this machine's
cores, so on a small machine the times measure contention as much as communication; the byte
counts do not depend on the machine.

    python bench/expert_parallel_benchmark.py --v4serve build/apps/v4serve [--gguf MODEL] \\
        [--ranks 1,2,4] [--overlap both|on|off] [--micro-batches] [--requests 32]
        [--concurrency 8] [--json]
"""

import argparse
import asyncio
import json
import pathlib
import re
import socket
import subprocess
import sys
import threading
import time

import httpx

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from router_benchmark import HTTP_LISTENING, start, stop  # noqa: E402
from serving_benchmark import make_prompts, run_level  # noqa: E402

WORKER_LISTENING = r"v4serve: worker listening on (\S+)"


def model_shape(gguf):
    """(MoE layers, n_embd, experts per token) from the file's metadata (ggml's gguf reader)."""
    import gguf as gguf_py
    reader = gguf_py.GGUFReader(gguf)

    def value(key):
        field = reader.fields[key]
        return int(field.parts[field.data[0]][0])

    return (value("deepseek4.block_count"), value("deepseek4.embedding_length"),
            value("deepseek4.expert_used_count"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_group(binary, gguf, ranks, engine_args, timeout_s):
    """The ranks of one group, started together; (processes, their addresses)."""
    leader = "127.0.0.1:%d" % free_port()
    procs, found = [], {}
    try:
        for r in range(ranks):
            procs.append(subprocess.Popen(
                [str(binary), "worker", "--model", str(gguf), "--listen", "127.0.0.1:0",
                 "--log-level", "warn", "--group", "bench", "--rank", str(r), "--ranks",
                 str(ranks), "--group-leader", leader, *engine_args],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))

        def read(r):
            for line in procs[r].stdout:
                m = re.match(WORKER_LISTENING, line)
                if m:
                    found[r] = m.group(1)
                    return

        readers = [threading.Thread(target=read, args=(r,), daemon=True) for r in range(ranks)]
        for t in readers:
            t.start()
        for t in readers:
            t.join(timeout_s)
        if len(found) != ranks:
            raise SystemExit("the group of %d ranks did not start" % ranks)
    except BaseException:
        stop(procs)
        raise
    return procs, [found[r] for r in range(ranks)]


def scrape(url):
    """The router's /metrics: {(name, labels): value}."""
    out = {}
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$", line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


HEALTH_INTERVAL_MS = 100  # the router's Stats poll: ranks' counters reach /metrics this late


def settled_scrape(url, timeout_s=30.0):
    """/metrics once the ranks' counters have stopped moving. The router learns them from each
    worker's Stats, polled every HEALTH_INTERVAL_MS and not at the same moment for every rank: a
    scrape right after the last response can hold one rank's latest layers but not its peer's,
    and dispatch and combine then disagree. Two equal scrapes several polls apart are whole."""
    def moving(metrics):
        return {k: v for k, v in metrics.items() if k[0].startswith("v4serve:ep_")
                or k[0] == "v4serve:step_duration_seconds_sum"}

    last = moving(scrape(url))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(5 * HEALTH_INTERVAL_MS / 1000)
        metrics = scrape(url)
        if moving(metrics) == last:
            return metrics
        last = moving(metrics)
    raise RuntimeError("the ranks' counters did not settle within %.0f s" % timeout_s)


def total(metrics, name, label=""):
    return sum(v for (n, labels), v in metrics.items() if n == name and label in labels)


def measure(url, a):
    model = httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["id"]
    prompts = make_prompts(a.requests, a.prompt_len, 7)

    def bounded(level):
        return asyncio.run(asyncio.wait_for(
            run_level(url, model, level, a.output_len, a.concurrency), a.timeout_s))

    bounded(prompts[:a.concurrency])  # warm-up
    before = settled_scrape(url)
    seconds, record, _ = bounded(prompts)
    after = settled_scrape(url)

    def grew(name, label=""):
        return total(after, name, label) - total(before, name, label)

    return {"seconds": seconds, "requests": len(record),
            "tokens": grew("v4serve:prompt_tokens_total") + grew("v4serve:generation_tokens_total"),
            "output_tokens": grew("v4serve:generation_tokens_total"),
            "step_seconds": grew("v4serve:step_duration_seconds_sum"),
            "dispatch_bytes": grew("v4serve:ep_alltoall_bytes_total", 'direction="dispatch"'),
            "combine_bytes": grew("v4serve:ep_alltoall_bytes_total", 'direction="combine"'),
            "dispatch_s": grew("v4serve:ep_moe_phase_seconds_total", 'phase="dispatch"'),
            "experts_s": grew("v4serve:ep_moe_phase_seconds_total", 'phase="experts"'),
            "combine_s": grew("v4serve:ep_moe_phase_seconds_total", 'phase="combine"'),
            "overlapped_s": grew("v4serve:ep_overlapped_seconds_total")}


def run_config(a, ranks, overlap=True, micro=False):
    engine = ["--threads", str(a.threads), *a.engine_args]
    if ranks == 0:
        procs, url = start([a.v4serve, "serve", "--port", "0", "--log-level", "warn", "--model",
                            a.gguf, *engine], HTTP_LISTENING)
        procs = [procs]
    else:
        group_engine = engine + ([] if overlap else ["--expert-overlap", "false"]) + (
            ["--two-micro-batches", "true"] if micro else [])
        procs, addresses = start_group(a.v4serve, a.gguf, ranks, group_engine, a.timeout_s)
        try:
            router, url = start([a.v4serve, "router", "--port", "0", "--log-level", "warn",
                                 "--model", a.gguf, "--workers", ",".join(addresses),
                                 "--health-interval-ms", str(HEALTH_INTERVAL_MS)],
                                HTTP_LISTENING)
        except BaseException:
            stop(procs)
            raise
        procs = [router, *procs]
    try:
        return measure(url, a)
    finally:
        stop(procs)


def row(a, ranks, overlap, micro, m, shape):
    layers, n_embd, k = shape
    per = m["tokens"] * layers
    form = "serve" if ranks == 0 else "%d ranks%s%s" % (
        ranks, "" if overlap else ", inline", ", 2 micro" if micro else "")
    row = {"form": form, "ranks": max(ranks, 1), "overlap": overlap, "micro_batches": 2 if micro else 1,
           "output_tok_s": m["output_tokens"] / m["seconds"],
           "dispatch_bytes_per_token_layer": m["dispatch_bytes"] / per if per else 0.0,
           "combine_bytes_per_token_layer": m["combine_bytes"] / per if per else 0.0,
           "uniform_bound_dispatch": k * (n_embd + 2) * 4 * (ranks - 1) / ranks if ranks else 0.0,
           "comm_share": (m["dispatch_s"] + m["combine_s"]) / m["step_seconds"]
           if m["step_seconds"] else 0.0,
           "experts_share": m["experts_s"] / m["step_seconds"] if m["step_seconds"] else 0.0,
           "hidden_share": m["overlapped_s"] / m["step_seconds"] if m["step_seconds"] else 0.0}
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--v4serve", required=True)
    p.add_argument("--gguf", help="model (default: the tiny synthetic model, generated)")
    p.add_argument("--ranks", default="1,2,4")
    p.add_argument("--overlap", choices=["both", "on", "off"], default="both",
                   help="groups with the exchanges beside the compute, inline, or each")
    p.add_argument("--micro-batches", action="store_true",
                   help="also run each group of 2 or more ranks in two micro-batches")
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--output-len", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="engine threads per process")
    p.add_argument("--timeout-s", type=float, default=600)
    p.add_argument("--json", action="store_true")
    p.add_argument("engine_args", nargs="*", help="after --: more engine flags")
    a = p.parse_args()
    if not a.gguf:
        a.gguf = str(pathlib.Path(a.v4serve).resolve().parent / "ep-bench-tiny.gguf")
        if not pathlib.Path(a.gguf).exists():
            subprocess.run([a.v4serve, "gen-model", "--preset", "tiny", "--out", a.gguf],
                           check=True, capture_output=True)
    shape = model_shape(a.gguf)
    modes = {"both": [True, False], "on": [True], "off": [False]}[a.overlap]
    configs = [(0, True, False)] + [(int(r), o, False) for r in a.ranks.split(",") for o in modes]
    if a.micro_batches:
        configs += [(int(r), True, True) for r in a.ranks.split(",") if int(r) > 1]
    rows = [row(a, r, o, m, run_config(a, r, o, m), shape) for r, o, m in configs]
    base = rows[0]["output_tok_s"]
    for r in rows:
        r["ratio_to_serve"] = r["output_tok_s"] / base if base else float("nan")
    result = {"model": a.gguf, "moe_layers": shape[0], "n_embd": shape[1], "experts_per_token":
              shape[2], "requests": a.requests, "concurrency": a.concurrency, "rows": rows}
    if a.json:
        print(json.dumps(result))
        return
    print("model %s: %d MoE layers, n_embd %d, %d experts per token; %d requests at "
          "concurrency %d" % (a.gguf, shape[0], shape[1], shape[2], a.requests, a.concurrency))
    print("%-24s %9s %7s %12s %12s %12s %10s %8s %8s" % (
        "form", "tok/s", "ratio", "dispatch B", "uniform B", "combine B", "comm", "experts",
        "hidden"))
    for r in rows:
        print("%-24s %9.1f %7.3f %12.0f %12.0f %12.0f %9.1f%% %7.1f%% %7.1f%%" % (
            r["form"], r["output_tok_s"], r["ratio_to_serve"],
            r["dispatch_bytes_per_token_layer"], r["uniform_bound_dispatch"],
            r["combine_bytes_per_token_layer"], 100 * r["comm_share"], 100 * r["experts_share"],
            100 * r["hidden_share"]))


if __name__ == "__main__":
    main()
