"""docs/report.schema.json describes the reports regprobe really prints: each report here comes from a
real run or check against the real registry (and pushgateway), in the states operators meet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from regprobe import report
from regprobe.model import PushOutcome, RegistryResult, Skipped

from .registry import Registry, free_port
from .servers import Pushgateway

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "report.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def valid(document: dict[str, Any]) -> dict[str, Any]:
    errors = sorted(VALIDATOR.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    return document


def test_the_schema_is_a_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_run_with_findings_of_every_shape_shard_and_push(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, pushgateway: Pushgateway
) -> None:
    index = registry.push_index(f"{ns}/api", "v1")
    registry.remove_revision_link(f"{ns}/api", index.children[0].digest)  # a child: digest and parent
    image = registry.push_image(f"{ns}/worker", "v2")
    registry.remove_revision_link(f"{ns}/worker", image.digest)  # a tag unresolved: digest null
    layer = registry.push_image(f"{ns}/batch", "v3").layers[0]
    registry.remove_blob_data(layer)  # truncated behind the descriptor cache
    cfg = {"name": ns, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    push = {"url": pushgateway.url}

    whole = valid(regprobe("run", "-c", probe_config(cfg, pushgateway=push), "--format", "json").report)
    sharded = valid(regprobe("run", "-c", probe_config(cfg), "--shard", "1/2", "--format", "json").report)

    entry = whole["registries"][0]
    assert [f.get("platform") for f in entry["findings"] if f["digest"] == index.children[0].digest] == ["linux/amd64"]
    assert {(f["problem"], f["digest"] is None, f["parent"] is None) for f in entry["findings"]} == {
        ("missing", False, False),
        ("missing", True, True),
        ("truncated", False, False),
    }
    assert entry["push"] == {"ok": True, "error": None}
    assert sharded["registries"][0]["shard"] == "1/2"
    assert sharded["registries"][0]["push"] is None


def test_incomplete_run_unpushed_and_check(registry: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    registry.push_image(f"{ns}/app", "v1")
    gone = {"name": "gone", "url": f"http://127.0.0.1:{free_port()}", "timeout": 2}
    push = {"url": f"http://127.0.0.1:{free_port()}"}

    incomplete = valid(regprobe("run", "-c", probe_config(gone, pushgateway=push), "--format", "json").report)
    checked = valid(regprobe("check", "--plain-http", "--format", "json", f"{registry.host}/{ns}/app:v1").report)

    entry = incomplete["registries"][0]
    assert not entry["complete"] and entry["errors"] and entry["requests"]["network_error"] > 0
    assert entry["push"]["ok"] is False and entry["push"]["error"]
    assert checked["registries"][0]["images_checked"] == 1


def test_referrer_findings_and_dangling_referrers(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    signed, gone = registry.push_image(f"{ns}/app", "v1"), registry.push_image(f"{ns}/app", "v2")
    registry.push_referrer(f"{ns}/app", gone.digest, "application/vnd.dev.cosign.artifact.sig.v1+json", b"sig")
    sbom = registry.push_referrer(f"{ns}/app", signed.digest, "application/spdx+json", b"{}")
    registry.remove_revision_link(f"{ns}/app", sbom)
    assert registry.http.delete(f"/v2/{ns}/app/manifests/{gone.digest}").status_code == 202
    cfg = {"name": ns, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}

    entry = valid(regprobe("run", "-c", probe_config(cfg), "--format", "json").report)["registries"][0]

    finding = entry["findings"][0]
    assert (finding["kind"], finding["artifact"], finding["subject"]) == ("referrer", "SBOM (SPDX)", signed.digest)
    assert sorted(d["reason"] for d in entry["dangling"]) == ["orphaned_fallback_tag", "subject_missing"]


def test_skipped_images_as_the_report_renders_them() -> None:
    result = RegistryResult(name="harbor", url="https://harbor.example.com", complete=True)
    result.skipped.append(Skipped("team/api", "v1", "policy", "412 PROJECTPOLICYVIOLATION: not scanned"))
    result.push = PushOutcome(ok=True)
    valid(json.loads(report.to_json([result])))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("undocumented",), 1),  # a field added to the report must be added to the schema
        (("requests", "teapot"), 1),
        (("shard",), "half"),
        (("findings", 0, "problem"), "broken"),
        (("findings", 0, "digest"), "not-a-digest"),
        (("push",), {"ok": True}),
        (("findings", 0, "kind"), "signature"),
        (("dangling",), [{"repository": "a", "digest": None, "subject": "sha256:" + "0" * 64}]),
    ],
)
def test_the_schema_refuses_what_regprobe_never_prints(path: tuple[Any, ...], value: Any) -> None:
    result = RegistryResult(name="r", url="http://r")
    doc = json.loads(report.to_json([result]))
    entry = doc["registries"][0]
    entry["findings"] = [
        {
            "repository": "a",
            "digest": "sha256:" + "0" * 64,
            "kind": "layer",
            "problem": "missing",
            "status": 404,
            "tags": ["v1"],
            "parent": None,
            "detail": "GET answered 404",
        }
    ]
    valid(doc)
    target = entry
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not VALIDATOR.is_valid(doc)
