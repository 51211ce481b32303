"""Probes one registry: selects repositories, lists their tags, walks them, collects the result.

Work flows through one queue per registry: listing a repository's tags queues its tags, a pool of
workers walks them, and a repository is judged and its graph dropped as soon as its last tag is done -
memory follows the repositories in flight, not the size of the registry. The catalog is read no further
ahead than that: at most ``max(2, concurrency)`` repositories are queued or in flight at once.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .cache import ManifestCache
from .client import RegistryClient
from .config import RegistryConfig
from .counters import Counters, ProbeProgress
from .digest import Digest
from .errors import AuthError, InvalidReferenceError, RegistryError
from .model import RegistryResult
from .pullthrough import upstream_outage
from .reference import hub_repository, validate_repository
from .referrers import Support
from .shard import Shard
from .stop import StopRequest
from .walk import RepositoryWalk, WalkPolicy

log = logging.getLogger(__name__)


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
    """Queue item: list a repository's tags (and queue one walk per tag)."""


LIST_TAGS = _ListTags()
#: What the workers take from the queue: list a repository, walk one of its tags, or a pinned image.
_Item = _ListTags | str | Pinned


@dataclass(slots=True)
class _Repo:
    walk: RepositoryWalk
    outstanding: int = 0
    listed: bool = False
    #: The tags the registry listed, once it did (None: not listed, or the listing failed).
    tags: frozenset[str] | None = None
    #: Places in flight this repository holds (released when it is judged).
    places: int = 0


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
) -> RegistryResult:
    """Walk what ``selection`` (a whole registry) or ``pinned`` (``check``) names, until ``deadline``
    (a ``time.monotonic()`` value) or ``stop``. Never raises for registry trouble: it ends up in the
    result. ``progress`` is told what is done as it is done."""
    probe = RegistryProbe(name, client, policy, cache, selection, progress)
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
        progress: ProbeProgress | None = None,
    ) -> None:
        self.client = client
        self.progress = progress or Counters(name)
        self.policy = policy
        self.cache = cache
        self.selection = selection or Selection()
        shard = str(self.selection.shard) if self.selection.shard else None
        self.result = RegistryResult(name=name, url=str(client.base), started_at=time.time(), shard=shard)
        self._repos: dict[str, _Repo] = {}
        #: Whether the registry serves the referrers API: learned once, for all its repositories.
        self._referrers = Support()
        self._queue: asyncio.PriorityQueue[tuple[int, int, str, _Item]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        concurrency = client.settings.concurrency
        self._places = asyncio.Semaphore(max(2, concurrency))
        #: Twice the request slots: a worker waiting for its tag's blobs leaves room for another tag.
        self._max_workers = max(2, concurrency * 2)
        self._workers: list[asyncio.Task[None]] = []
        self._idle = 0
        #: Work left undone once the client stopped the run (rate limit): tags, and repositories not listed.
        self._skipped_tags = 0
        self._skipped_repositories = 0

    async def run(self, pinned: Sequence[Pinned], deadline: float, stop: StopRequest) -> RegistryResult:
        result = self.result
        started = time.monotonic()
        finished = False
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())) as scope:

                def cut_short() -> None:
                    if not scope.expired():
                        scope.reschedule(0)  # in the past: the timeout fires at once

                unsubscribe = stop.subscribe(cut_short)
                try:
                    await self._produce(pinned)
                    await self._queue.join()
                    # Pinned images are judged together at the end (below); first, what a server_error needs.
                    await asyncio.gather(*(repo.walk.settle() for repo in self._repos.values()))
                finally:
                    unsubscribe()
            finished = True
        except TimeoutError:
            elapsed = time.monotonic() - started
            if stop.reason is not None:
                result.errors.append(f"stopped by {stop.reason} after {elapsed:.0f}s; the run is incomplete")
            else:
                result.errors.append(f"deadline reached after {elapsed:.0f}s; the run is incomplete")
        except RegistryError as exc:
            result.errors.append(str(exc))
        finally:
            for task in self._workers:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            for repo in list(self._repos.values()):  # pinned images, and repositories cut off early
                self._finish(repo)
            if self.client.stopped is not None:
                result.errors.append(
                    f"{self.client.stopped}; not walked: {self._skipped_tags} tags,"
                    f" {self._skipped_repositories} repositories not listed"
                )
            result.findings.sort(key=lambda f: f.sort_key)
            result.requests.update(self.client.requests)
            result.duration_seconds = time.monotonic() - started
        result.complete = finished and not result.errors
        return result

    async def _produce(self, pinned: Sequence[Pinned]) -> None:
        result = self.result
        if pinned or self.selection.names:
            # No catalog to tell a dead registry from a broken image: ask the registry first, so
            # an outage is an incomplete run (exit 3), never a pile of findings.
            await self.client.ping()
        if self.policy.pull_through is not None:
            self.policy.pull_through.check()
        if pinned:
            result.catalog_accessible = True
            result.repositories = len({image.repository for image in pinned})
            self.progress.pinned(result.repositories, len(pinned))
            await self._check_upstream(pinned[0].repository)
            for image in pinned:
                self._put(1, image.repository, image)
            return
        upstream_checked = False
        async for repo_name in self._repositories():
            if not upstream_checked:
                upstream_checked = True
                await self._check_upstream(repo_name)
            # The catalog is read only as fast as repositories are judged.
            await self._places.acquire()
            repo = self._repo(repo_name)
            repo.places += 1
            # Tag walks (priority 0) go before listing more repositories (1): finishing
            # repositories keeps memory flat.
            self.progress.selected(1)
            self._put(1, repo_name, LIST_TAGS)
        self.progress.all_selected()

    async def _check_upstream(self, repository: str) -> None:
        """On a pull-through cache, whether its upstream answers: the walk never asks anything that goes
        upstream, so an outage would otherwise pass unseen. It leaves the run incomplete, never a finding;
        what the cache holds is walked all the same."""
        if self.policy.pull_through is not None:
            outage = await upstream_outage(self.client, repository)
            if outage is not None:
                log.warning("%s: %s", self.result.name, outage)
                self.result.errors.append(outage)

    def _put(self, priority: int, repo_name: str, item: _Item) -> None:
        self._queue.put_nowait((priority, next(self._order), repo_name, item))
        if self._queue.qsize() > self._idle and len(self._workers) < self._max_workers:
            # The pool grows with the work, up to its bound: one image never starts 2 x concurrency tasks.
            self._workers.append(asyncio.create_task(self._worker()))

    async def _worker(self) -> None:
        while True:
            self._idle += 1
            try:
                _, _, repo_name, item = await self._queue.get()
            finally:
                self._idle -= 1
            try:
                await self._work(repo_name, item)
            finally:
                self._queue.task_done()

    def _repo(self, repo_name: str) -> _Repo:
        repo = self._repos.get(repo_name)
        if repo is None:
            walk = RepositoryWalk(self.client, repo_name, self.policy, self.cache, self._referrers)
            repo = self._repos[repo_name] = _Repo(walk)
        return repo

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

    async def _work(self, repo_name: str, item: _Item) -> None:
        repo = self._repo(repo_name)
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
                    await repo.walk.walk_digest(item.tag or str(item.digest), item.digest)
                else:
                    assert item.tag is not None
                    await repo.walk.walk_tag(item.tag)
            elif isinstance(item, _ListTags):
                tags = frozenset(await self._list_tags(repo.walk))
                repo.tags = tags
                images = repo.walk.listed(tags)  # fallback tags are lists of referrers, not images
                repo.outstanding += len(images)
                self.progress.listed(len(images))
                for tag in sorted(images):
                    self._put(0, repo_name, tag)
            else:
                await repo.walk.walk_tag(item)
        except RegistryError as exc:  # AuthError included: an access problem, never a finding
            self.result.errors.append(f"{repo_name}: {exc}")
        except Exception as exc:  # a bug must cost one repository, not the run; the traceback goes to the log
            log.exception("internal error while walking %s", repo_name)
            self.result.errors.append(f"{repo_name}: internal error {type(exc).__name__}; see the log")
        finally:
            if isinstance(item, _ListTags):
                repo.listed = True
            elif isinstance(item, str):
                repo.outstanding -= 1
            if not isinstance(item, _ListTags):
                self.progress.tag_done()
        # Pinned images are judged together at the end; a listed repository as soon as its last tag is.
        if repo.listed and repo.outstanding == 0:
            await self._settle(repo)

    async def _settle(self, repo: _Repo) -> None:
        """Judge a repository whose walk is done, once the registry was asked what a server_error needs
        (:meth:`RepositoryWalk.settle`); the task holds its queue item until then, so the run waits."""
        try:
            await repo.walk.settle()
        except Exception as exc:  # a bug must cost one repository, not the run
            log.exception("internal error while settling %s", repo.walk.repository)
            self.result.errors.append(f"{repo.walk.repository}: internal error {type(exc).__name__}; see the log")
        finally:
            self._finish(repo)

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

    def _finish(self, repo: _Repo) -> None:
        """Fold one repository's walk into the result, and free its place in flight."""
        self._repos.pop(repo.walk.repository, None)
        judged = repo.walk.judgement()
        self.progress.repository_done(len(repo.walk.nodes), len(judged.findings))
        self.result.findings.extend(judged.findings)
        self.result.errors.extend(judged.errors)
        self.result.skipped.extend(judged.skipped)
        self.result.dangling.extend(repo.walk.dangling)
        self.result.images_checked += repo.walk.walked
        if repo.tags is not None:
            unsettled = (repo.tags - repo.walk.finished) | judged.blocked | {s.tag for s in judged.skipped}
            self.result.reached[repo.walk.repository] = frozenset(unsettled)
        for _ in range(repo.places):
            self._places.release()
        repo.places = 0


def _valid_name(name: str, result: RegistryResult) -> bool:
    try:
        validate_repository(name)
    except InvalidReferenceError as exc:
        result.errors.append(f"catalog lists an unusable name: {exc}")
        return False
    return True
