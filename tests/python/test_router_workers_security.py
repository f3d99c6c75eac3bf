"""Router and workers as processes on loopback with the link secured (README, "Router and
workers"): two workers serving mutual TLS and requiring a token, certificates made with the
openssl tool when the test runs, and a router with its client certificate and the token. Streams
through the official `openai` SDK give exactly the text of a plaintext router and worker. A
router with a wrong token has no usable worker: it answers 503 at once and its log says why."""

import concurrent.futures
import pathlib
import subprocess
import sys
import time

import httpx
import openai
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from cluster import Cluster  # noqa: E402

N_REQUESTS = 8
MAX_TOKENS = 8


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a worker certificate for 127.0.0.1 / localhost and a router certificate, and the
    token; the files live in the test's temporary directory only."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
            "-subj", "/CN=v4-test-ca")
    for name, ext in (("worker", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                      ("router", "extendedKeyUsage=clientAuth")):
        (d / (name + ".ext")).write_text(ext + "\n")
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-set_serial", "7" if name == "worker" else "8", "-days", "1",
                "-extfile", name + ".ext", "-out", name + ".crt")
    (d / "token").write_text("v4-test-token-0123456789\n")
    (d / "wrong-token").write_text("v4-test-token-0123456780\n")
    return d


def worker_args(pki):
    return ["--tls-cert", pki / "worker.crt", "--tls-key", pki / "worker.key",
            "--tls-client-ca", pki / "ca.crt", "--auth-token-file", pki / "token"]


def router_args(pki, token="token"):
    return ["--workers-tls-ca", pki / "ca.crt", "--workers-tls-cert", pki / "router.crt",
            "--workers-tls-key", pki / "router.key", "--workers-auth-token-file", pki / token]


def client(cluster):
    return openai.OpenAI(base_url=cluster.base_url, api_key="unused", max_retries=0, timeout=120)


def stream_all(cluster):
    name = client(cluster).models.list().data[0].id

    def one(i):
        kwargs = dict(model=name, messages=[{"role": "user", "content": "Say %d things" % i}],
                      max_tokens=MAX_TOKENS, stream=True, extra_body={"ignore_eos": True})
        kwargs.update(temperature=0.9, seed=500 + i) if i % 2 else kwargs.update(temperature=0.0)
        text, finish = "", None
        for chunk in client(cluster).chat.completions.create(**kwargs):
            for c in chunk.choices:
                text += c.delta.content or ""
                finish = c.finish_reason or finish
        return text, finish

    with concurrent.futures.ThreadPoolExecutor(N_REQUESTS) as pool:
        return [f.result(timeout=300) for f in [pool.submit(one, i) for i in range(N_REQUESTS)]]


def test_mutual_tls_and_token_change_no_token(v4serve, model, pki):
    with Cluster(v4serve, model, workers=1) as plain:
        reference = stream_all(plain)
    with Cluster(v4serve, model, workers=2, worker_args=worker_args(pki),
                 router_args=router_args(pki)) as cluster:
        results = stream_all(cluster)
        metrics = httpx.get(cluster.url + "/metrics", timeout=10).text
        log = cluster.router.stderr()
    assert all(finish == "length" and text for text, finish in results), results
    assert results == reference
    assert "2 of 2 workers connected" in log, log[-3000:]
    assert "travels in clear" not in log
    for w in cluster.workers:
        assert 'v4serve:router_worker_state{state="usable",worker="%s"} 1' % w.address in metrics


def test_wrong_token_is_a_clear_503(v4serve, model, pki):
    with Cluster(v4serve, model, workers=1, worker_args=worker_args(pki),
                 router_args=router_args(pki, token="wrong-token")) as cluster:
        start = time.monotonic()
        assert httpx.get(cluster.url + "/health", timeout=10).status_code == 503
        name = client(cluster).models.list().data[0].id
        with pytest.raises(openai.APIStatusError) as e:
            client(cluster).chat.completions.create(
                model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        assert e.value.status_code == 503
        assert "no worker" in str(e.value)
        assert time.monotonic() - start < 30
        log = cluster.router.stderr()
        assert "UNAUTHENTICATED: wrong token" in log, log[-3000:]
        assert cluster.router.terminate() == 0


def test_bad_security_files_stop_at_start_with_one_line(v4serve, pki, tmp_path):
    (tmp_path / "empty").write_text("")
    cases = [
        (["worker", "--tls-cert", pki / "worker.crt"], "--tls-cert needs --tls-key"),
        (["worker", "--tls-cert", pki / "worker.crt", "--tls-key", pki / "router.key"],
         "is not the key of the certificate"),
        (["worker", "--tls-cert", tmp_path / "absent.crt", "--tls-key", pki / "worker.key"],
         "cannot read the file"),
        (["worker", "--auth-token-file", tmp_path / "empty"], "the token file is empty"),
        (["router", "--workers", "127.0.0.1:1", "--workers-tls-ca", pki / "worker.key"],
         "holds no PEM certificate"),
        (["router", "--workers", "127.0.0.1:1", "--workers-tls-ca", pki / "ca.crt",
          "--workers-tls-key", pki / "router.key"], "--workers-tls-key needs --workers-tls-cert"),
    ]
    for args, message in cases:
        r = subprocess.run([str(v4serve), *map(str, args)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2, (args, r.stderr)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], (args, r.stderr)
