"""Walks one repository: tag -> manifest -> (index -> children) -> config and layers.

Each object of the repository is requested at most once per run, however many tags share it: the
first visitor fetches, later ones wait for its result. The walk only records what it saw in a graph;
:func:`regprobe.judge.findings` turns the graph into findings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from . import judge, manifest
from .cache import ManifestCache
from .client import BlobMode, RegistryClient, Reply
from .digest import Digest
from .errors import DigestError, ManifestError
from .judge import Key, Node, TagRoot
from .manifest import Descriptor
from .model import Finding, Kind, Problem


@dataclass(frozen=True, slots=True)
class WalkPolicy:
    blob_check: BlobMode = "range"
    #: False for pull-through caches: a child the cache never fetched is normal there.
    index_children: bool = True
    max_manifest_bytes: int = 4 << 20
    #: Indexes inside indexes; real images use one level, a lying registry could use thousands.
    max_depth: int = 8


class RepositoryWalk:
    def __init__(
        self, client: RegistryClient, repository: str, policy: WalkPolicy, cache: ManifestCache | None = None
    ) -> None:
        self.client = client
        self.cache = cache
        self.repository = repository
        self.policy = policy
        self.nodes: dict[Key, Node] = {}
        self.roots: dict[str, TagRoot] = {}
        #: Tags whose walk finished; a tag cut off by the deadline is not counted as checked.
        self.walked = 0
        self._pending: dict[Key, asyncio.Future[None]] = {}

    def findings(self) -> list[Finding]:
        return judge.findings(self.repository, self.roots, self.nodes)

    async def walk_tag(self, tag: str) -> None:
        reply = await self._fetch_tag(tag)
        verdict = judge.manifest_reply(reply, expected=None, pinned=None)
        if verdict is not None or reply.digest is None:
            problem, detail = verdict or (Problem.INVALID, "manifest body could not be read")
            self.roots[tag] = TagRoot(None, problem, reply.status, f"tag {tag}: {detail}", _hint(reply))
        else:
            key: Key = ("manifest", reply.digest)
            self.roots[tag] = TagRoot(key)
            await self._once(key, lambda: self._manifest_body(key, reply, depth=0, ancestors=frozenset()))
        self.walked += 1

    async def walk_digest(self, label: str, digest: Digest) -> None:
        """Walk a manifest pinned by digest (``check repo@sha256:...``), reported under ``label``."""
        key: Key = ("manifest", digest)
        self.roots[label] = TagRoot(key)
        await self._once(key, lambda: self._manifest(key, None, depth=0, ancestors=frozenset()))
        self.walked += 1

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

    async def _fetch_tag(self, tag: str) -> Reply:
        """The tag's manifest: from the cache after a HEAD when we hold its digest, else one GET."""
        if self.cache is not None:
            head = await self.client.manifest_head(self.repository, tag)
            if not head.ok:
                return head  # the same verdict a GET would get, without spending a GET
            hint = _hint(head)
            if hint is not None:
                # The header is only a cache key: whatever we use must hash to it.
                body = self.cache.get(hint)
                if body is not None:
                    return _from_cache(head, body, hint)
                reply = await self._get(hint)
                if judge.manifest_reply(reply, expected=None, pinned=hint) is None:
                    return reply
                # Registries get Docker-Content-Digest wrong; the tag itself is the truth.
        reply = await self.client.manifest(self.repository, tag, self.policy.max_manifest_bytes)
        if self.cache is not None and reply.digest is not None and judge.manifest_reply(reply, None, None) is None:
            self.cache.put(reply.digest, reply.body)
        return reply

    async def _fetch_digest(self, digest: Digest) -> Reply:
        """A manifest by digest; with a cache entry, a HEAD proves the registry still serves it."""
        body = self.cache.get(digest) if self.cache is not None else None
        if body is not None:
            head = await self.client.manifest_head(self.repository, str(digest))
            if not head.ok:
                return head
            if head.content_length in (None, len(body)):
                return _from_cache(head, body, digest)
        return await self._get(digest)

    async def _get(self, digest: Digest) -> Reply:
        reply = await self.client.manifest(self.repository, str(digest), self.policy.max_manifest_bytes)
        if self.cache is not None and judge.manifest_reply(reply, None, digest) is None:
            self.cache.put(digest, reply.body)
        return reply

    async def _manifest(self, key: Key, expected: Descriptor | None, depth: int, ancestors: frozenset[Digest]) -> None:
        digest = key[1]
        reply = await self._fetch_digest(digest)
        if reply.status in (404, 410) and expected is not None and not self.policy.index_children:
            self.nodes[key] = Node(Kind.MANIFEST, absent=True, status=reply.status)
            return
        verdict = judge.manifest_reply(reply, expected=expected, pinned=digest)
        if verdict is not None:
            self.nodes[key] = Node(Kind.MANIFEST, verdict[0], reply.status, verdict[1])
            return
        await self._manifest_body(key, reply, depth, ancestors)

    async def _manifest_body(self, key: Key, reply: Reply, depth: int, ancestors: frozenset[Digest]) -> None:
        digest = key[1]
        node = Node(Kind.MANIFEST, status=reply.status)
        self.nodes[key] = node
        try:
            parsed = manifest.parse(reply.body, reply.content_type)
        except ManifestError as exc:
            node.problem, node.detail = Problem.INVALID, str(exc)
            return
        ancestors = ancestors | {digest}
        if isinstance(parsed, manifest.Index):
            if depth >= self.policy.max_depth:
                node.problem, node.detail = Problem.INVALID, f"indexes nested deeper than {self.policy.max_depth}"
                return
            loops = [c for c in parsed.children if c.digest in ancestors]
            if loops:
                node.problem, node.detail = Problem.INVALID, f"index refers back to {loops[0].digest} (a loop)"
                return
            children = [(("manifest", c.digest), c) for c in parsed.children]
            node.children = tuple(k for k, _ in children)
            await asyncio.gather(
                *(self._once(k, self._child_manifest(k, c, depth + 1, ancestors)) for k, c in children)
            )
            return
        blobs = [(parsed.config, Kind.CONFIG)] + [(layer, Kind.LAYER) for layer in parsed.layers if not layer.foreign]
        node.children = tuple(("blob", d.digest) for d, _ in blobs)
        await asyncio.gather(*(self._once(("blob", d.digest), self._blob(d, kind)) for d, kind in blobs))

    def _child_manifest(
        self, key: Key, descriptor: Descriptor, depth: int, ancestors: frozenset[Digest]
    ) -> Callable[[], Awaitable[None]]:
        return lambda: self._manifest(key, descriptor, depth, ancestors)

    def _blob(self, descriptor: Descriptor, kind: Kind) -> Callable[[], Awaitable[None]]:
        async def check() -> None:
            mode = self.policy.blob_check
            reply = await self.client.blob(self.repository, descriptor.digest, mode, descriptor.size)
            verdict = judge.blob_reply(reply, descriptor, mode)
            node = Node(kind, status=reply.status)
            if verdict is not None:
                node.problem, node.detail = verdict
            self.nodes[("blob", descriptor.digest)] = node

        return check


def _from_cache(head: Reply, body: bytes, digest: Digest) -> Reply:
    """A HEAD that found the manifest, completed with the body we already hold."""
    return Reply(head.url, "HEAD", head.status, content_type=head.content_type, body=body, digest=digest)


def _hint(reply: Reply) -> Digest | None:
    if reply.status is None or reply.status >= 400 or not reply.header_digest:
        return None
    try:
        return Digest.parse(reply.header_digest)
    except DigestError:
        return None
