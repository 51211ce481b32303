#!/usr/bin/env python3
"""Write deploy/helm/schemas/: the JSON schemas kubeconform validates the chart's objects against, offline.

Only the kinds the chart can render, in kubeconform's strict form (an unknown field is an error), named
as its ``-schema-location 'deploy/helm/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json'`` finds them:

- Kubernetes kinds from the schemas kubernetes-validate ships (a test dependency, so in the venv), for
  KUBERNETES_VERSION. Their ``$ref``s point at ``/api/_definitions.json``, an absolute path kubeconform
  would look for at the root of the filesystem: they are pointed at a ``_definitions.json`` beside them,
  which keeps only the definitions these kinds reach.
- Prometheus Operator kinds from the openAPIV3Schema of its CRDs (example/prometheus-operator-crd/ in
  the Go module github.com/prometheus-operator/prometheus-operator, fetched with ``go mod download``),
  with ``additionalProperties: false`` added to every object that lists its properties - what
  kubeconform's own scripts/openapi2jsonschema.py does - including the root, so a misspelt top-level
  field is caught too.

Descriptions are dropped: they are most of the bytes and validate nothing.

    python scripts/gen-kubeconform-schemas.py            # rewrite deploy/helm/schemas/
    python scripts/gen-kubeconform-schemas.py --check    # exit 1 if a committed schema is out of date
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "deploy" / "helm" / "schemas"

KUBERNETES_VERSION = "1.30.0"
#: (kind, apiVersion) of every Kubernetes object deploy/helm/regprobe/templates can render.
KUBERNETES_KINDS = [
    ("ConfigMap", "v1"),
    ("CronJob", "batch/v1"),
    ("Deployment", "apps/v1"),
    ("NetworkPolicy", "networking.k8s.io/v1"),
    ("PersistentVolumeClaim", "v1"),
    ("Secret", "v1"),
    ("Service", "v1"),
    ("ServiceAccount", "v1"),
]
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
#: The CRD files of the Prometheus Operator module for the custom resources the chart renders.
CRDS = ["podmonitors", "prometheusrules", "servicemonitors"]

DEFINITIONS = "_definitions.json"
K8S_REF = "/api/_definitions.json#/$defs/"
LOCAL_REF = "#/$defs/"


def file_name(kind: str, api_version: str) -> str:
    """kubeconform's ``{{ .ResourceKind }}{{ .KindSuffix }}.json`` for a kind (pkg/registry/registry.go)."""
    group, _, version = api_version.rpartition("/")
    suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
    return f"{kind.lower()}{suffix}.json"


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``node``, outermost first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _strip_descriptions(node: Any) -> Any:
    """``node`` without the schema keyword ``description`` (a string); a *property* named description
    (an object under ``properties``) stays."""
    if isinstance(node, dict):
        return {
            key: _strip_descriptions(value)
            for key, value in node.items()
            if not (key == "description" and isinstance(value, str))
        }
    if isinstance(node, list):
        return [_strip_descriptions(value) for value in node]
    return node


def _refs(node: Any, prefix: str) -> set[str]:
    """Names of the definitions ``node`` refers to with ``prefix``."""
    return {
        obj["$ref"].removeprefix(prefix)
        for obj in _walk(node)
        if isinstance(obj.get("$ref"), str) and obj["$ref"].startswith(prefix)
    }


def _retarget(node: Any) -> Any:
    """``node`` with its absolute ``/api/_definitions.json`` references pointed at the file beside it."""
    if isinstance(node, dict):
        return {
            key: DEFINITIONS + "#/$defs/" + value.removeprefix(K8S_REF)
            if key == "$ref" and isinstance(value, str) and value.startswith(K8S_REF)
            else _retarget(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_retarget(value) for value in node]
    return node


def kubernetes_schemas(source: Path) -> dict[str, Any]:
    """File name -> schema for KUBERNETES_KINDS, plus the definitions they reach."""
    all_definitions: dict[str, Any] = json.loads((source / DEFINITIONS).read_text(encoding="utf-8"))["$defs"]
    schemas: dict[str, Any] = {}
    wanted: set[str] = set()
    for kind, api_version in KUBERNETES_KINDS:
        name = file_name(kind, api_version)
        schema = json.loads((source / name).read_text(encoding="utf-8"))
        schema.pop("$id", None)
        wanted |= _refs(schema, K8S_REF)
        schemas[name] = _strip_descriptions(_retarget(schema))
    reached: dict[str, Any] = {}
    while wanted:
        name = wanted.pop()
        if name in reached:
            continue
        reached[name] = all_definitions[name]
        wanted |= _refs(reached[name], LOCAL_REF) - reached.keys()
    schemas[DEFINITIONS] = _strip_descriptions(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "$defs": dict(sorted(reached.items()))}
    )
    return schemas


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """An object that lists its properties accepts no others (kubeconform's strict schemas)."""
    for obj in _walk(schema):
        if "properties" in obj and "additionalProperties" not in obj:
            obj["additionalProperties"] = False
    return schema


def crd_schemas(module: Path) -> dict[str, Any]:
    """File name -> schema for each served version of the CRDs in CRDS."""
    schemas: dict[str, Any] = {}
    for crd_name in CRDS:
        path = module / "example" / "prometheus-operator-crd" / f"monitoring.coreos.com_{crd_name}.yaml"
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served"):
                continue
            schema = _strict(_strip_descriptions(version["schema"]["openAPIV3Schema"]))
            schemas[file_name(kind, f"{group}/{version['name']}")] = schema
    return schemas


def kubernetes_source() -> Path:
    """kubernetes-validate's schemas for KUBERNETES_VERSION (strict: no additional properties)."""
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    return Path(str(root)) / f"v{KUBERNETES_VERSION}-local-strict"


def prometheus_operator_module(download: bool) -> Path | None:
    """The Prometheus Operator module's directory in the Go module cache; with ``download``, fetched
    through the Go module proxy when it is not there yet. None without Go or the module."""
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        return None
    spec = f"{PROMETHEUS_OPERATOR}@{PROMETHEUS_OPERATOR_VERSION}"
    if download:
        proc = subprocess.run([go, "mod", "download", "-json", spec], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"go mod download {spec} failed:\n{proc.stdout}{proc.stderr}")
        return Path(json.loads(proc.stdout)["Dir"])
    cache = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    # The module cache escapes upper-case letters (!x); this path has none.
    directory = Path(cache) / spec
    return directory if directory.is_dir() else None


def render(schema: Any) -> str:
    return json.dumps(schema, indent=1, sort_keys=True) + "\n"


def generate(module: Path) -> dict[str, str]:
    """File name -> text of every schema deploy/helm/schemas/ holds."""
    schemas = kubernetes_schemas(kubernetes_source()) | crd_schemas(module)
    return {name: render(schema) for name, schema in sorted(schemas.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed schema is out of date")
    args = parser.parse_args(argv)
    module = prometheus_operator_module(download=True)
    if module is None:
        print("go is not installed: cannot fetch the Prometheus Operator's CRDs", file=sys.stderr)
        return 2
    files = generate(module)
    if args.check:
        committed = {p.name: p.read_text(encoding="utf-8") for p in OUTPUT.glob("*.json")}
        if committed != files:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run scripts/gen-kubeconform-schemas.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for stale in OUTPUT.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (OUTPUT / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} schemas to {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
