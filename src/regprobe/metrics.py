"""Turns a registry's run into the contract's metric families: pushed by regprobe.pushgateway, served by
``regprobe serve`` (regprobe.serve.state). Both publish the same families with the same semantics: a
completed run replaces everything; an incomplete one never claims a success and clears only the broken
images it looked at again (regprobe.carryover).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .carryover import BrokenImages, carry
from .model import OUTCOMES, SKIP_REASONS, Kind, RegistryResult

#: For a registry configured with ``repositories.list`` nothing is listed: the names are given, and the
#: run asks the registry's ``GET /v2/`` first - 0 then means the registry did not answer (issue 21).
CATALOG_HELP = (
    "1 if the repositories could be listed this run (GET /v2/_catalog; with repositories.list, "
    "the registry answered GET /v2/), else 0"
)

DANGLING_HELP = (
    "Referrers whose subject is gone, and orphaned referrer fallback tags (sha256-<hex>), as the last "
    "complete run found them: clutter, not broken images"
)


def families(result: RegistryResult, max_broken_series: int, verdict: BrokenImages | None) -> list[Metric]:
    """The contract's metric families for one registry's run, labelled ``registry``. ``last_success`` only
    when the run completed; the integrity families from ``verdict`` (regprobe.carryover: the run's own, or
    merged with the earlier one for an incomplete run), none when it is None. Pushed by
    regprobe.pushgateway, served by ``regprobe serve``."""
    name = result.name
    out: list[Metric] = []

    def gauge(metric: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
        family = GaugeMetricFamily(metric, doc, labels=["registry", *labels])
        out.append(family)
        return family

    gauge("regprobe_catalog_accessible", CATALOG_HELP).add_metric([name], int(result.catalog_accessible))
    gauge("regprobe_run_complete", "1 if every selected tag was walked").add_metric([name], int(result.complete))
    gauge("regprobe_last_run_timestamp_seconds", "Unix time of this run").add_metric([name], result.started_at)
    if result.complete:
        gauge("regprobe_last_success_timestamp_seconds", "Unix time of the last run that completed").add_metric(
            [name], result.started_at
        )
    if result.complete and result.dangling is not None:
        # Clutter, not breakage: no alert reads it. Only a complete run that looked says how many; an
        # incomplete one leaves the last count in place.
        gauge("regprobe_dangling_referrers", DANGLING_HELP).add_metric([name], len(result.dangling))
    gauge("regprobe_images_checked", "Tags walked").add_metric([name], result.images_checked)
    gauge("regprobe_duration_seconds", "Wall time of this registry's run").add_metric([name], result.duration_seconds)
    skipped = gauge("regprobe_images_skipped", "Tags not judged on purpose, by reason", ["reason"])
    for reason in SKIP_REASONS:
        skipped.add_metric([name, reason], sum(s.reason == reason for s in result.skipped))
    requests = gauge("regprobe_requests", "Requests this run by outcome", ["outcome"])
    for outcome in OUTCOMES:
        requests.add_metric([name, outcome], result.requests.get(outcome, 0))
    if verdict is not None:
        gauge("regprobe_broken_images", "(repository, tag) pairs with at least one finding").add_metric(
            [name], verdict.count
        )
        objects = gauge("regprobe_broken_objects", "Distinct broken objects by kind", ["kind"])
        for kind in Kind:
            objects.add_metric([name, kind.value], verdict.objects.get(kind, 0))
        image = gauge("regprobe_image_broken", "1 per broken tag (capped)", ["repository", "tag"])
        # Bounded cardinality: a registry-wide outage must not explode Prometheus' series count.
        for repository, tag in verdict.sorted()[:max_broken_series]:
            image.add_metric([name, repository, tag], 1)
    out.extend(coverage_families(result))
    return out


def coverage_families(result: RegistryResult) -> list[Metric]:
    """Continuous verification's signal (docs/design/continuous-verification.md), carried whenever the run
    can say it truthfully: with a ledger always, without one when its listing completed."""
    out: list[Metric] = []
    name = result.name

    def gauge(metric: str, doc: str, value: float) -> None:
        family = GaugeMetricFamily(metric, doc, labels=["registry"])
        family.add_metric([name], value)
        out.append(family)

    coverage = result.coverage
    if coverage is not None:
        gauge("regprobe_images_known", "Tags selected (with a ledger: every tag it knows)", coverage.known)
        gauge(
            "regprobe_images_verified_within_window",
            "Of those, tags verified within coverage.window",
            coverage.verified_within_window,
        )
        if coverage.oldest_age_seconds is not None:
            gauge(
                "regprobe_oldest_verification_age_seconds",
                "Age of the least recently verified selected tag (never verified: since first seen)",
                coverage.oldest_age_seconds,
            )
    if result.scrub is not None and result.scrub.oldest_age_seconds is not None:
        gauge(
            "regprobe_scrub_oldest_age_seconds",
            "Age of the least recently digest-scrubbed blob (never scrubbed: since the ledger began)",
            result.scrub.oldest_age_seconds,
        )
    return out


class Families(Collector):
    """A collector serving fixed families (a run's, or several registries' merged)."""

    def __init__(self, fams: Iterable[Metric]) -> None:
        self._families = list(fams)

    def collect(self) -> Iterable[Metric]:
        return self._families


def build(result: RegistryResult, max_broken_series: int) -> CollectorRegistry:
    """The run's own families (its verdict alone, as ``carry`` gives it without an earlier one)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(Families(families(result, max_broken_series, carry(None, result))))
    return registry


__all__ = ["CATALOG_HELP", "DANGLING_HELP", "Families", "build", "families"]
