#!/usr/bin/env python3
"""What speculative decoding gains on the CPU engine: `v4serve bench-engine` with 0 to 3 MTP
drafts per step, at concurrency 1 and 16, on four synthetic models of one preset: the MTP block
in ds4's separate file and in the llama.cpp layout, each with random MTP weights and with an
MTP block that agrees with the main model (`gen-model --mtp-agrees`, docs/design.md). Random
MTP weights show the mechanism's overhead (drafts almost never accepted); the agreeing block
shows its ceiling. Within one bench-engine run every draft count runs the same requests, and
the speed-up is relative to 0 drafts measured in that same run. It prints, per model and
concurrency, output tokens/s, the speed-up and the share of steps whose draft at position p
was accepted.

    python bench/speculative_benchmark.py --v4serve build/apps/v4serve [--preset small] \\
        [--recipe ds4-q4] [--dir /tmp/spec-models] [--output-len 64]
"""

import argparse
import pathlib
import re
import subprocess
import sys

ROW = re.compile(r"^(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)\s+(.*)$")


def generate(v4serve, out, preset, recipe, layout, agrees, vocab):
    cut = f"-v{vocab}" if vocab else ""
    main = out / f"{preset}{cut}-{recipe}-{layout}{'-agrees' if agrees else ''}.gguf"
    mtp = main.with_name(main.stem + "-mtp.gguf") if layout == "ds4" else None
    if not main.exists():
        cmd = [v4serve, "gen-model", "--preset", preset, "--recipe", recipe, "--mtp", layout,
               "--out", main, "--quiet"]
        if agrees:
            cmd.append("--mtp-agrees")
        if vocab:
            cmd += ["--vocab", vocab]
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True)
    return main, mtp


def bench(v4serve, main, mtp, level, requests, args):
    cmd = [v4serve, "bench-engine", "--model", main, "--concurrency", level, "-n", requests,
           "--prompt-len", args.prompt_len, "--output-len", args.output_len,
           "--speculative-tokens", "0,1,2,3", "--kv-memory", args.kv_memory,
           "--speculative-max-batch", args.speculative_max_batch]
    if mtp:
        cmd += ["--mtp", mtp]
    out = subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = ROW.match(line.strip())
        if m:
            rows.append((int(m.group(2)), float(m.group(4)), float(m.group(5)), m.group(9)))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--v4serve", default="build/apps/v4serve")
    p.add_argument("--preset", default="small")
    p.add_argument("--recipe", default="ds4-q4")
    p.add_argument("--dir", default="/tmp/v4serve-spec-models")
    p.add_argument("--prompt-len", type=int, default=16)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--kv-memory", type=int, default=512)
    p.add_argument("--requests-1", type=int, default=4, help="requests at concurrency 1")
    p.add_argument("--requests-16", type=int, default=32, help="requests at concurrency 16")
    p.add_argument("--vocab", type=int, default=0,
                   help="cut the vocabulary (0: the preset's); a smaller output head shows the "
                        "gain where the layers, not the head, dominate a step")
    p.add_argument("--speculative-max-batch", type=int, default=0,
                   help="bench-engine's batch limit for drafts (0: none, the mechanism's raw "
                        "cost; serve's default is 1)")
    p.add_argument("--layouts", default="ds4,lcpp")
    p.add_argument("--mtp", default="random,agreeing")
    args = p.parse_args()
    out = pathlib.Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"preset {args.preset}, recipe {args.recipe}, vocab {args.vocab or 'full'}, greedy, prompt {args.prompt_len} tokens, "
          f"output {args.output_len} tokens")
    print(f"{'model':<22} {'conc':>4} {'drafts':>6} {'tok/s':>8} {'speed-up':>8}  accepted per position")
    for layout in args.layouts.split(","):
        for agrees in (kind == "agreeing" for kind in args.mtp.split(",")):
            main_path, mtp = generate(args.v4serve, out, args.preset, args.recipe, layout, agrees,
                                      args.vocab)
            name = f"{layout} {'agreeing' if agrees else 'random'} MTP"
            for level, n in ((1, args.requests_1), (16, args.requests_16)):
                for drafts, rate, speedup, accepted in bench(args.v4serve, main_path, mtp, level,
                                                             n, args):
                    print(f"{name:<22} {level:>4} {drafts:>6} {rate:>8.2f} {speedup:>8.3f}  "
                          f"{accepted}")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
