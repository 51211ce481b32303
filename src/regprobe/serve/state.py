"""What ``regprobe serve`` remembers between runs: the metrics as a pushgateway would hold them, and a
short history for the status page."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ..metrics import families
from ..model import RegistryResult


class HeldMetrics(Collector):
    """The contract's families for every registry, merged run after run the way the pushgateway merges
    ``regprobe run``'s pushes (metrics.py): a completed run replaces its registry's families whole, an
    incomplete one replaces only the families it carries. So a failed run keeps the last success time
    and the last verdict on broken images, and the alerts read scraped series exactly as pushed ones."""

    def __init__(self, max_broken_series: int) -> None:
        self._max = max_broken_series
        self._held: dict[str, dict[str, Metric]] = {}

    def record(self, result: RegistryResult) -> None:
        carried = {family.name: family for family in families(result, self._max)}
        if result.complete:
            self._held[result.name] = carried
        else:
            self._held.setdefault(result.name, {}).update(carried)

    def collect(self) -> Iterable[Metric]:
        # One family per name across registries: exposition allows a name's HELP/TYPE only once.
        merged: dict[str, Metric] = {}
        for held in self._held.values():
            for name, family in held.items():
                if name not in merged:
                    merged[name] = Metric(family.name, family.documentation, family.type)
                merged[name].samples.extend(family.samples)
        return list(merged.values())


@dataclass(frozen=True, slots=True)
class RunSummary:
    started_at: float
    duration_seconds: float
    complete: bool
    catalog_accessible: bool
    images_checked: int
    broken_images: int
    findings: int


@dataclass(slots=True)
class RegistryHistory:
    last: RegistryResult
    runs: deque[RunSummary]


class RunLog:
    """Per registry the last result in full and a summary of the last few runs, newest first."""

    def __init__(self, keep: int = 10) -> None:
        self._keep = keep
        self.registries: dict[str, RegistryHistory] = {}
        #: Unix time the run in progress started, None between runs.
        self.running_since: float | None = None

    def record(self, result: RegistryResult) -> None:
        summary = RunSummary(
            started_at=result.started_at,
            duration_seconds=result.duration_seconds,
            complete=result.complete,
            catalog_accessible=result.catalog_accessible,
            images_checked=result.images_checked,
            broken_images=len(result.broken_images),
            findings=len(result.findings),
        )
        history = self.registries.get(result.name)
        if history is None:
            history = self.registries[result.name] = RegistryHistory(result, deque(maxlen=self._keep))
        history.last = result
        history.runs.appendleft(summary)
