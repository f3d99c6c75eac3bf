"""scripts/cluster: starts workers (or expert-parallel worker groups) and a router, serves
through them, and on SIGINT stops every process it started."""

import os
import pathlib
import re
import signal
import subprocess
import sys

import httpx
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of an exited child still answers kill(0); its state says it is gone.
    stat = pathlib.Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][:1] not in ("Z", "X")


@pytest.mark.parametrize("ranks", [1, 2])
def test_cluster_serves_and_stops_everything_on_ctrl_c(v4serve, tmp_path_factory, ranks):
    model = models.tiny_model(tmp_path_factory, v4serve)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "cluster"), "--model", str(model), "--workers",
         "2", "--ranks", str(ranks), "--port", "0", "--worker-arg=--threads=1",
         "--worker-arg=--kv-memory=256", "--grace", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, V4SERVE=str(v4serve)))
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(lines)
        pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", text)]
        assert len(pids) == 1 + 2 * ranks, text + proc.stderr.read() if proc.poll() is not None else text
        url = re.search(r"router: (\S+)", text).group(1)
        r = httpx.post(url + "/v1/chat/completions", timeout=120, json={
            "model": httpx.get(url + "/v1/models", timeout=30).json()["data"][0]["id"],
            "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3,
            "temperature": 0})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"] is not None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0, proc.stderr.read()
        assert not [p for p in pids if alive(p)], "processes left running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
