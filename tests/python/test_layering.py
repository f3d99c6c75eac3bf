"""The dependency arrows of docs/design.md, checked on every #include of the sources.

CMake enforces them at link time (each folder's target links only what it may use); this test
also catches header-only reaches, which a link step cannot see.
"""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]

# folder -> folders its sources may include (besides itself)
ALLOWED = {
    "core": [],
    "kernels": ["core"],
    "model/gguf": ["core"],
    "model/text": ["model/gguf", "core"],
    "model/chat": ["model/text", "model/gguf", "core"],
    "model/grammar": ["core"],
    "model/sampling": ["kernels", "core"],
    "model/backend": ["kernels", "core"],
    "model/v4": ["model/backend", "model/gguf", "kernels", "core"],
    "model/synthetic": ["model/v4", "model/backend", "model/text", "model/gguf", "kernels", "core"],
    "scheduler": ["core"],
    "proto": [],
    "worker": ["worker/kv_disk", "scheduler", "model/grammar", "model/v4", "model/backend",
               "model/sampling", "model/gguf", "kernels", "core", "proto"],
    # Expert parallelism: the engine's group seam (worker/step_group.h) and the rendezvous proto.
    "worker/ep": ["worker", "model/v4", "model/backend", "model/gguf", "kernels", "core", "proto"],
    "worker/ep/nccl": ["worker/ep", "worker", "model/v4", "model/backend", "model/gguf", "kernels",
                       "core", "proto"],
    # The disk store of prefix pages: opaque payloads, the chain hash and the model file's identity.
    "worker/kv_disk": ["scheduler", "model/gguf", "core"],
    "router/http": ["core"],
    "worker/grpc": ["worker", "scheduler", "model/grammar", "model/v4", "model/backend",
                    "model/sampling", "model/gguf", "kernels", "core", "proto"],
    "router/openai": ["router/http", "model/chat", "model/grammar", "model/text", "model/gguf",
                      "core", "proto"],
    "router/anthropic": ["router/openai", "router/http", "model/chat", "model/grammar",
                         "model/text", "model/gguf", "core", "proto"],
    "router/responses": ["router/openai", "router/http", "model/chat", "model/grammar",
                         "model/text", "model/gguf", "core", "proto"],
    "router/grpc": ["router/openai", "router/http", "model/chat", "model/grammar",
                    "model/text", "model/gguf", "core", "proto"],
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
TOP_LEVEL = ("core/", "kernels/", "model/", "scheduler/", "proto/", "worker/", "router/", "apps/")


def owner(path: str) -> str:
    """The most specific folder of ALLOWED that holds `path`."""
    best = ""
    for folder in ALLOWED:
        if path.startswith(folder + "/") and len(folder) > len(best):
            best = folder
    return best


def sources(folder: str):
    for p in sorted((ROOT / folder).rglob("*")):
        if p.suffix in (".h", ".cpp", ".cu", ".cuh") and owner(str(p.relative_to(ROOT))) == folder:
            yield p


def test_every_library_folder_is_listed():
    for top in ("model", "router", "worker"):
        for sub in (ROOT / top).iterdir():
            if sub.is_dir():
                assert f"{top}/{sub.name}" in ALLOWED, f"{top}/{sub.name} has no arrows listed"
    for p in (ROOT / "model").glob("*.*"):
        assert p.suffix not in (".h", ".cpp"), f"{p} belongs in a sub-folder of model/"
    for p in (ROOT / "router").glob("*.*"):
        assert p.suffix not in (".h", ".cpp"), f"{p} belongs in a sub-folder of router/"


def test_includes_follow_the_arrows():
    bad = []
    checked = 0
    for folder, allowed in ALLOWED.items():
        for path in sources(folder):
            for inc in INCLUDE.findall(path.read_text()):
                if not inc.startswith(TOP_LEVEL):
                    continue
                checked += 1
                target = owner(inc) or inc.split("/")[0]
                if target != folder and target not in allowed:
                    bad.append(f"{path.relative_to(ROOT)} includes {inc}")
    assert checked > 300, "the scan found too few includes to mean anything"
    assert not bad, "includes against the arrows of docs/design.md:\n" + "\n".join(bad)

