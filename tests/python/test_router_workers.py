"""Router and workers as separate processes on loopback (docs/design.md, processes): one router
and three CPU workers on the tiny model, many concurrent streaming requests through the official
`openai` SDK. A worker SIGKILLed or drained (SIGTERM) mid-run changes nothing a client sees:
every request completes with exactly the text of a run without failure, greedy and seeded.
With no worker left the router answers 503 at once. A router that finds its worker through DNS
(`--workers-dns localhost:PORT`) serves through it."""

import concurrent.futures
import pathlib
import random
import re
import sys
import threading
import time

import httpx
import openai
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from cluster import Cluster  # noqa: E402

N_REQUESTS = 64
MAX_TOKENS = 10


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


def client(cluster):
    return openai.OpenAI(base_url=cluster.base_url, api_key="unused", max_retries=0, timeout=300)


def model_id(cluster):
    return client(cluster).models.list().data[0].id


def one_request(cluster, model_name, i, progress):
    """Streams request i; returns (text, finish_reason, chunks with text)."""
    kwargs = dict(model=model_name, prompt="Request %d: the quick brown fox %s" % (i, "jumps " * (i % 7)),
                  max_tokens=MAX_TOKENS, stream=True, extra_body={"ignore_eos": True})
    if i % 2:
        kwargs.update(temperature=0.9, top_p=0.95, seed=1000 + i)  # seeded
    else:
        kwargs.update(temperature=0.0)  # greedy
    text, finish, chunks = "", None, 0
    for chunk in client(cluster).completions.create(**kwargs):
        for c in chunk.choices:
            if c.text:
                text += c.text
                chunks += 1
                progress()
            if c.finish_reason:
                finish = c.finish_reason
    return text, finish, chunks


def run_all(cluster, during=None):
    """All requests at once; `during(tokens_so_far)` runs on a side thread while they stream."""
    name = model_id(cluster)
    count = {"tokens": 0}
    lock = threading.Lock()

    def progress():
        with lock:
            count["tokens"] += 1

    side = None
    if during:
        side = threading.Thread(target=during, args=(lambda: count["tokens"],), daemon=True)
        side.start()
    with concurrent.futures.ThreadPoolExecutor(N_REQUESTS) as pool:
        futures = [pool.submit(one_request, cluster, name, i, progress) for i in range(N_REQUESTS)]
        results = [f.result(timeout=600) for f in futures]
    if side:
        side.join(60)
    return results


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.fixture(scope="module")
def reference(v4serve, model):
    """The failure-free results, through a router and three workers."""
    with Cluster(v4serve, model) as cluster:
        results = run_all(cluster)
    for text, finish, chunks in results:
        assert finish == "length" and text
    return results


def test_sigkilled_worker_changes_no_token(v4serve, model, reference):
    rng = random.Random()
    with Cluster(v4serve, model) as cluster:
        victim = rng.randrange(len(cluster.workers))
        # A random moment once streams are under way, before most of them are done.
        kill_after = rng.randrange(N_REQUESTS // 2, N_REQUESTS * MAX_TOKENS // 3)

        def kill(tokens):
            wait_for(lambda: tokens() >= kill_after, 300, "streams did not start")
            cluster.workers[victim].kill()

        results = run_all(cluster, during=kill)
        assert not cluster.workers[victim].alive()
        moved = [int(n) for n in re.findall(r"moving (\d+) requests", cluster.router.stderr())]
        assert moved and sum(moved) > 0, cluster.router.stderr()[-3000:]
    for i, (got, want) in enumerate(zip(results, reference)):
        assert got == want, "request %d (%s)" % (i, "seeded" if i % 2 else "greedy")


def test_drained_worker_changes_no_token(v4serve, model, reference):
    with Cluster(v4serve, model, worker_args=["--drain-grace", "0.3"]) as cluster:
        codes = {}

        def drain(tokens):
            wait_for(lambda: tokens() >= N_REQUESTS, 300, "streams did not start")
            codes["exit"] = cluster.workers[0].terminate()

        results = run_all(cluster, during=drain)
        assert codes.get("exit") == 0, cluster.workers[0].stderr()[-2000:]
    for i, (got, want) in enumerate(zip(results, reference)):
        assert got == want, "request %d" % i


def test_no_worker_left_is_a_clear_503(v4serve, model):
    with Cluster(v4serve, model, workers=1) as cluster:
        name = model_id(cluster)
        cluster.workers[0].kill()
        start = time.monotonic()
        with pytest.raises(openai.APIStatusError) as e:
            wait_for(lambda: httpx.get(cluster.url + "/health", timeout=10).status_code == 503,
                     30, "/health still answers 200 without workers")
            client(cluster).completions.create(model=name, prompt="hi", max_tokens=2)
        assert e.value.status_code == 503
        assert "no worker" in str(e.value)
        assert time.monotonic() - start < 30
        assert cluster.router.terminate() == 0


def test_worker_found_through_dns(v4serve, model):
    # `localhost` resolves to 127.0.0.1 (and maybe ::1, where no worker listens: unusable).
    with Cluster(v4serve, model, workers=1, dns_name="localhost") as cluster:
        name = model_id(cluster)
        out = client(cluster).completions.create(model=name, prompt="hi", max_tokens=3,
                                                 temperature=0.0)
        assert out.choices[0].text
        log = cluster.router.stderr()
        assert "worker %s added (DNS)" % cluster.workers[0].address in log, log[-3000:]
