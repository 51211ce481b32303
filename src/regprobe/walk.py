"""Walks one repository: tag -> manifest -> (index -> children) -> config and layers.

Each object of the repository is requested at most once per run, however many tags share it: the
first visitor fetches, later ones wait for its result. The walk only records what it saw in a graph
(:mod:`regprobe.facts`); :mod:`regprobe.judge` turns the graph into findings and errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace

from . import judge, manifest, referrers
from .cache import ManifestCache
from .client import RegistryClient
from .digest import Digest
from .errors import DigestError, ManifestError, RegistryError
from .facts import BlobMode, Key, Node, Reply, TagRoot
from .manifest import Descriptor
from .model import Finding, Kind, Problem
from .pullthrough import CacheStorage, Holdings

log = logging.getLogger(__name__)

#: Why an image named on purpose (``/probe``, an event) is not walked on a pull-through cache.
_WOULD_FETCH = "asking the cache for it would make it fetch from upstream"


@dataclass(frozen=True, slots=True)
class WalkPolicy:
    blob_check: BlobMode = "range"
    #: False for pull-through caches: a child the cache never fetched is normal there.
    index_children: bool = True
    max_manifest_bytes: int = 4 << 20
    #: Indexes inside indexes; real images use one level, a lying registry could use thousands.
    max_depth: int = 8
    #: A pull-through cache's storage: only what it holds is asked for (every miss would be fetched from
    #: upstream), tags are its own, not upstream's (pullthrough.py).
    pull_through: CacheStorage | None = None
    #: Walk each manifest's OCI 1.1 referrers (signatures, SBOMs, attestations): regprobe.referrers.
    referrers: bool = True
    #: Referrers of referrers (a signature of an SBOM) are listed this many hops from the image.
    max_referrer_depth: int = 3
    #: Blobs read whole and hashed whatever ``blob_check`` says: those the ledger's scrub last found
    #: corrupt, so a tag's verdict on them rests on fresh evidence (a one-byte read cannot see it).
    hash_always: frozenset[str] = frozenset()


class RepositoryWalk:
    def __init__(
        self,
        client: RegistryClient,
        repository: str,
        policy: WalkPolicy,
        cache: ManifestCache | None = None,
        support: referrers.Support | None = None,
        fallback_tags: Mapping[Digest, str] | None = None,
    ) -> None:
        """``support``: what the registry's run learned about its referrers API (shared by its walks);
        ``fallback_tags``: the repository's fallback tags by subject, from its tag list (None when the list
        was not read: each manifest's is then asked for)."""
        self.client = client
        self.cache = cache
        self.repository = repository
        self.policy = policy
        self.support = support or referrers.Support()
        self._fallback_tags = fallback_tags
        self.nodes: dict[Key, Node] = {}
        self.roots: dict[str, TagRoot] = {}
        #: Tags whose walk finished; a tag cut off by the deadline is not counted as checked.
        self.walked = 0
        #: Which tags those are (by tag or label): only they can be verified intact (regprobe.carryover,
        #: regprobe.tally).
        self.finished: set[str] = set()
        self._pending: dict[Key, asyncio.Future[None]] = {}
        self._holdings: asyncio.Future[Holdings] | None = None
        #: Why the registry is not known to answer the rest of the repository, until :meth:`settle` asks.
        self._unavailable: str | None = _NOT_ASKED

    def judgement(self) -> judge.Judgement:
        """Findings, objects that could not be looked at (an access problem of the run, never a finding),
        and tags not judged on purpose (a pull policy, a tag gone since the listing)."""
        judged = judge.judgement(self.repository, self.roots, self.nodes, self._unavailable)
        unread = self._unread_storage()
        return replace(judged, errors=judged.errors + unread) if unread else judged

    def _unread_storage(self) -> list[str]:
        """Parts of a pull-through cache's storage that could not be read: the run is not complete."""
        held = self._holdings
        if held is None or not held.done() or held.cancelled() or held.exception() is not None:
            return []
        return [f"{self.repository}: {error}" for error in held.result().errors]

    async def holdings(self) -> Holdings:
        """What the pull-through cache holds of this repository, read from its storage once per walk."""
        storage = self.policy.pull_through
        assert storage is not None
        if self._holdings is None:
            self._holdings = asyncio.ensure_future(asyncio.to_thread(storage.holdings, self.repository))
        return await asyncio.shield(self._holdings)

    async def settle(self) -> None:
        """Once the walk is done: if the registry answered 5xx on every try for some object, ask it for this
        repository's tag list - one cheap request to the same storage. Answered (the list, or a 4xx but
        429): the registry answers the rest, so each such object is a ``server_error`` finding (its
        stored data is likely corrupt). Not answered: an outage, and those objects are errors of the
        run (issue 21). Asked after the failures, so an outage that began mid-run is not mistaken for
        broken objects."""
        seen = [n.problem for n in self.nodes.values()] + [r.problem for r in self.roots.values()]
        if Problem.SERVER_ERROR not in seen:
            self._unavailable = None
            return
        pages = self.client.pages(f"/v2/{self.repository}/tags/list", "tags", page_size=1)
        try:
            await anext(pages, None)
        except RegistryError as exc:
            # A 4xx (no such repository, no access) is an answer; 5xx, no answer, 429 or an HTML page is not.
            answered = exc.status is not None and 400 <= exc.status < 500 and exc.status != 429
            if not answered:
                self._unavailable = f"the registry failed this repository's tag list as well ({exc}): not judged"
                return
        finally:
            await pages.aclose()
        self._unavailable = None

    def findings(self) -> list[Finding]:
        return self.judgement().findings

    async def walk_tag(self, tag: str) -> None:
        if self.policy.pull_through is not None:
            # By tag, a cache would ask upstream what the tag is now and fetch that: the tag is resolved
            # from the cache's own storage instead, and its manifest asked for by digest.
            digest = (await self.holdings()).tags.get(tag)
            if digest is None:
                self.roots[tag] = TagRoot(None, error=f"the cache does not hold it; {_WOULD_FETCH}")
                return
            await self.walk_digest(tag, digest)
            return
        try:
            reply = await self._fetch(tag, pinned=None)
        except RegistryError as exc:
            self.roots[tag] = TagRoot(None, error=str(exc))
            return
        skip = judge.skip_reason(reply, by_tag=True)
        if skip is not None:
            self.roots[tag] = TagRoot(None, status=reply.status, detail=f"tag {tag}: {skip[1]}", skipped=skip[0])
            return
        verdict = judge.manifest_reply(reply, expected=None, pinned=None)
        if verdict is not None or reply.digest is None:
            problem, detail = verdict or (Problem.INVALID, "manifest body could not be read")
            self.roots[tag] = TagRoot(
                None, problem, reply.status, f"tag {tag}: {detail}", _hint(reply), said=reply.said
            )
        else:
            key: Key = ("manifest", reply.digest)
            self.roots[tag] = TagRoot(key)
            await self._once(key, lambda: self._manifest_body(key, reply, depth=0, ancestors=frozenset()))
        self.walked += 1
        self.finished.add(tag)

    def forget(self, tag: str) -> None:
        """The tag is gone from the registry since it was listed: nothing to judge."""
        self.roots.pop(tag, None)
        if tag in self.finished:
            self.finished.discard(tag)
            self.walked -= 1

    async def walk_digest(self, label: str, digest: Digest) -> None:
        """Walk a manifest pinned by digest (``check repo@sha256:...``), reported under ``label``."""
        key: Key = ("manifest", digest)
        self.roots[label] = TagRoot(key)
        await self._once(key, lambda: self._manifest(key, None, depth=0, ancestors=frozenset()))
        self.walked += 1
        self.finished.add(label)

    async def _once(self, key: Key, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` for ``key`` the first time it is asked for; later callers wait for that run."""
        pending = self._pending.get(key)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            await work()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            # The first visitor re-raises it; waiters may not exist, so asyncio must not warn about it.
            future.exception()
            raise
        future.set_result(None)

    async def _fetch(self, reference: str, pinned: Digest | None) -> Reply:
        """The manifest at ``reference`` (a tag, or ``pinned``'s digest).

        Without a cache: one GET. With one, a HEAD, and the body from the cache when the cache holds the
        digest (``pinned``, or for a tag the registry's Docker-Content-Digest) and the registry's length
        agrees with it; else one GET, whose body is cached under what it hashes to. The header digest is
        only ever a cache key: a cached body hashes to its key (the cache checks on reading), so a wrong
        header can cost a GET, never put another image's body under a tag.
        """
        cache = self.cache
        if cache is not None:
            body = cache.get(pinned) if pinned is not None else None
            if pinned is None or body is not None:
                head = await self.client.manifest_head(self.repository, reference)
                if head.ok:
                    digest = pinned or _hint(head)
                    if body is None and digest is not None:
                        body = cache.get(digest)
                    # A length that disagrees means the registry now holds other bytes under this name.
                    if body is not None and digest is not None and head.content_length in (None, len(body)):
                        return Reply(
                            head.url, "HEAD", head.status, content_type=head.content_type, body=body, digest=digest
                        )
                elif (
                    head.status not in (405, 412)
                    and not _server_error(head)
                    and not (head.status == 404 and pinned is None)
                ):
                    # The verdict a GET would get, without spending a GET. But 405 is no manifest HEAD on
                    # this registry, and a HEAD's 412, or 404 for a tag, has no body to carry the code
                    # that makes it no finding (PROJECTPOLICYVIOLATION, TAG_EXPIRED), nor a 5xx the
                    # registry's words about a server_error: a GET tells.
                    return head
        reply = await self.client.manifest(self.repository, reference, self.policy.max_manifest_bytes)
        cacheable = reply.ok and not reply.over_limit and reply.digest is not None
        if cache is not None and cacheable and pinned in (None, reply.digest):
            assert reply.digest is not None
            cache.put(reply.digest, reply.body)
        return reply

    async def _manifest(
        self,
        key: Key,
        expected: Descriptor | None,
        depth: int,
        ancestors: frozenset[Digest],
        hops: int = 0,
        listed_under: Digest | None = None,
    ) -> None:
        """``hops``: how many referrers away from a tag's image this manifest is; ``listed_under``: for a
        referrer, the subject whose list names it (with ``expected``, how the list names it)."""
        digest = key[1]
        if not await self._held(key):
            if expected is None:  # named on purpose (/probe): say it was not looked at
                self.nodes[key] = Node(Kind.MANIFEST, error=f"the cache does not hold it; {_WOULD_FETCH}")
            else:  # a child nobody pulled through the cache, or one it would fetch again
                self.nodes[key] = Node(Kind.MANIFEST, absent=True)
            return
        try:
            reply = await self._fetch(str(digest), pinned=digest)
        except RegistryError as exc:
            self.nodes[key] = Node(Kind.MANIFEST, error=str(exc))
            return
        if reply.status in (404, 410) and expected is not None and not self.policy.index_children:
            self.nodes[key] = Node(Kind.MANIFEST, absent=True, status=reply.status)
            return
        skip = judge.skip_reason(reply, by_tag=False)
        if skip is not None:
            self.nodes[key] = Node(Kind.MANIFEST, status=reply.status, detail=skip[1], skipped=skip[0])
            return
        verdict = judge.manifest_reply(reply, expected=expected, pinned=digest)
        if verdict is not None:
            self.nodes[key] = Node(Kind.MANIFEST, verdict[0], reply.status, verdict[1], said=reply.said)
            return
        listed = (listed_under, expected) if listed_under is not None and expected is not None else None
        await self._manifest_body(key, reply, depth, ancestors, hops, listed)

    async def _manifest_body(
        self,
        key: Key,
        reply: Reply,
        depth: int,
        ancestors: frozenset[Digest],
        hops: int = 0,
        listed: tuple[Digest, Descriptor] | None = None,
    ) -> None:
        digest = key[1]
        node = Node(Kind.MANIFEST, status=reply.status)
        self.nodes[key] = node
        try:
            parsed = manifest.parse(reply.body, reply.content_type)
        except ManifestError as exc:
            node.problem, node.detail = Problem.INVALID, str(exc)
            return
        node.artifact_type = parsed.artifact_type
        if listed is not None:
            # A referrer must be what its list says: of that subject, of that type.
            wrong = referrers.mismatch(listed[0], listed[1], parsed)
            if wrong is not None:
                node.problem, node.detail = Problem.INVALID, wrong
        ancestors = ancestors | {digest}
        checks: list[tuple[Key, Callable[[], Awaitable[None]]]]
        if isinstance(parsed, manifest.Index):
            if depth >= self.policy.max_depth:
                node.problem, node.bound = Problem.INVALID, "depth"
                node.detail = f"indexes nested deeper than {self.policy.max_depth}"
                return
            loops = [c for c in parsed.children if c.digest in ancestors]
            if loops:
                node.problem, node.bound = Problem.INVALID, "loop"
                node.detail = f"index refers back to {loops[0].digest} (a loop)"
                return
            checks = [
                (("manifest", c.digest), self._child_manifest(c, depth + 1, ancestors, hops)) for c in parsed.children
            ]
            node.platforms = tuple(c.platform for c in parsed.children)
        else:
            blobs = [(parsed.config, Kind.CONFIG)]
            blobs += [(layer, Kind.LAYER) for layer in parsed.layers if not layer.foreign]
            checks = [(("blob", d.digest), self._blob(d, kind)) for d, kind in blobs]
        if self.policy.referrers and hops < self.policy.max_referrer_depth:
            checks.append((("referrers", digest), self._referrers(digest, hops, ancestors)))
        node.children = tuple(k for k, _ in checks)
        # Siblings never fail each other: what the registry answers, refusals included, is recorded on
        # each object's own node. Only a bug escapes a check; the task group then cancels the siblings
        # and the repository is reported as an internal error rather than judged half-walked.
        async with asyncio.TaskGroup() as group:
            for k, check in checks:
                group.create_task(self._once(k, check))

    def _child_manifest(
        self, descriptor: Descriptor, depth: int, ancestors: frozenset[Digest], hops: int
    ) -> Callable[[], Awaitable[None]]:
        return lambda: self._manifest(("manifest", descriptor.digest), descriptor, depth, ancestors, hops)

    def _referrers(self, subject: Digest, hops: int, ancestors: frozenset[Digest]) -> Callable[[], Awaitable[None]]:
        """List ``subject``'s referrers, then check each like any manifest, and their referrers in turn."""

        async def check() -> None:
            key: Key = ("referrers", subject)
            try:
                listing = await (await self._lister()).list(subject)
            except RegistryError as exc:
                self.nodes[key] = Node(Kind.REFERRER, error=str(exc))
                return
            node = Node(Kind.REFERRER, listing.problem, listing.status, listing.detail, said=listing.said)
            node.index = listing.index
            self.nodes[key] = node
            if listing.unwalkable:
                log.info(
                    "%s: referrers of %s not walked (no manifest type regprobe reads): %s",
                    self.repository,
                    subject,
                    ", ".join(listing.unwalkable),
                )
            # A registry could list a manifest the walk is inside of (a referrer of its own referrer): that
            # one is being checked already, and waiting for it would wait for itself.
            entries = [e for e in listing.entries if e.digest not in ancestors]
            node.children = tuple(("manifest", e.digest) for e in entries)
            node.artifact_types = tuple(e.artifact_type for e in entries)
            async with asyncio.TaskGroup() as group:
                for entry in entries:
                    check_one = self._referrer(entry, subject, hops + 1, ancestors)
                    group.create_task(self._once(("manifest", entry.digest), check_one))

        return check

    def _referrer(
        self, descriptor: Descriptor, subject: Digest, hops: int, ancestors: frozenset[Digest]
    ) -> Callable[[], Awaitable[None]]:
        return lambda: self._manifest(("manifest", descriptor.digest), descriptor, 0, ancestors, hops, subject)

    async def _lister(self) -> referrers.Lister:
        held = (await self.holdings()).tags if self.policy.pull_through is not None else None
        max_bytes = self.policy.max_manifest_bytes
        return referrers.Lister(self.client, self.repository, self.support, max_bytes, self._fallback_tags, held)

    def _blob(self, descriptor: Descriptor, kind: Kind) -> Callable[[], Awaitable[None]]:
        async def check() -> None:
            key: Key = ("blob", descriptor.digest)
            if not await self._held(key):
                self.nodes[key] = Node(kind, absent=True)  # not pulled through the cache (or lost: fetched again)
                return
            mode = "digest" if str(descriptor.digest) in self.policy.hash_always else self.policy.blob_check
            try:
                reply = await self.client.blob(self.repository, descriptor.digest, mode, descriptor.size)
            except RegistryError as exc:
                self.nodes[key] = Node(kind, error=str(exc))
                return
            verdict = judge.blob_reply(reply, descriptor, mode)
            node = Node(kind, status=reply.status, size=descriptor.size, hashed=mode == "digest")
            if verdict is not None:
                node.problem, node.detail, node.said = verdict[0], verdict[1], reply.said
            self.nodes[key] = node

        return check

    async def _held(self, key: Key) -> bool:
        """Whether the object may be asked for: anywhere, unless this is a cache that does not hold it."""
        return self.policy.pull_through is None or (await self.holdings()).serves(key)


#: Why a server_error stays an error of the run when the registry was never asked about the rest.
_NOT_ASKED = "the run ended before the registry could be asked whether it answers the rest: not judged"


def _server_error(reply: Reply) -> bool:
    return reply.status is not None and reply.status >= 500


def _hint(reply: Reply) -> Digest | None:
    if reply.status is None or reply.status >= 400 or not reply.header_digest:
        return None
    try:
        return Digest.parse(reply.header_digest)
    except DigestError:
        return None
