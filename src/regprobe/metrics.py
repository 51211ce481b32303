"""Turns run results into the contract's metrics and pushes them to a Prometheus pushgateway.

Push semantics, chosen so the alerts stay truthful:

* A run that completed is pushed with **PUT**: the group (job, registry) is replaced whole, so the
  ``regprobe_image_broken`` series of an image fixed since the last run disappear, and
  ``regprobe_last_success_timestamp_seconds`` advances.
* A run that did not complete is pushed with **POST**, which replaces only the metric names it carries.
  It carries the run's status (catalog, completeness, last run, duration, requests) but never
  ``last_success``, so the previous success time stays and the stale alert can fire. It carries the
  integrity metrics only when it found something: a run that could not look must not report a broken
  registry as healed.

Each registry gets a fresh ``CollectorRegistry`` (never the process-global one).
"""

from __future__ import annotations

import base64
import logging
import ssl
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import default_handler, push_to_gateway, pushadd_to_gateway
from prometheus_client.registry import Collector

from .config import Config, Pushgateway
from .model import OUTCOMES, SKIP_REASONS, Kind, PushOutcome, RegistryResult

log = logging.getLogger(__name__)


def families(result: RegistryResult, max_broken_series: int) -> list[Metric]:
    """The contract's metric families for one registry's run, labelled ``registry``. What a run carries
    follows the push semantics above: ``last_success`` only when it completed, the integrity families
    only when it completed or found something. Pushed by ``push``, served by ``regprobe serve``."""
    name = result.name
    out: list[Metric] = []

    def gauge(metric: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
        family = GaugeMetricFamily(metric, doc, labels=["registry", *labels])
        out.append(family)
        return family

    gauge("regprobe_catalog_accessible", "1 if the repositories could be listed this run").add_metric(
        [name], int(result.catalog_accessible)
    )
    gauge("regprobe_run_complete", "1 if every selected tag was walked").add_metric([name], int(result.complete))
    gauge("regprobe_last_run_timestamp_seconds", "Unix time of this run").add_metric([name], result.started_at)
    if result.complete:
        gauge("regprobe_last_success_timestamp_seconds", "Unix time of the last run that completed").add_metric(
            [name], result.started_at
        )
    gauge("regprobe_images_checked", "Tags walked").add_metric([name], result.images_checked)
    gauge("regprobe_duration_seconds", "Wall time of this registry's run").add_metric([name], result.duration_seconds)
    skipped = gauge("regprobe_images_skipped", "Tags not judged on purpose, by reason", ["reason"])
    for reason in SKIP_REASONS:
        skipped.add_metric([name, reason], sum(s.reason == reason for s in result.skipped))
    requests = gauge("regprobe_requests", "Requests this run by outcome", ["outcome"])
    for outcome in OUTCOMES:
        requests.add_metric([name, outcome], result.requests.get(outcome, 0))
    known = result.known_broken
    if known is not None or result.complete or result.findings:
        # With a ledger, its broken set: a tag broken at the last look stays broken until a run looks again.
        broken = list(known.images) if known is not None else result.broken_images
        counts = known.objects if known is not None else result.broken_objects()
        gauge("regprobe_broken_images", "(repository, tag) pairs with at least one finding").add_metric(
            [name], len(broken)
        )
        objects = gauge("regprobe_broken_objects", "Distinct broken objects by kind", ["kind"])
        for kind in Kind:
            objects.add_metric([name, kind.value], counts.get(kind, 0))
        image = gauge("regprobe_image_broken", "1 per broken tag (capped)", ["repository", "tag"])
        # Bounded cardinality: a registry-wide outage must not explode Prometheus' series count.
        for repository, tag in broken[:max_broken_series]:
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
    registry = CollectorRegistry(auto_describe=True)
    registry.register(Families(families(result, max_broken_series)))
    return registry


def grouping_key(result: RegistryResult) -> dict[str, str]:
    grouping = {"registry": result.name}
    if result.shard is not None:
        # One group per shard: shards must not overwrite each other. The alerts aggregate over them.
        grouping["shard"] = result.shard.split("/", 1)[0]
    return grouping


def push(gateway: Pushgateway, result: RegistryResult, max_broken_series: int, timeout: float = 30.0) -> None:
    registry = build(result, max_broken_series)
    send = push_to_gateway if result.complete else pushadd_to_gateway
    send(
        gateway.url,
        job=gateway.job,
        registry=registry,
        grouping_key=grouping_key(result),
        timeout=timeout,
        handler=handler(gateway),
    )


def exposition(config: Config, results: Sequence[RegistryResult], job: str) -> str:
    """What a push sends, group by group, in the text format (``run --format metrics``), like
    blackbox_exporter's debug output: a probe that can show exactly what it reports."""
    out = []
    for result in results:
        method = "PUT, replacing the group" if result.complete else "POST, replacing only these names"
        labels = ", ".join(f'{k}="{v}"' for k, v in {"job": job, **grouping_key(result)}.items())
        out.append(f"# pushgateway group {{{labels}}} ({method})\n")
        out.append(generate_latest(build(result, config.max_broken_series)).decode())
    return "".join(out)


Handler = Callable[[str, str, float | None, list[tuple[str, str]], bytes], Callable[[], None]]


def handler(gateway: Pushgateway) -> Handler:
    """prometheus-client's push handler, with the gateway's Basic credentials and TLS trust when set."""
    authorization = None
    if gateway.auth is not None and gateway.auth.password is not None:
        pair = f"{gateway.auth.username}:{gateway.auth.password.get_secret_value()}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode()
    tls = gateway.tls
    context = None
    if urlsplit(gateway.url).scheme == "https" and (tls.ca_file or tls.cert_file or tls.insecure_skip_verify):
        context = ssl.create_default_context(cafile=tls.ca_file)
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.insecure_skip_verify:
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

    def handle(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ) -> Callable[[], None]:
        if authorization is not None:
            headers = [*headers, ("Authorization", authorization)]
        if context is None:
            return default_handler(url, method, timeout, headers, data)

        def send() -> None:
            # default_handler's own request, through an opener that trusts the configured CA.
            request = urllib.request.Request(url, data=data, method=method, headers=dict(headers))  # noqa: S310 - https only
            opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
            with opener.open(request, timeout=timeout):  # raises HTTPError on 4xx/5xx
                pass

        return send

    return handle


def push_all(config: Config, results: Sequence[RegistryResult], timeout: float | None = None) -> bool:
    """Push every registry's group, recording each outcome in ``result.push``; False (after logging
    which and why) if any push failed. ``timeout`` overrides the config's, e.g. to push within a grace
    period."""
    gateway = config.pushgateway
    assert gateway is not None
    ok = True
    for result in results:
        try:
            push(gateway, result, config.max_broken_series, timeout=timeout or config.timeout)
            result.push = PushOutcome(ok=True)
        except Exception as exc:  # urllib raises URLError, HTTPError, OSError, ValueError...
            ok = False
            result.push = PushOutcome(ok=False, error=f"pushgateway {_safe(gateway.url)}: {_reason(exc)}")
            log.error("pushgateway %s: push for registry %s failed: %s", _safe(gateway.url), result.name, _reason(exc))
    return ok


def _safe(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    status = getattr(exc, "code", None)  # urllib's HTTPError: the status the gateway (or its proxy) answered
    return f"{type(exc).__name__}: {f'{status} ' if isinstance(status, int) else ''}{str(reason)[:200]}"


__all__ = ["Families", "Kind", "build", "exposition", "families", "handler", "push", "push_all"]
