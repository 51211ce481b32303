"""How far long work (``run``, ``check``, ``fsck``) has come: plain counters the work updates as it goes.

The probe and fsck count here and know nothing of how progress is shown; :mod:`regprobe.progress`
reads these counters from a thread of its own and shows them.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from .render import plural


class ProbeProgress(Protocol):
    """What a registry probe reports as it goes (:func:`regprobe.probe.probe_registry`)."""

    def pinned(self, repositories: int, images: int) -> None:
        """``check``: everything to walk is known at the start."""

    def selected(self, repositories: int) -> None: ...

    def all_selected(self) -> None:
        """Every repository is selected: the catalog is read (or the names were given)."""

    def listed(self, tags: int) -> None:
        """A selected repository's tags are listed."""

    def tag_done(self) -> None: ...

    def repository_done(self, objects: int, findings: int) -> None: ...


@dataclass(slots=True)
class Counters:
    """One registry's (or storage root's) work so far. Totals grow as listings are read."""

    name: str
    repositories_done: int = 0
    repositories: int = 0
    repositories_listed: int = 0
    selection_done: bool = False
    tags_done: int = 0
    tags: int = 0
    objects: int = 0
    findings: int = 0
    #: The client's live request counts (by outcome), for the request rate; None offline (fsck).
    requests: Counter[str] | None = None
    started: float = field(default_factory=time.monotonic)

    def pinned(self, repositories: int, images: int) -> None:
        self.repositories = self.repositories_listed = repositories
        self.tags = images
        self.selection_done = True

    def selected(self, repositories: int) -> None:
        self.repositories += repositories

    def all_selected(self) -> None:
        self.selection_done = True

    def listed(self, tags: int) -> None:
        self.tags += tags
        self.repositories_listed += 1

    @property
    def totals_final(self) -> bool:
        """Until every repository is selected and listed, the totals are lower bounds."""
        return self.selection_done and self.repositories_listed >= self.repositories

    def tag_done(self) -> None:
        self.tags_done += 1

    def repository_done(self, objects: int, findings: int) -> None:
        self.repositories_done += 1
        self.objects += objects
        self.findings += findings

    def request_count(self) -> int:
        if self.requests is None:
            return 0
        # A copy first (one C call, atomic under the GIL): the event loop's thread adds outcomes as it
        # meets them, and iterating the live dict from here could see it change size.
        counts = dict(self.requests)
        return sum(counts.values()) - counts.get("retried", 0)

    def line(self, now: float | None = None) -> str:
        """The figures in words, the same for the log line and the bar's tail."""
        elapsed = max(1e-9, (now if now is not None else time.monotonic()) - self.started)
        if self.selection_done or self.repositories > self.repositories_done:
            parts = [f"repositories {self.repositories_done}/{self.repositories}{'' if self.selection_done else '+'}"]
        else:  # as far as anyone knows yet, all done: no total to give
            parts = [f"repositories {self.repositories_done}"]
        if self.tags or self.requests is not None:
            parts.append(f"tags {self.tags_done}/{self.tags}{'' if self.totals_final else '+'}")
        parts.append(f"{plural(self.objects, 'object')} checked")
        parts.append(plural(self.findings, "finding"))
        if self.requests is not None:
            parts.append(f"{self.request_count() / elapsed:.0f} requests/s")
        eta = self._eta(elapsed)
        if eta is not None:
            parts.append(f"ETA {_duration(eta)}")
        return ", ".join(parts)

    def _eta(self, elapsed: float) -> float | None:
        if not self.totals_final or not self.tags_done or self.tags <= self.tags_done:
            return None
        return (self.tags - self.tags_done) * elapsed / self.tags_done


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
