"""``/probe?target=HOST/REPO:TAG``: one image walked on demand, answered as metrics for that scrape (the
multi-target exporter pattern of blackbox_exporter).

Only hosts of configured registries are reached, with that registry's credentials: whoever can reach the
port must not be able to turn the prober into a proxy, or make it send credentials somewhere else.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import cast, get_args
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Gauge

from ..client import ClientSettings
from ..config import BlobCheck, Config, RegistryConfig
from ..errors import ParseError
from ..model import OUTCOMES, RegistryResult
from ..probe import Pinned, Selection
from ..reference import DOCKER_HUB_API, Reference
from ..runner import configured_settings, guarded, walk_policy

#: Prometheus' default scrape_timeout, for callers that do not send X-Prometheus-Scrape-Timeout-Seconds.
DEFAULT_BUDGET = 10.0
MAX_BUDGET = 300.0
#: Answer this long before the scraper gives up (blackbox_exporter's default timeout_offset), so a
#: slow walk is a scraped regprobe_probe_success 0 rather than a failed scrape.
MARGIN = 0.5
BLOB_CHECKS: tuple[str, ...] = get_args(BlobCheck)
#: Names events give Docker Hub (its web host); its API is DOCKER_HUB_API.
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "hub.docker.com", "registry.hub.docker.com"})


class TargetError(ValueError):
    """The request names no target regprobe may probe; the message says why (HTTP 400)."""


def budget(header: str | None) -> float:
    """Seconds the walk may take, from the scraper's X-Prometheus-Scrape-Timeout-Seconds."""
    try:
        seconds = float(header) if header else DEFAULT_BUDGET
    except ValueError:
        seconds = DEFAULT_BUDGET
    if not math.isfinite(seconds) or seconds <= 0:
        seconds = DEFAULT_BUDGET
    return max(0.1, min(seconds, MAX_BUDGET) - MARGIN)


def _host_port(netloc: str, scheme: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None:
        return None
    return parts.hostname.lower(), port or (443 if scheme == "https" else 80)


def serving(cfg: Config, host: str) -> list[RegistryConfig]:
    """The configured registries at ``host`` (``host[:port]``; a port left out is the scheme's default).
    ``/probe`` and ``POST /events`` reach nothing else."""
    if host.lower() in _HUB_ALIASES:
        host = DOCKER_HUB_API
    matches = []
    for registry in cfg.registries:
        scheme = urlsplit(registry.url).scheme
        if _host_port(host, scheme) == _host_port(urlsplit(registry.url).netloc, scheme):
            matches.append(registry)
    return matches


def resolve(cfg: Config, target: str, blob_check: str | None) -> tuple[RegistryConfig, Reference, BlobCheck]:
    """The configured registry that serves ``target``, the parsed reference and the blob check to use;
    TargetError for anything else. Makes no request."""
    try:
        ref = Reference.parse(target)
    except ParseError as exc:
        raise TargetError(f"target: {exc}") from None
    matches = serving(cfg, ref.api_host)
    if not matches:
        raise TargetError(f"target: host {ref.host[:100]!r} is not one of the configured registries")
    # Several entries may share a host (different repositories, different credentials): take the one
    # whose repository selection covers the image.
    registry = next((r for r in matches if Selection.configured(r).wants(ref.repository)), matches[0])
    check = blob_check or registry.blob_check
    if check not in BLOB_CHECKS:
        raise TargetError(f"blob_check: must be one of {', '.join(BLOB_CHECKS)}")
    return registry, ref, cast(BlobCheck, check)


async def walk(
    cfg: Config, registry: RegistryConfig, ref: Reference, check: BlobCheck, seconds: float
) -> RegistryResult:
    policy = walk_policy(cfg, registry, check)
    deadline = time.monotonic() + seconds
    pinned = [Pinned(ref.repository, ref.tag, ref.digest)]
    return await guarded(
        registry.name, registry.url, _settings(cfg, registry, seconds), policy, deadline, pinned=pinned
    )


async def _settings(cfg: Config, registry: RegistryConfig, seconds: float) -> ClientSettings:
    settings = await configured_settings(cfg, registry)
    return replace(settings, timeout=min(settings.timeout, seconds))


def exposition(result: RegistryResult) -> CollectorRegistry:
    """A fresh registry per probe, as blackbox_exporter does: nothing leaks between scrapes."""
    registry = CollectorRegistry(auto_describe=True)
    success = result.complete and not result.findings
    Gauge("regprobe_probe_success", "1 if the image was walked completely and is intact", registry=registry).set(
        int(success)
    )
    Gauge("regprobe_probe_complete", "1 if the walk finished (0: cut off or refused)", registry=registry).set(
        int(result.complete)
    )
    Gauge("regprobe_probe_duration_seconds", "Wall time of the walk", registry=registry).set(result.duration_seconds)
    objects = Gauge("regprobe_probe_broken_objects", "Distinct broken objects by kind", ["kind"], registry=registry)
    for kind, count in result.broken_objects().items():
        objects.labels(kind.value).set(count)
    requests = Gauge("regprobe_probe_requests", "Requests by outcome", ["outcome"], registry=registry)
    for outcome in OUTCOMES:
        requests.labels(outcome).set(result.requests.get(outcome, 0))
    return registry
