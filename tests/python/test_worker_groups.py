"""Expert-parallel worker groups as real processes on loopback: the ranks of a group shard the
routed experts (Gloo all-to-all every MoE layer), each rank runs its own requests, and the
router sees every rank as a worker. Against `serve` on the same tiny model (every expert in one
process, different chunking): groups of 1, 2 and 4 ranks give the same tokens and the same
logprobs bit for bit, greedy and seeded, with chunked prefill (--max-batch-tokens 16), with
ranks idle while others run (requests one at a time), and with the exchanges beside the ranks'
compute or inline (--expert-overlap false), and in two micro-batches (--two-micro-batches: one
half's exchanges beside the other half's attention). A rank killed mid-run takes its whole
group down within seconds (no collective hangs) and the router finishes every request on the
remaining worker with unchanged tokens."""

import concurrent.futures
import pathlib
import re
import signal
import subprocess
import sys
import time

import httpx
import openai
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from cluster import Cluster, startup_phases  # noqa: E402
from server import Server  # noqa: E402

N_REQUESTS = 16
MAX_TOKENS = 8
CHUNKED = ["--max-batch-tokens", "16"]


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


def request_kwargs(i):
    kwargs = dict(prompt="Group request %d: %s" % (i, "lorem ipsum dolor " * (1 + i % 5)),
                  max_tokens=MAX_TOKENS, logprobs=2, extra_body={"ignore_eos": True})
    if i % 2:
        kwargs.update(temperature=0.8, top_p=0.9, seed=500 + i)
    else:
        kwargs.update(temperature=0.0)
    return kwargs


def one(base_url, i):
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=300)
    name = client.models.list().data[0].id
    c = client.completions.create(model=name, **request_kwargs(i)).choices[0]
    return c.text, c.finish_reason, c.logprobs.tokens, c.logprobs.token_logprobs, c.logprobs.top_logprobs


def run(base_url, parallel=True, during=None):
    if not parallel:
        return [one(base_url, i) for i in range(N_REQUESTS)]
    with concurrent.futures.ThreadPoolExecutor(N_REQUESTS) as pool:
        futures = [pool.submit(one, base_url, i) for i in range(N_REQUESTS)]
        if during:
            during()
        return [f.result(timeout=600) for f in futures]


@pytest.fixture(scope="module")
def reference(v4serve, model):
    with Server(v4serve, model, "--threads", "1", "--kv-memory", "256") as server:
        results = run(server.base_url)
    for r in results:
        assert r[1] == "length" and r[0]
    return results


def routed_per_worker(cluster):
    """The router's count of requests routed to each worker address."""
    text = httpx.get(cluster.url + "/metrics", timeout=30).text
    counts = {}
    for m in re.finditer(r'v4serve:router_requests_routed_total\{worker="([^"]+)"\} ([0-9.e+]+)', text):
        counts[m.group(1)] = float(m.group(2))
    return counts


def assert_same(results, reference, what):
    for i, (got, want) in enumerate(zip(results, reference)):
        assert got == want, "%s: request %d (%s)" % (what, i, "seeded" if i % 2 else "greedy")


@pytest.mark.parametrize("ranks,overlap,micro", [(1, True, False), (2, True, False),
                                                 (4, True, False), (2, False, False),
                                                 (2, True, True)])
def test_group_matches_serve(v4serve, model, reference, ranks, overlap, micro):
    args = CHUNKED + ([] if overlap else ["--expert-overlap", "false"]) + (
        ["--two-micro-batches", "true"] if micro else [])
    with Cluster(v4serve, model, workers=0, groups=[ranks], worker_args=args) as cluster:
        assert_same(run(cluster.base_url), reference, "%d ranks, concurrent" % ranks)
        # One at a time: every rank but the one the router picked joins each step idle.
        assert_same(run(cluster.base_url, parallel=False), reference,
                    "%d ranks, one at a time" % ranks)
        routed = routed_per_worker(cluster)
        for rank in cluster.groups[0]:
            assert rank.alive(), rank.stderr()[-2000:]
            # Every rank ran requests of its own (data-parallel attention).
            assert routed.get(rank.address, 0) > 0, routed
        if ranks > 1:
            # The exchanges show in the router's metrics, summed over the ranks.
            text = httpx.get(cluster.url + "/metrics", timeout=30).text
            sent = re.search(r'v4serve:ep_alltoall_bytes_total\{direction="dispatch"[^}]*\} ([0-9.e+]+)', text)
            assert sent and float(sent.group(1)) > 0, text[-3000:]
            # With overlap the exchanges ran beside the shared expert and the own rows; without,
            # none of their time was hidden.
            hidden = re.search(r'v4serve:ep_overlapped_seconds_total\{[^}]*\} ([0-9.e+-]+)', text)
            assert hidden, text[-3000:]
            assert (float(hidden.group(1)) > 0) == overlap, hidden.group(0)
            assert "all %d ranks connected" % ranks in rank.stderr()
        for rank in cluster.groups[0]:
            # Start-up says where its time went; a rank also waited for its group.
            _, phases = startup_phases(rank.stdout_lines)
            assert [name for name, _ in phases] == [
                "model", "tokenizer", "device", "group", "engine", "grpc"], phases


DEVICE_REQUESTS = 6


def test_device_ranks_hold_their_experts_and_match_serve_on_the_device(v4serve, model):
    """Ranks on the emulated device (the GPU ranks' path: only the rank's own experts in device
    memory, rows packed and exchanged between device buffers) against `serve` on the same
    device: the same tokens and logprobs bit for bit."""
    device = ["--device", "emulated"]
    with Server(v4serve, model, "--threads", "1", "--kv-memory", "256", *device) as server:
        want = [one(server.base_url, i) for i in range(DEVICE_REQUESTS)]
    with Cluster(v4serve, model, workers=0, groups=[2], worker_args=CHUNKED + device) as cluster:
        with concurrent.futures.ThreadPoolExecutor(DEVICE_REQUESTS) as pool:
            got = list(pool.map(lambda i: one(cluster.base_url, i), range(DEVICE_REQUESTS)))
        assert_same(got, want, "2 emulated-device ranks")
        for rank in cluster.groups[0]:
            assert rank.alive(), rank.stderr()[-2000:]
            held = re.search(r"this rank holds (\d+) of (\d+) routed experts", rank.stderr())
            assert held and 2 * int(held.group(1)) == int(held.group(2)), rank.stderr()[-2000:]
        text = httpx.get(cluster.url + "/metrics", timeout=30).text
        sent = re.search(r'v4serve:ep_alltoall_bytes_total\{direction="dispatch"[^}]*\} ([0-9.e+]+)', text)
        assert sent and float(sent.group(1)) > 0, text[-3000:]


def test_killed_rank_takes_its_group_down_and_requests_move(v4serve, model, reference):
    with Cluster(v4serve, model, workers=1, groups=[2], worker_args=CHUNKED) as cluster:
        group = cluster.groups[0]
        killed = {}

        def kill_rank_one():
            time.sleep(0.5)  # requests are streaming to all three workers by now
            group[1].kill()
            killed["at"] = time.monotonic()

        results = run(cluster.base_url, during=kill_rank_one)
        deadline = killed["at"] + 10
        while group[0].alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not group[0].alive(), "rank 0 outlived its group by 10 s"
        assert group[0].proc.returncode == 3
        assert "group group0 broke" in group[0].stderr()
        moved = [int(n) for n in re.findall(r"moving (\d+) requests", cluster.router.stderr())]
        assert moved and sum(moved) > 0, cluster.router.stderr()[-3000:]
    assert_same(results, reference, "rank killed")


@pytest.fixture(scope="module")
def trace(v4serve, model, tmp_path_factory):
    """A recorded trace: the per-(layer, expert) selection counters after some requests."""
    path = tmp_path_factory.mktemp("trace") / "stats.prom"
    with Server(v4serve, model, "--threads", "1", "--kv-memory", "256",
                "--metrics-expert-detail") as server:
        run(server.base_url)
        path.write_text(httpx.get(server.url + "/metrics", timeout=30).text)
    assert "v4serve:expert_selections_total{" in path.read_text()
    return path


def test_balanced_placement_with_replicas_matches_serve(v4serve, model, reference, trace):
    args = CHUNKED + ["--expert-stats", str(trace), "--redundant-experts", "1"]
    with Cluster(v4serve, model, workers=0, groups=[2], worker_args=args) as cluster:
        assert_same(run(cluster.base_url), reference, "balanced placement")


def test_placement_report_and_bad_traces(v4serve, model, trace, tmp_path):
    out = subprocess.run([str(v4serve), "expert-placement", "--model", str(model), "--stats",
                          str(trace), "--ranks", "2,4", "--redundant", "0,1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = re.findall(r"^\s+(\d+)\s+(\d+)\s+([0-9.]+) /\s+([0-9.]+)\s+([0-9.]+) /\s+([0-9.]+)$",
                      out.stdout, re.M)
    assert len(rows) == 4, out.stdout
    for ranks, redundant, con_mean, con_worst, bal_mean, bal_worst in rows:
        # Balanced placement is built from this very trace: never worse than contiguous shards.
        assert 1.0 <= float(bal_mean) <= float(con_mean) + 1e-3, out.stdout
    assert "hot set per layer" in out.stdout
    bad = tmp_path / "bad.prom"
    bad.write_text('v4serve:expert_selections_total{layer="999",expert="0"} 1\n')
    out = subprocess.run([str(v4serve), "expert-placement", "--model", str(model), "--stats",
                          str(bad)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "outside this model" in out.stderr, out.stderr
    # A worker refuses the same trace at start-up with one line, before meeting its group.
    out = subprocess.run([str(v4serve), "worker", "--model", str(model), "--listen", "127.0.0.1:0",
                          "--group", "g", "--rank", "0", "--ranks", "2", "--group-leader",
                          "127.0.0.1:1", "--expert-stats", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "outside this model" in out.stderr, out.stderr[-2000:]


def test_stalled_rank_times_its_group_out(v4serve, model, reference):
    """A rank that stops answering (SIGSTOP: alive, silent) is not waited for forever: its peer
    gives up after --group-timeout-s and exits, and the router moves its requests."""
    args = CHUNKED + ["--group-timeout-s", "3"]
    with Cluster(v4serve, model, workers=1, groups=[2], worker_args=args) as cluster:
        group = cluster.groups[0]
        stopped = {}

        def stall_rank_one():
            time.sleep(0.5)
            group[1].proc.send_signal(signal.SIGSTOP)
            stopped["at"] = time.monotonic()

        try:
            results = run(cluster.base_url, during=stall_rank_one)
            while group[0].alive() and time.monotonic() < stopped["at"] + 30:
                time.sleep(0.05)
            assert not group[0].alive(), "rank 0 waited more than 30 s on a silent peer"
            assert group[0].proc.returncode == 3
            assert "broke" in group[0].stderr()
        finally:
            group[1].proc.send_signal(signal.SIGCONT)
    assert_same(results, reference, "rank stalled")


LEADER = ["--group-leader", "127.0.0.1:1"]


@pytest.mark.parametrize("flags, says", [
    (["--rank", "2", "--ranks", "2", *LEADER], "--rank 2 is outside a group of 2"),
    (["--rank", "0", "--ranks", "0", *LEADER], "--ranks 0"),
    (["--rank", "0", "--ranks", "2", "--group-leader", "nohost"], "rank 0's rendezvous as host:port"),
    (["--rank", "0", "--ranks", "2", "--device", "cuda:x", *LEADER], "--device wants cpu, cuda"),
    (["--rank", "0", "--ranks", "2", "--redundant-experts", "1", *LEADER], "needs --expert-stats"),
])
def test_bad_group_flags_are_refused_with_one_line(v4serve, model, flags, says):
    args = [str(v4serve), "worker", "--model", str(model), "--listen", "127.0.0.1:0",
            "--group", "g", *flags]
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and says in out.stderr, out.stderr[-2000:]
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
