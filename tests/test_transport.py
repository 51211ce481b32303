"""The transport under httpx, on real sockets: the trimmed path for bodyless GET/HEAD and the general
one for anything with a body."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from regprobe.transport import RegistryTransport, StatelessClient

from .registry import Registry, sha256


def _client(url: str) -> StatelessClient:
    limits = httpx.Limits(max_connections=4)
    return StatelessClient(base_url=url, transport=RegistryTransport(False, limits), timeout=5)


@pytest.fixture
def echo() -> Iterator[str]:
    """A server that answers any GET with the request body it received."""

    class Echo(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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
