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
