"""A registry that misbehaves on purpose, on a real socket: hangs, trickles, floods, lies.

Paths it serves (everything else is a normal tiny registry with one image `evil/app:v1`):
behaviours are chosen per test by setting ``HostileRegistry.mode``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from .registry import OCI_INDEX, OCI_MANIFEST
from .registry import sha256 as digest
from .wire import LoopbackServer, Quiet

SERVER_ERROR = (
    b'{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"s3aws: RequestError: send request failed"}]}'
)
#: A 500 whose body tries to write into terminals and reports: escapes, line breaks, a signed URL, length.
HOSTILE_500 = json.dumps(
    {
        "errors": [
            {
                "code": "UNKNOWN\n! fake line",
                "message": "\u001b[2J\u001b[32mOK\u001b[0m\nregistry OK\u202e" + "x" * 5000,
                "detail": {"url": "https://bucket.s3.example/key?X-Amz-Signature=SECRET&X-Amz-Credential=AKIA"},
            }
        ]
    }
).encode()
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>...</form></body></html>"


class HostileRegistry:
    def __init__(self) -> None:
        self.mode = "healthy"
        self.tags = ["v1"]
        #: Seconds between the bytes of a trickled blob (mode "trickle-blob").
        self.trickle_interval = 0.1
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        #: Where blob GETs and HEADs are sent instead (digest -> Location; None: served here), as a
        #: registry on object storage or behind a CDN does.
        self.blob_redirect: Callable[[str], str | None] | None = None
        self.redirect_status = 307
        #: Mode "hub": Docker Hub's pull budget, announced on every answer as `ratelimit-remaining`
        #: and spent by manifest GETs (HEAD is free); at 0 a manifest GET is refused with 429.
        self.pulls_left = 100
        self.refused_pulls = 0
        #: Mode "outage": set by the first manifest request; from then on everything answers 500.
        self.down = False
        self.layer = b"layer-bytes" * 100
        self.config = b'{"architecture": "amd64", "os": "linux"}'
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": digest(self.config),
                    "size": len(self.config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": digest(self.layer),
                        "size": len(self.layer),
                    }
                ],
            }
        ).encode()
        self._server = LoopbackServer(self._handler())
        self.port, self.url = self._server.port, self._server.url
        self._stop = threading.Event()

    def start(self) -> HostileRegistry:
        self._server.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.stop()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        reg = self

        class Handler(Quiet):
            def get(self) -> None:  # GET and HEAD (Quiet)
                reg.requests.append((self.command, self.path, dict(self.headers)))
                path = self.path.split("?", 1)[0]
                if reg.mode == "outage" and (reg.down or "/manifests/" in path):
                    # Storage lost after the listings were read: distribution answers every request that
                    # touches it with 500 UNKNOWN and the driver's error as the detail.
                    reg.down = True
                    return self.send(500, SERVER_ERROR)
                if reg.mode == "hostile-500" and "/manifests/" in path:
                    return self.send(500, HOSTILE_500)
                if reg.mode == "html-portal":  # a login portal (or a wrong URL) answering every path
                    return self.send(200, LOGIN_PAGE, "text/html; charset=utf-8")
                if path == "/v2/":
                    return self.send(200, b"{}")
                if path == "/v2/_catalog":
                    return self.send(200, json.dumps({"repositories": ["evil/app"]}).encode())
                if path == "/v2/evil/app/tags/list":
                    return self.send(200, json.dumps({"name": "evil/app", "tags": reg.tags}).encode())
                if path.startswith("/v2/evil/app/manifests/"):
                    return self.manifest_route()
                if path.startswith("/v2/evil/app/blobs/"):
                    return self.blob_route(path.rsplit("/", 1)[1])
                return self.send(404, b'{"errors": [{"code": "NAME_UNKNOWN"}]}')

            def manifest_route(self) -> None:
                mode = reg.mode
                if mode == "abuse-429":  # Docker Hub's abuse limit: plain text, no Retry-After (E6)
                    return self.send(429, b"Too Many Requests", "text/plain")
                if mode == "hub" and self.command == "GET":
                    if reg.pulls_left <= 0:
                        reg.refused_pulls += 1
                        # Message [V] docker/docs pulls.md; JSON shape [I] (REGISTRY-QUIRKS.md E5).
                        return self.send(
                            429,
                            b'{"errors": [{"code": "TOOMANYREQUESTS", "message": "You have reached your pull rate'
                            b" limit. You may increase the limit by authenticating and upgrading:"
                            b' https://www.docker.com/increase-rate-limit"}]}',
                        )
                    reg.pulls_left -= 1
                if mode == "hang-manifest":
                    reg._stop.wait(60)  # accept, then say nothing
                    return
                if mode == "trickle-manifest":
                    self.send_response(200)
                    self.send_header("Content-Type", OCI_MANIFEST)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    for _ in range(600):  # one byte per 0.1 s: never idle long enough for a read timeout
                        if reg._stop.is_set():
                            return
                        self.wfile.write(b" ")
                        self.wfile.flush()
                        time.sleep(0.1)
                    return
                if mode == "huge-manifest":
                    # 64 MiB, chunked, no Content-Length to refuse it by.
                    self.send_response(200)
                    self.send_header("Content-Type", OCI_MANIFEST)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b" " * (1 << 20)
                    try:
                        for _ in range(64):
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.write(b"0\r\n\r\n")
                    except OSError:
                        pass  # the client stopped reading: that is the point
                    return
                bodies = {
                    "not-json": b"<html>502 Bad Gateway</html>",
                    "wrong-types": b'{"schemaVersion": 2, "mediaType": "'
                    + OCI_MANIFEST.encode()
                    + b'", "config": "x", "layers": 7}',
                    "schema1": b'{"schemaVersion": 1, "name": "evil/app", "tag": "v1", "fsLayers": []}',
                    "unknown-type": b'{"schemaVersion": 2, "mediaType": "application/x-evil"}',
                    "bad-digest": reg.manifest.replace(digest(reg.layer).encode(), b"sha256:../../../../etc/passwd"),
                    "no-content-type": reg.manifest,
                }
                if mode == "html-manifest":  # a proxy's login page in front of the manifests only
                    return self.send(200, LOGIN_PAGE, "text/html")
                if mode == "loop-index":
                    # An index naming a child that, fetched, is the same index again: followed naively,
                    # a walk never ends. The child's body cannot hash to the child's digest.
                    child = {"mediaType": OCI_INDEX, "digest": "sha256:" + "e" * 64, "size": 10}
                    return self.send(
                        200,
                        json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [child]}).encode(),
                        OCI_INDEX,
                    )
                body = bodies.get(mode, reg.manifest)
                content_type = None if mode == "no-content-type" else OCI_MANIFEST
                if mode == "lying-digest" and "sha256:" in self.path:
                    body = reg.manifest + b" "
                headers = {}
                if mode == "wrong-header-digest":
                    # Registries get Docker-Content-Digest wrong (ggcr: "so many registries implement this
                    # incorrectly"): here it names the config blob, not the manifest.
                    headers["Docker-Content-Digest"] = digest(reg.config)
                self.send(200, body, content_type, headers)

            def blob_route(self, ref: str) -> None:
                location = reg.blob_redirect(ref) if reg.blob_redirect else None
                if location is not None:
                    return self.send(reg.redirect_status, b"", None, {"Location": location})
                if reg.mode == "hang-blob":
                    reg._stop.wait(60)
                    return
                if reg.mode == "denied-config" and ref == digest(reg.config):
                    return self.send(403, b'{"errors": [{"code": "DENIED", "message": "requested access denied"}]}')
                if reg.mode == "denied-config" and ref == digest(reg.layer):
                    return self.send(404, b'{"errors": [{"code": "BLOB_UNKNOWN"}]}')
                if reg.mode == "odd-error-body" and ref == digest(reg.layer):
                    return self.send(404, b'{"errors": 5}')
                data = {digest(reg.layer): reg.layer, digest(reg.config): reg.config}.get(ref)
                if data is None:
                    return self.send(404, b'{"errors": [{"code": "BLOB_UNKNOWN"}]}')
                if reg.mode in ("trickle-blob", "stall-blob") and ref == digest(reg.layer):
                    return self.slow_blob(data)
                if reg.mode == "range-ignored-short" and ref == digest(reg.layer):
                    data = data[:-10]  # a complete answer of the wrong length: Range ignored, 200
                self.send(200, data, "application/octet-stream")

            def slow_blob(self, data: bytes) -> None:
                """trickle-blob: the whole blob, 100 bytes at a time, never idle long; stall-blob: half
                of it, then silence with the connection open."""
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                with contextlib.suppress(OSError):
                    if reg.mode == "stall-blob":
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        reg._stop.wait(60)
                        return
                    for start in range(0, len(data), 100):
                        if reg._stop.is_set():
                            return
                        self.wfile.write(data[start : start + 100])
                        self.wfile.flush()
                        time.sleep(reg.trickle_interval)

            def send(
                self,
                status: int,
                body: bytes,
                content_type: str | None = "application/json",
                headers: dict[str, str] | None = None,
            ) -> None:
                extra = dict(headers or {})
                if content_type:
                    extra["Content-Type"] = content_type
                extra["Docker-Distribution-API-Version"] = "registry/2.0"
                if reg.mode == "hub":  # [V] docker/docs pulls.md: on HEAD and GET alike
                    extra["ratelimit-limit"] = "100;w=21600"
                    extra["ratelimit-remaining"] = f"{max(reg.pulls_left, 0)};w=21600"
                    extra["docker-ratelimit-source"] = "192.0.2.1"
                if reg.mode == "set-cookie":
                    extra["Set-Cookie"] = "sticky=node-1; Path=/"
                self.answer(status, extra, body)

        return Handler


def port_that_accepts_and_never_answers() -> tuple[socket.socket, int]:
    """A listening socket nobody serves: connects succeed, then silence."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, int(sock.getsockname()[1])
