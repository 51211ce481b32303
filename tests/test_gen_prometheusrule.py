"""scripts/gen-prometheusrule.py --runbook-base: the runbook links of the generated PrometheusRule point
wherever the operator serves docs/runbooks/, with nothing else changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "scripts" / "gen-prometheusrule.py"
COMMITTED = ROOT / "deploy" / "k8s" / "prometheusrule.yaml"


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, timeout=60, check=False
    )


def alerts(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in document["spec"]["groups"] for rule in group["rules"] if "alert" in rule]


def test_runbook_base_is_a_setting(tmp_path: Path) -> None:
    before = COMMITTED.read_text(encoding="utf-8")
    output = tmp_path / "prometheusrule.yaml"
    proc = generate("--runbook-base", "https://wiki.example.com/ops/regprobe", "--output", str(output))
    assert proc.returncode == 0, proc.stderr
    assert COMMITTED.read_text(encoding="utf-8") == before, "the committed manifest is left alone"
    ours, shipped = yaml.safe_load(output.read_text()), yaml.safe_load(before)
    for rule in alerts(ours):
        assert rule["annotations"]["runbook_url"] == f"https://wiki.example.com/ops/regprobe/{rule['alert']}.md"
    for rule in alerts(ours) + alerts(shipped):
        del rule["annotations"]["runbook_url"]
    assert ours == shipped
    assert (
        generate(
            "--runbook-base", "https://wiki.example.com/ops/regprobe/", "--check", "--output", str(output)
        ).returncode
        == 0
    )


def test_a_runbook_base_that_is_no_url_is_refused(tmp_path: Path) -> None:
    proc = generate("--runbook-base", "wiki/runbooks", "--output", str(tmp_path / "out.yaml"))
    assert proc.returncode == 2
    assert "--runbook-base: 'wiki/runbooks': must be an http:// or https:// URL with a host" in proc.stderr
    assert not (tmp_path / "out.yaml").exists()
