"""A new user's first command: `v4serve serve` with no --model generates the tiny synthetic model
into the user's cache directory once, serves it, and finds it there on the next start.

The oracles are outside our code: ggml's `gguf` package reads the generated file, and the
official `openai` SDK talks to the server.
"""

import os
import subprocess

import gguf
import openai

from server import Server

SMALL = ("--kv-memory", "256", "--ctx", "2048")


def cached_model(cache):
    return cache / "v4serve" / "models" / "tiny-ds4-q2.gguf"


def hello(server):
    """The served model's id and its seeded reply to one short chat request."""
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
    [served] = client.models.list().data
    r = client.chat.completions.create(model=served.id, max_tokens=4, seed=1,
                                       messages=[{"role": "user", "content": "Hello"}])
    assert r.usage.completion_tokens >= 1
    return served.id, r.choices[0].message.content


def test_serve_without_a_model_generates_the_tiny_model_once(v4serve, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    path = cached_model(tmp_path)
    with Server(v4serve, None, *SMALL, env=env) as s:
        assert path.is_file()
        reader = gguf.GGUFReader(path)
        assert reader.fields["general.architecture"].contents() == "deepseek4"
        assert reader.fields["deepseek4.block_count"].contents() == 6
        first = hello(s)
    written = path.stat().st_mtime_ns

    # The second start reads the same file (not a second generation) and answers the same.
    with Server(v4serve, None, *SMALL, env=env) as s:
        assert hello(s) == first
    assert path.stat().st_mtime_ns == written


def test_a_cache_directory_that_cannot_be_made_is_one_clear_error(v4serve, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory would go")
    result = subprocess.run(
        [str(v4serve), "serve", "--port", "0", *SMALL], capture_output=True, text=True,
        timeout=120, env=dict(os.environ, XDG_CACHE_HOME=str(blocker)))
    assert result.returncode == 1, result.stderr
    assert "cannot create " + str(blocker / "v4serve" / "models") in result.stderr
    assert "v4serve: listening" not in result.stdout
