"""Runs the re-checks as their settle times end, a few at once beside the scheduled walk, and says what
each changed: on ``/metrics`` (through ``publish``), in one log line per event, on the status page."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from ...cache import ManifestCache
from ...config import Config, RegistryConfig
from ...digest import Digest
from ...outcome import log as outcome_log
from .ledger import LedgerWriter
from .metrics import EventMetrics
from .pending import Batch, Pending
from .recheck import Clients, Rechecked, recheck

log = logging.getLogger(__name__)

#: Re-checks at once (each with the registry's own ``concurrency`` of requests); more wait their turn.
MAX_RECHECKS = 4
#: Tags named in one outcome; the rest are counted.
MAX_NAMED = 5

#: Makes a re-check's findings the published verdict (the server's ``amend``).
Publish = Callable[[RegistryConfig, Rechecked], None]


class Rechecker:
    def __init__(
        self,
        cfg: Config,
        cache: ManifestCache | None,
        pending: Pending,
        metrics: EventMetrics,
        publish: Publish,
    ) -> None:
        self.cfg = cfg
        self.cache = cache
        self.pending = pending
        self.metrics = metrics
        self.publish = publish
        self._registries = {r.name: r for r in cfg.registries}
        self._clients = Clients(cfg)
        #: With ``state_dir``: where the re-checks' verdicts go, and which tags a deleted digest touches.
        self.ledger = LedgerWriter(cfg)

    async def run(self) -> None:
        """Until cancelled; re-checks in flight are cancelled with it."""
        slots = asyncio.Semaphore(MAX_RECHECKS)
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                await slots.acquire()
                batch = await self.pending.take()
                task = asyncio.create_task(self._one(batch))
                running.add(task)

                def finished(task: asyncio.Task[None], batch: Batch = batch) -> None:
                    running.discard(task)
                    slots.release()
                    self.pending.done(batch)

                task.add_done_callback(finished)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            await self._clients.close()

    async def _one(self, batch: Batch) -> None:
        registry = self._registries[batch.registry]
        try:

            async def reach(repository: str, digest: Digest) -> frozenset[str] | None:
                return await self.ledger.reach(registry, repository, digest)

            rechecked = await recheck(self.cfg, registry, batch, self._clients, self.cache, reach)
            self.publish(registry, rechecked)
            await self.ledger.write(registry, rechecked.ledger_writes())
        except Exception as exc:  # a bug must cost this re-check, never the receiver
            log.exception("internal error re-checking %s of %s", batch.repository, batch.registry)
            self._tell(batch, f"internal error {type(exc).__name__}; see the log", bad=True)
            return
        if rechecked.error is None:  # a verdict was published: the time the events waited for it
            self.metrics.recheck.labels(registry.name).observe(time.monotonic() - batch.first)
        text, bad = outcome(rechecked)
        self._tell(batch, text, bad)

    def _tell(self, batch: Batch, text: str, bad: bool) -> None:
        level = logging.WARNING if bad else logging.INFO
        for record in batch.records:
            record.outcome = text
            outcome_log.log(
                level, "registry %s: event %s (%s) -> %s", batch.registry, record.description, record.source, text
            )
        if batch.more:
            outcome_log.log(
                level, "registry %s: %d earlier events of %s -> the same", batch.registry, batch.more, batch.repository
            )


def outcome(rechecked: Rechecked) -> tuple[str, bool]:
    """What a re-check changed, for people; and whether it is bad news (broken, or not verified)."""
    amendment = rechecked.amendment
    parts = []
    if amendment.listed is not None and not amendment.listed:
        parts.append("the repository has no tags: its series dropped")
    if amendment.gone:
        parts.append(f"gone, series dropped: {_named(amendment.gone)}")
    broken = [tag for tag, objects in amendment.verdicts.items() if objects]
    intact = [tag for tag, objects in amendment.verdicts.items() if not objects]
    if broken:
        parts.append(f"BROKEN: {_named(broken)}")
    if intact:
        parts.append(f"OK: {_named(intact)}")
    if rechecked.error:
        parts.append(f"not verified ({rechecked.error}); earlier verdicts stand until the next run")
    return "; ".join(parts) or "nothing to re-check", bool(broken or rechecked.error)


def _named(tags: Iterable[str]) -> str:
    names = sorted(tags)
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else "")
