"""One repository's re-check: what its events touched, verified again the way a run verifies it.

The repository's tags are listed first (one request): a tag an event names that is no longer there is
gone, not broken, and a re-check of the whole repository learns which tags went. Then the tags to verify
are walked as ``/probe`` walks an image (regprobe.probe with pinned tags, the registry's credentials,
policy and the manifest cache), and what was found becomes an :class:`Amendment`.

Which tags: those pushed; those held broken by an object a push brought back; for a deleted digest (a
manifest or a blob - distribution's events cannot tell), every tag that reaches it - which only a
record of every tag's objects can tell, so without one, every tag of the repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from ...cache import ManifestCache
from ...client import RegistryClient
from ...config import Config, RegistryConfig
from ...digest import Digest
from ...errors import AuthError, RegistryError
from ...outcome import reason
from ...plan import Clock
from ...probe import Pinned, probe_registry
from ...runner import NotProbed, configured_settings, walk_policy
from ..amend import Amendment, behind
from .ledger import CapturingPlan, LedgerWrites, Recorded
from .pending import Batch

#: The tags of ``repository`` that may reach ``digest`` (the ledger's ``reaches``); None when that is not
#: known.
Reach = Callable[[str, Digest], Awaitable[frozenset[str] | None]]


async def unknown_reach(repository: str, digest: Digest) -> frozenset[str] | None:
    return None


@dataclass(frozen=True, slots=True)
class Rechecked:
    amendment: Amendment
    #: Tags walked (a verdict in ``amendment.verdicts`` for each, unless ``error``).
    walked: frozenset[str]
    #: Why the re-check could not verify what it meant to: those tags keep their verdicts.
    error: str | None = None
    #: The walk's verdicts as a run records them (tally), for the ledger.
    recorded: tuple[Recorded, ...] = ()
    #: It could not even list the repository it meant to re-check whole.
    unlisted: bool = False

    def ledger_writes(self) -> LedgerWrites:
        unverified = self.walked - self.amendment.verdicts.keys() if self.error else frozenset()
        return LedgerWrites(self.amendment, self.recorded, frozenset(unverified), self.unlisted)


class Clients:
    """One client per registry for its re-checks, as a run has: they share its connections, its tokens
    and its ``concurrency``. Made again after :data:`MAX_AGE` seconds (credentials from a helper expire)
    and once a rate limit stopped it; the one it replaces is closed when its last re-check is done."""

    MAX_AGE = 300.0

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._current: dict[str, tuple[RegistryClient, float]] = {}
        self._users: dict[RegistryClient, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def use(self, registry: RegistryConfig) -> AsyncIterator[RegistryClient]:
        """Raises :class:`NotProbed` when the registry cannot be reached as configured right now."""
        async with self._locks.setdefault(registry.name, asyncio.Lock()):
            held = self._current.get(registry.name)
            if held is None or held[0].stopped is not None or time.monotonic() - held[1] >= self.MAX_AGE:
                if held is not None:
                    del self._current[registry.name]  # not handed out again, whatever happens next
                    await self._release(held[0])
                held = self._current[registry.name] = (
                    RegistryClient(await configured_settings(self.cfg, registry)),
                    time.monotonic(),
                )
                self._users[held[0]] = 1  # the registry's own hold, until it is replaced
        client = held[0]
        self._users[client] += 1
        try:
            yield client
        finally:
            await self._release(client)

    async def _release(self, client: RegistryClient) -> None:
        self._users[client] -= 1
        if self._users[client] == 0:
            del self._users[client]
            await client.aclose()

    async def close(self) -> None:
        for client, _ in self._current.values():
            await self._release(client)
        self._current.clear()


async def recheck(
    cfg: Config,
    registry: RegistryConfig,
    batch: Batch,
    clients: Clients,
    cache: ManifestCache | None,
    reach: Reach = unknown_reach,
) -> Rechecked:
    repository = batch.repository
    checked_at = time.time()
    # A deleted repository may have been pushed to again since: listing it tells.
    named, whole = batch.verify | batch.deleted, batch.whole or batch.repository_gone
    for digest in sorted(batch.digests):
        tags = await reach(repository, digest)
        if tags is None:
            whole = True
            break
        named |= tags
    if not whole and not named:
        return Rechecked(Amendment(repository, checked_at, {}), frozenset())
    try:
        async with clients.use(registry) as client:
            # An event says a tag went; the listing says whether it is still gone (events arrive out of
            # order, a tag is pushed again): a tag still listed is verified, never dropped.
            listed = await _tags(client, repository)
            wanted = listed if whole else frozenset(named) & listed
            gone = frozenset(named) - listed
            scope = listed if whole else None
            if not wanted:
                return Rechecked(Amendment(repository, checked_at, {}, gone, scope), frozenset())
            clock = Clock()
            plan = CapturingPlan(clock, cfg.coverage.window_seconds)
            result = await probe_registry(
                registry.name,
                client,
                walk_policy(cfg, registry),
                pinned=[Pinned(repository, tag, None) for tag in sorted(wanted)],
                deadline=time.monotonic() + cfg.deadline,
                cache=cache,
                plan=plan,
                clock=clock,
            )
    except (NotProbed, RegistryError) as exc:
        # Not even listed: nothing is dropped on an event's word alone; the next run decides.
        return Rechecked(Amendment(repository, checked_at, {}), frozenset(named), str(exc), unlisted=whole)
    found = {tag: keys for (repo, tag), keys in behind(result.findings).items() if repo == repository}
    skipped = {s.tag for s in result.skipped}
    if result.complete:
        verdicts = {tag: found.get(tag, frozenset()) for tag in wanted - skipped}
        error = None
    else:
        # Cut short: only what it found broken is certain (regprobe.carryover's rule for a run).
        verdicts = {tag: keys for tag, keys in found.items() if tag in wanted}
        error = reason(result)
    amendment = Amendment(repository, checked_at, verdicts, gone, scope)
    return Rechecked(amendment, wanted, error, tuple(plan.recorded))


async def _tags(client: RegistryClient, repository: str) -> frozenset[str]:
    """The repository's tags now; none when the registry does not know it (every tag deleted)."""
    tags: set[str] = set()
    try:
        async for page in client.pages(f"/v2/{repository}/tags/list", "tags"):
            tags.update(page)
    except RegistryError as exc:
        if exc.status != 404 or isinstance(exc, AuthError):
            raise
        return frozenset()
    return frozenset(tags)
