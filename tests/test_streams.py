"""Bodies the client stops reading are closed down to their source: no async generator is left suspended
for the event loop's finaliser, which closes each in a task of its own (issue 22: four per one-byte range
check, 24,000 per 2,000-tag walk). Counted through ``sys.set_asyncgen_hooks``, as the loop sees them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, ClassVar

import pytest

from regprobe.client import ClientSettings, RegistryClient, RetryPolicy
from regprobe.digest import Digest
from regprobe.walk import RepositoryWalk, WalkPolicy

from .registry import Registry
from .wire import Quiet, serve

BLOB = Digest("sha256", "b" * 64)


def finalised(work: Callable[[], Awaitable[Any]]) -> list[str]:
    """Run ``work`` in an event loop; the async generators handed to its finaliser meanwhile, by name."""
    names: list[str] = []

    async def counting() -> None:
        firstiter, finalizer = sys.get_asyncgen_hooks()
        assert finalizer is not None

        def count(agen: AsyncGenerator[Any, Any]) -> None:
            names.append(getattr(agen, "__qualname__", type(agen).__name__))
            finalizer(agen)

        sys.set_asyncgen_hooks(firstiter, count)
        try:
            await work()
            gc.collect()  # a generator caught in a reference cycle is finalised here, not later
        finally:
            sys.set_asyncgen_hooks(firstiter, finalizer)

    asyncio.run(counting())
    return names


@pytest.mark.each_registry
def test_a_walk_with_range_checks_on_the_real_registry_leaves_nothing_to_the_finaliser(
    registry: Registry, ns: str
) -> None:
    """Manifests read whole and blobs checked by their last byte (206, one byte) end their bodies."""
    repo = f"{ns}/app"
    images = [registry.push_image(repo, f"v{i}") for i in range(3)]
    blobs = [(b, registry.blob_size(b)) for image in images for b in (image.config, *image.layers)]

    async def walk() -> None:
        async with RegistryClient(ClientSettings(url=registry.url)) as client:
            tags = RepositoryWalk(client, repo, WalkPolicy(blob_check="range"))
            for i in range(3):
                await tags.walk_tag(f"v{i}")
            assert tags.findings() == [] and tags.walked == 3
            for digest, size in blobs:
                reply = await client.blob(repo, Digest.parse(digest), "range", size)
                assert (reply.status, reply.received) == (206, 1)

    assert finalised(walk) == []


class _Abandoned(Quiet):
    """Bodies a client must stop reading before their end: a blob whose Range is ignored (200, the whole
    1 MiB), an error body over the 64 KiB read of it, a manifest streamed (chunked) past its bound."""

    def handle(self) -> None:
        with contextlib.suppress(ConnectionResetError):  # the client hangs up early: what is tested
            super().handle()

    def get(self) -> None:
        if self.path.startswith("/v2/errors/"):
            self.answer(404, {"Content-Type": "application/json"}, b'{"errors": []}' + b" " * (100 << 10))
        elif "/blobs/" in self.path:
            self.answer(200, {"Content-Type": "application/octet-stream"}, os.urandom(1 << 20))
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"{" * 4096
            with contextlib.suppress(OSError):  # the client hangs up past its bound: allowed
                for _ in range(64):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_bodies_abandoned_early_leave_nothing_to_the_finaliser(monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    """On regprobe's transport and on httpx's own (bench/: REGPROBE_HTTP_TRANSPORT=httpx)."""
    monkeypatch.setenv("REGPROBE_HTTP_TRANSPORT", transport)
    with serve(_Abandoned) as url:

        async def read() -> None:
            settings = ClientSettings(url=url, retry=RetryPolicy(attempts=1))
            async with RegistryClient(settings) as client:
                blob = await client.blob("app", BLOB, "range", 1 << 20)
                assert (blob.status, blob.ok) == (200, True) and 1 <= blob.received < 1 << 20
                error = await client.blob("errors", BLOB, "range", 10)
                assert (error.status, len(error.error_body)) == (404, 4096)
                manifest = await client.manifest("app", "v1", max_bytes=10_000)
                assert manifest.over_limit and manifest.received < 64 * 4096

        assert finalised(read) == []


class _Ranged(Quiet):
    """registry:2's answer to a last-byte Range: 206, one byte. Counts the connections it was asked on."""

    connections: ClassVar[list[int]] = []

    def setup(self) -> None:
        super().setup()
        self.connections.append(id(self))

    def get(self) -> None:
        self.answer(206, {"Content-Range": "bytes 9-9/10", "Content-Type": "application/octet-stream"}, b"z")


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_range_checks_end_their_bodies_and_keep_the_connection(monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    """A one-byte answer is read to its end rather than cut off, so the connection goes back to the pool:
    five checks, one connection (httpx's own pool closes a connection whose body was not read to the end)."""
    monkeypatch.setenv("REGPROBE_HTTP_TRANSPORT", transport)
    _Ranged.connections = []
    with serve(_Ranged) as url:

        async def check() -> None:
            async with RegistryClient(ClientSettings(url=url, concurrency=1)) as client:
                for _ in range(5):
                    reply = await client.blob("app", BLOB, "range", 10)
                    assert (reply.status, reply.received, reply.range_total) == (206, 1, 10)

        assert finalised(check) == []
    assert len(_Ranged.connections) == 1
