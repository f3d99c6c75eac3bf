"""Starts `v4serve serve` on a free loopback port for a test and stops it with SIGTERM.

The server prints "v4serve: started in ..." (where start-up time went) and then
"v4serve: listening on http://HOST:PORT" on stdout once it accepts connections; nothing waits on
sleeps; `stdout_lines` keeps what came before the listening line. Stopping checks that a graceful drain exits with 0.
"""

import os
import re
import signal
import subprocess
import threading

import pytest


class Server:
    def __init__(self, v4serve, model, *args, env=None, start_timeout=300):
        self.args = [str(v4serve), "serve", "--port", "0", "--log-level", "warn"]
        if model is not None:
            self.args += ["--model", str(model)]
        self.args += [str(a) for a in args]
        self.env = dict(os.environ, **(env or {}))
        self.start_timeout = start_timeout
        self.proc = None
        self.url = None
        self.stderr_lines = []
        self.stdout_lines = []

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=self.env)
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        found = {}

        def read_port():
            for line in self.proc.stdout:
                self.stdout_lines.append(line)
                m = re.match(r"v4serve: listening on (http://[0-9.]+:\d+)", line)
                if m:
                    found["url"] = m.group(1)
                    return

        reader = threading.Thread(target=read_port, daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        if "url" not in found:
            self.proc.kill()
            self.proc.wait(30)
            pytest.fail("v4serve serve did not start: " + "".join(self.stderr_lines)[-2000:])
        self.url = found["url"]
        return self

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    @property
    def base_url(self):
        return self.url + "/v1"

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, timeout=60):
        """SIGTERM, then the exit code (the server drains and exits 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            pytest.fail("v4serve serve did not stop within %ss of SIGTERM" % timeout)

    def __exit__(self, *exc):
        code = self.stop()
        if exc[0] is None:
            assert code == 0, "serve exited with %s: %s" % (code, "".join(self.stderr_lines)[-2000:])


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def metric_values(text, name):
    """Every sample of metric `name` in a Prometheus text exposition: {labels: value}."""
    values = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if m and m.group(1) == name:
            values[m.group(2) or ""] = float(m.group(3))
    return values
