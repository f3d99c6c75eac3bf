"""Starts `v4serve worker` processes and a `v4serve router` over them on loopback, ports chosen
at run time (each prints its bound address on stdout), and always stops every process it
started, however the test ends."""

import os
import re
import signal
import socket
import subprocess
import threading

import pytest


class Process:
    """One v4serve process; `address` is what it printed after "listening on"."""

    def __init__(self, args, pattern, start_timeout=300, wait=True):
        """wait=False: returns at once; call started() before using `address` (the ranks of a
        worker group print their address only once every rank has started)."""
        self.args = [str(a) for a in args]
        self.start_timeout = start_timeout
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ))
        self.stderr_lines = []
        self.stdout_lines = []  # up to the listening line
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()
        self.found = {}

        def read_address():
            for line in self.proc.stdout:
                self.stdout_lines.append(line)
                m = re.match(pattern, line)
                if m:
                    self.found["address"] = m.group(1)
                    return

        self.reader = threading.Thread(target=read_address, daemon=True)
        self.reader.start()
        if wait:
            self.started()

    def started(self):
        self.reader.join(self.start_timeout)
        if "address" not in self.found:
            self.kill()
            pytest.fail("%s did not start: %s" % (" ".join(self.args[:2]), self.stderr()[-2000:]))
        self.address = self.found["address"]
        return self

    def _drain(self, stream):
        for line in stream:
            self.stderr_lines.append(line)

    def stderr(self):
        return "".join(self.stderr_lines)

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)

    def terminate(self, timeout=60):
        """SIGTERM, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("%s did not stop within %ss of SIGTERM" % (self.args[1], timeout))


def free_port():
    """A port free at the moment of asking (the group's rendezvous needs one known in advance)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_group(v4serve, model, name, ranks, worker_args=()):
    """The `ranks` workers of one expert-parallel group, started together; returns them once
    every rank listens (which happens only after the whole group has met)."""
    leader = "127.0.0.1:%d" % free_port()
    procs = []
    try:
        for r in range(ranks):
            procs.append(Process(
                [v4serve, "worker", "--model", model, "--listen", "127.0.0.1:0", "--threads", "1",
                 "--kv-memory", "256", "--log-level", "info", "--group", name, "--rank", r,
                 "--ranks", ranks, "--group-leader", leader,
                 *([] if "--group-timeout-s" in worker_args else ["--group-timeout-s", "30"]),
                 *worker_args],
                r"v4serve: worker listening on ([0-9.]+:\d+)", wait=False))
        return [p.started() for p in procs]
    except BaseException:
        for p in procs:
            p.kill()
        raise


class Cluster:
    """`workers` workers and one router; the router's OpenAI base URL is `base_url`."""

    def __init__(self, v4serve, model, workers=3, worker_args=(), router_args=(), dns_name=None,
                 groups=()):
        """dns_name: the router finds the workers as this name's records on the first worker's
        port (`--workers-dns NAME:PORT`) instead of being given their addresses. groups: the
        rank counts of expert-parallel worker groups started besides the `workers` single ones;
        every rank is a worker to the router (`self.groups[i]` holds group i's ranks)."""
        self.v4serve = v4serve
        self.group_ranks = list(groups)
        self.groups = []
        self.dns_name = dns_name
        self.model = model
        self.n = workers
        self.worker_args = list(worker_args)
        self.router_args = list(router_args)
        self.workers = []
        self.router = None

    def __enter__(self):
        try:
            for i, ranks in enumerate(self.group_ranks):
                self.groups.append(start_group(self.v4serve, self.model, "group%d" % i, ranks,
                                               self.worker_args))
                self.workers += self.groups[-1]
            for _ in range(self.n):
                self.workers.append(Process(
                    [self.v4serve, "worker", "--model", self.model, "--listen", "127.0.0.1:0",
                     "--threads", "1", "--kv-memory", "256", "--log-level", "warn",
                     *self.worker_args],
                    r"v4serve: worker listening on ([0-9.]+:\d+)"))
            self.router = Process(
                [self.v4serve, "router", "--model", self.model, "--port", "0",
                 *self.workers_flags(),
                 "--health-interval-ms", "200", *self.router_args],
                r"v4serve: listening on (http://[0-9.]+:\d+)")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def workers_flags(self):
        if self.dns_name:
            port = self.workers[0].address.rsplit(":", 1)[1]
            return ["--workers-dns", "%s:%s" % (self.dns_name, port), "--workers-dns-interval-s", "1"]
        return ["--workers", ",".join(w.address for w in self.workers)]

    @property
    def url(self):
        return self.router.address

    @property
    def base_url(self):
        return self.router.address + "/v1"

    def __exit__(self, *exc):
        for p in ([self.router] if self.router else []) + self.workers:
            p.kill()


def startup_phases(stdout_lines):
    """The "v4serve: started in T s (name t s, ...)" line a server or worker prints before it
    listens: (T, [(name, t), ...]); the phases' seconds add up to T up to their rounding."""
    for line in stdout_lines:
        m = re.match(r"v4serve: started in ([0-9.]+) s \((.*)\)$", line.strip())
        if m:
            phases = [(name, float(t)) for name, t in
                      re.findall(r"([a-z]+) ([0-9.]+) s", m.group(2))]
            total = float(m.group(1))
            assert abs(sum(t for _, t in phases) - total) <= 0.01 * len(phases), line
            return total, phases
    raise AssertionError("no start-up line in %r" % stdout_lines)
