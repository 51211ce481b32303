"""A re-check's verdicts in the verification ledger (``state_dir``, docs/design/continuous-verification.md):
as a run's are, so the next run does not verify again what an event just verified, and the broken set
the ledger publishes keeps what the event found.

A run holds its registry's ledger (an exclusive lock) while it walks. A re-check that ends then cannot
write: what it found waits here, and is written once that run has ended - except for tags the run
verified after the re-check looked (the newer verdict stands). Memory stays bounded: at most
:data:`MAX_PENDING` re-checks wait per registry, the oldest dropped first (their tags are verified by
the runs as usual).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...config import Config, RegistryConfig
from ...digest import Digest
from ...ledger import Ledger, LedgerBusyError, LedgerError, LedgerView, ObjectVerdict, TagVerdict, ledger_path
from ...model import Image
from ...plan import Clock, RotationPlan
from ..amend import Amendment

log = logging.getLogger(__name__)

#: Re-checks waiting per registry for the ledger to be free.
MAX_PENDING = 1000

Recorded = tuple[tuple[TagVerdict, ...], tuple[ObjectVerdict, ...]]


class CapturingPlan(RotationPlan):
    """A re-check's plan: the walk's verdicts, kept for the ledger (the walk itself is the pinned tags)."""

    def __init__(self, clock: Clock, window: float) -> None:
        super().__init__(clock, window)
        self.recorded: list[Recorded] = []

    def record(self, repository: str, tags: Sequence[TagVerdict], objects: Sequence[ObjectVerdict]) -> None:
        super().record(repository, tags, objects)
        self.recorded.append((tuple(tags), tuple(objects)))


@dataclass(frozen=True, slots=True)
class LedgerWrites:
    """What one re-check tells the ledger."""

    amendment: Amendment
    recorded: tuple[Recorded, ...] = ()
    #: Tags it meant to verify and could not: the next run takes them first.
    unverified: frozenset[str] = frozenset()
    #: It meant to verify the whole repository and could not even list it.
    repository_unverified: bool = False


@dataclass(slots=True)
class LedgerWriter:
    cfg: Config
    _pending: dict[str, deque[LedgerWrites]] = field(default_factory=dict)

    def path(self, registry: RegistryConfig) -> Path:
        assert self.cfg.state_dir is not None
        return ledger_path(self.cfg.state_dir, registry.name)

    async def write(self, registry: RegistryConfig, writes: LedgerWrites | None = None) -> None:
        """Queue ``writes`` and write what waits for ``registry``, unless a run holds its ledger (then
        after that run: the server calls this once each run of the registry has been published)."""
        if self.cfg.state_dir is None:
            return
        pending = self._pending.setdefault(registry.name, deque(maxlen=MAX_PENDING))
        if writes is not None:
            pending.append(writes)
        if pending:
            await asyncio.to_thread(self._flush, registry, pending)

    def _flush(self, registry: RegistryConfig, pending: deque[LedgerWrites]) -> None:
        try:
            with Ledger.open(self.path(registry), identity=f"{registry.name} {registry.url}") as ledger:
                while pending:
                    _apply(ledger, pending[0])
                    pending.popleft()
        except LedgerBusyError:
            log.debug("ledger of %s held by a run: %d re-checks written after it", registry.name, len(pending))
        except LedgerError as exc:
            log.warning("registry %s: re-checks not written to the ledger: %s", registry.name, exc)
            pending.clear()

    async def reach(self, registry: RegistryConfig, repository: str, digest: Digest) -> frozenset[str] | None:
        """The tags the ledger says may reach ``digest``; None when it cannot tell (or there is none)."""
        if self.cfg.state_dir is None:
            return None

        def read() -> frozenset[str] | None:
            try:
                with LedgerView.open(self.path(registry)) as view:
                    return view.reaching_in(repository, str(digest))
            except LedgerError:
                return None

        return await asyncio.to_thread(read)


def _apply(ledger: Ledger, writes: LedgerWrites) -> None:
    amendment = writes.amendment
    repository, at = amendment.repository, amendment.checked_at
    for tags, objects in writes.recorded:
        # A run that walked these tags after the re-check looked has the newer verdict.
        if all(_older(ledger, (t.repository, t.tag), at) for t in tags):
            ledger.record(tags, objects, at)
    if amendment.gone:
        ledger.forget_tags(repository, amendment.gone)
    if amendment.listed is not None:
        ledger.note_listed(repository, amendment.listed, at)
        ledger.forget_unlisted(at, [repository])
    for tag in writes.unverified:
        ledger.mark_changed(repository, tag)
    if writes.repository_unverified:
        ledger.mark_changed(repository)


def _older(ledger: Ledger, image: Image, at: float) -> bool:
    state = ledger.tag(*image)
    return state is None or state.verified_at is None or state.verified_at <= at
