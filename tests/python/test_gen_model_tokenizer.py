"""`gen-model` finds the tokenizer the setup installed even when the binary runs outside the
checkout (copied elsewhere, started from another directory)."""

import os
import shutil
import subprocess


def test_gen_model_outside_the_checkout_finds_the_tokenizer(v4serve, tmp_path):
    elsewhere = tmp_path / "bin" / "v4serve"
    elsewhere.parent.mkdir()
    try:
        os.link(v4serve, elsewhere)  # a second name, not a symlink back into the checkout
    except OSError:
        shutil.copy2(v4serve, elsewhere)
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "V4SERVE_TOKENIZER_JSON")}
    env["HOME"] = str(tmp_path)
    out = tmp_path / "m.gguf"
    result = subprocess.run(
        [str(elsewhere), "gen-model", "--preset", "tiny", "--layers", "1", "--experts", "8",
         "--vocab", "4096", "--quiet", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 0
