"""The transport under httpx, against the real registry: the trimmed path for bodyless GET/HEAD and the
general one for anything with a body."""

from __future__ import annotations

import asyncio
import hashlib

import httpx

from regprobe.transport import RegistryTransport, StatelessClient

from .registry import Registry


def _client(registry: Registry) -> StatelessClient:
    limits = httpx.Limits(max_connections=4)
    return StatelessClient(base_url=registry.url, transport=RegistryTransport(False, limits), timeout=10)


def test_requests_with_a_body_take_the_general_path_and_arrive_whole(registry: Registry) -> None:
    data = b"uploaded through the general path" * 100
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def upload() -> tuple[int, int, str | None]:
        async with _client(registry) as http:
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
        async with _client(registry) as http:
            ranged = await http.get(f"/v2/transport/head/blobs/{digest}", headers={"Range": "bytes=1-2"})
            head = await http.head(f"/v2/transport/head/blobs/{digest}")
            return ranged.status_code, ranged.content, head.status_code, head.headers.get("content-length")

    assert asyncio.run(fetch()) == (206, b"an", 200, str(len(data)))
