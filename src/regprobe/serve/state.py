"""What ``regprobe serve`` remembers between runs: the metrics as a pushgateway would hold them, and a
short history for the status page."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ..carryover import BrokenImages, carry
from ..metrics import families
from ..model import RegistryResult
from ..pushgateway import grouping_key


class HeldMetrics(Collector):
    """The contract's families for every registry, merged run after run the way the pushgateway holds
    ``regprobe run``'s pushes (regprobe.pushgateway): a completed run replaces its registry's families
    whole; an incomplete one replaces the families it carries, never ``last_success``, and its broken
    images are merged with the verdict held from earlier runs (regprobe.carryover) - it clears only what
    it looked at again. So the alerts read scraped series exactly as pushed ones."""

    def __init__(self, max_broken_series: int) -> None:
        self._max = max_broken_series
        self._held: dict[str, dict[str, Metric]] = {}
        #: Per registry, the verdict on its images as last published (every broken tag by name).
        self.verdicts: dict[str, BrokenImages] = {}

    def record(self, result: RegistryResult) -> BrokenImages | None:
        """Hold ``result``'s families; the verdict published for it (None: none yet)."""
        verdict = carry(self.verdicts.get(result.name), result)
        if verdict is not None:
            self.verdicts[result.name] = verdict
        carried = {family.name: _grouped(family, result) for family in families(result, self._max, verdict)}
        if result.complete:
            self._held[result.name] = carried
        else:
            self._held.setdefault(result.name, {}).update(carried)
        return verdict

    def collect(self) -> Iterable[Metric]:
        # One family per name across registries: exposition allows a name's HELP/TYPE only once.
        merged: dict[str, Metric] = {}
        for held in self._held.values():
            for name, family in held.items():
                if name not in merged:
                    merged[name] = Metric(family.name, family.documentation, family.type)
                merged[name].samples.extend(family.samples)
        return list(merged.values())


def _grouped(family: Metric, result: RegistryResult) -> Metric:
    """The family with the labels a push of ``result`` is grouped by, beyond ``registry``: ``shard`` for a
    sharded run. The alerts take each (job, registry, shard) group's newest instance, so the replicas of
    a sharded StatefulSet must carry their shard, or they would look like one pod replacing another."""
    extra = {k: v for k, v in grouping_key(result).items() if k != "registry"}
    if not extra:
        return family
    out = Metric(family.name, family.documentation, family.type)
    out.samples = [sample._replace(labels={**sample.labels, **extra}) for sample in family.samples]
    return out


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
    #: The verdict published after ``last``: with an incomplete run, earlier verdicts it kept.
    verdict: BrokenImages | None = None


class RunLog:
    """Per registry the last result in full and a summary of the last few runs, newest first."""

    def __init__(self, keep: int = 10) -> None:
        self._keep = keep
        self.registries: dict[str, RegistryHistory] = {}
        #: Unix time the run in progress started, None between runs.
        self.running_since: float | None = None

    def record(self, result: RegistryResult, verdict: BrokenImages | None = None) -> None:
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
        history.last, history.verdict = result, verdict
        history.runs.appendleft(summary)
