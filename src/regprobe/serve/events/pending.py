"""Events waiting for their re-check: coalesced per repository, each re-check starting a settle time after
the first event of its repository, and bounded - events beyond the bound are refused, never queued.

Why a settle time: an index is pushed after its children, but a registry may announce it before they are
readable everywhere (replicas, caches), and a clean-up script deletes many manifests of one repository in
a burst. Waiting ``settle`` seconds after the first event turns the burst into one re-check, and bounds
how long any event waits (a later event never pushes the re-check back).

Memory is bounded whatever arrives: at most ``max_pending`` repositories wait, and each remembers at most
:data:`MAX_TAGS` tags and digests (beyond, it re-checks the whole repository instead) and the last
:data:`MAX_RECORDS` events for the log and the status page (the earlier ones it counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field

from ...digest import Digest
from .event import Action, Event

#: Tags (and, apart, digests) one repository's re-check remembers; beyond, it re-checks every tag.
MAX_TAGS = 1000
#: Events one re-check keeps for its log lines and the status page, the newest; the earlier ones it
#: counts. As many as the status page lists: every event listed there gets its outcome.
MAX_RECORDS = 50

Key = tuple[str, str]


@dataclass(slots=True)
class Record:
    """One accepted event as the log and the status page show it; ``outcome`` is filled by its re-check."""

    received_at: float
    registry: str
    source: str
    description: str
    outcome: str = "waiting for its re-check"


@dataclass(slots=True)
class Batch:
    """What one repository's re-check is to do, from the events that arrived for it, in order."""

    registry: str
    repository: str
    #: ``time.monotonic()`` of the first event, and when the re-check may start.
    first: float
    due: float
    records: deque[Record] = field(default_factory=lambda: deque(maxlen=MAX_RECORDS))
    #: Earlier events than those in ``records``.
    more: int = 0
    #: Tags to verify.
    verify: set[str] = field(default_factory=set)
    #: Tags deleted: their series go.
    deleted: set[str] = field(default_factory=set)
    #: Digests deleted (a manifest or a blob): every tag that reaches one is re-verified.
    digests: set[Digest] = field(default_factory=set)
    #: Re-verify every tag of the repository (listing it tells which are gone).
    whole: bool = False
    #: The repository was deleted: its series go, before any later push of it is verified.
    repository_gone: bool = False

    @property
    def key(self) -> Key:
        return self.registry, self.repository

    @property
    def events(self) -> int:
        return len(self.records) + self.more

    def add(self, event: Event, record: Record, mended: list[str]) -> None:
        """Fold one event in; ``mended``: tags held broken by the object a tagless push brings back."""
        if len(self.records) == MAX_RECORDS:
            self.more += 1
        self.records.append(record)
        if event.tag is None and event.digest is None and event.action is Action.DELETE:
            self.repository_gone = True
            self.whole = False
            self.verify.clear()
            self.deleted.clear()
            self.digests.clear()
        elif self.whole:
            pass  # every tag is re-verified, and listing the repository tells which are gone
        elif event.action is Action.PUSH:
            for tag in ([event.tag] if event.tag else []) + mended:
                self.verify.add(tag)
                self.deleted.discard(tag)
        else:
            if event.tag is not None:
                self.deleted.add(event.tag)
                self.verify.discard(event.tag)
            if event.digest is not None:
                self.digests.add(event.digest)
        if len(self.verify) + len(self.deleted) > MAX_TAGS or len(self.digests) > MAX_TAGS:
            self.whole = True
            self.verify.clear()
            self.deleted.clear()
            self.digests.clear()


class Pending:
    """Repositories waiting for a re-check, in the order they became due; one re-check per repository at
    a time (events for a repository being re-checked wait for the next one)."""

    def __init__(self, max_pending: int, settle: float) -> None:
        self.max_pending = max_pending
        self.settle = settle
        self._waiting: dict[Key, Batch] = {}
        self._running: set[Key] = set()
        self._changed = asyncio.Event()

    @property
    def depth(self) -> int:
        return len(self._waiting)

    def waiting(self, registry: str, repository: str) -> Batch | None:
        """The batch of this repository waiting for its re-check, if any."""
        return self._waiting.get((registry, repository))

    def batch_for(self, registry: str, repository: str) -> Batch | None:
        """The batch an event of this repository joins: the one waiting, or a new one while there is room;
        None when ``max_pending`` repositories already wait."""
        key = (registry, repository)
        batch = self._waiting.get(key)
        if batch is None:
            if len(self._waiting) >= self.max_pending:
                return None
            now = time.monotonic()
            batch = self._waiting[key] = Batch(registry, repository, now, now + self.settle)
            self._changed.set()
        return batch

    async def take(self) -> Batch:
        """The next batch whose settle time is over and whose repository is not being re-checked."""
        while True:
            # Batches are created in due order (one settle time for all): the first eligible is the next.
            ready = next((b for b in self._waiting.values() if b.key not in self._running), None)
            now = time.monotonic()
            if ready is not None and ready.due <= now:
                del self._waiting[ready.key]
                self._running.add(ready.key)
                return ready
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if ready is None else ready.due - now):
                    await self._changed.wait()

    def done(self, batch: Batch) -> None:
        self._running.discard(batch.key)
        self._changed.set()
