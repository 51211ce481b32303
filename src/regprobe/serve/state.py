"""What ``regprobe serve`` remembers between runs: the metrics as a pushgateway would hold them, and a
short history for the status page."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from ..carryover import BrokenImages, Image, carry
from ..metrics import families
from ..model import RegistryResult
from ..pushgateway import grouping_key
from . import amend
from .amend import Amendment, ObjectKey

#: The families a re-check changes: the verdict on images, nothing about runs.
INTEGRITY = frozenset({"regprobe_broken_images", "regprobe_broken_objects", "regprobe_image_broken"})
#: Re-checks remembered per registry until a run that started after them is recorded.
MAX_AMENDMENTS = 1000


class HeldMetrics(Collector):
    """The contract's families for every registry, merged run after run the way the pushgateway holds
    ``regprobe run``'s pushes (regprobe.pushgateway): a completed run replaces its registry's families
    whole; an incomplete one replaces the families it carries, never ``last_success``, and its broken
    images are merged with the verdict held from earlier runs (regprobe.carryover) - it clears only what
    it looked at again. So the alerts read scraped series exactly as pushed ones.

    An event's re-check (regprobe.serve.amend) changes the integrity families between runs, for the tags
    it re-verified. A run recorded after a re-check that looked after the run began does not undo it:
    the run may have walked those tags before the change the event announced."""

    def __init__(self, max_broken_series: int) -> None:
        self._max = max_broken_series
        self._held: dict[str, dict[str, Metric]] = {}
        #: Per registry, the verdict on its images as last published (every broken tag by name).
        self.verdicts: dict[str, BrokenImages] = {}
        #: Per registry, the broken objects behind each broken tag of its verdict.
        self._behind: dict[str, dict[Image, frozenset[ObjectKey]]] = {}
        #: Per registry, broken tags whose verdict a re-check gave (not the last run).
        self.by_events: dict[str, frozenset[Image]] = {}
        self._amendments: dict[str, deque[Amendment]] = {}
        self._last: dict[str, RegistryResult] = {}

    def record(self, result: RegistryResult) -> BrokenImages | None:
        """Hold ``result``'s families; the verdict published for it (None: none yet)."""
        name = result.name
        verdict = carry(self.verdicts.get(name), result)
        fresh = amend.behind(result.findings)
        earlier = self._behind.get(name, {})
        broken = None if verdict is None else {i: fresh.get(i) or earlier.get(i, frozenset()) for i in verdict.named}
        # Re-checks that looked after this run began saw the registry after it did.
        later = deque((a for a in self._amendments.get(name, ()) if a.checked_at >= result.started_at), MAX_AMENDMENTS)
        self._amendments[name] = later
        by_events: frozenset[Image] = frozenset()
        for amendment in later:
            broken, by_events = amend.apply(broken, amendment), _by_events(by_events, amendment)
        if later and broken is not None:
            unnamed = verdict.unnamed if verdict else 0
            kept = len(set(broken) - set(fresh) - by_events) + unnamed
            verdict = amend.verdict(broken, unnamed, kept, verdict.objects if verdict else None)
        self._store(result, verdict, broken, by_events)
        carried = {family.name: _grouped(family, result) for family in families(result, self._max, verdict)}
        if result.complete:
            self._held[name] = carried
        else:
            self._held.setdefault(name, {}).update(carried)
        return verdict

    def amend(self, name: str, url: str, amendment: Amendment) -> BrokenImages | None:
        """Publish what a re-check found; the verdict now published (None: none yet)."""
        previous = self.verdicts.get(name)
        broken = amend.apply(self._behind.get(name) if previous is not None else None, amendment)
        self._amendments.setdefault(name, deque(maxlen=MAX_AMENDMENTS)).append(amendment)
        by_events = _by_events(self.by_events.get(name, frozenset()), amendment)
        self.by_events[name] = by_events
        if broken is None:
            return None
        last = self._last.get(name)
        unnamed = previous.unnamed if previous else 0
        run_broken = set(last.broken_images) if last else set()
        kept = len(set(broken) - run_broken - by_events) + unnamed
        verdict = amend.verdict(broken, unnamed, kept, previous.objects if previous else None)
        self.verdicts[name], self._behind[name] = verdict, broken
        # Only the verdict's families: the run's own (its time, its completeness) are the run's.
        shown = last or RegistryResult(name=name, url=url)
        self._held.setdefault(name, {}).update(
            (family.name, _grouped(family, shown))
            for family in families(shown, self._max, verdict)
            if family.name in INTEGRITY
        )
        return verdict

    def broken_tags(self, name: str, repository: str, digest: str) -> list[str]:
        """Tags of ``repository`` held broken because of the object ``digest``: a push of it may mend them."""
        return sorted(
            tag
            for (repo, tag), keys in self._behind.get(name, {}).items()
            if repo == repository and any(key[2] == digest for key in keys)
        )

    def _store(
        self,
        result: RegistryResult,
        verdict: BrokenImages | None,
        broken: dict[Image, frozenset[ObjectKey]] | None,
        by_events: frozenset[Image],
    ) -> None:
        name = result.name
        self._last[name] = result
        self.by_events[name] = by_events
        if verdict is not None:
            self.verdicts[name] = verdict
            self._behind[name] = broken or {}

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


def _by_events(before: frozenset[Image], amendment: Amendment) -> frozenset[Image]:
    """Broken tags whose verdict a re-check gave, after ``amendment``."""
    kept = {image for image in before if not amendment.settles(image)}
    return frozenset(kept | {(amendment.repository, tag) for tag, keys in amendment.verdicts.items() if keys})


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
    #: The verdict published after ``last``: with an incomplete run, earlier verdicts it kept; with events,
    #: what their re-checks found since.
    verdict: BrokenImages | None = None
    #: Broken tags of ``verdict`` that an event's re-check found, not a run.
    by_events: frozenset[Image] = frozenset()


class RunLog:
    """Per registry the last result in full and a summary of the last few runs, newest first."""

    def __init__(self, keep: int = 10) -> None:
        self._keep = keep
        self.registries: dict[str, RegistryHistory] = {}
        #: Unix time the run in progress started, None between runs.
        self.running_since: float | None = None

    def record(
        self, result: RegistryResult, verdict: BrokenImages | None = None, by_events: frozenset[Image] = frozenset()
    ) -> None:
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
        history.last, history.verdict, history.by_events = result, verdict, by_events
        history.runs.appendleft(summary)

    def amended(self, name: str, verdict: BrokenImages | None, by_events: frozenset[Image]) -> None:
        """An event's re-check changed the verdict published for ``name`` since its last run."""
        history = self.registries.get(name)
        if history is not None and verdict is not None:
            history.verdict, history.by_events = verdict, by_events
