"""deploy/helm/regprobe: the chart lints, every object it renders validates against the Kubernetes and
Prometheus Operator schemas committed in deploy/helm/schemas (kubeconform, strict), and its renders equal
the kustomize installs they stand for - the defaults the base deploy/k8s, `mode: serve` the overlay
deploy/overlays/serve, `shards: 4` the overlay deploy/overlays/sharded - object for object, field for
field, once Helm's own labels and kustomize's ConfigMap hash are set aside.

helm, kubeconform and kustomize are pinned Go peers (tests/peers.py): without them these tests skip,
unless REGPROBE_REQUIRE_PEERS=1.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from regprobe import config as config_mod

from .peers import peer
from .util import kustomize_build

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "regprobe"
SCHEMAS = ROOT / "deploy" / "helm" / "schemas"
KUSTOMIZE_BASE = ROOT / "deploy" / "k8s"
OVERLAYS = ROOT / "deploy" / "overlays"
KUBERNETES_VERSION = "1.30.0"
NAMESPACE = "monitoring"
RELEASE = "regprobe"

#: Labels Helm charts carry and kustomize installs do not; everything else must match.
HELM_ONLY_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
}
#: Pod annotation that rolls serve's Deployment when the config changes (kustomize renames the ConfigMap
#: instead).
CHECKSUM = "checksum/config"

#: Values that render every template at once, for the schema run.
EVERYTHING = {
    "networkPolicy.enabled": "true",
    "networkPolicy.registries.to[0].ipBlock.cidr": "192.0.2.0/24",
    "extraVolumes[0].name": "registry-cache",
    "extraVolumes[0].persistentVolumeClaim.claimName": "registry-cache",
    "extraVolumeMounts[0].name": "registry-cache",
    "extraVolumeMounts[0].mountPath": "/var/lib/registry-cache",
    "extraVolumeMounts[0].readOnly": "true",
    "credentials.create": "true",
    "credentials.data.password": "not-the-real-one",
    "cache.persistence.enabled": "true",
    "cache.persistence.storageClassName": "fast",
    "config.cache_dir": "/var/cache/regprobe",
    "env[0].name": "HTTPS_PROXY",
    "env[0].value": "http://proxy.example.com:3128",
    "imagePullSecrets[0].name": "pull",
    "podLabels.team": "platform",
    "podAnnotations.owner": "platform",
    "nodeSelector.kubernetes\\.io/os": "linux",
    "tolerations[0].operator": "Exists",
    "serviceAccount.annotations.owner": "platform",
    "prometheusRule.labels.release": "kube-prometheus-stack",
    "serviceMonitor.labels.release": "kube-prometheus-stack",
    "podMonitor.labels.release": "kube-prometheus-stack",
    "image.digest": "sha256:" + "ab" * 32,
}


def _show(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"


def _helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([peer("helm"), *args], capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, _show(proc)
    return proc


def _template(values: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    # --kube-version: a helm built with `go install` has no Kubernetes version stamped in and assumes 1.20,
    # under the chart's kubeVersion.
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBERNETES_VERSION]
    for key, value in (values or {}).items():
        args += ["--set-string" if key == "credentials.data.password" else "--set", f"{key}={value}"]
    return _helm(*args, check=check)


def _render(values: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(_template(values).stdout) if doc]


def _by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_kind = {o["kind"]: o for o in objects}
    assert len(by_kind) == len(objects), "one object per kind"
    return by_kind


def _kubeconform(manifests: str) -> dict[str, Any]:
    proc = subprocess.run(
        [
            peer("kubeconform"),
            "-strict",
            "-summary",
            "-output",
            "json",
            "-kubernetes-version",
            KUBERNETES_VERSION,
            # Only the committed schemas: no network, and a kind without one is an error, not a skip.
            "-schema-location",
            str(SCHEMAS) + "/{{ .ResourceKind }}{{ .KindSuffix }}.json",
            "-",
        ],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    result: dict[str, Any] = json.loads(proc.stdout)
    result["returncode"] = proc.returncode
    return result


# --- lint and schemas -----------------------------------------------------------------------------------


def test_helm_lint() -> None:
    proc = _helm("lint", "--strict", str(CHART), "--kube-version", KUBERNETES_VERSION)
    assert "0 chart(s) failed" in proc.stdout, _show(proc)


PODMONITOR = {"serviceMonitor.enabled": "false", "podMonitor.enabled": "true"}
RENDERS = {
    "defaults": {},
    "serve": {"mode": "serve"},
    "serve-podmonitor": {"mode": "serve", **PODMONITOR},
    "sharded": {"shards": "4"},
    "cronjob-everything": EVERYTHING,
    "serve-everything": {**EVERYTHING, "mode": "serve", **PODMONITOR},
    "without-operator": {"mode": "serve", "serviceMonitor.enabled": "false", "prometheusRule.enabled": "false"},
}


@pytest.mark.parametrize("values", RENDERS.values(), ids=RENDERS.keys())
def test_every_rendered_object_validates(values: dict[str, str]) -> None:
    text = _template(values).stdout
    objects = [doc for doc in yaml.safe_load_all(text) if doc]
    result = _kubeconform(text)
    assert result["returncode"] == 0, json.dumps(result, indent=1)
    assert result["summary"] == {"valid": len(objects), "invalid": 0, "errors": 0, "skipped": 0}, result


def test_the_renders_cover_every_committed_schema() -> None:
    """Every kind the chart can render is validated above, and no schema is committed for nothing."""
    kinds = {(o["kind"], o["apiVersion"]) for values in RENDERS.values() for o in _render(values)}
    generator = _schema_generator()
    rendered = {generator.file_name(kind, api) for kind, api in kinds}
    committed = {p.name for p in SCHEMAS.glob("*.json")} - {generator.DEFINITIONS}
    assert rendered == committed


@pytest.mark.parametrize(
    ("values", "kind", "old", "new"),
    [
        # A Kubernetes kind, deep in the pod template.
        ({}, "CronJob", "restartPolicy: Never", "restartPolicy: Never\n          restartPolcy: Never"),
        # Prometheus Operator kinds: converted CRD schemas reject unknown fields too, at the root and inside.
        ({"mode": "serve"}, "ServiceMonitor", "      interval: 60s", "      intervall: 60s"),
        ({}, "PrometheusRule", "\nspec:\n", "\nspecs: {}\nspec:\n"),
    ],
    ids=["cronjob", "servicemonitor", "prometheusrule-root"],
)
def test_kubeconform_catches_a_misspelt_field(values: dict[str, str], kind: str, old: str, new: str) -> None:
    """The schema run above means something: a field Kubernetes or the operator would drop is an error."""
    documents = _template(values).stdout.split("\n---\n")
    (index,) = [i for i, doc in enumerate(documents) if f"\nkind: {kind}\n" in doc]
    assert old in documents[index]
    documents[index] = documents[index].replace(old, new, 1)
    result = _kubeconform("\n---\n".join(documents))
    assert result["returncode"] != 0
    assert result["summary"]["invalid"] == 1, result
    (finding,) = result["resources"]
    assert finding["kind"] == kind and "additional properties" in finding["msg"], finding


def _schema_generator() -> ModuleType:
    path = ROOT / "scripts" / "gen-kubeconform-schemas.py"
    spec = importlib.util.spec_from_file_location("gen_kubeconform_schemas", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_kubernetes_schemas_are_generated() -> None:
    """deploy/helm/schemas holds what scripts/gen-kubeconform-schemas.py makes of kubernetes-validate's
    schemas (a test dependency, so always at hand)."""
    generator = _schema_generator()
    fix = "deploy/helm/schemas is out of date: run `python scripts/gen-kubeconform-schemas.py`"
    for name, schema in generator.kubernetes_schemas(generator.kubernetes_source()).items():
        assert (SCHEMAS / name).read_text(encoding="utf-8") == generator.render(schema), f"{name}: {fix}"


def test_committed_crd_schemas_are_generated() -> None:
    """... and of the Prometheus Operator's CRDs, when its module is in the Go module cache."""
    generator = _schema_generator()
    module = generator.prometheus_operator_module(download=False)
    if module is None:
        spec = f"{generator.PROMETHEUS_OPERATOR}@{generator.PROMETHEUS_OPERATOR_VERSION}"
        why = f"{spec} is not in the Go module cache: scripts/install-peers.sh downloads it (it needs go)"
        if os.environ.get("REGPROBE_REQUIRE_PEERS") == "1":
            pytest.fail(why)
        pytest.skip(why)
    fix = "deploy/helm/schemas is out of date: run `python scripts/gen-kubeconform-schemas.py`"
    for name, schema in generator.crd_schemas(module).items():
        assert (SCHEMAS / name).read_text(encoding="utf-8") == generator.render(schema), f"{name}: {fix}"


def test_chart_rules_are_the_alerts() -> None:
    """The chart carries alerts/regprobe.rules.yml (a chart cannot reach outside its directory)."""
    copy_ = (CHART / "files" / "regprobe.rules.yml").read_text(encoding="utf-8")
    fix = "deploy/helm/regprobe/files/regprobe.rules.yml is out of date: run `python scripts/gen-prometheusrule.py`"
    assert copy_ == (ROOT / "alerts" / "regprobe.rules.yml").read_text(encoding="utf-8"), fix


# --- the chart renders what the kustomize installs apply -------------------------------------------------


def _drop_helm_only(node: Any) -> Any:
    """``node`` without Helm's own labels (in metadata, selectors and pod templates alike) and the
    config checksum annotation."""
    if isinstance(node, list):
        return [_drop_helm_only(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        if key in ("labels", "matchLabels", "selector") and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in HELM_ONLY_LABELS}
        if key == "annotations" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != CHECKSUM}
            if not value:
                continue
        result[key] = _drop_helm_only(value)
    return result


def _unhash_configmaps(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """kustomize's objects with the generated ConfigMaps' hash suffix taken off their names and every
    reference to them (the chart names its ConfigMap plainly and rolls serve's pod by checksum)."""
    renames = {}
    for obj in objects:
        name = obj["metadata"]["name"]
        if obj["kind"] == "ConfigMap" and re.fullmatch(r".+-[a-z0-9]{10}", name):
            renames[name] = name.rsplit("-", 1)[0]
    text = yaml.safe_dump_all(objects)
    for hashed, plain in renames.items():
        text = text.replace(hashed, plain)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _substance(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object, compared as Kubernetes would read it: the config file as the data it holds."""
    result = {}
    for obj in _drop_helm_only(copy.deepcopy(objects)):
        if obj["kind"] == "ConfigMap":
            obj["data"] = {key: yaml.safe_load(value) for key, value in obj["data"].items()}
        result[obj["kind"], obj["metadata"]["name"]] = obj
    return result


def _assert_same(chart: list[dict[str, Any]], kustomized: list[dict[str, Any]]) -> None:
    ours, theirs = _substance(chart), _substance(_unhash_configmaps(kustomized))
    assert sorted(ours) == sorted(theirs), "the same objects, by kind and name"
    for key, obj in theirs.items():
        assert ours[key] == obj, f"{key[0]} {key[1]} differs"


def test_default_render_is_the_kustomize_base() -> None:
    _assert_same(_render(), kustomize_build(KUSTOMIZE_BASE))


def test_serve_render_is_the_serve_overlay() -> None:
    _assert_same(_render({"mode": "serve"}), kustomize_build(OVERLAYS / "serve"))


def test_sharded_render_is_the_sharded_overlay() -> None:
    _assert_same(_render({"shards": "4"}), kustomize_build(OVERLAYS / "sharded"))


def test_podmonitor_render_is_the_serve_overlay_with_its_podmonitor_component(tmp_path: Path) -> None:
    serve = os.path.relpath(OVERLAYS / "serve", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump({"resources": [serve], "components": [f"{serve}/podmonitor"]}), encoding="utf-8"
    )
    _assert_same(_render({"mode": "serve", **PODMONITOR}), kustomize_build(tmp_path))


@pytest.mark.parametrize("mode", ["cronjob", "serve"])
def test_networkpolicy_is_the_base_example(mode: str) -> None:
    """networkPolicy.enabled with the example's address renders deploy/k8s/networkpolicy.yaml, for both
    modes' pods; serve needs no pushgateway (its own policy admits Prometheus, test below)."""
    values = {
        "mode": mode,
        "networkPolicy.enabled": "true",
        "networkPolicy.registries.to[0].ipBlock.cidr": "192.0.2.0/24",
    }
    (policy,) = [o for o in _render(values) if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == RELEASE]
    example = yaml.safe_load((KUSTOMIZE_BASE / "networkpolicy.yaml").read_text(encoding="utf-8"))
    example["metadata"]["labels"] = {"app.kubernetes.io/name": "regprobe", "app.kubernetes.io/part-of": "regprobe"}
    if mode == "serve":
        pushgateway = {"protocol": "TCP", "port": 9091}
        example["spec"]["egress"] = [r for r in example["spec"]["egress"] if pushgateway not in r["ports"]]
    assert _drop_helm_only(policy) == example


def test_the_comparison_sees_a_difference() -> None:
    """The equality above is not vacuous: one changed field in the chart's render is a failure."""
    chart = _render()
    cronjob = next(o for o in chart if o["kind"] == "CronJob")
    cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = "1Gi"
    with pytest.raises(AssertionError, match="CronJob regprobe differs"):
        _assert_same(chart, kustomize_build(KUSTOMIZE_BASE))


# --- what the values do --------------------------------------------------------------------------------


def _load_config(configmap: dict[str, Any], tmp_path: Path) -> config_mod.Config:
    """The ConfigMap's config.yaml through regprobe's own loader, as a user fills the example in: its
    example.com hosts (which regprobe refuses) replaced, and the Secret's path pointed at a temporary file
    (the loader reads password files at load time)."""
    password = tmp_path / "password"
    password.write_text("not-the-real-one\n", encoding="utf-8")
    text = configmap["data"]["config.yaml"].replace("/var/run/secrets/regprobe/password", str(password))
    text = re.sub(r"\.example\.com\b", ".corp.internal", text)
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    return config_mod.load(tmp_path / "config.yaml")


def test_rendered_config_loads(tmp_path: Path) -> None:
    """The ConfigMap holds a config regprobe itself accepts, once its example hosts are replaced."""
    cfg = _load_config(_by_kind(_render())["ConfigMap"], tmp_path)
    assert [r.name for r in cfg.registries] == ["private", "dockerhub-cache"]
    assert cfg.pushgateway is not None and cfg.pushgateway.job == "registry-integrity-probe"


@pytest.mark.parametrize(
    ("values", "fits"),
    [
        ({}, True),
        # 60 + 780 + 2 x 30 + 15 = 915 > 870.
        ({"config.deadline": "780"}, False),
        # A third registry's push: 60 + 720 + 3 x 30 + 15 = 885 > 870.
        ({"config.registries[2].name": "third", "config.registries[2].url": "https://c.corp.internal"}, False),
        # No pushgateway, no pushes: 60 + 780 + 15 = 855.
        ({"config.deadline": "780", "config.pushgateway": "null"}, True),
        # 60 + 760 + 2 x 30 + 15 = 895: too long for 870, not for 899.
        ({"config.deadline": "760"}, False),
        ({"config.deadline": "760", "cronjob.activeDeadlineSeconds": "899"}, True),
        ({"config.timeout": "60"}, False),
    ],
    ids=["shipped", "deadline", "third-registry", "no-pushgateway", "deadline-760", "longer-job", "timeout"],
)
def test_the_time_budget_adds_up(values: dict[str, str], fits: bool) -> None:
    """Start-up, the walk up to config.deadline and one push per registry (each up to config.timeout)
    fit in activeDeadlineSeconds with 15 s to spare, as tests/test_deploy.py checks for the base; a
    values file that breaks the sum is refused."""
    if "config.registries[2].name" in values:
        values = {
            **{f"config.registries[{i}].{k}": f"{n}" for i, n in enumerate(["a", "b"]) for k in ["name"]},
            **{f"config.registries[{i}].url": f"https://{n}.corp.internal" for i, n in enumerate(["a", "b"])},
            **values,
        }
    proc = _template({"mode": "cronjob", **values}, check=False)
    assert (proc.returncode == 0) == fits, _show(proc)
    if fits:
        job = _by_kind([d for d in yaml.safe_load_all(proc.stdout) if d])["CronJob"]["spec"]["jobTemplate"]["spec"]
        assert job["activeDeadlineSeconds"] == int(values.get("cronjob.activeDeadlineSeconds", 870))
    else:
        assert "more than cronjob.activeDeadlineSeconds" in proc.stderr, _show(proc)


def test_runbook_base_url() -> None:
    """Every alert's runbook_url moves under the value, keeping its page; nothing else changes."""
    base = "https://wiki.example.com/sre/regprobe/"
    rule = _by_kind(_render({"prometheusRule.runbookBaseURL": base}))["PrometheusRule"]
    alerts = yaml.safe_load((ROOT / "alerts" / "regprobe.rules.yml").read_text(encoding="utf-8"))
    urls = {r["alert"]: r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert urls and urls == {
        r["alert"]: f"{base}{r['alert']}.md" for g in alerts["groups"] for r in g["rules"] if "alert" in r
    }
    for group in rule["spec"]["groups"] + alerts["groups"]:
        for r in group["rules"]:
            r.get("annotations", {}).pop("runbook_url", None)
    assert rule["spec"]["groups"] == alerts["groups"]


def test_serve_rolls_on_a_config_change() -> None:
    """serve reads its config once at start: a new config must change the pod template."""

    def checksum(values: dict[str, str]) -> str:
        pod = _by_kind(_render({"mode": "serve", **values}))["Deployment"]["spec"]["template"]
        value: str = pod["metadata"]["annotations"][CHECKSUM]
        return value

    assert checksum({}) != checksum({"config.concurrency": "8"})


def test_podmonitor_names_the_job_the_alerts_match() -> None:
    by_kind = _by_kind(_render({"mode": "serve", **PODMONITOR}))
    assert "ServiceMonitor" not in by_kind
    monitor, pod = by_kind["PodMonitor"], by_kind["Deployment"]["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "registry-integrity-probe"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in pod["spec"]["containers"][0]["ports"]}


def test_serve_admits_prometheus_only() -> None:
    """In serve mode a policy of its own admits Prometheus (any namespace) to the metrics port and nothing
    else; it selects serve's pods; with serve.networkPolicy.from the operator names their Prometheus."""
    by_kind = _by_kind(_render({"mode": "serve"}))
    policy, pod = by_kind["NetworkPolicy"], by_kind["Deployment"]["spec"]["template"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    prometheus = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    assert policy["spec"]["ingress"] == [{"from": [prometheus], "ports": [{"protocol": "TCP", "port": "http-metrics"}]}]
    ours = {"podSelector": {"matchLabels": {"app": "prometheus"}}}
    named = {"mode": "serve", "serve.networkPolicy.from[0].podSelector.matchLabels.app": "prometheus"}
    policy = _by_kind(_render(named))["NetworkPolicy"]
    assert policy["spec"]["ingress"][0]["from"] == [ours]
    assert "NetworkPolicy" not in _by_kind(_render({"mode": "serve", "serve.networkPolicy.enabled": "false"}))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"mdoe": "serve"}, "additional properties 'mdoe' not allowed"),
        ({"mode": "daemon"}, "value must be one of 'cronjob', 'serve'"),
        ({"shards": "0"}, "minimum"),
        ({"mode": "serve", "shards": "4"}, "shards > 1 needs mode: cronjob"),
        ({"mode": "serve", "podMonitor.enabled": "true"}, "Prometheus would scrape the pod twice"),
        ({"config.cache_dir": "/var/cache/regprobe"}, "config.cache_dir needs cache.persistence.enabled"),
        ({"shards": "4", "cache.persistence.enabled": "true"}, "cannot share one ReadWriteOnce claim"),
        ({"credentials.data.password": "x"}, "credentials.data is set but credentials.create is false"),
        ({"networkPolicy.enabled": "true"}, "cut the probe off from every registry"),
        ({"cronjob.activeDeadlineSeconds": "900"}, "is not under cronjob.intervalSeconds (900)"),
        ({"config.deadline": "800"}, "a run that reaches its deadline would be killed before it pushes"),
        ({"config.registries": "null"}, "registries"),
        ({"config.deadline": "14m"}, "config.deadline: 14m is not a number of seconds"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_refused_values(values: dict[str, str], message: str) -> None:
    """Values that would install and then quietly do harm (or nothing) are refused, naming them."""
    proc = _template(values, check=False)
    assert proc.returncode != 0, _show(proc)
    assert message in proc.stderr, _show(proc)


def test_the_operator_guide_example_installs(tmp_path: Path) -> None:
    """docs/operator-guide.md's my-values.yaml renders, validates, and carries a config regprobe loads."""
    guide = (ROOT / "docs" / "operator-guide.md").read_text(encoding="utf-8")
    match = re.search(r"```yaml\n# my-values.yaml\n(.*?)```", guide, re.DOTALL)
    assert match, "the guide's Helm example is gone"
    values = tmp_path / "my-values.yaml"
    values.write_text(match.group(1), encoding="utf-8")
    args = ["template", RELEASE, str(CHART), "-n", NAMESPACE, "--kube-version", KUBERNETES_VERSION, "-f", str(values)]
    text = _helm(*args).stdout
    objects = [doc for doc in yaml.safe_load_all(text) if doc]
    result = _kubeconform(text)
    assert result["summary"] == {"valid": len(objects), "invalid": 0, "errors": 0, "skipped": 0}, result
    by_kind = _by_kind(objects)
    assert by_kind["PrometheusRule"]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert [r.name for r in _load_config(by_kind["ConfigMap"], tmp_path).registries] == ["private"]


@pytest.mark.parametrize("mode", ["cronjob", "serve"])
def test_the_pod_values_reach_the_pod(mode: str) -> None:
    """The values that shape the pod end up in it, in both modes: the Secret the chart creates is the one
    mounted, the cache claim replaces the emptyDir, extra volumes and env are added to the hardened pod,
    the image is pulled by digest."""
    # Both NetworkPolicies render in serve mode (the example's and serve's own): not looked at here.
    by_kind = _by_kind([o for o in _render({**EVERYTHING, "mode": mode}) if o["kind"] != "NetworkPolicy"])
    workload = by_kind["CronJob"]["spec"]["jobTemplate"]["spec"] if mode == "cronjob" else by_kind["Deployment"]["spec"]
    pod = workload["template"]
    (container,) = pod["spec"]["containers"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes["credentials"]["secret"]["secretName"] == by_kind["Secret"]["metadata"]["name"]
    assert by_kind["Secret"]["stringData"] == {"password": "not-the-real-one"}
    assert volumes["cache"] == {"name": "cache", "persistentVolumeClaim": {"claimName": "regprobe-cache"}}
    assert by_kind["PersistentVolumeClaim"]["metadata"]["name"] == "regprobe-cache"
    assert mounts["/var/lib/registry-cache"] == "registry-cache" and "registry-cache" in volumes
    assert {"name": "HTTPS_PROXY", "value": "http://proxy.example.com:3128"} in container["env"]
    assert container["image"] == "ghcr.io/regprobe/regprobe@sha256:" + "ab" * 32
    assert pod["spec"]["imagePullSecrets"] == [{"name": "pull"}]
    assert pod["metadata"]["labels"]["team"] == "platform" and pod["metadata"]["annotations"]["owner"] == "platform"
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    # Still what every regprobe pod must be.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
