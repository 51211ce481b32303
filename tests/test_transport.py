"""The transport under httpx, on real sockets: the trimmed path for bodyless GET/HEAD and the general
one for anything with a body."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from regprobe.addresses import Guard
from regprobe.auth import RegistryAuth
from regprobe.client import ClientSettings, RegistryClient
from regprobe.digest import Digest
from regprobe.transport import RegistryTransport, StatelessClient

from .registry import Registry, sha256
from .wire import Quiet, serve


def _client(url: str) -> StatelessClient:
    limits = httpx.Limits(max_connections=4)
    transport = RegistryTransport(False, limits, Guard(httpx.URL(url).host))
    return StatelessClient(base_url=url, transport=transport, timeout=5)


@pytest.fixture
def echo() -> Iterator[str]:
    """A server that answers any GET with the request body it received."""

    class Echo(Quiet):
        def get(self) -> None:
            self.answer(200, {}, self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    with serve(Echo) as url:
        yield url


def test_a_get_with_a_body_sends_the_body(echo: str) -> None:
    # The trimmed path sends no body: a GET that has one must take the general path, or the server
    # waits for bytes that never come.
    async def get() -> tuple[int, bytes]:
        async with _client(echo) as http:
            response = await http.request("GET", "/echo", content=b"query body")
            return response.status_code, response.content

    assert asyncio.run(get()) == (200, b"query body")


def test_uploads_take_the_general_path_and_arrive_whole(registry: Registry) -> None:
    data = b"uploaded through the general path" * 100
    digest = sha256(data)

    async def upload() -> tuple[int, int, str | None]:
        async with _client(registry.url) as http:
            started = await http.post("/v2/transport/test/blobs/uploads/")
            # The registry checks the body against the digest before it answers 201.
            location = httpx.URL(started.headers["location"]).copy_merge_params({"digest": digest})
            put = await http.put(location, content=data)
            got = await http.get(f"/v2/transport/test/blobs/{digest}")
            return put.status_code, len(got.content), got.headers.get("docker-content-digest")

    assert asyncio.run(upload()) == (201, len(data), digest)


def test_get_and_head_reach_the_registry_with_their_headers(registry: Registry) -> None:
    data = b"ranged"
    digest = registry.push_blob("transport/head", data)

    async def fetch() -> tuple[int, bytes, int, str | None]:
        async with _client(registry.url) as http:
            ranged = await http.get(f"/v2/transport/head/blobs/{digest}", headers={"Range": "bytes=1-2"})
            head = await http.head(f"/v2/transport/head/blobs/{digest}")
            return ranged.status_code, ranged.content, head.status_code, head.headers.get("content-length")

    assert asyncio.run(fetch()) == (206, b"an", 200, str(len(data)))


def test_redirect_to_storage_reaches_it_without_the_registry_credentials() -> None:
    """A registry on S3 or GCS redirects blob GETs to a presigned URL on another host: the storage host
    must get the request without the registry's credentials, on real sockets through the real transport
    (httpx follows the redirect and drops Authorization across origins)."""
    at_registry: list[str | None] = []  # Authorization per request
    at_storage: list[tuple[str | None, ...]] = []  # Authorization, Transfer-Encoding, Content-Length

    class Storage(Quiet):
        def get(self) -> None:
            at_storage.append(
                tuple(self.headers.get(h) for h in ("Authorization", "Transfer-Encoding", "Content-Length"))
            )
            self.answer(206, {"Content-Range": "bytes 0-0/10"}, b"x")

    with serve(Storage) as storage:

        class Registry(Quiet):
            def get(self) -> None:
                auth = self.headers.get("Authorization")
                at_registry.append(auth)
                if auth is None:
                    self.answer(401, {"WWW-Authenticate": 'Basic realm="registry"'})
                else:
                    self.answer(307, {"Location": f"{storage}/blob?X-Amz-Signature=secret"})

        with serve(Registry) as url:

            async def fetch() -> tuple[int | None, str]:
                settings = ClientSettings(url=url, timeout=5, auth=RegistryAuth("ci", "hunter2"))
                async with RegistryClient(settings) as client:
                    reply = await client.blob("app", Digest("sha256", "b" * 64), "range", 10)
                    return reply.status, reply.url

            status, reply_url = asyncio.run(fetch())

    assert status == 206
    assert at_registry[0] is None and (at_registry[1] or "").startswith("Basic ")
    # No credentials, and no body framing on the followed GET: S3 answers a chunked one with 501.
    assert at_storage == [(None, None, None)]
    assert "secret" not in reply_url  # presigned queries never reach output
