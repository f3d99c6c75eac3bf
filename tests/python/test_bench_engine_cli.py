"""Smoke test of `v4serve bench-engine` on the tiny synthetic model: a row per concurrency
level with every figure positive (no timing thresholds), greedy, seeded top-k sampling with and
without candidate selection, and seeded sampling over the whole row with and without top-p; bad
flags refused with a line naming them."""

import pathlib
import re
import sys

import pytest

from conftest import run

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle.models import tiny_model  # noqa: E402

FAST = ["-n", "3", "--prompt-len", "8", "--output-len", "4", "--concurrency", "1,2",
        "--threads", "2"]


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return tiny_model(tmp_path_factory, v4serve)


def rows(stdout):
    """(concurrency, output tok/s, mean batch) of each table row."""
    out = []
    for line in stdout.splitlines():
        m = re.match(r"\s*(\d+)\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)", line)
        if m:
            out.append((int(m.group(1)), float(m.group(4)), float(m.group(6))))
    return out


@pytest.mark.parametrize("extra", [
    [],
    ["--temperature", "0.8", "--top-k", "40"],
    ["--temperature", "0.8", "--top-k", "40", "--select-candidates", "false"],
    ["--temperature", "1.0"],
    ["--temperature", "0.7", "--top-p", "0.9"],
])
def test_a_row_per_level_with_every_figure_positive(v4serve, model, extra):
    result = run([v4serve, "bench-engine", "--model", model, *FAST, *extra])
    assert result.returncode == 0, result.stderr
    got = rows(result.stdout)
    assert [level for level, _, _ in got] == [1, 2], result.stdout
    for level, tokens_per_second, mean_batch in got:
        assert tokens_per_second > 0
        assert 1.0 <= mean_batch <= level


@pytest.mark.parametrize("flag,value", [("--top-k", "-1"), ("--temperature", "-0.5"),
                                        ("--top-p", "1.5"), ("--select-candidates", "perhaps")])
def test_bad_sampling_flags_are_refused_naming_the_flag(v4serve, model, flag, value):
    result = run([v4serve, "bench-engine", "--model", model, *FAST, flag, value])
    assert result.returncode != 0
    # CLI11's line naming the flag (then its "Run with --help" hint).
    assert flag in result.stderr.splitlines()[0], result.stderr
