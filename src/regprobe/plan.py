"""A run's memory of verification: what its listing returned, the order in which it verifies, what it
verified, and what that comes to (docs/design/continuous-verification.md).

Two kinds. :class:`LedgerPlan` keeps all of it in the registry's ledger (``state_dir``): the order is
broken first, then new, then least recently verified, and coverage spans runs. :class:`RotationPlan`
(no ``state_dir``) knows only this run: the order turns with the clock (regprobe.rotation), so runs cut
short still cover everything in turn, and coverage is what this run verified.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Protocol

from . import rotation
from .ledger import Ledger, ObjectVerdict, TagVerdict, broken_objects
from .model import MAX_NAMED_VERIFIED, Coverage, Image, Kind, KnownBroken

log = logging.getLogger(__name__)


class Clock:
    """The run's wall time: ``time.time()``, or a start time given (tests turn the rotation with it)
    moved on by the monotonic clock."""

    def __init__(self, start: float | None = None) -> None:
        self.start = time.time() if start is None else start
        self._origin = time.monotonic()

    def now(self) -> float:
        return self.start + (time.monotonic() - self._origin)


class Plan(Protocol):
    #: Whether earlier runs' verifications count: a run that spent its budget as planned is complete.
    persistent: bool

    def listed(self, repository: str, tags: Sequence[str]) -> None:
        """The listing returned these tags of ``repository``."""

    def listing_done(self, complete: bool) -> None:
        """The listing is over; ``complete``: every selected repository was listed."""

    def order(self) -> Iterator[Image]:
        """The listed tags in the order they are to be verified."""

    def suspects(self) -> frozenset[str]:
        """Blobs to hash whatever ``blob_check`` says (the scrub found them corrupt)."""

    def record(self, repository: str, tags: Sequence[TagVerdict], objects: Sequence[ObjectVerdict]) -> None:
        """One repository's verdicts, as soon as it is judged."""

    def forget(self, repository: str, tags: Sequence[str]) -> None:
        """Tags deleted between the listing and their walk."""

    def coverage(self) -> Coverage | None:
        """Where coverage stands after the run; None when nothing truthful can be said."""

    def known_broken(self) -> KnownBroken | None:
        """Every tag known broken (a ledger's broken set); None when only this run's findings say."""

    def oldest_scrub_age(self) -> float | None:
        """Seconds since the least recently scrubbed blob was scrubbed; None when no blob is known."""


class _Verified:
    """Which tags this run verified: the count, and the names while few."""

    def __init__(self) -> None:
        self.count = 0
        self.named: list[Image] = []

    def add(self, tags: Sequence[TagVerdict]) -> None:
        self.count += len(tags)
        room = MAX_NAMED_VERIFIED + 1 - len(self.named)
        self.named.extend((t.repository, t.tag) for t in tags[:room])

    def names(self) -> tuple[Image, ...] | None:
        return tuple(sorted(self.named)) if self.count <= MAX_NAMED_VERIFIED else None


class LedgerPlan:
    persistent = True

    def __init__(self, ledger: Ledger, clock: Clock, window: float) -> None:
        self.ledger = ledger
        self.clock = clock
        self.window = window
        self.verified = _Verified()
        self._listed: list[str] = []

    def listed(self, repository: str, tags: Sequence[str]) -> None:
        # listed_at is the run's start for every tag, so the plan can ask "listed by this run".
        self.ledger.note_listed(repository, tags, self.clock.start)
        self._listed.append(repository)

    def listing_done(self, complete: bool) -> None:
        if not complete:
            return  # a partial picture deletes nothing
        gone = self.ledger.forget_repositories_except(self._listed)
        deleted = self.ledger.forget_unlisted(self.clock.start, self._listed)
        self.ledger.age_out(self.clock.now() - 2 * self.window)
        if gone or deleted:
            log.info("ledger: %d repositories and %d tags no longer listed, forgotten", gone, deleted)

    def order(self) -> Iterator[Image]:
        return self.ledger.plan(self.clock.start)

    def suspects(self) -> frozenset[str]:
        return self.ledger.suspects()

    def record(self, repository: str, tags: Sequence[TagVerdict], objects: Sequence[ObjectVerdict]) -> None:
        self.ledger.record(tags, objects, self.clock.now())
        self.verified.add(tags)

    def forget(self, repository: str, tags: Sequence[str]) -> None:
        self.ledger.forget_tags(repository, tags)

    def coverage(self) -> Coverage:
        cov = self.ledger.coverage(self.window, self.clock.now())
        return Coverage(
            window_seconds=self.window,
            known=cov.known,
            verified_within_window=cov.within_window,
            oldest_age_seconds=cov.oldest_age if cov.known else 0.0,
            verified=self.verified.count,
            verified_tags=self.verified.names(),
            ledger=str(self.ledger.path),
        )

    def known_broken(self) -> KnownBroken:
        broken = self.ledger.broken_tags()
        counts = broken_objects(broken)
        return KnownBroken(
            tuple((t.repository, t.tag) for t in broken), {kind: counts.get(kind.value, 0) for kind in Kind}
        )

    def oldest_scrub_age(self) -> float | None:
        return self.ledger.oldest_scrub_age(self.clock.now())


class RotationPlan:
    persistent = False

    def __init__(self, clock: Clock, window: float) -> None:
        self.clock = clock
        self.window = window
        self.verified = _Verified()
        self._tags: list[Image] = []
        self._complete = False

    def listed(self, repository: str, tags: Sequence[str]) -> None:
        self._tags.extend((repository, tag) for tag in tags)

    def listing_done(self, complete: bool) -> None:
        self._complete = complete

    def order(self) -> Iterator[Image]:
        return iter(rotation.rotated(self._tags, self.clock.start, self.window))

    def suspects(self) -> frozenset[str]:
        return frozenset()

    def record(self, repository: str, tags: Sequence[TagVerdict], objects: Sequence[ObjectVerdict]) -> None:
        self.verified.add(tags)

    def forget(self, repository: str, tags: Sequence[str]) -> None:
        gone = set(tags)
        self._tags = [t for t in self._tags if t[0] != repository or t[1] not in gone]

    def coverage(self) -> Coverage | None:
        if not self._complete:
            return None  # a partial listing does not know how many tags there are
        known, verified = len(self._tags), self.verified.count
        return Coverage(
            window_seconds=self.window,
            known=known,
            verified_within_window=min(verified, known),
            oldest_age_seconds=self.clock.now() - self.clock.start if verified >= known else None,
            verified=verified,
            verified_tags=self.verified.names(),
            ledger=None,
        )

    def known_broken(self) -> None:
        return None

    def oldest_scrub_age(self) -> None:
        return None
