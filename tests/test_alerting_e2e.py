"""A broken image in a real registry pages through real servers, in both modes:
registry -> regprobe run -> pushgateway -> Prometheus (honor_labels, alerts/ rules loaded) -> Alertmanager
-> webhook, and registry -> regprobe serve -> Prometheus (scrape) -> Alertmanager -> webhook. And coverage
that lapses (continuous verification) raises its alert the same way."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from .registry import Registry, free_port
from .servers import SERVE_SCRAPE_JOB, Alertmanager, Prometheus, Pushgateway, RegprobeServe, WebhookReceiver
from .util import wait_for

RULES = Path(__file__).parents[1] / "alerts" / "regprobe.rules.yml"
ALERT = "RegistryManifestIntegrityFailure"


@pytest.fixture(scope="module")
def pager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebhookReceiver, Alertmanager]]:
    receiver = WebhookReceiver()
    alertmanager = Alertmanager(tmp_path_factory.mktemp("alertmanager"), receiver.url)
    try:
        alertmanager.start()
        yield receiver, alertmanager
    finally:
        alertmanager.stop()
        receiver.stop()


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, pager: tuple[WebhookReceiver, Alertmanager]
) -> Iterator[tuple[Pushgateway, Prometheus]]:
    gateway = Pushgateway(tmp_path_factory.mktemp("gateway"))
    gateway.start()
    prometheus = Prometheus(
        tmp_path_factory.mktemp("prometheus"),
        f"127.0.0.1:{gateway.port}",
        [RULES],
        alertmanager=f"127.0.0.1:{pager[1].port}",
    )
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


# --- the whole paging chain -----------------------------------------------------------------------------


def pages_then_resolves(receiver: WebhookReceiver, registry: str, broken_tag: str, fix: Callable[[], object]) -> None:
    """The webhook gets the page, rendered as a person reads it; after ``fix``, the resolved notice."""
    firing = wait_for(lambda: receiver.alerts("firing", ALERT, registry), f"{ALERT} for {registry} at the webhook")
    alert = firing[0]
    assert alert["labels"]["severity"] == "page"
    assert alert["labels"]["job"] == "registry-integrity-probe"
    annotations = alert["annotations"]
    assert annotations["summary"] == f"Registry {registry} serves 1 image(s) that cannot be pulled"
    # Rendered from regprobe_image_broken{job=..., registry=...}: the label set must match in both modes.
    assert f"Broken: {broken_tag}." in annotations["description"], annotations["description"]
    assert annotations["runbook_url"].endswith("/docs/runbooks/RegistryManifestIntegrityFailure.md")
    fix()
    wait_for(lambda: receiver.alerts("resolved", ALERT, registry), f"the resolved {ALERT} for {registry}")


def break_index(registry: Registry, repository: str) -> None:
    index = registry.push_index(repository, "v1")
    registry.remove_revision_link(repository, index.children[1].digest)


def test_paging_chain_push_mode(
    stack: tuple[Pushgateway, Prometheus],
    pager: tuple[WebhookReceiver, Alertmanager],
    registry: Registry,
    ns: str,
    regprobe: Any,
    probe_config: Any,
) -> None:
    gateway, _ = stack
    name = f"push-{ns}"
    break_index(registry, f"{ns}/api")
    config = probe_config(
        {"name": name, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}, pushgateway={"url": gateway.url}
    )
    assert regprobe("run", "-c", config).code == 1

    def fix() -> None:
        registry.push_index(f"{ns}/api", "v1")  # a rebuild: the tag moves to an intact index
        assert regprobe("run", "-c", config).code == 0

    pages_then_resolves(pager[0], name, f"{ns}/api:v1", fix)


def test_paging_chain_serve_mode(
    pager: tuple[WebhookReceiver, Alertmanager], registry: Registry, ns: str, probe_config: Any, tmp_path: Path
) -> None:
    receiver, alertmanager = pager
    name = f"serve-{ns}"
    break_index(registry, f"{ns}/api")
    config = probe_config({"name": name, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}})
    server = RegprobeServe(tmp_path / "serve", config, interval="2s").start()
    prometheus = Prometheus(
        tmp_path / "prometheus",
        f"127.0.0.1:{server.port}",
        [RULES],
        job=SERVE_SCRAPE_JOB,
        alertmanager=f"127.0.0.1:{alertmanager.port}",
    )
    try:
        prometheus.start()
        pages_then_resolves(receiver, name, f"{ns}/api:v1", lambda: registry.push_index(f"{ns}/api", "v1"))
        # The stale alert's absent branch names the job: scraped series must carry it, or a healthy
        # serve would page as "not reported at all".
        absent = 'absent_over_time(regprobe_last_success_timestamp_seconds{job="registry-integrity-probe"}[15m])'
        assert prometheus.query(absent) == []
        assert alerts_for(prometheus, "RegistryIntegrityProbeStale", name) == []
    finally:
        prometheus.stop()
        server.stop()


# --- an incomplete run clears only what it looked at again ----------------------------------------------


def test_incomplete_run_keeps_the_alert_for_images_it_did_not_reach(
    stack: tuple[Pushgateway, Prometheus], registry: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    """Issue 21 item 6: a complete run finds 3 broken images; the next run cannot reach 2 of them (their
    tag listings fail in storage, as a deadline would cut them off) and finds the third: the alert still
    fires for all 3 and broken_images stays 3, until a complete run finds them fixed."""
    gateway, prometheus = stack
    name = f"carry-{ns}"
    repositories = [f"{ns}/a", f"{ns}/b", f"{ns}/c"]
    for repository in repositories:
        break_index(registry, repository)
    config = probe_config(
        {"name": name, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}},
        pushgateway={"url": gateway.url},
    )
    broken = ", ".join(f"{r}:v1" for r in repositories)

    def firing_for_three() -> bool:
        alerts = alerts_for(prometheus, ALERT, name)
        return bool(alerts) and alerts[0]["annotations"]["summary"].endswith("serves 3 image(s) that cannot be pulled")

    assert regprobe("run", "-c", config).code == 1
    wait_for(firing_for_three, "the alert for 3 broken images")
    success = gateway.value("regprobe_last_success_timestamp_seconds", registry=name)

    with registry.unlistable_tags(repositories[1]), registry.unlistable_tags(repositories[2]):
        cut = regprobe("run", "-c", config, "--format", "json")
    assert cut.code == 1
    entry = cut.report["registries"][0]
    assert entry["complete"] is False and {f["repository"] for f in entry["findings"]} == {repositories[0]}
    assert gateway.value("regprobe_broken_images", registry=name) == 3
    assert gateway.broken_tags(name) == {(r, "v1") for r in repositories}
    assert gateway.value("regprobe_last_success_timestamp_seconds", registry=name) == success
    assert gateway.value("regprobe_run_complete", registry=name) == 0
    assert f"registry {name}: 2 broken images from earlier runs kept" in cut.err

    wait_for(lambda: prometheus.query(f'regprobe_run_complete{{registry="{name}"}} == 0'), "the incomplete run scraped")
    seen = time.time()
    wait_for(lambda: prometheus.evaluated_since(seen), "a rule evaluation after the incomplete run")
    (alert,) = alerts_for(prometheus, ALERT, name)
    assert alert["state"] == "firing"
    assert alert["annotations"]["summary"].endswith("serves 3 image(s) that cannot be pulled")
    assert f"Broken: {broken}." in alert["annotations"]["description"]

    for repository in repositories:
        registry.push_index(repository, "v1")  # rebuilt: the tags move to intact indexes
    assert regprobe("run", "-c", config).code == 0
    assert gateway.value("regprobe_broken_images", registry=name) == 0
    wait_for(lambda: not alerts_for(prometheus, ALERT, name), "the alert to resolve")


# --- continuous verification: coverage that lapses ------------------------------------------------------

COVERAGE = "RegistryVerificationCoverageLow"


def push_coverage(
    gateway: Pushgateway, registry: str, known: int, verified: int, oldest: float, shard: str | None = None
) -> None:
    """What a run with a ledger pushes for its coverage (the rest of its group left out), straight to the
    real pushgateway, grouped as `regprobe run` groups it."""
    metrics = CollectorRegistry()
    for name, value in [
        ("regprobe_images_known", known),
        ("regprobe_images_verified_within_window", verified),
        ("regprobe_oldest_verification_age_seconds", oldest),
        ("regprobe_last_run_timestamp_seconds", time.time()),
    ]:
        Gauge(name, name, registry=metrics).set(value)
    grouping = {"registry": registry, **({"shard": shard} if shard is not None else {})}
    push_to_gateway(gateway.url, job="registry-integrity-probe", registry=metrics, grouping_key=grouping)


def test_coverage_lapse_is_pending_per_registry_and_clears_when_covered(
    stack: tuple[Pushgateway, Prometheus], ns: str
) -> None:
    """The shipped rule, in a real Prometheus scraping the real pushgateway: a shard with tags past the
    window puts its registry's alert on its way (pending for its 30 minutes; firing is the next test's),
    with the shards summed into one alert; a covered registry has none; the next push that covers the
    shard clears it."""
    gateway, prometheus = stack
    lapsed, covered = f"coverage-{ns}", f"covered-{ns}"
    push_coverage(gateway, lapsed, 500, 500, 3600, shard="0")
    push_coverage(gateway, lapsed, 500, 490, 90000, shard="1")
    push_coverage(gateway, covered, 7, 7, 600)

    (alert,) = wait_for(lambda: alerts_for(prometheus, COVERAGE, lapsed), f"{COVERAGE} for {lapsed}")
    assert alert["state"] == "pending"
    assert alert["labels"]["severity"] == "ticket"
    assert alert["annotations"]["summary"] == f"Registry {lapsed} has 10 tag(s) not verified within the coverage window"
    assert "verified 1d 1h 0m 0s before the last run" in alert["annotations"]["description"]
    assert alert["annotations"]["runbook_url"].endswith(f"/docs/runbooks/{COVERAGE}.md")
    seen = time.time()
    wait_for(lambda: prometheus.evaluated_since(seen), "a rule evaluation with both registries scraped")
    assert alerts_for(prometheus, COVERAGE, covered) == []

    push_coverage(gateway, lapsed, 500, 500, 80000, shard="1")
    wait_for(lambda: not alerts_for(prometheus, COVERAGE, lapsed), f"{COVERAGE} for {lapsed} to clear")


def test_coverage_lapse_pages_through_alertmanager(
    pager: tuple[WebhookReceiver, Alertmanager], ns: str, tmp_path: Path
) -> None:
    """The whole chain, firing: the shipped rule with only its 30-minute `for` shortened (what the
    promtool tests pin), so that the notification arrives in seconds; resolved once a run covers it."""
    receiver, alertmanager = pager
    rules = yaml.safe_load(RULES.read_text())
    (rule,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == COVERAGE]
    assert rule["for"] == "30m"
    rule["for"] = "2s"
    short = tmp_path / "regprobe.rules.yml"
    short.write_text(yaml.safe_dump(rules))
    gateway = Pushgateway(tmp_path / "gateway")
    gateway.start()
    prometheus = Prometheus(
        tmp_path / "prometheus", f"127.0.0.1:{gateway.port}", [short], alertmanager=f"127.0.0.1:{alertmanager.port}"
    )
    name = f"lapse-{ns}"
    try:
        prometheus.start()
        push_coverage(gateway, name, 1000, 990, 90000)
        firing = wait_for(lambda: receiver.alerts("firing", COVERAGE, name), f"{COVERAGE} at the webhook")
        annotations = firing[0]["annotations"]
        assert annotations["summary"] == f"Registry {name} has 10 tag(s) not verified within the coverage window"
        assert annotations["runbook_url"].endswith(f"/docs/runbooks/{COVERAGE}.md")
        push_coverage(gateway, name, 1000, 1000, 80000)
        wait_for(lambda: receiver.alerts("resolved", COVERAGE, name), f"the resolved {COVERAGE}")
    finally:
        prometheus.stop()
        gateway.stop()
