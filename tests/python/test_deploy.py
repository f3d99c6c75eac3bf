"""The deploy/ tree, checked offline: Dockerfiles linted by hadolint and the CPU image's runtime
packages against ldd of the binary; Kubernetes overlays rendered by kustomize and validated
against the Kubernetes schemas, then checked for what a schema cannot see (a router that finds
and may reach its workers, drains within their grace periods, files on mounted volumes); alert
rules by promtool (syntax and unit tests); and every PromQL expression of the Grafana dashboard
and of the alert rules evaluated by a real Prometheus that scrapes a running server after a
short load, so no panel or alert names a metric that does not exist."""

import json
import pathlib
import re
import shutil
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
from cluster import Cluster, free_port  # noqa: E402

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
        if doc["kind"] == "LeaderWorkerSet":
            check_leader_worker_set(doc)
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    check_structure(docs)


# What the LeaderWorkerSet controller sets in every pod of a group (kubernetes-sigs/lws).
LWS_ENV = {"LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE", "LWS_WORKER_INDEX"}


def check_leader_worker_set(lws):
    """No CRD schema is kept here: the pod template is validated strictly as the core schema's
    PodTemplateSpec (inside a Deployment), the group fields by hand, and the ranks' flags
    against what the controller provides."""
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    spec = lws["spec"]
    group = spec["leaderWorkerTemplate"]
    assert set(spec) <= {"replicas", "leaderWorkerTemplate", "startupPolicy", "rolloutStrategy",
                         "networkConfig"}, sorted(spec)
    assert isinstance(group["size"], int) and group["size"] >= 1
    assert group.get("restartPolicy") == "RecreateGroupOnPodRestart", \
        "a group that lost a rank must be recreated whole"
    labels = group["workerTemplate"]["metadata"]["labels"]
    kubernetes_validate.validate({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": lws["metadata"]["name"], "namespace": lws["metadata"]["namespace"]},
        "spec": {"selector": {"matchLabels": labels}, "template": group["workerTemplate"]}},
        K8S_VERSION, strict=True)
    for c in group["workerTemplate"]["spec"]["containers"]:
        f = flags(c)
        if c.get("args", [None])[0] != "worker":
            continue
        assert f.get("--rank") == "$(LWS_WORKER_INDEX)", f
        assert f.get("--ranks") == "$(LWS_GROUP_SIZE)", f
        leader_host, _, leader_port = f["--group-leader"].rpartition(":")
        assert leader_host == "$(LWS_LEADER_ADDRESS)", f
        listen_port = f.get("--group-listen", f["--group-leader"]).rpartition(":")[2]
        assert leader_port == listen_port, "rank 0 listens on another port than its peers dial"
        assert int(leader_port) in {p["containerPort"] for p in c.get("ports", [])}, \
            "the rendezvous port is not a container port"
        # Every $(VAR) in the args is set by the controller or by the container's env.
        env = {e["name"] for e in c.get("env", [])} | LWS_ENV
        used = set(re.findall(r"\$\(([A-Z_]+)\)", " ".join(c["args"])))
        assert used <= env, f"args use unset variables {sorted(used - env)}"
        assert "--group-host" in f and "--group" in f


def check_structure(docs):
    """What a schema cannot see: probes and hardening, drains that fit their grace periods,
    files on mounted volumes, autoscaler targets, and how routers find and reach workers."""
    for workload in workloads(docs):
        pod = template(workload)["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        for c in pod["containers"]:
            assert {"readinessProbe", "livenessProbe"} <= c.keys(), c["name"]
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, c["name"]
            assert "requests" in c.get("resources", {}), c["name"]
            check_drain_fits_grace(pod, c)
            check_files_are_mounted(pod, c)
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        check_autoscaler(hpa, docs)
    for router in containers_running(docs, "router"):
        check_router_finds_workers(router, docs)


WORKLOAD_KINDS = {"Deployment", "StatefulSet", "LeaderWorkerSet"}
# Seconds a command gives running requests on SIGTERM, and their defaults (apps/http_front.h,
# apps/cmd_worker.cpp).
DRAIN_FLAGS = {"serve": ("--drain-timeout", 30.0), "router": ("--drain-timeout", 30.0),
               "worker": ("--drain-grace", 30.0)}
# Flags naming a file the process reads at start (a missing one stops it with exit code 2).
FILE_FLAGS = {"--model", "--tls-cert", "--tls-key", "--tls-client-ca", "--auth-token-file",
              "--workers-tls-ca", "--workers-tls-cert", "--workers-tls-key",
              "--workers-auth-token-file"}


def workloads(docs):
    return [d for d in docs if d["kind"] in WORKLOAD_KINDS]


def template(workload):
    """A workload's pod template (a LeaderWorkerSet's every rank uses its worker template)."""
    if workload["kind"] == "LeaderWorkerSet":
        return workload["spec"]["leaderWorkerTemplate"]["workerTemplate"]
    return workload["spec"]["template"]


def pod_labels(workload):
    return template(workload)["metadata"].get("labels", {})


def flags(container):
    """The --name=value and --name value options of a container's args, by name."""
    args = container.get("args", [])
    out = {}
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        name, eq, value = arg.partition("=")
        if not eq and i + 1 < len(args) and not args[i + 1].startswith("--"):
            value = args[i + 1]
        out[name] = value
    return out


def containers_running(docs, command):
    """(workload, container) for each container whose first argument is the v4serve command."""
    return [(w, c) for w in workloads(docs) for c in template(w)["spec"]["containers"]
            if c.get("args", [None])[0] == command]


def check_drain_fits_grace(pod, container):
    """SIGKILL must not cut the drain short: the grace period exceeds the drain."""
    command = container.get("args", [None])[0]
    if command not in DRAIN_FLAGS:
        return
    flag, default = DRAIN_FLAGS[command]
    drain = float(flags(container).get(flag, default))
    # A preStop sleep runs before SIGTERM, inside the same grace period.
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    assert grace > pre_stop + drain, \
        f"{container['name']}: grace {grace} s does not exceed preStop {pre_stop} s + {flag} {drain}"


def mounted_source(pod, container, path):
    """The volume a file path lies in, and the path inside it; fails when no mount holds it."""
    mounts = sorted(container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
    for mount in mounts:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
            return volume, path[len(prefix):]
    pytest.fail(f"{container['name']}: {path} is on no mounted volume")


def check_files_are_mounted(pod, container):
    for flag, path in flags(container).items():
        if flag not in FILE_FLAGS:
            continue
        volume, inside = mounted_source(pod, container, path)
        secret = volume.get("secret")
        if secret and "items" in secret:
            # With items, only the listed keys exist in the volume.
            assert inside in {i["path"] for i in secret["items"]}, \
                f"{container['name']} {flag}={path}: " \
                f"Secret {secret['secretName']} projects no {inside}"


def secret_key(pod, container, path):
    """(Secret name, key) a mounted file comes from, or None for a volume of another kind."""
    volume, inside = mounted_source(pod, container, path)
    secret = volume.get("secret")
    if secret is None:
        return None
    items = {i["path"]: i["key"] for i in secret.get("items", [])}
    return secret["secretName"], items.get(inside, inside)


def check_autoscaler(hpa, docs):
    ref = hpa["spec"]["scaleTargetRef"]
    targets = [w for w in workloads(docs)
               if w["kind"] == ref["kind"] and w["metadata"]["name"] == ref["name"]]
    assert targets, f"HorizontalPodAutoscaler {hpa['metadata']['name']} scales nothing"
    pod = template(targets[0])["spec"]
    for metric in hpa["spec"].get("metrics", []):
        if metric["type"] == "Resource" and metric["resource"]["target"]["type"] == "Utilization":
            name = metric["resource"]["name"]
            # Utilization is a share of the request: without one the autoscaler has no figure.
            for c in pod["containers"]:
                assert name in c["resources"]["requests"], f"{c['name']} requests no {name}"
        if metric["type"] == "External":
            # Served by the Prometheus adapter's rules kept beside the manifests.
            name = metric["external"]["metric"]["name"]
            assert name in adapter_metrics(), f"no adapter rule serves the metric {name}"
    # An applied replica count would fight the autoscaler at every apply.
    assert "replicas" not in targets[0]["spec"], "the autoscaled workload sets replicas"


ADAPTER_RULES = DEPLOY / "k8s" / "autoscaling" / "prometheus-adapter-rules.yaml"


def adapter_metrics():
    """{external metric name: its PromQL with the adapter's templates filled in}."""
    rules = yaml.safe_load(ADAPTER_RULES.read_text())["externalRules"]
    out = {}
    for rule in rules:
        series = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"]).group(1)
        assert re.fullmatch(rule["name"]["matches"], series), rule
        query = rule["metricsQuery"].replace("<<.Series>>", series).replace(
            "<<.LabelMatchers>>", "").replace(" by (<<.GroupBy>>)", "")
        out[rule["name"]["as"]] = query
    return out


def selects(selector, labels):
    return bool(selector) and selector.items() <= labels.items()


def container_port(container, port):
    """A named or numbered port of a container, as a number."""
    if isinstance(port, int):
        return port
    found = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert found, f"{container['name']} has no port named {port}"
    return found[0]


def check_router_finds_workers(router_entry, docs):
    """The router's --workers-dns names the headless Service of the worker pods and the port
    they listen on; the worker NetworkPolicy admits the router pods, and only them, on that
    port; the router may leave towards it; the router's link security matches the workers'."""
    router, rc = router_entry
    rflags = flags(rc)
    assert "--workers-dns" in rflags, f"{rc['name']}: router without --workers-dns"
    name, _, port = rflags["--workers-dns"].rpartition(":")
    services = [s for s in docs if s["kind"] == "Service" and name ==
                f"{s['metadata']['name']}.{s['metadata']['namespace']}.svc.cluster.local"]
    assert services, f"--workers-dns {name}: no Service of that name in that namespace"
    service = services[0]
    assert service["spec"].get("clusterIP") == "None", f"{name} is not headless"
    ports = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
    assert ports, f"{name} has no port {port}"

    workers = [(w, c) for w, c in containers_running(docs, "worker")
               if selects(service["spec"]["selector"], pod_labels(w))]
    assert workers, f"Service {name} selects no worker pods"
    router_labels = pod_labels(router)
    router_pod = template(router)["spec"]
    for worker, wc in workers:
        wflags = flags(wc)
        grpc_port = container_port(wc, ports[0].get("targetPort", int(port)))
        listen = int(wflags.get("--listen", "127.0.0.1:50051").rpartition(":")[2])
        assert listen == grpc_port, f"worker listens on {listen}, the Service sends to {grpc_port}"
        assert not wflags.get("--listen", "").startswith("127."), "worker listens on loopback"
        labels = pod_labels(worker)

        policies = [p for p in docs if p["kind"] == "NetworkPolicy"
                    and selects(p["spec"]["podSelector"]["matchLabels"], labels)]
        assert policies, "no NetworkPolicy guards the workers"
        admitted = False
        for policy in policies:
            assert "Ingress" in policy["spec"]["policyTypes"], policy["metadata"]["name"]
            for rule in policy["spec"].get("ingress", []):
                peers = rule.get("from", [])
                assert peers, f"{policy['metadata']['name']}: an ingress rule admits any source"
                if worker["kind"] == "LeaderWorkerSet" and all(
                        peer.keys() == {"podSelector"} and
                        peer["podSelector"].get("matchLabels") == policy["spec"]["podSelector"][
                            "matchLabels"] for peer in peers):
                    continue  # the ranks of the groups reach each other (rendezvous, Gloo)
                for peer in peers:
                    assert peer.keys() == {"podSelector"}, \
                        f"{policy['metadata']['name']}: a peer other than pods of the namespace"
                    wanted = peer["podSelector"].get("matchLabels", {})
                    assert selects(wanted, router_labels), f"peer {wanted} is not the routers"
                    others = [w["metadata"]["name"] for w in workloads(docs)
                              if w is not router and selects(wanted, pod_labels(w))]
                    assert not others, f"peer {wanted} also admits {others}"
                rule_ports = [container_port(wc, p["port"]) for p in rule.get("ports", [])]
                assert rule_ports and set(rule_ports) == {grpc_port}, \
                    f"{policy['metadata']['name']}: opens {rule_ports or 'every port'}, " \
                    f"not only {grpc_port}"
                admitted = True
        assert admitted, "the worker NetworkPolicy admits no router"

        for policy in (p for p in docs if p["kind"] == "NetworkPolicy"
                       and selects(p["spec"]["podSelector"]["matchLabels"], router_labels)
                       and "Egress" in p["spec"]["policyTypes"]):
            assert any(
                any(selects(peer.get("podSelector", {}).get("matchLabels", {}), labels)
                    for peer in rule.get("to", []))
                and any(container_port(wc, p["port"]) == grpc_port for p in rule.get("ports", []))
                for rule in policy["spec"].get("egress", [])), \
                f"{policy['metadata']['name']}: the routers may not reach the workers' gRPC port"

        # Each side's settings require the other's: a mismatch leaves every worker unusable.
        pairs = {"--tls-cert": "--workers-tls-ca", "--tls-client-ca": "--workers-tls-cert",
                 "--auth-token-file": "--workers-auth-token-file"}
        for wflag, rflag in pairs.items():
            assert (wflag in wflags) == (rflag in rflags), f"worker {wflag} without router {rflag}"
        assert ("--workers-tls-cert" in rflags) == ("--workers-tls-key" in rflags)
        if "--auth-token-file" in wflags:
            worker_pod = template(worker)["spec"]
            assert secret_key(worker_pod, wc, wflags["--auth-token-file"]) == \
                secret_key(router_pod, rc, rflags["--workers-auth-token-file"]), \
                "the router and the workers read their tokens from different Secrets"


def distributed_docs():
    return render(DEPLOY / "k8s" / "overlays" / "distributed")


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def container(docs, name):
    return find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def set_flag(c, flag, value):
    c["args"] = [a for a in c["args"] if not a.startswith(flag + "=")] + [f"{flag}={value}"]


def drop_flag(c, flag):
    c["args"] = [a for a in c["args"] if not a.startswith(flag + "=")]


def worker_policy(docs):
    return find(docs, "NetworkPolicy", "v4serve-worker")["spec"]


# Each breaks the distributed overlay in a way a schema accepts and a cluster would not work with.
BREAKAGES = {
    "dns names the router Service": lambda d: set_flag(
        container(d, "v4serve-router"), "--workers-dns", "v4serve.v4serve.svc.cluster.local:8000"),
    "dns names another namespace": lambda d: set_flag(
        container(d, "v4serve-router"), "--workers-dns",
        "v4serve-worker.default.svc.cluster.local:50051"),
    "dns port is not the Service's": lambda d: set_flag(
        container(d, "v4serve-router"), "--workers-dns",
        "v4serve-worker.v4serve.svc.cluster.local:50052"),
    "worker Service not headless": lambda d: find(d, "Service", "v4serve-worker")["spec"].pop(
        "clusterIP"),
    "worker listens elsewhere": lambda d: set_flag(
        container(d, "v4serve-worker"), "--listen", "0.0.0.0:50052"),
    "worker policy admits any pod": lambda d: worker_policy(d)["ingress"][0]["from"][0].update(
        podSelector={}),
    "worker policy admits workers": lambda d: worker_policy(d)["ingress"][0]["from"][0].update(
        podSelector={"matchLabels": {"app.kubernetes.io/component": "worker"}}),
    "worker policy admits any source": lambda d: worker_policy(d)["ingress"][0].pop("from"),
    "worker policy opens every port": lambda d: worker_policy(d)["ingress"][0].pop("ports"),
    "worker policy opens another port": lambda d: worker_policy(d)["ingress"][0].update(
        ports=[{"port": 8000, "protocol": "TCP"}]),
    "router may not reach workers": lambda d: find(d, "NetworkPolicy", "v4serve-router")[
        "spec"]["egress"].pop(0),
    "grace equals drain": lambda d: find(d, "Deployment", "v4serve-worker")["spec"]["template"][
        "spec"].update(terminationGracePeriodSeconds=60),
    "default grace under drain": lambda d: find(d, "Deployment", "v4serve-worker")["spec"][
        "template"]["spec"].pop("terminationGracePeriodSeconds"),
    "token file not mounted": lambda d: set_flag(
        container(d, "v4serve-worker"), "--auth-token-file", "/etc/v4serve/secret/token"),
    "token key not projected": lambda d: set_flag(
        container(d, "v4serve-router"), "--workers-auth-token-file", "/etc/v4serve/token/api"),
    "router certificate not mounted": lambda d: container(d, "v4serve-router")[
        "volumeMounts"].pop(1),
    "router sends no token": lambda d: drop_flag(
        container(d, "v4serve-router"), "--workers-auth-token-file"),
    "router presents no certificate": lambda d: drop_flag(
        container(d, "v4serve-router"), "--workers-tls-cert"),
    "tokens from different Secrets": lambda d: next(
        v for v in find(d, "Deployment", "v4serve-router")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "token")["secret"].update(secretName="another-token"),
    "preStop and drain exceed the grace": lambda d: container(d, "v4serve-router")[
        "lifecycle"]["preStop"]["sleep"].update(seconds=40),
    "autoscaled router sets replicas": lambda d: find(d, "Deployment", "v4serve-router")[
        "spec"].update(replicas=2),
    "autoscaled workers set replicas": lambda d: find(d, "Deployment", "v4serve-worker")[
        "spec"].update(replicas=2),
    "workers scale on a metric no adapter serves": lambda d: find(
        d, "HorizontalPodAutoscaler", "v4serve-worker")["spec"]["metrics"][0]["external"][
        "metric"].update(name="v4serve_queue"),
}


@pytest.mark.parametrize("breakage", BREAKAGES, ids=str)
def test_structural_checks_catch(breakage):
    docs = distributed_docs()
    BREAKAGES[breakage](docs)
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        check_structure(docs)


def rank_container(docs):
    return template(find(docs, "LeaderWorkerSet", "v4serve-worker"))["spec"]["containers"][0]


def lws_group(docs):
    return find(docs, "LeaderWorkerSet", "v4serve-worker")["spec"]["leaderWorkerTemplate"]


# Each breaks the expert-parallel overlay's worker groups in a way a cluster would not run.
GROUP_BREAKAGES = {
    "rank not from the controller": lambda d: set_flag(rank_container(d), "--rank", "0"),
    "ranks not the group size": lambda d: set_flag(rank_container(d), "--ranks", "4"),
    "leader dialled on another port": lambda d: set_flag(
        rank_container(d), "--group-leader", "$(LWS_LEADER_ADDRESS):29501"),
    "rendezvous port not exposed": lambda d: rank_container(d).update(
        ports=[p for p in rank_container(d)["ports"] if p["name"] != "rendezvous"]),
    "unset variable": lambda d: set_flag(rank_container(d), "--group-host", "$(NODE_IP)"),
    "group not recreated whole": lambda d: lws_group(d).pop("restartPolicy"),
    "pod template invalid": lambda d: rank_container(d)["ports"][0].update(containerPort="grpc"),
    "ranks without their own address": lambda d: drop_flag(rank_container(d), "--group-host"),
    "autoscaled groups set replicas": lambda d: find(d, "LeaderWorkerSet", "v4serve-worker")[
        "spec"].update(replicas=2),
    "routers admitted on every port": lambda d: find(d, "NetworkPolicy", "v4serve-worker")[
        "spec"]["ingress"][0].pop("ports"),
}


@pytest.mark.parametrize("breakage", GROUP_BREAKAGES, ids=str)
def test_group_checks_catch(breakage):
    docs = render(DEPLOY / "k8s" / "overlays" / "expert-parallel")
    GROUP_BREAKAGES[breakage](docs)
    with pytest.raises((AssertionError, pytest.fail.Exception,
                        kubernetes_validate.ValidationError)):
        check_leader_worker_set(find(docs, "LeaderWorkerSet", "v4serve-worker"))
        check_structure(docs)


def promtool(*args, cwd=None):
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is missing (scripts/setup installs Debian's prometheus)")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=cwd)


def test_gpu_workers_get_a_gpu_and_the_routers_do_not():
    docs = render(DEPLOY / "k8s" / "overlays" / "distributed-gpu")
    worker = container(docs, "v4serve-worker")
    router = container(docs, "v4serve-router")
    assert "--device=cuda" in worker["args"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["resources"]["limits"]["memory"], "the GPU patch dropped the memory limit"
    assert worker["image"].endswith(":cuda") and router["image"].endswith(":cpu")
    assert not any(a.startswith("--device") for a in router["args"])
    assert "nvidia.com/gpu" not in router.get("resources", {}).get("limits", {})
    tolerations = find(docs, "Deployment", "v4serve-worker")["spec"]["template"]["spec"]
    assert any(t["key"] == "nvidia.com/gpu" for t in tolerations["tolerations"])


def test_gpu_worker_groups_give_each_rank_a_gpu_and_nccl_its_shared_memory():
    docs = render(DEPLOY / "k8s" / "overlays" / "expert-parallel-gpu")
    lws = find(docs, "LeaderWorkerSet", "v4serve-worker")
    check_leader_worker_set(lws)
    pod = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    rank = pod["containers"][0]
    assert "--device=cuda" in rank["args"] and any(a.startswith("--group=") for a in rank["args"])
    assert rank["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert rank["image"].endswith(":cuda")
    shm = [m for m in rank["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    assert shm and any(v["name"] == shm[0]["name"] and v["emptyDir"]["medium"] == "Memory"
                       for v in pod["volumes"])
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    router = container(docs, "v4serve-router")
    assert router["image"].endswith(":cpu") and "nvidia.com/gpu" not in router["resources"].get(
        "limits", {})


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


# Series only a router over gRPC workers serves (its worker view, and worker groups' exchanges).
ROUTER_ONLY = re.compile(r"v4serve:(router_|ep_)")


@pytest.mark.parametrize("form", ["serve", "router"])
def test_every_panel_and_alert_expression_returns_data(v4serve, tmp_path, tmp_path_factory, form):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is missing (scripts/setup installs Debian's prometheus)")
    model = models.tiny_model(tmp_path_factory, v4serve)
    if form == "serve":
        with Server(v4serve, model, "--served-model-name", "tiny", "--kv-memory", "256") as s:
            scrape_and_query(prometheus, s.url, tmp_path, router=False)
    else:
        # A worker group of 2 ranks and a single worker behind one router.
        with Cluster(v4serve, model, workers=1, groups=[2],
                     router_args=["--served-model-name", "tiny"]) as c:
            scrape_and_query(prometheus, c.url, tmp_path, router=True)


def scrape_and_query(prometheus, url, tmp_path, router):
    """Prometheus scrapes `url` while a short load runs; then every dashboard and alert
    expression must return data."""
    target = url.removeprefix("http://")
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
        # A short load spread over a few scrapes: rates need two samples. Two requests at a
        # time, so that with several workers more than one gets some.
        for i in range(6):
            for j in range(2):
                r = httpx.post(url + "/v1/chat/completions", timeout=120, json={
                    "model": "tiny", "max_tokens": 4, "temperature": 0,
                    "messages": [{"role": "user", "content": f"lighthouse {i} {j} " * 40}]})
                assert r.status_code == 200, r.text
            httpx.post(url + "/v1/chat/completions", timeout=30, json={"model": "tiny"})
            time.sleep(0.7)
        time.sleep(4)
        missing = []
        adapter = [(f"adapter {n}", q) for n, q in adapter_metrics().items()]
        for name, expr in dashboard_expressions() + rule_expressions() + adapter:
            if not router and ROUTER_ONLY.search(expr):
                continue
            r = httpx.get(api + "/api/v1/query", params={"query": expr}, timeout=30).json()
            assert r["status"] == "success", (name, expr, r)
            if not r["data"]["result"]:
                missing.append(f"{name}: {expr}")
        assert not missing, "expressions with no data:\n" + "\n".join(missing)
    finally:
        proc.terminate()
        proc.wait(30)
