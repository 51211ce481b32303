"""Probes one registry: selects repositories, lists their tags, verifies them in the order its plan
gives within its budget, and collects the result.

A run has two phases (docs/design/continuous-verification.md). It first lists everything it selects -
the catalog and every selected repository's tags, the cheap part - into its plan (regprobe.plan): the
ledger, or without one this run's own list. The catalog is read no further ahead than the tag lists: at
most ``max(2, concurrency)`` repositories are queued or being listed at once. It then walks the plan's
tags in order: tags of one repository next to each other in the plan are a unit of work with one walk,
judged and recorded (and its graph dropped) as soon as its last tag is done - memory follows the units
in flight, not the size of the registry. It takes a tag only while its budget allows (regprobe.budget),
and finishes what it has started.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from . import referrers
from .budget import Budget
from .cache import ManifestCache
from .client import RegistryClient
from .config import RegistryConfig
from .counters import Counters, ProbeProgress
from .digest import Digest
from .errors import AuthError, InvalidReferenceError, RegistryError
from .model import Finding, Image, Problem, RegistryResult, Scrubbed, Stopped
from .plan import Clock, Plan, RotationPlan
from .pullthrough import upstream_outage
from .reference import hub_repository, validate_repository
from .scrub import Scrubber, ScrubOutcome
from .shard import Shard
from .stop import StopRequest
from .tagorder import sorted_tags
from .tally import tally
from .walk import RepositoryWalk, WalkPolicy

log = logging.getLogger(__name__)

#: Most tags in one unit. A unit is tags of one repository next to each other in the plan - with a ledger,
#: those verified together last time, or new ones: they share one walk, so what they share is checked
#: once - and its graph is held until its last tag is done.
MAX_UNIT = 1000


@dataclass(frozen=True, slots=True)
class Selection:
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    #: Explicit names: the catalog is not read (Docker Hub, GHCR have none to read).
    names: tuple[str, ...] = ()
    shard: Shard | None = None
    _listed: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_listed", frozenset(self.names))

    @classmethod
    def configured(cls, registry: RegistryConfig, shard: Shard | None = None) -> Selection:
        """What a configured registry selects. ``run`` and ``serve``'s ``/probe`` both take it from here, so
        both read a ``repositories.list`` name the same way: on Docker Hub ``nginx`` is ``library/nginx``."""
        repos = registry.repositories
        host = urlsplit(registry.url).hostname or ""
        names = tuple(hub_repository(host, name) for name in repos.list_)
        return cls(tuple(repos.include), tuple(repos.exclude), names, shard)

    def included(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.include)

    def excluded(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.exclude)

    def wants(self, name: str) -> bool:
        """Whether ``name`` is one of the repositories this selection probes (with explicit names, only
        those: a ``list`` entry never claims the rest of its host)."""
        if self._listed and name not in self._listed:
            return False
        return self.included(name) and not self.excluded(name) and (self.shard is None or self.shard.owns(name))


@dataclass(frozen=True, slots=True)
class Pinned:
    """An image named on the command line (``check``): a tag, a digest, or both."""

    repository: str
    tag: str | None
    digest: Digest | None


@dataclass(frozen=True, slots=True)
class _ListTags:
    """Queue item: list a repository's tags into the plan."""


LIST_TAGS = _ListTags()
#: What the workers take from the queue: list a repository, walk one tag of a unit, or a pinned image.
_Item = _ListTags | str | Pinned


@dataclass(slots=True)
class _Unit:
    """Tags of one repository walked together: a window's share of the plan, a listing, or ``check``'s
    images of one repository."""

    id: int
    walk: RepositoryWalk
    outstanding: int = 0
    #: Every tag of the unit is queued (a listing unit: its tags are listed).
    queued: bool = False
    #: Places in flight this unit holds (released when it is done).
    places: int = 0
    #: Kept open, unjudged, after its tags are done: the plan may end with more of its repository's tags.
    held: bool = False


async def probe_registry(
    name: str,
    client: RegistryClient,
    policy: WalkPolicy,
    *,
    selection: Selection | None = None,
    pinned: Sequence[Pinned] = (),
    deadline: float,
    cache: ManifestCache | None = None,
    stop: StopRequest | None = None,
    progress: ProbeProgress | None = None,
    plan: Plan | None = None,
    budget: Budget | None = None,
    clock: Clock | None = None,
    scrubber: Scrubber | None = None,
) -> RegistryResult:
    """Walk what ``selection`` (a whole registry) or ``pinned`` (``check``) names, until ``deadline``
    (a ``time.monotonic()`` value) or ``stop``. ``plan`` orders the selection's tags and remembers them
    (default: this run's list, rotated); ``budget`` says when to stop taking tags (default: only the
    deadline); ``scrubber`` runs after verification. Never raises for registry trouble: it ends up in the
    result. ``progress`` is told what is done as it is done."""
    clock = clock or Clock()
    probe = RegistryProbe(
        name,
        client,
        policy,
        cache,
        selection,
        progress,
        plan or RotationPlan(clock, 86400.0),
        budget or Budget(deadline),
        clock,
        scrubber,
    )
    return await probe.run(pinned, deadline, stop or StopRequest())


class RegistryProbe:
    """One registry's run: the work queue, the workers that drain it, the result they fill."""

    def __init__(
        self,
        name: str,
        client: RegistryClient,
        policy: WalkPolicy,
        cache: ManifestCache | None,
        selection: Selection | None,
        progress: ProbeProgress | None,
        plan: Plan,
        budget: Budget,
        clock: Clock,
        scrubber: Scrubber | None = None,
    ) -> None:
        self.client = client
        self.scrubber = scrubber
        self._scrubbed: ScrubOutcome | None = None
        self.progress = progress or Counters(name)
        self.policy = policy
        self.cache = cache
        self.selection = selection or Selection()
        self.plan = plan
        self.budget = budget
        shard = str(self.selection.shard) if self.selection.shard else None
        self.result = RegistryResult(name=name, url=str(client.base), started_at=clock.start, shard=shard)
        self._units: dict[int, _Unit] = {}
        self._unit_ids = itertools.count()
        #: Whether the registry serves the referrers API: learned once, for all its repositories.
        self._referrers = referrers.Support()
        #: Per listed repository, its fallback tags (``sha256-<hex>``) by subject: lists of referrers, not
        #: images - never planned, read when their subject is walked (regprobe.referrers).
        self._fallback: dict[str, dict[Digest, str]] = {}
        #: Per repository, the subjects of its fallback tags the walks met: True when there, False when gone.
        self._subjects: dict[str, dict[Digest, bool]] = {}
        self._queue: asyncio.PriorityQueue[tuple[int, int, int, _Item]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        concurrency = client.settings.concurrency
        self._places = asyncio.Semaphore(max(2, concurrency))
        #: Twice the request slots: a worker waiting for its tag's blobs leaves room for another tag.
        self._max_workers = max(2, concurrency * 2)
        self._workers: list[asyncio.Task[None]] = []
        self._idle = 0
        #: Tags being walked right now (the budget forecasts what they will spend).
        self._walking = 0
        #: Why no more tags are taken, once that is so: the stop it makes, and in words.
        self._halt: Stopped | None = None
        self._halt_reason = ""
        self._listing_complete = False
        #: Without a ledger: per listed repository, its tags still without a fresh verdict - what an
        #: incomplete run may not clear (regprobe.carryover). A ledger keeps that itself.
        self._unsettled: dict[str, set[str]] | None = None if plan.persistent else {}
        #: Work left undone once the client stopped the run (rate limit): tags, and repositories not listed.
        self._skipped_tags = 0
        self._skipped_repositories = 0

    async def run(self, pinned: Sequence[Pinned], deadline: float, stop: StopRequest) -> RegistryResult:
        result = self.result
        started = time.monotonic()
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())) as scope:

                def cut_short() -> None:
                    if not scope.expired():
                        scope.reschedule(0)  # in the past: the timeout fires at once

                unsubscribe = stop.subscribe(cut_short)
                try:
                    if pinned:
                        await self._walk_pinned(pinned)
                    else:
                        await self._list()
                        await self._verify()
                        await self._find_dangling()
                        await self._scrub()
                finally:
                    unsubscribe()
        except TimeoutError:
            elapsed = time.monotonic() - started
            if stop.reason is not None:
                result.stopped = "signal"
                result.errors.append(f"stopped by {stop.reason} after {elapsed:.0f}s; the run is incomplete")
            else:
                result.stopped = "deadline"
                if not (self.plan.persistent and self._listing_complete):
                    # Only a ledger proves coverage across runs: without one, a run cut short is incomplete.
                    where = "" if self._listing_complete else " while listing"
                    result.errors.append(f"deadline reached{where} after {elapsed:.0f}s; the run is incomplete")
                else:
                    log.info("%s: the deadline cut the tags in flight after %.0fs", result.name, elapsed)
        except RegistryError as exc:
            result.errors.append(str(exc))
            result.stopped = "error"
        except sqlite3.Error as exc:
            self._ledger_failed(exc)
        finally:
            for task in self._workers:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            for unit in list(self._units.values()):  # pinned images, and units cut off early
                self._finish(unit)
            if self.client.stopped is not None:
                result.stopped = "error"
                result.errors.append(
                    f"{self.client.stopped.describe()}; not walked: {self._skipped_tags} tags,"
                    f" {self._skipped_repositories} repositories not listed"
                )
            if self._scrubbed is not None:
                result.findings.extend(self._scrubbed.findings)
                result.errors.extend(self._scrubbed.errors)
            result.findings = _merged(result.findings)
            if self._unsettled is not None:
                result.reached = {repository: frozenset(tags) for repository, tags in self._unsettled.items()}
            result.requests.update(self.client.requests)
            result.duration_seconds = time.monotonic() - started
            self._summarise()
        result.complete = not result.errors and result.stopped in (
            ("done", "budget", "deadline") if self.plan.persistent else ("done",)
        )
        return result

    def _summarise(self) -> None:
        """What the plan knows after the run: coverage, and the broken set when it spans runs."""
        try:
            self.result.coverage = self.plan.coverage()
            self.result.known_broken = self.plan.known_broken()
            if self._scrubbed is not None:
                done = self._scrubbed
                self.result.scrub = Scrubbed(done.blobs, done.bytes, self.plan.oldest_scrub_age())
        except sqlite3.Error as exc:
            self.result.errors.append(f"ledger: cannot read it back: {exc}")

    # -- phase 1: the listing -------------------------------------------------------------------------

    async def _list(self) -> None:
        result = self.result
        if self.selection.names:
            # No catalog to tell a dead registry from a broken image: ask the registry first, so
            # an outage is an incomplete run (exit 3), never a pile of findings.
            await self.client.ping()
        if self.policy.pull_through is not None:
            self.policy.pull_through.check()
        upstream_checked = False
        async for repo_name in self._repositories():
            if not upstream_checked:
                upstream_checked = True
                await self._check_upstream(repo_name)
            # The catalog is read only as fast as repositories are listed.
            await self._places.acquire()
            unit = self._unit(repo_name)
            unit.places += 1
            self.progress.selected(1)
            self._put(0, unit, LIST_TAGS)
        self.progress.all_selected()
        await self._queue.join()
        self._listing_complete = not result.errors
        self.plan.listing_done(self._listing_complete)

    async def _check_upstream(self, repository: str) -> None:
        """On a pull-through cache, whether its upstream answers: the walk never asks anything that goes
        upstream, so an outage would otherwise pass unseen. It leaves the run incomplete, never a finding;
        what the cache holds is walked all the same."""
        if self.policy.pull_through is not None:
            outage = await upstream_outage(self.client, repository)
            if outage is not None:
                log.warning("%s: %s", self.result.name, outage)
                self.result.errors.append(outage)

    async def _repositories(self) -> AsyncIterator[str]:
        selection, result = self.selection, self.result
        seen = included = selected = 0
        source = "repositories.list" if selection.names else "the catalog"
        try:
            async for page in self._names():
                for name in page:
                    seen += 1
                    if not selection.included(name):
                        continue
                    included += 1
                    if selection.excluded(name):
                        continue
                    selected += 1
                    if selection.wants(name) and _valid_name(name, result):
                        result.repositories += 1
                        yield name
        except AuthError:
            result.catalog_accessible = False
            raise
        except RegistryError as exc:
            result.catalog_accessible = False
            result.errors.append(f"catalog: {exc}")
            return
        # A selection that selects nothing is a typo until proven otherwise: never a green run. (A shard
        # owning none of the selected repositories is normal, so the shard is not counted here.)
        if seen == 0:
            # Nothing to match: no include is to blame (issue 21). repositories.list is never empty.
            result.errors.append("the catalog lists no repositories (an empty registry, or none these credentials see)")
        elif included == 0:
            result.errors.append(f"repositories.include matched none of {seen} repositories in {source}")
        elif selected == 0:
            result.errors.append(
                f"repositories.exclude removed all {included} repositories repositories.include matched"
            )

    async def _names(self) -> AsyncIterator[Sequence[str]]:
        if self.selection.names:
            self.result.catalog_accessible = True
            yield self.selection.names
            return
        async for page in self.client.pages("/v2/_catalog", "repositories"):
            self.result.catalog_accessible = True
            yield page

    async def _list_tags(self, walk: RepositoryWalk) -> list[str]:
        repository = walk.repository
        if self.policy.pull_through is not None:
            # A cache's tags/list is its upstream's list: the tags it holds are in its storage.
            held = await walk.holdings()
            if held.unheld_tags:
                log.info(
                    "%s: tags whose manifest the cache does not hold (not walked: a pull fetches it): %s",
                    repository,
                    ", ".join(held.unheld_tags),
                )
            return list(held.tags)
        tags: list[str] = []
        try:
            async for page in self.client.pages(f"/v2/{repository}/tags/list", "tags"):
                tags.extend(page)
        except RegistryError as exc:
            if exc.status != 404 or isinstance(exc, AuthError):
                raise
            if self.selection.names:
                # A listed name is what the operator says must exist: a typo must not be a green run.
                raise RegistryError(
                    f"repositories.list names it, but the registry does not know it ({exc})",
                    url=exc.url,
                    status=exc.status,
                    code=exc.code,
                ) from None
            # distribution 2.8 answers 404 NAME_UNKNOWN for a repository whose last tag was deleted: it is
            # listed in the catalog and has nothing to pull by tag, which is normal.
            log.info("%s: no tags (%s)", repository, exc.code or exc.status)
        return tags

    # -- phase 2: verification ------------------------------------------------------------------------

    async def _verify(self) -> None:
        """Walk the plan's tags in order, a unit at a time, while the budget allows."""
        self.budget.start(self.client.requests)
        suspects = self.plan.suspects()
        if suspects:
            self.policy = replace(self.policy, hash_always=suspects)
        runs = _runs(self.plan.order())
        first: _Unit | None = None
        current = next(runs, None)
        while current is not None:
            following = next(runs, None)
            repository, tags = current
            if following is None and first is not None and first.walk.repository == repository and first.held:
                # The plan wrapped round to the repository it began with (a ring that started inside
                # one): its first unit takes these tags too, so what they share is checked once.
                self._extend(first, tags)
                break
            unit = await self._take(repository, tags)
            if unit is None:
                break
            if first is None:
                first, first.held = unit, True
            current = following
        if first is not None:
            first.held = False
            if first.outstanding == 0 and first.id in self._units:
                await self._settle(first)
        await self._queue.join()
        if self.result.stopped == "done" and self._halt is not None:
            self.result.stopped = self._halt
            if not self.plan.persistent:
                # Only a ledger proves coverage across runs: without one, a run cut short is incomplete.
                self.result.errors.append(
                    f"stopped taking tags: {self._halt_reason}; the run is incomplete (with state_dir, a run"
                    " that spends its budget is a step of continuous verification)"
                )

    async def _find_dangling(self) -> None:
        """After verification: the fallback tags whose subject is gone, and what they list - clutter, never
        findings (regprobe.referrers.dangling). A subject the walks met costs nothing; one they did not
        (no tag reaches it, or its tags were not taken this run) one HEAD. Like the listing, not counted
        in ``budget.requests``: every run needs all of it to say how many there are."""
        if not self.policy.referrers or self.policy.pull_through is not None:
            return  # a cache holds what was pulled: a subject it lacks is not gone
        if self.client.stopped is not None or self.result.stopped == "error":
            return
        max_bytes = self.policy.max_manifest_bytes
        found = await asyncio.gather(
            *(
                referrers.dangling(self.client, repository, tags, self._subjects.get(repository, {}), max_bytes)
                for repository, tags in sorted(self._fallback.items())
                if tags
            )
        )
        self.result.dangling = [d for each in found for d in each]

    async def _scrub(self) -> None:
        """After verification, unless the run is stopping for a reason other than its budget."""
        if self.scrubber is None or self.client.stopped is not None or self.result.stopped == "error":
            return
        self._scrubbed = ScrubOutcome()
        await self.scrubber(self.client, self._scrubbed)

    async def _take(self, repository: str, tags: Sequence[tuple[int, str]]) -> _Unit | None:
        """Queue ``tags`` (of ``repository``, next to each other in the plan) as one unit; None once the
        budget says stop."""
        if self._spent():
            return None
        await self._places.acquire()
        unit = self._unit(repository)
        unit.places += 1
        unit.queued = True
        self._extend(unit, tags)
        return unit

    def _extend(self, unit: _Unit, tags: Sequence[tuple[int, str]]) -> None:
        unit.outstanding += len(tags)
        for position, tag in tags:
            self._put(position, unit, tag)

    def _spent(self) -> bool:
        """Whether the run takes no more tags: its budget is spent, or something stopped it."""
        if self._halt is None:
            why = self.budget.spent(self._walking)
            if why is not None:
                self._halt = "budget" if why == "requests" else "deadline"
                self._halt_reason = self.budget.describe(why)
                log.info("%s: no more tags taken: %s", self.result.name, self._halt_reason)
        return self._halt is not None

    async def _walk_pinned(self, pinned: Sequence[Pinned]) -> None:
        result = self.result
        # No catalog to tell a dead registry from a broken image: ask the registry first, so an outage
        # is an incomplete run (exit 3), never a pile of findings.
        await self.client.ping()
        if self.policy.pull_through is not None:
            self.policy.pull_through.check()
        result.catalog_accessible = True
        result.repositories = len({image.repository for image in pinned})
        self.progress.pinned(result.repositories, len(pinned))
        await self._check_upstream(pinned[0].repository)
        units: dict[str, _Unit] = {}
        for image in pinned:
            unit = units.get(image.repository) or units.setdefault(image.repository, self._unit(image.repository))
            self._put(1, unit, image)
        await self._queue.join()
        # Pinned images are judged together at the end (run's finally); first, what a server_error needs.
        await asyncio.gather(*(unit.walk.settle() for unit in units.values()))

    # -- the workers ----------------------------------------------------------------------------------

    def _unit(self, repository: str) -> _Unit:
        unit_id = next(self._unit_ids)
        # A repository this run did not list (``check``; a listing that failed) has no fallback tags known:
        # its walks ask for each manifest's.
        fallback = self._fallback.get(repository)
        walk = RepositoryWalk(self.client, repository, self.policy, self.cache, self._referrers, fallback)
        unit = self._units[unit_id] = _Unit(unit_id, walk)
        return unit

    def _put(self, priority: int, unit: _Unit, item: _Item) -> None:
        self._queue.put_nowait((priority, next(self._order), unit.id, item))
        if self._queue.qsize() > self._idle and len(self._workers) < self._max_workers:
            # The pool grows with the work, up to its bound: one image never starts 2 x concurrency tasks.
            self._workers.append(asyncio.create_task(self._worker()))

    async def _worker(self) -> None:
        while True:
            self._idle += 1
            try:
                _, _, unit_id, item = await self._queue.get()
            finally:
                self._idle -= 1
            try:
                await self._work(self._units[unit_id], item)
            finally:
                self._queue.task_done()

    async def _work(self, unit: _Unit, item: _Item) -> None:
        repo_name = unit.walk.repository
        try:
            if self.client.stopped is not None:
                # The rate limit is spent (or nearly): every further request would be refused or take pulls
                # others need. The rest of the queue drains without a request; the run is incomplete.
                if isinstance(item, _ListTags):
                    self._skipped_repositories += 1
                else:
                    self._skipped_tags += 1
                return
            if isinstance(item, Pinned):
                if item.digest is not None:
                    await unit.walk.walk_digest(item.tag or str(item.digest), item.digest)
                else:
                    assert item.tag is not None
                    await unit.walk.walk_tag(item.tag)
            elif isinstance(item, _ListTags):
                tags = sorted(set(await self._list_tags(unit.walk)))
                if self.policy.referrers:
                    tags, self._fallback[repo_name] = referrers.split(tags)
                self.progress.listed(len(tags))
                self.plan.listed(repo_name, tags)
                if self._unsettled is not None:
                    self._unsettled[repo_name] = set(tags)
            elif not self._spent():
                self._walking += 1
                try:
                    await unit.walk.walk_tag(item)
                finally:
                    self._walking -= 1
                    self.budget.tag_done()
                    self.progress.tag_done()
        except RegistryError as exc:  # AuthError included: an access problem, never a finding
            self.result.errors.append(f"{repo_name}: {exc}")
        except sqlite3.Error as exc:  # the ledger cannot be written (a full disk): stop taking work
            self._ledger_failed(exc)
        except Exception as exc:  # a bug must cost one repository, not the run; the traceback goes to the log
            log.exception("internal error while walking %s", repo_name)
            self.result.errors.append(f"{repo_name}: internal error {type(exc).__name__}; see the log")
        finally:
            if isinstance(item, _ListTags):
                unit.queued = True
            elif isinstance(item, str):
                unit.outstanding -= 1
            else:
                self.progress.tag_done()
        # Pinned images are judged together at the end; a unit as soon as its last tag is (a unit held
        # open for tags the plan has at its end, once those are done: it frees its place meanwhile).
        if unit.queued and unit.outstanding == 0:
            if not unit.held:
                await self._settle(unit)
            else:
                self._release(unit)

    def _release(self, unit: _Unit) -> None:
        for _ in range(unit.places):
            self._places.release()
        unit.places = 0

    def _ledger_failed(self, exc: sqlite3.Error) -> None:
        if self._halt != "error":
            self.result.errors.append(f"ledger: cannot write: {exc}; no more tags taken")
        self._halt, self._halt_reason = "error", "the ledger failing"
        self.result.stopped = "error"

    async def _settle(self, unit: _Unit) -> None:
        """A unit whose tags are done: ask the registry what a server_error needs
        (:meth:`RepositoryWalk.settle`), drop the tags deleted since the listing, then judge and record it.
        The task holds its queue item until then, so the run waits."""
        walk = unit.walk
        try:
            await walk.settle()
        except Exception as exc:  # a bug must cost one repository, not the run
            log.exception("internal error while settling %s", walk.repository)
            self.result.errors.append(f"{walk.repository}: internal error {type(exc).__name__}; see the log")
        try:
            missing = [
                tag
                for tag, root in walk.roots.items()
                if root.key is None and root.problem == Problem.MISSING and tag in walk.finished
            ]
            if missing and self.policy.pull_through is None:
                await self._drop_deleted(walk, missing)
        except RegistryError as exc:
            log.info("%s: tags listed again to tell a deletion from a broken tag: %s", walk.repository, exc)
        finally:
            self._finish(unit)

    async def _drop_deleted(self, walk: RepositoryWalk, missing: Sequence[str]) -> None:
        """A tag 404 by name may just have been deleted since the listing (which is the whole run ago, not
        a moment): the repository's tags are listed again, and a tag no longer there is forgotten - a
        deleted tag is no broken image."""
        listed = set(await self._list_tags(walk))
        gone = [tag for tag in missing if tag not in listed]
        if gone:
            log.info("%s: deleted since the listing, not judged: %s", walk.repository, ", ".join(gone))
            for tag in gone:
                walk.forget(tag)
            self.plan.forget(walk.repository, gone)
            if self._unsettled is not None:
                self._unsettled.get(walk.repository, set()).difference_update(gone)

    def _finish(self, unit: _Unit) -> None:
        """Fold one unit's walk into the result, record it in the plan, and free its place in flight."""
        walk = unit.walk
        if self._units.pop(unit.id, None) is None:
            return
        self._release(unit)
        if not walk.roots:
            return  # a listing, or tags never taken
        judged = walk.judgement()
        self.progress.repository_done(len(walk.nodes), len(judged.findings))
        self.result.findings.extend(judged.findings)
        self.result.errors.extend(judged.errors)
        self.result.skipped.extend(judged.skipped)
        self.result.images_checked += walk.walked
        met = self._subjects.setdefault(walk.repository, {})
        for subject in self._fallback.get(walk.repository, {}):
            node = walk.nodes.get(("manifest", subject))
            if node is not None:
                met[subject] = met.get(subject, False) or node.problem is not Problem.MISSING
        tags, objects = tally(walk.repository, walk.roots, walk.nodes, judged, walk.finished)
        if self._unsettled is not None:
            fresh = {t.tag for t in tags if t.verdict != "skipped"}
            self._unsettled.get(walk.repository, set()).difference_update(fresh)
        try:
            self.plan.record(walk.repository, tags, objects)
        except sqlite3.Error as exc:
            self._ledger_failed(exc)


def _runs(order: Iterable[Image]) -> Iterator[tuple[str, list[tuple[int, str]]]]:
    """The plan as units: (repository, [(position, tag)]) for each run of one repository's tags next to
    each other, at most MAX_UNIT long."""
    repository, tags = "", list[tuple[int, str]]()
    for position, (next_repository, tag) in enumerate(order):
        if tags and (next_repository != repository or len(tags) >= MAX_UNIT):
            yield repository, tags
            tags = []
        repository = next_repository
        tags.append((position, tag))
    if tags:
        yield repository, tags


def _merged(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per broken object per repository, naming every tag that reaches it: the tags of one
    repository may have been walked in several units (windows of the plan), each judged alone."""
    merged: dict[tuple[str, str, str], Finding] = {}
    for finding in findings:
        # A tag that does not resolve has no object to share: it stays a finding of its own.
        key = (finding.repository, finding.kind.value, str(finding.digest) if finding.digest else f"tag:{finding.tags}")
        earlier = merged.get(key)
        if earlier is None:
            merged[key] = finding
        else:
            merged[key] = replace(earlier, tags=tuple(sorted_tags(set(earlier.tags) | set(finding.tags))))
    return sorted(merged.values(), key=lambda f: f.sort_key)


def _valid_name(name: str, result: RegistryResult) -> bool:
    try:
        validate_repository(name)
    except InvalidReferenceError as exc:
        result.errors.append(f"catalog lists an unusable name: {exc}")
        return False
    return True
