"""The deploy/ tree, checked offline: Dockerfiles linted by hadolint and the CPU image's runtime
packages against ldd of the binary; Kubernetes overlays rendered by kustomize and validated
against the Kubernetes schemas; alert rules by promtool (syntax and unit tests); and every PromQL
expression of the Grafana dashboard and of the alert rules evaluated by a real Prometheus that
scrapes a running server after a short load, so no panel or alert names a metric that does not
exist."""

import json
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time

import httpx
import kubernetes_validate
import pytest
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from oracle import models  # noqa: E402
from server import Server  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV_BIN = pathlib.Path(sys.executable).parent
# The Kubernetes release the manifests target (schemas bundled with kubernetes-validate).
K8S_VERSION = "1.32.0"
# In debian:12-slim already: apt itself depends on them.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6"}


def dockerfiles():
    return sorted((DEPLOY / "docker").glob("Dockerfile.*"))


def test_hadolint_passes():
    hadolint = VENV_BIN / "hadolint"
    r = subprocess.run([str(hadolint), "--config", str(DEPLOY / "docker" / ".hadolint.yaml"),
                        *map(str, dockerfiles())], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def runtime_packages(dockerfile):
    """The packages the last stage of a Dockerfile installs with apt-get."""
    text = dockerfile.read_text().replace("\\\n", " ")
    last_stage = text.rsplit("\nFROM ", 1)[1]
    m = re.search(r"apt-get install -y --no-install-recommends ([^&]+)&&", last_stage)
    assert m, f"{dockerfile.name}: no apt-get install in the runtime stage"
    return set(m.group(1).split())


def linked_packages(binary):
    """Debian packages owning the shared libraries `binary` loads (per ldd)."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    packages = set()
    for line in out.splitlines():
        m = re.search(r"=> (/\S+)", line)
        if not m:
            continue
        path = pathlib.Path(m.group(1))
        # The CUDA runtime is not a Debian package: a build with nvcc links it, and the CPU image
        # builds with -DV4_ENABLE_CUDA=OFF, so its binary does not.
        if str(path).startswith("/usr/local/cuda"):
            continue
        # Merged /usr: dpkg knows a library under one of its two names.
        names = {str(path), str(path.resolve())}
        names |= {n.replace("/usr/lib/", "/lib/", 1) for n in list(names)}
        owner = None
        for name in names:
            r = subprocess.run(["dpkg", "-S", name], capture_output=True, text=True)
            if r.returncode == 0:
                owner = r.stdout.split(":")[0]
                break
        assert owner, f"no Debian package owns {path}"
        packages.add(owner)
    return packages


def test_cpu_image_runtime_packages_match_ldd(v4serve):
    want = linked_packages(v4serve) - BASE_IMAGE_PACKAGES
    have = runtime_packages(DEPLOY / "docker" / "Dockerfile.cpu")
    assert have == want, f"runtime stage lists {sorted(have)}, ldd needs {sorted(want)}"


def overlays():
    return sorted(p for p in (DEPLOY / "k8s" / "overlays").iterdir() if p.is_dir())


def render(overlay):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is missing (scripts/setup installs it)")
    r = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def check_service_monitor(monitor, docs):
    """No published CRD schema is kept here: check what the operator needs to find targets."""
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    wanted = monitor["spec"]["selector"]["matchLabels"]
    services = [d for d in docs if d["kind"] == "Service"
                and wanted.items() <= d["metadata"].get("labels", {}).items()]
    assert services, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
    for endpoint in monitor["spec"]["endpoints"]:
        ports = {p.get("name") for s in services for p in s["spec"]["ports"]}
        assert endpoint["port"] in ports, f"no Service port named {endpoint['port']}"


@pytest.mark.parametrize("overlay", overlays(), ids=lambda p: p.name)
def test_manifests_render_and_validate(overlay):
    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"} <= kinds, kinds
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":
            check_service_monitor(doc, docs)
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for c in pod["containers"]:
            assert {"readinessProbe", "livenessProbe"} <= c.keys(), c["name"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False


def promtool(*args, cwd=None):
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is missing (scripts/setup installs Debian's prometheus)")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd)


def test_alert_rules_check_and_unit_tests():
    rules = DEPLOY / "prometheus"
    r = promtool("check", "rules", "v4serve-rules.yaml", cwd=rules)
    assert r.returncode == 0, r.stdout + r.stderr
    r = promtool("test", "rules", "v4serve-rules.test.yaml", cwd=rules)
    assert r.returncode == 0, r.stdout + r.stderr


def dashboard_expressions():
    dash = json.loads((DEPLOY / "grafana" / "v4serve-dashboard.json").read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


# A comparison at the end of an alert condition: "> 0.95", "== 0", "> (14.4 * 0.01)".
THRESHOLD = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*\(?[0-9.\s*]+\)?\s*$")


def rule_expressions():
    """Recording rules whole; alert conditions split at `and` and without their thresholds, so
    that a quiet server still returns the series an alert watches."""
    groups = yaml.safe_load((DEPLOY / "prometheus" / "v4serve-rules.yaml").read_text())["groups"]
    out = []
    for group in groups:
        for rule in group["rules"]:
            if "record" in rule:
                out.append((rule["record"], rule["record"]))
                continue
            for part in rule["expr"].split(" and "):
                out.append((rule["alert"], THRESHOLD.sub("", part)))
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_panel_and_alert_expression_returns_data(v4serve, tmp_path, tmp_path_factory):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing (scripts/setup installs Debian's prometheus)")
    model = models.tiny_model(tmp_path_factory, v4serve)
    with Server(v4serve, model, "--served-model-name", "tiny", "--kv-memory", "256") as s:
        target = s.url.removeprefix("http://")
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(DEPLOY / "prometheus" / "v4serve-rules.yaml")],
            "scrape_configs": [{"job_name": "v4serve", "static_configs": [{"targets": [target]}]}],
        }))
        proc = subprocess.Popen(
            [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            api = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(api + "/-/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "prometheus did not become ready"
                time.sleep(0.2)
            # A short load spread over a few scrapes: rates need two samples.
            for i in range(6):
                r = httpx.post(s.url + "/v1/chat/completions", timeout=120, json={
                    "model": "tiny", "max_tokens": 4, "temperature": 0,
                    "messages": [{"role": "user", "content": f"lighthouse {i} " * 40}]})
                assert r.status_code == 200, r.text
                httpx.post(s.url + "/v1/chat/completions", timeout=30, json={"model": "tiny"})
                time.sleep(0.7)
            time.sleep(4)
            missing = []
            for name, expr in dashboard_expressions() + rule_expressions():
                r = httpx.get(api + "/api/v1/query", params={"query": expr}, timeout=30).json()
                assert r["status"] == "success", (name, expr, r)
                if not r["data"]["result"]:
                    missing.append(f"{name}: {expr}")
            assert not missing, "expressions with no data:\n" + "\n".join(missing)
        finally:
            proc.terminate()
            proc.wait(30)
