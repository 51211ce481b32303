"""deploy/k8s, the kustomize base: schema-valid manifests, a config regprobe itself loads, the CronJob's
hardening and timing, and a PrometheusRule that carries exactly the groups of alerts/regprobe.rules.yml.

kubernetes-validate checks against the JSON schemas it ships (no network, no cluster). It knows no CRD
kinds: given a PrometheusRule it prints a warning and exits 0, so that one is checked here by hand and
excluded from the schema run, which must report every other resource as validated.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from regprobe import config as config_mod
from regprobe import shard as shard_mod
from regprobe.errors import ConfigError

from .util import kustomize_build

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
RULES = ROOT / "alerts" / "regprobe.rules.yml"
GENERATOR = ROOT / "scripts" / "gen-prometheusrule.py"

KUBERNETES_VERSION = "1.30"
#: Files in deploy/k8s that are not Kubernetes objects.
NOT_MANIFESTS = {"kustomization.yaml", "config.yaml"}
#: Examples an operator copies and fills in; applying them as they are would do harm.
EXAMPLES = {"secret.example.yaml", "networkpolicy.yaml"}
#: Custom resources kubernetes-validate has no schema for.
CRD_KINDS = {"PrometheusRule", "ServiceMonitor", "PodMonitor"}
#: The alerts assume one run per 15 minutes (alerts/regprobe.rules.yml).
INTERVAL_SECONDS = 15 * 60
#: What a Job spends before regprobe's clock starts: scheduling, the image pull, Python's start-up.
START_UP_SECONDS = 60
#: Left over after the pushes: stopping the walk, printing the report.
SPARE_SECONDS = 15

MANIFESTS = sorted(p.name for p in K8S.glob("*.yaml") if p.name not in NOT_MANIFESTS)


def _show(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def _load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((K8S / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict), name
    return doc


def _kinds(name: str) -> set[str]:
    return {doc["kind"] for doc in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if doc}


def _kubernetes_validate(*paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBERNETES_VERSION, *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _kustomization() -> dict[str, Any]:
    return _load("kustomization.yaml")


def _cronjob() -> dict[str, Any]:
    return _load("cronjob.yaml")


def _pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = _cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return spec


def _container() -> dict[str, Any]:
    containers = _pod_spec()["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _volume(mount_path: str) -> dict[str, Any]:
    """The pod volume mounted at ``mount_path`` in the container."""
    mounts = {m["mountPath"]: m for m in _container()["volumeMounts"]}
    assert mount_path in mounts, f"nothing is mounted at {mount_path}"
    volumes = {v["name"]: v for v in _pod_spec()["volumes"]}
    volume: dict[str, Any] = volumes[mounts[mount_path]["name"]]
    return volume


def test_serve_with_events(tmp_path: Path) -> None:
    """The events component, in an overlay of the serve overlay: the registries that send events (pods
    labelled regprobe.io/events-sender) reach the port, from any namespace; Prometheus still scrapes;
    nobody else gets in."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (for its built-in kustomize) is not on PATH")
    serve = os.path.relpath(K8S.parent / "overlays" / "serve", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [serve], "components": [f"{serve}/events"]}), encoding="utf-8"
    )
    proc = subprocess.run(
        [kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, _show(proc)
    objects = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    assert {p["metadata"]["name"] for p in policies} == {"regprobe-serve", "regprobe-serve-events"}
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]
    sender = {"app.kubernetes.io/name": "registry", "regprobe.io/events-sender": "true"}
    for namespace in ("registry", "monitoring"):
        assert _ingress_admits(policies, pod, sender, namespace, "http-metrics"), namespace
        assert _ingress_admits(policies, pod, PROMETHEUS, namespace, "http-metrics"), namespace
        assert not _ingress_admits(policies, pod, {"app.kubernetes.io/name": "registry"}, namespace, "http-metrics")
    # The Secret the Deployment mounts is where the documented secret_file lives.
    mounts = {m["name"]: m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    (name,) = [n for n, v in volumes.items() if v.get("secret", {}).get("secretName") == "regprobe-credentials"]
    assert mounts[name] == "/var/run/secrets/regprobe"  # secret_file: /var/run/secrets/regprobe/events
    _assert_schema_valid(objects, tmp_path)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_prometheusrule", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shipped_copy(tmp_path: Path, replace_hosts: bool = True, drop: str | None = None) -> Path:
    """deploy/k8s/config.yaml as a file regprobe can load here: the password file pointed at a temp file
    (the loader reads it at load time, and the shipped path exists only inside the pod), and with
    ``replace_hosts`` the example.com placeholders replaced, as a user does; ``drop``: a top-level key
    left out."""
    text = (K8S / "config.yaml").read_text(encoding="utf-8")
    paths = set(re.findall(r"password_file:\s*(\S+)", text))
    password = tmp_path / "password"
    password.write_text("not-the-real-one\n", encoding="utf-8")
    for path in paths:
        text = text.replace(path, str(password))
    if replace_hosts:
        text = re.sub(r"\.example\.com\b", ".corp.internal", text)
    if drop is not None:
        text = re.sub(rf"^{drop}:.*\n", "", text, flags=re.MULTILINE)
    copy = tmp_path / "config.yaml"
    copy.write_text(text, encoding="utf-8")
    return copy


def _shipped_config(tmp_path: Path, drop: str | None = None) -> config_mod.Config:
    """deploy/k8s/config.yaml through regprobe's own loader, as a user has filled it in."""
    return config_mod.load(_shipped_copy(tmp_path, drop=drop))


# --- schemas and lint ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [m for m in MANIFESTS if not _kinds(m) & CRD_KINDS])
def test_manifest_passes_kubernetes_validate(name: str) -> None:
    proc = _kubernetes_validate(f"deploy/k8s/{name}")
    assert proc.returncode == 0, _show(proc)
    # A kind without a schema is a warning and exit 0: make sure every object was really checked.
    assert "WARN" not in proc.stdout, _show(proc)
    validated = proc.stdout.count(" passed for resource ")
    assert validated == len(list(yaml.safe_load_all((K8S / name).read_text()))), _show(proc)


def test_kubernetes_validate_catches_a_misspelt_field(tmp_path: Path) -> None:
    """The schema run above means something: --strict rejects a field Kubernetes would silently drop."""
    text = (K8S / "cronjob.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "cronjob.yaml"
    bad.write_text(text.replace("restartPolicy: Never", "restartPolicy: Never\n          restartPolcy: Never"))
    proc = _kubernetes_validate(str(bad))
    assert proc.returncode != 0, _show(proc)
    assert "restartPolcy" in proc.stdout, _show(proc)


def test_only_the_prometheusrule_is_a_custom_resource() -> None:
    crds = [m for m in MANIFESTS if _kinds(m) & CRD_KINDS]
    assert crds == ["prometheusrule.yaml"]
    proc = _kubernetes_validate("deploy/k8s/prometheusrule.yaml")
    # If a later kubernetes-validate learns the kind, fold it into the schema run above.
    assert "Couldn't find schema for kind PrometheusRule" in proc.stdout, _show(proc)


def test_prometheusrule_structure() -> None:
    doc = _load("prometheusrule.yaml")
    assert doc["apiVersion"] == "monitoring.coreos.com/v1"
    assert doc["kind"] == "PrometheusRule"
    assert doc["metadata"]["name"] == "regprobe"
    assert "namespace" not in doc["metadata"], "the kustomization sets the namespace"
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(doc["spec"]) == {"groups"}
    groups = doc["spec"]["groups"]
    assert isinstance(groups, list) and groups
    names = [group["name"] for group in groups]
    assert len(names) == len(set(names)), "group names must be unique within a PrometheusRule"
    alerts = set()
    for group in groups:
        assert set(group) <= {"name", "interval", "rules", "limit", "partial_response_strategy"}, group["name"]
        for rule in group["rules"]:
            assert isinstance(rule.get("expr"), str) and rule["expr"].strip()
            assert ("alert" in rule) != ("record" in rule)
            assert set(rule) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
            if "alert" in rule:
                alerts.add(rule["alert"])
                assert {"summary", "description", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
                assert "severity" in rule["labels"], rule["alert"]
    assert {
        "RegistryManifestIntegrityFailure",
        "RegistryIntegrityProbeStale",
        "RegistryCatalogInaccessible",
        "RegistryVerificationCoverageLow",
    } <= alerts


def test_prometheusrule_spec_passes_promtool(tmp_path: Path) -> None:
    """What the operator hands Prometheus is a valid rule file (PromQL and templates parse)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (apt-get install prometheus); CI installs it")
    rules = tmp_path / "spec.rules.yml"
    rules.write_text(yaml.safe_dump(_load("prometheusrule.yaml")["spec"]), encoding="utf-8")
    proc = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, _show(proc)


def test_prometheusrule_matches_alerts() -> None:
    committed = _load("prometheusrule.yaml")
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    fix = "deploy/k8s/prometheusrule.yaml is out of date: run `python scripts/gen-prometheusrule.py`"
    assert committed["spec"]["groups"] == rules["groups"], fix
    regenerated = yaml.safe_load(_generator().render(RULES.read_text(encoding="utf-8")))
    assert committed == regenerated, fix


def test_yamllint() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint.yaml", "deploy", "alerts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, _show(proc)


# --- the kustomization ----------------------------------------------------------------------------------


def test_kustomization_references_exist() -> None:
    kustomization = _kustomization()
    assert kustomization["namespace"] == "monitoring"
    files = list(kustomization["resources"])
    for generator in kustomization["configMapGenerator"]:
        files += [entry.split("=", 1)[-1] for entry in generator["files"]]
    for name in files:
        assert (K8S / name).is_file(), f"kustomization.yaml names {name}, which does not exist"


def test_every_manifest_is_applied_or_an_example() -> None:
    resources = set(_kustomization()["resources"])
    assert not resources & EXAMPLES, "examples hold placeholders and must not be applied by the base"
    assert set(MANIFESTS) == resources | EXAMPLES


def test_kustomize_build(tmp_path: Path) -> None:
    """The base renders; the generated ConfigMap is what the CronJob mounts; the output validates."""
    objects = kustomize_build(K8S)
    assert {o["metadata"]["namespace"] for o in objects} == {"monitoring"}
    by_kind = {o["kind"]: o for o in objects}
    assert set(by_kind) == {"ServiceAccount", "ConfigMap", "CronJob", "PrometheusRule"}
    configmap = by_kind["ConfigMap"]
    assert configmap["data"]["config.yaml"] == (K8S / "config.yaml").read_text(encoding="utf-8")
    pod = by_kind["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    mounted = {v["name"]: v for v in pod["volumes"]}["config"]["configMap"]["name"]
    assert mounted == configmap["metadata"]["name"] != "regprobe-config", "the hashed name is mounted"

    built = tmp_path / "built.yaml"
    built.write_text(yaml.safe_dump_all([o for o in objects if o["kind"] not in CRD_KINDS]), encoding="utf-8")
    proc = _kubernetes_validate(str(built))
    assert proc.returncode == 0 and "WARN" not in proc.stdout, _show(proc)


# --- what the CronJob runs ------------------------------------------------------------------------------


def test_shipped_config_loads(tmp_path: Path) -> None:
    cfg = _shipped_config(tmp_path)
    by_name = {r.name: r for r in cfg.registries}
    assert by_name["private"].auth is not None
    assert by_name["private"].auth.password is not None
    assert by_name["dockerhub-cache"].pull_through is True
    assert cfg.pushgateway is not None
    assert cfg.pushgateway.url == "http://pushgateway.monitoring:9091"
    assert cfg.pushgateway.job == "registry-integrity-probe", "the alerts' absent() branch names this job"


def test_the_shipped_example_is_refused_until_replaced(tmp_path: Path, regprobe: Any) -> None:
    """Applied as shipped, the base must not probe registry.example.com every 15 minutes and page for an
    unreachable registry: regprobe refuses the example's hosts (exit 2, nothing probed), naming each one
    and saying what to do - the first `kubectl logs` of the first run shows it."""
    run = regprobe("run", "-c", str(_shipped_copy(tmp_path, replace_hosts=False)), "--no-push")
    assert run.code == 2, run.err
    for i in range(len(_shipped_config(tmp_path).registries)):
        assert f"registries[{i}].url: names a reserved example domain" in run.err, run.err
    assert "replace it with your own (docs/operator-guide.md, Install)" in run.err
    assert not run.out


def test_config_paths_match_the_cronjob(tmp_path: Path) -> None:
    container = _container()
    assert container["args"] == ["run", "-c", "/etc/regprobe/config.yaml"]
    assert {"name": "REGPROBE_CONFIG", "value": "/etc/regprobe/config.yaml"} in container["env"]
    config_volume = _volume("/etc/regprobe")
    assert config_volume["configMap"]["name"] == _kustomization()["configMapGenerator"][0]["name"]

    secret_volume = _volume("/var/run/secrets/regprobe")["secret"]
    secret = _load("secret.example.yaml")
    assert secret_volume["secretName"] == secret["metadata"]["name"]
    assert secret_volume["optional"] is True, "the base must apply before the Secret exists"
    assert secret_volume["defaultMode"] == 0o400
    text = (K8S / "config.yaml").read_text(encoding="utf-8")
    for path in re.findall(r"password_file:\s*(\S+)", text):
        directory, key = path.rsplit("/", 1)
        assert directory == "/var/run/secrets/regprobe"
        assert key in secret["stringData"], f"the Secret has no key {key!r}"


def test_cache_dir_outlives_the_pod(tmp_path: Path) -> None:
    """Each run is a new pod: a cache_dir on an emptyDir starts cold every time, and a cold cache costs
    a HEAD on top of every tag's GET. cache_dir only belongs on a volume that persists."""
    cache_dir = _shipped_config(tmp_path).cache_dir
    if cache_dir is None:
        pytest.skip("cache_dir is off in the shipped config (docs/operator-guide.md has the PVC patch)")
    assert "emptyDir" not in _volume(cache_dir), "cache_dir on an emptyDir costs requests and saves none"


#: What a regprobe pod may write to, and nothing else: scratch space and the manifest cache.
WRITABLE = frozenset({"/tmp", "/var/cache/regprobe"})


def _assert_hardened(
    pod: dict[str, Any],
    container: dict[str, Any],
    writable: frozenset[str] = WRITABLE,
    claims: frozenset[str] = frozenset(),
) -> None:
    """What every regprobe pod must be, CronJob, Deployment or StatefulSet; ``writable`` the paths it may
    write to, ``claims`` its StatefulSet's volumeClaimTemplates."""
    assert pod["serviceAccountName"] == _load("serviceaccount.yaml")["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False
    assert _load("serviceaccount.yaml")["automountServiceAccountToken"] is False

    pod_security = pod["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == pod_security["runAsGroup"] == 65532
    assert pod_security["fsGroup"] == 65532, "the 0400 Secret files are readable through fsGroup only"
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}

    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert security.get("privileged", False) is False

    for mount in container["volumeMounts"]:
        if mount["mountPath"] in ("/etc/regprobe", "/var/run/secrets/regprobe"):
            assert mount.get("readOnly") is True, mount["mountPath"]
    assert {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")} == writable
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        if mount["mountPath"] in writable and mount["name"] not in claims:
            volume = volumes[mount["name"]]
            assert "emptyDir" in volume or "persistentVolumeClaim" in volume, mount["mountPath"]
    assert not any("hostPath" in v for v in pod["volumes"])

    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])


def test_cronjob_hardening() -> None:
    assert _pod_spec()["restartPolicy"] == "Never"
    _assert_hardened(_pod_spec(), _container())
    assert _cronjob()["metadata"]["name"] == "regprobe"


def test_cronjob_timing() -> None:
    spec = _cronjob()["spec"]
    job = spec["jobTemplate"]["spec"]
    assert spec["schedule"] == "*/15 * * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] < INTERVAL_SECONDS
    assert job["backoffLimit"] == 0


def _budget(cfg: config_mod.Config) -> float:
    """Seconds a run may spend from the Job's start: start-up, the walk up to its deadline, then one push
    per registry, each bounded by the top-level timeout (metrics.push_all)."""
    pushes = len(cfg.registries) * cfg.timeout if cfg.pushgateway is not None else 0.0
    return START_UP_SECONDS + cfg.deadline + pushes


@pytest.mark.parametrize("drop", [None, "deadline"], ids=["shipped", "deadline-left-out"])
def test_the_time_budget_adds_up(tmp_path: Path, drop: str | None) -> None:
    """A run that reaches its deadline still pushes before activeDeadlineSeconds kills the pod, and the
    Job is gone before the next one is due (docs/operator-guide.md, "Tune for a large registry").
    Left out, `deadline` takes its default, which must fit as well."""
    cfg = _shipped_config(tmp_path, drop=drop)
    active = _cronjob()["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert _budget(cfg) + SPARE_SECONDS <= active < INTERVAL_SECONDS, (
        f"{START_UP_SECONDS} s start-up + deadline {cfg.deadline:g} + {len(cfg.registries)} pushes x "
        f"timeout {cfg.timeout:g} + {SPARE_SECONDS} s spare > activeDeadlineSeconds {active}"
    )


def test_networkpolicy_example() -> None:
    policy = _load("networkpolicy.yaml")
    pod_labels = _cronjob()["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= pod_labels.items(), "the policy must select the CronJob's pods"
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["spec"]["ingress"] == []
    ports = {(p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 9091), ("TCP", 443), ("TCP", 5000)}
    cidrs = [peer["ipBlock"]["cidr"] for rule in policy["spec"]["egress"] for peer in rule["to"] if "ipBlock" in peer]
    assert cidrs == ["192.0.2.0/24"], "a documentation range: the example must not open a real network"


def _build_overlay(name: str) -> list[dict[str, Any]]:
    """deploy/overlays/NAME rendered by kustomize."""
    return kustomize_build(K8S.parent / "overlays" / name)


def _assert_schema_valid(objects: list[dict[str, Any]], tmp_path: Path) -> None:
    built = tmp_path / "built.yaml"
    built.write_text(yaml.safe_dump_all([o for o in objects if o["kind"] not in CRD_KINDS]), encoding="utf-8")
    proc = _kubernetes_validate(str(built))
    assert proc.returncode == 0 and "WARN" not in proc.stdout, _show(proc)


def test_sharded_overlay(tmp_path: Path) -> None:
    """The Indexed-Job overlay renders, validates, and tells regprobe the same shard count it runs."""
    objects = _build_overlay("sharded")
    job = next(o for o in objects if o["kind"] == "CronJob")["spec"]["jobTemplate"]["spec"]
    env = {e["name"]: e.get("value") for e in job["template"]["spec"]["containers"][0]["env"]}
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == int(env["REGPROBE_SHARDS"])
    _assert_schema_valid(objects, tmp_path)


def test_serve_overlay(tmp_path: Path) -> None:
    """`regprobe serve` instead of the CronJob: one hardened pod, scraped under the job name the alerts'
    absent branch matches, on the port and path regprobe serves."""
    objects = _build_overlay("serve")
    by_kind = {o["kind"]: o for o in objects}
    assert len(by_kind) == len(objects)
    assert set(by_kind) == {
        "ServiceAccount", "ConfigMap", "Deployment", "Service", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"
    }  # fmt: skip
    assert {o["metadata"]["namespace"] for o in objects} == {"monitoring"}

    deployment = by_kind["Deployment"]
    assert deployment["spec"]["replicas"] == 1, "two probers would double every broken-image count"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    _assert_hardened(pod, container)
    assert 0 < pod["terminationGracePeriodSeconds"] <= 30

    args = container["args"]
    assert args[:3] == ["serve", "-c", "/etc/regprobe/config.yaml"]
    _, port = config_mod.parse_listen(args[args.index("--listen") + 1])
    (container_port,) = container["ports"]
    assert container_port["containerPort"] == port
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": container_port["name"]}
    mounted = {v["name"]: v for v in pod["volumes"]}["config"]["configMap"]["name"]
    assert mounted == by_kind["ConfigMap"]["metadata"]["name"] != "regprobe-config", "the hashed name is mounted"

    service, monitor = by_kind["Service"], by_kind["ServiceMonitor"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == container_port["name"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"] and endpoint["path"] == "/metrics"
    assert not endpoint.get("honorLabels"), "serve's series carry no job of their own"
    job = service["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    assert job == "registry-integrity-probe", "the stale alert's absent branch matches this job"

    _assert_schema_valid(objects, tmp_path)


# --- who may reach regprobe serve -------------------------------------------------------------------------

PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "matchExpressions: teach _matches"
    return bool(selector.get("matchLabels", {}).items() <= labels.items())


def _ingress_admits(
    policies: list[dict[str, Any]], pod: dict[str, Any], source: dict[str, str], source_namespace: str, port: str
) -> bool:
    """NetworkPolicy's ingress semantics for traffic from a pod labelled ``source`` in namespace
    ``source_namespace`` to the named container ``port`` of ``pod`` (a Deployment's pod template, in
    monitoring): isolated once any Ingress policy selects it, then admitted if any rule of any of them
    admits the peer on that port. Policies only ever add what they allow."""
    labels = pod["metadata"]["labels"]
    (container,) = pod["spec"]["containers"]
    number = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
    selecting = [
        p for p in policies
        if p["metadata"]["namespace"] == "monitoring" and _matches(p["spec"]["podSelector"], labels)
        and "Ingress" in p["spec"]["policyTypes"]
    ]  # fmt: skip
    if not selecting:
        return True
    namespace_labels = {"kubernetes.io/metadata.name": source_namespace}
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            peer_ok = not peers or any(
                "ipBlock" not in peer
                and (
                    _matches(peer["namespaceSelector"], namespace_labels)
                    if "namespaceSelector" in peer
                    else source_namespace == "monitoring"
                )
                and _matches(peer.get("podSelector", {}), source)
                for peer in peers
            )
            ports = rule.get("ports")
            port_ok = not ports or any(p.get("protocol", "TCP") == "TCP" and p["port"] in (port, number) for p in ports)
            if peer_ok and port_ok:
                return True
    return False


@pytest.mark.parametrize("with_base_example", [False, True], ids=["overlay", "plus-the-base-example"])
def test_serve_admits_prometheus_and_nobody_else(with_base_example: bool) -> None:
    """The serve overlay's NetworkPolicy lets Prometheus scrape, from its own namespace or another, and
    keeps everyone else off the port; copying the base's example (`ingress: []`) beside it changes
    neither, as policies add up."""
    objects = _build_overlay("serve")
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    if with_base_example:
        policies.append(_load("networkpolicy.yaml"))
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]
    for namespace in ("monitoring", "prometheus"):
        assert _ingress_admits(policies, pod, PROMETHEUS, namespace, "http-metrics"), namespace
        assert not _ingress_admits(policies, pod, {"app": "curl"}, namespace, "http-metrics"), namespace
    (own,) = [p for p in policies if p["metadata"]["name"] == "regprobe-serve"]
    assert own["spec"]["policyTypes"] == ["Ingress"], "egress is the operator's choice (the base's example)"


def test_the_base_example_alone_would_block_the_scrape() -> None:
    """Why the overlay has a policy of its own: the base's example, copied for serve, admits nothing."""
    pod = next(o for o in _build_overlay("serve") if o["kind"] == "Deployment")["spec"]["template"]
    assert not _ingress_admits([_load("networkpolicy.yaml")], pod, PROMETHEUS, "monitoring", "http-metrics")


def test_serve_with_a_podmonitor(tmp_path: Path) -> None:
    """The podmonitor component, in an overlay of the serve overlay: the ServiceMonitor is replaced (never
    both: the pod would be scraped twice and every broken image counted twice) by a PodMonitor that
    scrapes the same port and path under the job name the alerts match."""
    serve = os.path.relpath(K8S.parent / "overlays" / "serve", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [serve], "components": [f"{serve}/podmonitor"]}), encoding="utf-8"
    )
    objects = kustomize_build(tmp_path)
    kinds = [o["kind"] for o in objects]
    assert "ServiceMonitor" not in kinds and kinds.count("PodMonitor") == 1
    monitor = next(o for o in objects if o["kind"] == "PodMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring"
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (container,) = pod["spec"]["containers"]
    assert endpoint["port"] in {p["name"] for p in container["ports"]} and endpoint["path"] == "/metrics"
    assert not endpoint.get("honorLabels"), "serve's series carry no job of their own"
    job = pod["metadata"]["labels"][monitor["spec"]["jobLabel"]]
    assert job == "registry-integrity-probe", "the stale alert's absent branch matches this job"
    _assert_schema_valid(objects, tmp_path)


# --- continuous verification: the ledger's topology ------------------------------------------------------


def _overlay_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The config.yaml of the overlay's (one) ConfigMap."""
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
    config: dict[str, Any] = yaml.safe_load(configmap["data"]["config.yaml"])
    return config


def _mounted_at(container: dict[str, Any], path: str) -> str:
    """The name of the volume mounted at ``path``."""
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert path in mounts, f"nothing is mounted at {path}"
    return str(mounts[path])


def test_continuous_overlay(tmp_path: Path) -> None:
    """`regprobe serve` as a StatefulSet: one shard per replica, taken from the pod's ordinal, and one
    ReadWriteOnce claim per replica mounted where the config keeps its ledger; scraped per replica."""
    objects = _build_overlay("continuous")
    by_kind = {o["kind"]: o for o in objects}
    assert len(by_kind) == len(objects)
    assert set(by_kind) == {
        "ServiceAccount", "ConfigMap", "StatefulSet", "Service", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"
    }  # fmt: skip
    assert {o["metadata"]["namespace"] for o in objects} == {"monitoring"}

    statefulset = by_kind["StatefulSet"]["spec"]
    pod = statefulset["template"]["spec"]
    (container,) = pod["containers"]
    config = _overlay_config(objects)
    (claim,) = statefulset["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"], "one node, one writer: never a network filesystem"
    assert _mounted_at(container, config["state_dir"]) == claim["metadata"]["name"]
    assert claim["metadata"]["name"] not in {v["name"] for v in pod["volumes"]}, "per replica, not shared"
    assert statefulset["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    _assert_hardened(pod, container, WRITABLE | {config["state_dir"]}, frozenset({claim["metadata"]["name"]}))
    assert container["args"][:3] == ["serve", "-c", "/etc/regprobe/config.yaml"]
    mounted = {v["name"]: v for v in pod["volumes"]}["config"]["configMap"]["name"]
    assert mounted == by_kind["ConfigMap"]["metadata"]["name"] != "regprobe-config", "the hashed name is mounted"

    # Replica I is shard I of `replicas`, from nothing but what the manifest and Kubernetes give it.
    env = {e["name"]: e["value"] for e in container["env"]}
    replicas = statefulset["replicas"]
    assert replicas > 1
    name = by_kind["StatefulSet"]["metadata"]["name"]
    for ordinal in range(replicas):
        assert shard_mod.from_environment({**env, "HOSTNAME": f"{name}-{ordinal}"}) == shard_mod.Shard(
            ordinal, replicas
        )
    with pytest.raises(ConfigError, match="replicas and REGPROBE_SHARDS must be equal"):
        shard_mod.from_environment({**env, "HOSTNAME": f"{name}-{replicas}"})

    # Scraped replica by replica under the job the alerts match; the series carry their shard themselves.
    service, monitor = by_kind["Service"], by_kind["ServiceMonitor"]
    assert statefulset["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    labels = statefulset["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert statefulset["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    (port,) = container["ports"]
    assert endpoint["port"] == port["name"] == service["spec"]["ports"][0]["targetPort"]
    assert not endpoint.get("honorLabels")
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "registry-integrity-probe"
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    template = statefulset["template"]
    assert _ingress_admits(policies, template, PROMETHEUS, "prometheus", "http-metrics")
    assert not _ingress_admits(policies, template, {"app": "curl"}, "monitoring", "http-metrics")

    # The schedule the alerts assume, and a deadline under it (a run outlasting it delays the next).
    interval = config_mod.parse_duration(config["serve"]["interval"])
    assert interval == INTERVAL_SECONDS and config["deadline"] < interval
    _assert_schema_valid(objects, tmp_path)


def test_continuous_cronjob_overlay(tmp_path: Path) -> None:
    """The small-registry option: the CronJob, unsharded, with its ledger on one ReadWriteOnce claim, and
    never two Jobs at once."""
    objects = _build_overlay("continuous/cronjob")
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(["ServiceAccount", "ConfigMap", "CronJob", "PrometheusRule", "PersistentVolumeClaim"])
    by_kind = {o["kind"]: o for o in objects}
    cronjob = by_kind["CronJob"]["spec"]
    assert cronjob["concurrencyPolicy"] == "Forbid"
    job = cronjob["jobTemplate"]["spec"]
    assert "completionMode" not in job and job.get("parallelism", 1) == 1, "one shard: one pod"
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert not {e["name"] for e in container["env"]} & {"REGPROBE_SHARDS", "JOB_COMPLETION_INDEX"}
    config = _overlay_config(objects)
    volume = {v["name"]: v for v in pod["volumes"]}[_mounted_at(container, config["state_dir"])]
    claim = by_kind["PersistentVolumeClaim"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    _assert_hardened(pod, container, WRITABLE | {config["state_dir"]})
    assert config["pushgateway"]["job"] == "registry-integrity-probe"
    # The base's time budget (test_the_time_budget_adds_up) holds for this config too.
    pushes = len(config["registries"]) * config["timeout"]
    assert START_UP_SECONDS + config["deadline"] + pushes + SPARE_SECONDS <= job["activeDeadlineSeconds"]
    _assert_schema_valid(objects, tmp_path)
