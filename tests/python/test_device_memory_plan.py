"""The device memory plan as a user meets it, on an emulated device of a given size
(`--device emulated:G`: the GPU kernels on the host, with the fit check seeing G GiB free).
Without --kv-memory the KV budget is what the device leaves: 90% of its free memory less the
weights and the step memory, so two device sizes give budgets 90% of their difference apart.
A device too small for the weights and step memory, or a --kv-memory that does not fit, is
refused with one line before anything is uploaded."""

import pathlib
import sys

import httpx
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from conftest import run  # noqa: E402
from oracle import models  # noqa: E402
from server import Server, metric_values  # noqa: E402

FLAGS = ["--threads", "1", "--max-seqs", "4", "--max-batch-tokens", "64"]


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return models.tiny_model(tmp_path_factory, v4serve)


def kv_budget_mib(v4serve, model, gib):
    with Server(v4serve, model, "--device", "emulated:%g" % gib, *FLAGS) as server:
        text = httpx.get(server.url + "/metrics", timeout=30).text
    labels = next(iter(metric_values(text, "v4serve:cache_config_info")))
    return int(labels.split('kv_memory_mib="')[1].split('"')[0])


def test_the_kv_budget_is_what_the_device_leaves(v4serve, model):
    small, large = kv_budget_mib(v4serve, model, 1), kv_budget_mib(v4serve, model, 2)
    # The weights and the step memory are the same on both: only the 90% share of the extra GiB
    # differs (1 MiB for the two budgets' rounding down to MiB).
    assert abs((large - small) - 0.9 * 1024) <= 1, (small, large)
    assert 0 < small < 0.9 * 1024


def refusal(v4serve, model, *args):
    r = run([v4serve, "serve", "--model", model, "--port", "0", *FLAGS, *args], timeout=300)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if "[error]" in line or "error:" in line]
    assert len(errors) == 1, r.stderr
    return errors[0]


def test_a_device_too_small_or_a_budget_too_large_is_refused_in_one_line(v4serve, model):
    line = refusal(v4serve, model, "--device", "emulated:0.05")
    assert "no room for the KV cache on the device" in line, line
    assert "(90% of 0.05 GiB free)" in line, line
    line = refusal(v4serve, model, "--device", "emulated:1", "--kv-memory", "2048")
    assert "does not fit on the device" in line and "KV 2.00 GiB" in line, line
    assert "GiB missing" in line, line
    for bad in ("emulated:0", "emulated:-1", "emulated:lots"):
        assert "--device wants" in refusal(v4serve, model, "--device", bad)
