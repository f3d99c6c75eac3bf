"""Shared fixtures for the Python oracle tests.

The tests run our binaries (built by scripts/test into $V4_BUILD_DIR, default ./build) and check
their output against independent implementations: ggml's `gguf` package, DeepSeek's tokenizer,
the official encoder and the OpenAI SDK.
"""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from oracle import official_dsv4_encoder  # noqa: E402


def build_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("V4_BUILD_DIR", REPO / "build")).resolve()


@pytest.fixture(scope="session")
def v4serve() -> pathlib.Path:
    path = build_dir() / "apps" / "v4serve"
    if not path.exists():
        pytest.fail(f"{path} is missing: build the project first (scripts/test does)")
    return path


@pytest.fixture(scope="session")
def tool():
    """Path of a helper program from tests/tools (built next to the tests)."""

    def find(name: str) -> pathlib.Path:
        path = build_dir() / "tests" / "tools" / name
        if not path.exists():
            pytest.fail(f"{path} is missing: build the project first (scripts/test does)")
        return path

    return find


def run(args, **kwargs) -> subprocess.CompletedProcess:
    """Runs a command, bounded in time, capturing text output."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 600)
    return subprocess.run([str(a) for a in args], **kwargs)


@pytest.fixture(scope="session")
def encoder():
    """DeepSeek's official V4 chat encoder (tests/oracle/official_dsv4_encoder.py)."""
    try:
        return official_dsv4_encoder.load()
    except official_dsv4_encoder.OracleUnavailable as error:
        pytest.fail(f"the official DeepSeek-V4 encoder is unavailable: {error}")
