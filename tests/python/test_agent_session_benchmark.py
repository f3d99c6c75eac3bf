"""bench/agent_session_benchmark.py against `v4serve serve` on the tiny model: a six-turn agent
session with tool calls, through the OpenAI chat, Anthropic Messages and OpenAI Responses APIs,
must find at least 90% of its prompt tokens after the first turn in the prefix cache. That is a
correctness property of tool-call replay (spec §5.8), not a timing: with replay each turn's
prompt extends the previous turn's prompt and output, and only the unfinished last page (256
tokens) and the new tool results miss. The baseline (tool-call ids rewritten by the client, so
the calls render from their arguments) must do worse: the session's compact JSON argument
re-renders otherwise.
"""

import json
import pathlib
import sys

import pytest

from conftest import REPO, run
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle.models import tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory, v4serve):
    return tiny_model(tmp_path_factory, v4serve)


def test_agent_session_hits_the_prefix_cache(v4serve, model):
    result = run([sys.executable, REPO / "bench" / "agent_session_benchmark.py", "--serve",
                  v4serve, "--gguf", model, "--turns", "6", "--no-replay-baseline", "--json",
                  "--", "--ctx", "8192", "--kv-memory", "512"], timeout=900)
    assert result.returncode == 0, result.stderr
    rows = {(r["api"], r["replay"]): r for r in map(json.loads, result.stdout.splitlines())}
    apis = ("chat", "messages", "responses")
    assert set(rows) == {(api, replay) for api in apis for replay in (True, False)}
    for api in apis:
        on, off = rows[(api, True)], rows[(api, False)]
        assert on["turns"] == 6
        assert on["hit_rate"] >= 0.9, on
        assert off["hit_rate"] < on["hit_rate"], (on, off)
    for api in ("chat", "responses"):
        # The responses' own cached-token counts agree with /metrics.
        row = rows[(api, True)]
        assert row["usage_cached_tokens_after_first"] == row["cached_tokens_after_first"]
