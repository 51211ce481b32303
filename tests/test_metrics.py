"""Metrics built from results, and pushed to a real pushgateway with the semantics the alerts need."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from regprobe.digest import Digest
from regprobe.metrics import build
from regprobe.model import Finding, Kind, Problem, RegistryResult

from .registry import Registry, free_port
from .servers import Pushgateway

JOB = "registry-integrity-probe"


def finding(repo: str, *tags: str, kind: Kind = Kind.LAYER) -> Finding:
    return Finding(repo, Digest("sha256", "a" * 64), kind, Problem.MISSING, 404, tags, None, "")


def exposition(result: RegistryResult, cap: int = 50) -> str:
    return generate_latest(build(result, cap)).decode()


def test_complete_run_metrics() -> None:
    result = RegistryResult(
        "private",
        "http://r",
        catalog_accessible=True,
        complete=True,
        images_checked=7,
        started_at=1700000000.0,
        findings=[finding("a", "v1", "v2"), finding("b", "latest", kind=Kind.MANIFEST)],
        requests=Counter({"ok": 40, "client_error": 2}),
        duration_seconds=1.5,
    )
    text = exposition(result)
    assert 'regprobe_broken_images{registry="private"} 3.0' in text
    assert 'regprobe_broken_objects{kind="layer",registry="private"} 1.0' in text
    assert 'regprobe_broken_objects{kind="config",registry="private"} 0.0' in text  # every kind has a series
    assert 'regprobe_image_broken{registry="private",repository="a",tag="v2"} 1.0' in text
    assert 'regprobe_last_success_timestamp_seconds{registry="private"} 1.7e+09' in text
    assert 'regprobe_requests{outcome="retried",registry="private"} 0.0' in text
    assert 'regprobe_images_checked{registry="private"} 7.0' in text


def test_broken_series_are_capped() -> None:
    result = RegistryResult("r", "http://r", complete=True, findings=[finding("a", *(f"t{i}" for i in range(80)))])
    text = exposition(result, cap=50)
    assert text.count("regprobe_image_broken{") == 50
    assert 'regprobe_broken_images{registry="r"} 80.0' in text  # the count is not capped


def test_incomplete_run_without_findings_claims_nothing_about_integrity() -> None:
    text = exposition(RegistryResult("r", "http://r", catalog_accessible=False, complete=False))
    assert "regprobe_last_success_timestamp_seconds{" not in text
    assert "regprobe_broken_images{" not in text and "regprobe_image_broken{" not in text
    assert 'regprobe_catalog_accessible{registry="r"} 0.0' in text
    assert 'regprobe_run_complete{registry="r"} 0.0' in text


def test_push_lifecycle(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, pushgateway: Pushgateway
) -> None:
    name = f"reg-{ns}"
    good = registry.push_image(f"{ns}/app", "v1")
    bad = registry.push_image(f"{ns}/app", "v2")
    registry.remove_revision_link(f"{ns}/app", bad.digest)
    cfg = {"name": name, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    push = {"url": pushgateway.url}

    # 1. a broken image: series per tag, counts, success time
    assert regprobe("run", "-c", probe_config(cfg, pushgateway=push)).code == 1
    labels = {"job": JOB, "registry": name}
    assert pushgateway.value("regprobe_image_broken", repository=f"{ns}/app", tag="v2", **labels) == 1
    assert pushgateway.value("regprobe_broken_images", **labels) == 1
    assert pushgateway.value("regprobe_broken_objects", kind="manifest", **labels) == 1
    first_success = pushgateway.value("regprobe_last_success_timestamp_seconds", **labels)
    assert first_success is not None

    # 2. fixed on the next run: the tag's series disappears, success advances
    registry.tag(f"{ns}/app", "v2", good.digest)
    assert regprobe("run", "-c", probe_config(cfg, pushgateway=push)).code == 0
    assert pushgateway.value("regprobe_image_broken", tag="v2", **labels) is None
    assert pushgateway.value("regprobe_broken_images", **labels) == 0
    second_success = pushgateway.value("regprobe_last_success_timestamp_seconds", **labels)
    assert second_success is not None and second_success > first_success

    # 3. the registry goes away: catalog 0, incomplete, last success kept
    dead = {**cfg, "url": f"http://127.0.0.1:{free_port()}", "timeout": 2}
    assert regprobe("run", "-c", probe_config(dead, pushgateway=push)).code == 3
    assert pushgateway.value("regprobe_catalog_accessible", **labels) == 0
    assert pushgateway.value("regprobe_run_complete", **labels) == 0
    assert pushgateway.value("regprobe_last_success_timestamp_seconds", **labels) == second_success
    last_run = pushgateway.value("regprobe_last_run_timestamp_seconds", **labels)
    assert last_run is not None and last_run > second_success

    # 4. --no-push leaves the gateway alone
    assert regprobe("run", "-c", probe_config(cfg, pushgateway=push), "--no-push").code == 0
    assert pushgateway.value("regprobe_run_complete", **labels) == 0


def test_pushgateway_down_exits_3_and_still_reports(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    registry.push_image(f"{ns}/app", "v1")
    cfg = {"name": "local", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    gone = f"http://127.0.0.1:{free_port()}"

    path = probe_config(cfg, pushgateway={"url": gone})
    result = regprobe("run", "-c", path, "--format", "json")
    text = regprobe("run", "-c", path)

    assert result.code == 3
    entry = result.report["registries"][0]
    assert entry["images_checked"] == 1 and entry["complete"] is True
    assert f"pushgateway {gone}: push for registry local failed" in result.err
    # The report itself says the run was lost, not only stderr.
    assert entry["push"]["ok"] is False
    assert entry["push"]["error"].startswith(f"pushgateway {gone}: URLError: ")
    assert text.out.splitlines()[0] == f"local {registry.url}  OK  NOT PUSHED"
    assert f"  ! push failed: pushgateway {gone}: URLError: " in text.out
