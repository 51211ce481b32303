"""A broken image in a real registry becomes a real alert in a real Prometheus:
registry -> regprobe run -> pushgateway -> Prometheus (honor_labels, alerts/ rules loaded)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .registry import Registry, free_port
from .servers import Prometheus, Pushgateway
from .util import wait_for

RULES = Path(__file__).parents[1] / "alerts" / "regprobe.rules.yml"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pushgateway, Prometheus]]:
    gateway = Pushgateway(tmp_path_factory.mktemp("gateway"))
    gateway.start()
    prometheus = Prometheus(tmp_path_factory.mktemp("prometheus"), f"127.0.0.1:{gateway.port}", [RULES])
    try:
        prometheus.start()
        yield gateway, prometheus
    finally:
        prometheus.stop()
        gateway.stop()


def alerts_for(prometheus: Prometheus, alertname: str, registry: str) -> list[dict[str, Any]]:
    return [
        a
        for a in prometheus.alerts()
        if a["labels"].get("alertname") == alertname and a["labels"].get("registry") == registry
    ]


def test_broken_image_pages_and_outage_is_seen(
    stack: tuple[Pushgateway, Prometheus], registry: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    gateway, prometheus = stack
    broken_name, healthy_name = f"broken-{ns}", f"healthy-{ns}"
    index = registry.push_index(f"{ns}/broken/api", "v1")
    registry.remove_revision_link(f"{ns}/broken/api", index.children[1].digest)
    registry.push_image(f"{ns}/healthy/api", "v1")
    broken = {"name": broken_name, "url": registry.url, "repositories": {"include": [f"{ns}/broken/*"]}}
    healthy = {"name": healthy_name, "url": registry.url, "repositories": {"include": [f"{ns}/healthy/*"]}}
    push = {"url": gateway.url}

    assert regprobe("run", "-c", probe_config(broken, healthy, pushgateway=push)).code == 1

    alert = wait_for(
        lambda: alerts_for(prometheus, "RegistryManifestIntegrityFailure", broken_name),
        "RegistryManifestIntegrityFailure for the broken registry",
    )[0]
    assert alert["state"] in ("pending", "firing")
    assert alert["labels"]["severity"]
    assert broken_name in alert["annotations"]["description"]
    assert "/docs/runbooks/" in alert["annotations"]["runbook_url"]
    # Paged per registry, not per tag; and nothing for the healthy one.
    assert len(alerts_for(prometheus, "RegistryManifestIntegrityFailure", broken_name)) == 1
    assert alerts_for(prometheus, "RegistryManifestIntegrityFailure", healthy_name) == []
    assert alerts_for(prometheus, "RegistryIntegrityProbeStale", healthy_name) == []

    success_before = wait_for(
        lambda: prometheus.query(f'regprobe_last_success_timestamp_seconds{{registry="{healthy_name}"}}'),
        "the success metric to be scraped",
    )[0]["value"][1]

    # The registry goes away: catalog metric 0, last success kept, the catalog alert on its way.
    dead = {**healthy, "url": f"http://127.0.0.1:{free_port()}", "timeout": 2}
    assert regprobe("run", "-c", probe_config(dead, pushgateway=push)).code == 3
    wait_for(
        lambda: prometheus.query(f'regprobe_catalog_accessible{{registry="{healthy_name}"}} == 0'),
        "catalog_accessible 0 in Prometheus",
    )
    catalog_alert = wait_for(
        lambda: alerts_for(prometheus, "RegistryCatalogInaccessible", healthy_name),
        "RegistryCatalogInaccessible pending",
    )[0]
    assert catalog_alert["state"] in ("pending", "firing")
    after = prometheus.query(f'regprobe_last_success_timestamp_seconds{{registry="{healthy_name}"}}')
    assert after[0]["value"][1] == success_before

    # The pushgateway goes away: exit 3, the report still printed.
    gateway.stop()
    try:
        result = regprobe("run", "-c", probe_config(healthy, pushgateway=push))
        assert result.code == 3
        assert f"{healthy_name} {registry.url}  OK" in result.out
        assert "push for registry" in result.err
    finally:
        gateway.start()
