"""What ``POST /events`` makes visible on ``/metrics`` (names in ../shared/CONTRACT.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Why an event is refused: ``auth`` no or a wrong secret, ``too_large`` a body over the bound,
#: ``parse`` not an event of a known format, ``unknown_registry`` a registry not configured (by host, or
#: ``?registry=``), ``unselected`` a repository the registry's ``repositories`` does not select,
#: ``pull_through`` a pull-through cache (left to its walks), ``duplicate`` an event id already taken,
#: ``queue_full`` ``max_pending`` repositories already wait.
Reason = Literal[
    "auth", "too_large", "parse", "unknown_registry", "unselected", "pull_through", "duplicate", "queue_full"
]
REASONS: tuple[Reason, ...] = get_args(Reason)
#: Event to verdict: a re-check starts a settle time after its first event and takes a walk.
BUCKETS = (0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60, 120, 300, 600)


class EventMetrics:
    def __init__(self, registry: CollectorRegistry, depth: Callable[[], float]) -> None:
        self.received = Counter(
            "regprobe_events_received",
            "Registry events accepted by serve",
            ["registry", "source", "action"],
            registry=registry,
        )
        self.rejected = Counter(
            "regprobe_events_rejected", "Registry events refused, by reason", ["reason"], registry=registry
        )
        for reason in REASONS:  # every reason has a series from the start: rate() and alerts need it
            self.rejected.labels(reason)
        self.ignored = Counter(
            "regprobe_events_ignored",
            "Well-formed events that call for no re-check (pulls, scans, pushes of objects nothing broken needs)",
            ["source", "action"],
            registry=registry,
        )
        self.recheck = Histogram(
            "regprobe_event_recheck_seconds",
            "From the first event a re-check answers to its verdict published",
            ["registry"],
            buckets=BUCKETS,
            registry=registry,
        )
        queue = Gauge("regprobe_event_queue_depth", "Repositories waiting for a re-check", registry=registry)
        queue.set_function(depth)

    def reject(self, reason: Reason) -> None:
        self.rejected.labels(reason).inc()
