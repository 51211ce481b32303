"""Probes one registry: selects repositories, lists their tags, walks them, collects the result.

Work flows through one queue per registry: listing a repository's tags queues its tags, a fixed pool of
workers walks them, and a repository is judged and its graph dropped as soon as its last tag is done -
memory follows the repositories in flight, not the size of the registry.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from .cache import ManifestCache
from .client import RegistryClient
from .digest import Digest
from .errors import AuthError, InvalidReferenceError, RegistryError
from .model import RegistryResult
from .reference import validate_repository
from .shard import Shard
from .walk import RepositoryWalk, WalkPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Selection:
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    #: Explicit names: the catalog is not read (Docker Hub, GHCR have none to read).
    names: tuple[str, ...] = ()
    shard: Shard | None = None

    def wants(self, name: str) -> bool:
        return (
            any(fnmatch.fnmatchcase(name, p) for p in self.include)
            and not any(fnmatch.fnmatchcase(name, p) for p in self.exclude)
            and (self.shard is None or self.shard.owns(name))
        )


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


@dataclass(slots=True)
class _State:
    result: RegistryResult
    repos: dict[str, _Repo] = field(default_factory=dict)
    #: Work left undone once the client stopped the run (rate limit): tags, and repositories not listed.
    skipped_tags: int = 0
    skipped_repositories: int = 0


async def probe_registry(
    name: str,
    client: RegistryClient,
    policy: WalkPolicy,
    *,
    selection: Selection | None = None,
    pinned: Sequence[Pinned] = (),
    deadline: float,
    cache: ManifestCache | None = None,
) -> RegistryResult:
    """Walk what ``selection`` (a whole registry) or ``pinned`` (``check``) names, until ``deadline``
    (a ``time.monotonic()`` value). Never raises for registry trouble: it ends up in the result."""
    shard = str(selection.shard) if selection and selection.shard else None
    result = RegistryResult(name=name, url=str(client.base), started_at=time.time(), shard=shard)
    state = _State(result)
    started = time.monotonic()
    concurrency = client.settings.concurrency
    queue: asyncio.PriorityQueue[tuple[int, int, str, _Item]] = asyncio.PriorityQueue()
    order = itertools.count()

    async def worker() -> None:
        while True:
            _, _, repo_name, item = await queue.get()
            try:
                await _work(state, client, policy, cache, queue, order, repo_name, item)
            finally:
                queue.task_done()

    workers = [asyncio.create_task(worker()) for _ in range(max(2, concurrency * 2))]
    finished = False
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            if pinned or (selection and selection.names):
                # No catalog to tell a dead registry from a broken image: ask the registry first, so
                # an outage is an incomplete run (exit 3), never a pile of findings.
                await client.ping()
            if pinned:
                result.catalog_accessible = True
                result.repositories = len({image.repository for image in pinned})
                for image in pinned:
                    await queue.put((1, next(order), image.repository, image))
            else:
                async for repo_name in _repositories(client, selection or Selection(), result):
                    # Tag walks (priority 0) go before listing more repositories (1): finishing
                    # repositories keeps memory flat.
                    await queue.put((1, next(order), repo_name, LIST_TAGS))
            await queue.join()
        finished = True
    except TimeoutError:
        result.errors.append(f"deadline reached after {time.monotonic() - started:.0f}s; the run is incomplete")
    except RegistryError as exc:
        result.errors.append(str(exc))
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for repo in list(state.repos.values()):  # pinned images, and repositories cut off by the deadline
            _finish(state, repo)
        if client.stopped is not None:
            result.errors.append(
                f"{client.stopped}; not walked: {state.skipped_tags} tags,"
                f" {state.skipped_repositories} repositories not listed"
            )
        result.requests.update(client.requests)
        result.duration_seconds = time.monotonic() - started
    result.complete = finished and not result.errors
    return result


async def _repositories(client: RegistryClient, selection: Selection, result: RegistryResult) -> AsyncIterator[str]:
    if selection.names:
        result.catalog_accessible = True
        names: Sequence[str] = selection.names
        for name in names:
            if selection.wants(name):
                result.repositories += 1
                yield name
        return
    try:
        pages = client.pages("/v2/_catalog", "repositories")
        async for page in pages:
            result.catalog_accessible = True
            for name in page:
                if selection.wants(name) and _valid_name(name, result):
                    result.repositories += 1
                    yield name
    except AuthError:
        result.catalog_accessible = False
        raise
    except RegistryError as exc:
        result.catalog_accessible = False
        result.errors.append(f"catalog: {exc}")


def _valid_name(name: str, result: RegistryResult) -> bool:
    try:
        validate_repository(name)
    except InvalidReferenceError as exc:
        result.errors.append(f"catalog lists an unusable name: {exc}")
        return False
    return True


async def _work(
    state: _State,
    client: RegistryClient,
    policy: WalkPolicy,
    cache: ManifestCache | None,
    queue: asyncio.PriorityQueue[tuple[int, int, str, _Item]],
    order: itertools.count[int],
    repo_name: str,
    item: _Item,
) -> None:
    result = state.result
    repo = state.repos.get(repo_name)
    if repo is None:
        repo = state.repos[repo_name] = _Repo(RepositoryWalk(client, repo_name, policy, cache))
    try:
        if client.stopped is not None:
            # The rate limit is spent (or nearly): every further request would be refused or take pulls
            # others need. The rest of the queue drains without a request; the run is incomplete.
            if isinstance(item, _ListTags):
                state.skipped_repositories += 1
            else:
                state.skipped_tags += 1
            return
        if isinstance(item, Pinned):
            if item.digest is not None:
                await repo.walk.walk_digest(item.tag or str(item.digest), item.digest)
            else:
                assert item.tag is not None
                await repo.walk.walk_tag(item.tag)
        elif isinstance(item, _ListTags):
            tags = await _list_tags(client, repo_name)
            repo.outstanding += len(set(tags))
            for tag in sorted(set(tags)):
                await queue.put((0, next(order), repo_name, tag))
        else:
            await repo.walk.walk_tag(item)
    except RegistryError as exc:  # AuthError included: an access problem, never a finding
        result.errors.append(f"{repo_name}: {exc}")
    except Exception as exc:  # a bug must cost one repository, not the run; the traceback goes to the log
        log.exception("internal error while walking %s", repo_name)
        result.errors.append(f"{repo_name}: internal error {type(exc).__name__}; see the log")
    finally:
        # Pinned images are judged together at the end; a listed repository as soon as its last tag is.
        if isinstance(item, _ListTags):
            repo.listed = True
        elif isinstance(item, str):
            repo.outstanding -= 1
        if repo.listed and repo.outstanding == 0:
            _finish(state, repo)


async def _list_tags(client: RegistryClient, repository: str) -> list[str]:
    tags: list[str] = []
    try:
        async for page in client.pages(f"/v2/{repository}/tags/list", "tags"):
            tags.extend(page)
    except RegistryError as exc:
        # distribution 2.8 answers 404 NAME_UNKNOWN for a repository whose last tag was deleted: it is
        # listed in the catalog and has nothing to pull by tag, which is normal.
        if exc.status != 404 or isinstance(exc, AuthError):
            raise
        log.info("%s: no tags (%s)", repository, exc.code or exc.status)
    return tags


def _finish(state: _State, repo: _Repo) -> None:
    state.repos.pop(repo.walk.repository, None)
    state.result.findings.extend(repo.walk.findings())
    state.result.errors.extend(repo.walk.errors())
    state.result.skipped.extend(repo.walk.skipped())
    state.result.images_checked += repo.walk.walked
