"""deploy/grafana/regprobe-dashboard.json: queries only the contract's metrics, through the datasource
variable, in valid PromQL."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "regprobe-dashboard.json"

# CONTRACT.md, "Metrics".
CONTRACT_METRICS = {
    "regprobe_catalog_accessible",
    "regprobe_run_complete",
    "regprobe_last_run_timestamp_seconds",
    "regprobe_last_success_timestamp_seconds",
    "regprobe_broken_images",
    "regprobe_broken_objects",
    "regprobe_image_broken",
    "regprobe_images_checked",
    "regprobe_requests",
    "regprobe_duration_seconds",
    "regprobe_images_known",
    "regprobe_images_verified_within_window",
    "regprobe_oldest_verification_age_seconds",
    "regprobe_dangling_referrers",
}
METRIC_NAME = re.compile(r"regprobe_[a-z_]+")
DATASOURCE = "${datasource}"


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # panels folded into a row


def _targets() -> list[tuple[str, dict[str, Any]]]:
    return [(panel["title"], target) for panel in _panels(_dashboard()["panels"]) for target in panel["targets"]]


def _variables() -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in _dashboard()["templating"]["list"]}


def test_datasource_is_a_prometheus_variable() -> None:
    variables = _variables()
    assert "datasource" in variables
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_registry_variable_lists_probed_registries() -> None:
    registry = _variables()["registry"]
    assert registry["query"]["query"] == "label_values(regprobe_last_run_timestamp_seconds, registry)"
    assert registry["datasource"]["uid"] == DATASOURCE


def test_every_panel_and_target_uses_the_datasource_variable() -> None:
    for panel in _panels(_dashboard()["panels"]):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE, panel["title"]


def test_every_expression_uses_only_contract_metrics() -> None:
    targets = _targets()
    assert targets
    used: set[str] = set()
    for title, target in targets:
        names = set(METRIC_NAME.findall(target["expr"]))
        assert names, f"{title}: {target['expr']!r} queries no regprobe metric"
        assert names <= CONTRACT_METRICS, f"{title}: not in the contract: {sorted(names - CONTRACT_METRICS)}"
        used |= names
    # Every contract metric but last_run (the registry variable's source) has a panel.
    assert CONTRACT_METRICS - used <= {"regprobe_last_run_timestamp_seconds"}, sorted(CONTRACT_METRICS - used)


def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (apt-get install prometheus); CI installs it")
    # promtool parses PromQL only inside rule files: one recording rule per panel query. Grafana's
    # variables are inside label matcher strings, so the expressions parse as they are.
    rules = [{"record": f"dashboard:target_{i}", "expr": target["expr"]} for i, (_, target) in enumerate(_targets())]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


# Two instances of one group at once (a replaced `regprobe serve` pod scraped beside its successor) and a
# sharded registry pushed through the pushgateway: (labels, values) of each series, constant over 10 minutes.
_PRIVATE_OLD = {"registry": "private", "instance": "10.0.0.1:9839"}
_PRIVATE_NEW = {"registry": "private", "instance": "10.0.0.2:9839"}
_SHARD0 = {"registry": "hub", "shard": "0"}
_SHARD1 = {"registry": "hub", "shard": "1"}
_SERIES: list[tuple[str, dict[str, str], float]] = []
for _labels, _run, _success, _broken, _catalog, _complete, _duration, _checked, _ok, _tags, _dangling in [
    (_PRIVATE_OLD, 100, 50, 4, 0, 0, 50, 100, 500, [("a", "v1"), ("b", "v1"), ("c", "v1"), ("d", "v1")], 9),
    (_PRIVATE_NEW, 200, 200, 2, 1, 1, 10, 100, 400, [("a", "v1"), ("b", "v1")], 5),
    (_SHARD0, 100, 100, 2, 1, 1, 20, 30, 40, [("library/nginx", "1.25"), ("library/nginx", "latest")], 2),
    (_SHARD1, 150, 150, 1, 1, 1, 30, 20, 10, [("library/alpine", "3.19")], 1),
]:
    _SERIES += [
        ("regprobe_last_run_timestamp_seconds", _labels, _run),
        ("regprobe_last_success_timestamp_seconds", _labels, _success),
        ("regprobe_broken_images", _labels, _broken),
        ("regprobe_catalog_accessible", _labels, _catalog),
        ("regprobe_run_complete", _labels, _complete),
        ("regprobe_duration_seconds", _labels, _duration),
        ("regprobe_images_checked", _labels, _checked),
        ("regprobe_requests", {**_labels, "outcome": "ok"}, _ok),
        ("regprobe_broken_objects", {**_labels, "kind": "layer"}, _broken),
        ("regprobe_broken_objects", {**_labels, "kind": "referrer"}, _broken - 1),
        # Published with last_success, by complete runs only (the old pod's last complete run was earlier).
        ("regprobe_dangling_referrers", _labels, _dangling),
    ]
    _SERIES += [("regprobe_image_broken", {**_labels, "repository": r, "tag": t}, 1) for r, t in _tags]
# Continuous verification: (known, verified within the window, oldest verification age). The replaced
# pod's lapse and its older age must not show; the shards' counts add up and the oldest shard's age wins.
for _labels, _known, _verified, _age in [
    (_PRIVATE_OLD, 100, 50, 200000),
    (_PRIVATE_NEW, 100, 90, 90000),
    (_SHARD0, 30, 30, 3600),
    (_SHARD1, 20, 10, 100000),
]:
    _SERIES += [
        ("regprobe_images_known", _labels, _known),
        ("regprobe_images_verified_within_window", _labels, _verified),
        ("regprobe_oldest_verification_age_seconds", _labels, _age),
    ]

#: What each panel shows at 5m (time() = 300): the newest instance of each group, shards combined.
_EXPECTED: dict[str, list[tuple[dict[str, str], float]]] = {
    "Broken images per registry": [({"registry": "private"}, 2), ({"registry": "hub"}, 3)],
    "Time since last completed run": [({"registry": "private"}, 100), ({"registry": "hub"}, 200)],
    "Catalog accessible": [({"registry": "private"}, 1), ({"registry": "hub"}, 1)],
    "Run complete": [({"registry": "private"}, 1), ({"registry": "hub"}, 1)],
    "Run duration": [({"registry": "private"}, 10), ({"registry": "hub"}, 30)],
    "Images checked": [({"registry": "private"}, 100), ({"registry": "hub"}, 50)],
    "Requests by outcome (per run)": [
        ({"registry": "private", "outcome": "ok"}, 400),
        ({"registry": "hub", "outcome": "ok"}, 50),
    ],
    "Broken objects by kind": [
        ({"registry": "private", "kind": "layer"}, 2),
        ({"registry": "hub", "kind": "layer"}, 3),
        ({"registry": "private", "kind": "referrer"}, 1),
        ({"registry": "hub", "kind": "referrer"}, 1),
    ],
    "Verification coverage": [({"registry": "private"}, 0.9), ({"registry": "hub"}, 0.8)],
    "Oldest verification": [({"registry": "private"}, 90000), ({"registry": "hub"}, 100000)],
    "Dangling referrers (clutter)": [({"registry": "private"}, 5), ({"registry": "hub"}, 3)],
    "Broken images (repository:tag)": [
        ({"registry": "private", "repository": "a", "tag": "v1"}, 1),
        ({"registry": "private", "repository": "b", "tag": "v1"}, 1),
        ({"registry": "hub", "shard": "0", "repository": "library/nginx", "tag": "1.25"}, 1),
        ({"registry": "hub", "shard": "0", "repository": "library/nginx", "tag": "latest"}, 1),
        ({"registry": "hub", "shard": "1", "repository": "library/alpine", "tag": "3.19"}, 1),
    ],
}


def _selector(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def test_panels_count_a_replaced_instance_once_and_sum_shards(tmp_path: Path) -> None:
    """Issue 21: after a serve pod is replaced, its series and its successor's exist side by side for a
    while; no panel may add them up (or show the old pod's values), and shards still add up."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (apt-get install prometheus); CI installs it")
    targets = dict(_targets())
    assert set(targets) == set(_EXPECTED)
    tests = [
        {
            "expr": targets[title]["expr"].replace("$registry", ".*"),
            "eval_time": "5m",
            "exp_samples": [{"labels": _selector("", labels), "value": value} for labels, value in samples],
        }
        for title, samples in _EXPECTED.items()
    ]
    (tmp_path / "none.rules.yml").write_text("groups: []\n")
    document = {
        "rule_files": ["none.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": _selector(n, ls), "values": f"{v}x10"} for n, ls, v in _SERIES],
                "promql_expr_test": tests,
            }
        ],
    }
    path = tmp_path / "dashboard.test.yml"
    path.write_text(yaml.safe_dump(document))
    proc = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
