"""Starts `v4serve worker` processes and a `v4serve router` over them on loopback, ports chosen
at run time (each prints its bound address on stdout), and always stops every process it
started, however the test ends."""

import os
import re
import signal
import subprocess
import threading

import pytest


class Process:
    """One v4serve process; `address` is what it printed after "listening on"."""

    def __init__(self, args, pattern, start_timeout=300):
        self.args = [str(a) for a in args]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=dict(os.environ))
        self.stderr_lines = []
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()
        found = {}

        def read_address():
            for line in self.proc.stdout:
                m = re.match(pattern, line)
                if m:
                    found["address"] = m.group(1)
                    return

        reader = threading.Thread(target=read_address, daemon=True)
        reader.start()
        reader.join(start_timeout)
        if "address" not in found:
            self.kill()
            pytest.fail("%s did not start: %s" % (" ".join(self.args[:2]), self.stderr()[-2000:]))
        self.address = found["address"]

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


class Cluster:
    """`workers` workers and one router; the router's OpenAI base URL is `base_url`."""

    def __init__(self, v4serve, model, workers=3, worker_args=(), router_args=(), dns_name=None):
        """dns_name: the router finds the workers as this name's records on the first worker's
        port (`--workers-dns NAME:PORT`) instead of being given their addresses."""
        self.v4serve = v4serve
        self.dns_name = dns_name
        self.model = model
        self.n = workers
        self.worker_args = list(worker_args)
        self.router_args = list(router_args)
        self.workers = []
        self.router = None

    def __enter__(self):
        try:
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
