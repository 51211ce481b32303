"""The alert rules in alerts/: valid for Prometheus, passing their promtool unit tests, and pointing at
runbooks that exist.

promtool comes from the Debian `prometheus` package (CI installs it); without it the promtool tests are
skipped, never passed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "alerts" / "regprobe.rules.yml"
RULE_TESTS = ROOT / "alerts" / "regprobe.rules.test.yml"
RUNBOOKS = ROOT / "docs" / "runbooks"
RUNBOOK_MARKER = "/docs/runbooks/"

# CONTRACT.md, "Alerts": the names and what each carries are fixed.
CONTRACT_ALERTS = {
    "RegistryManifestIntegrityFailure",
    "RegistryIntegrityProbeStale",
    "RegistryCatalogInaccessible",
    "RegistryVerificationCoverageLow",
}
REQUIRED_ANNOTATIONS = {"summary", "description", "runbook_url"}


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (apt-get install prometheus); CI installs it")
    return subprocess.run([promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def _show(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


def test_rules_pass_promtool_check() -> None:
    proc = _promtool("check", "rules", str(RULES.relative_to(ROOT)))
    assert proc.returncode == 0, _show(proc)
    assert "SUCCESS: 4 rules found" in proc.stdout, _show(proc)


def test_rule_unit_tests_pass() -> None:
    proc = _promtool("test", "rules", str(RULE_TESTS.relative_to(ROOT)))
    assert proc.returncode == 0, _show(proc)
    assert "SUCCESS" in proc.stdout, _show(proc)


def test_rules_are_the_contract_alerts() -> None:
    rules = _alert_rules()
    assert sorted(rule["alert"] for rule in rules) == sorted(CONTRACT_ALERTS)
    for rule in rules:
        assert rule.get("labels", {}).get("severity"), f"{rule['alert']}: no severity label"
        missing = REQUIRED_ANNOTATIONS - set(rule.get("annotations", {}))
        assert not missing, f"{rule['alert']}: missing annotations {sorted(missing)}"


def test_runbook_urls_point_at_existing_runbooks() -> None:
    bases: set[str] = set()
    for rule in _alert_rules():
        url = rule["annotations"]["runbook_url"]
        base, marker, page = url.partition(RUNBOOK_MARKER)
        assert marker, f"{rule['alert']}: runbook_url {url!r} does not point into docs/runbooks/"
        path = RUNBOOKS / page
        assert path.is_file(), (
            f"{rule['alert']}: runbook_url {url!r} names {path.relative_to(ROOT)}, which does not exist"
        )
        assert path.stem == rule["alert"], f"{rule['alert']}: runbook_url {url!r} names another alert's page"
        bases.add(base)
    # Operators repoint the base with one search-and-replace; a second base would be missed.
    assert len(bases) == 1, f"runbook_url bases differ: {sorted(bases)}"


def test_runbook_index_links_every_page() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    for page in sorted(RUNBOOKS.glob("*.md")):
        if page.name != "README.md":
            assert f"({page.name})" in index, f"docs/runbooks/README.md does not link {page.name}"
