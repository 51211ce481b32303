"""The rolling digest scrub (``scrub.bytes_per_run``): after verification, download and hash the blobs the
ledger has gone longest without hashing, each digest once across repositories, until the run's bytes
are spent - so bit rot, which only a full read sees, is found within (stored bytes / bytes_per_run) runs.

A blob found broken is a finding in every repository whose known tags reach it (the ledger's reach keys),
naming those tags; their verdicts turn broken, so the next run verifies them first - hashing that blob
again whatever ``blob_check`` says (``Ledger.suspects``), so the verdict rests on fresh evidence. A blob
no known tag reaches any more is forgotten, never a finding. A blob that cannot be read (unreachable,
refused) is an error of the run, as in verification.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from . import judge
from .client import RegistryClient
from .digest import Digest
from .errors import DigestError, RegistryError
from .ledger import Ledger
from .manifest import Descriptor
from .model import Finding, Kind, Problem
from .plan import Clock

log = logging.getLogger(__name__)

#: Downloads at once: whole blobs are bandwidth, not latency; a few keep the link busy.
PARALLEL = 4


@dataclass(slots=True)
class ScrubOutcome:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    blobs: int = 0
    bytes: int = 0


#: What the probe hands the scrub once verification is done: it reads with the run's client into
#: the run's outcome (filled as it goes, so a scrub the deadline cuts keeps what it did).
Scrubber = Callable[[RegistryClient, "ScrubOutcome"], Awaitable[None]]


async def scrub(
    client: RegistryClient, outcome: ScrubOutcome, *, ledger: Ledger, byte_budget: int, clock: Clock
) -> None:
    """Hash up to ``byte_budget`` bytes of the least recently scrubbed blobs."""
    slots = asyncio.Semaphore(min(PARALLEL, client.settings.concurrency))

    async def one(digest: str, size: int, repository: str) -> None:
        async with slots:
            try:
                parsed = Digest.parse(digest)
            except DigestError:
                ledger.forget_blob(digest)  # not a digest this code wrote: nothing to read
                return
            try:
                reply = await client.blob(repository, parsed, "digest", size)
            except RegistryError as exc:
                outcome.errors.append(f"scrub: {repository}@{digest}: {exc}")
                return
            verdict = judge.blob_reply(reply, Descriptor("", parsed, size), "digest")
            if verdict is not None and verdict[0] in (Problem.UNREACHABLE, Problem.SERVER_ERROR):
                # No answer, or 5xx on every try: nothing learnt about the content. (A walk makes a 5xx a
                # server_error only once the registry answers the rest of the repository; an outage
                # must never read as broken blobs. The walk of the tags that reach it will tell.)
                outcome.errors.append(f"scrub: {repository}@{digest}: {verdict[1]}")
                return
            outcome.blobs += 1
            outcome.bytes += reply.received
            ledger.record_scrub(digest, "ok" if verdict is None else "broken", clock.now())
            if verdict is not None:
                outcome.findings.extend(_broken(ledger, parsed, verdict[0], reply.status, verdict[1]))

    await asyncio.gather(*(one(*candidate) for candidate in ledger.scrub_candidates(byte_budget)))


def _broken(ledger: Ledger, digest: Digest, problem: Problem, status: int | None, detail: str) -> list[Finding]:
    """Findings for a blob the scrub found broken, in every repository whose known tags reach it."""
    named = [(repository, kind, tags) for repository, kind, tags in ledger.reaching(str(digest)) if tags]
    if not named:
        log.info("scrub: blob %s is %s, but no known tag reaches it: forgotten", digest, problem.value)
        ledger.forget_blob(str(digest))
        return []
    detail = f"found by the digest scrub: {detail}"
    findings = []
    for repository, kind, tags in named:
        findings.append(Finding(repository, digest, Kind(kind), problem, status, tuple(tags), None, detail))
        ledger.mark_broken(repository, tags, (kind, str(digest)), f"{kind} {digest.short} {problem.value}: {detail}")
    return findings
