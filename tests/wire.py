"""Small HTTP servers on real loopback sockets, for wire behaviour a real registry:2 cannot be made to
show (other registries' redirects, CDNs, rate limits; REGISTRY-QUIRKS.md section 8)."""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackServer:
    """``handler`` served on a loopback port of the kernel's choosing, bound at construction (no window
    for another process to take a port picked in advance), in a thread of its own once started."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self.port = int(self._server.server_address[1])
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        # A short poll: shutdown() waits for it, once per server.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def serve(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve ``handler`` (over TLS with ``tls``, a server context) while the block runs; yields
    ``http(s)://127.0.0.1:PORT``."""
    server = LoopbackServer(handler, tls)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


class Quiet(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log on stderr, and one call to answer. GET and HEAD both go to
    :meth:`get` (``self.command`` tells them apart); :meth:`answer` sends no body to a HEAD."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.get()

    def do_HEAD(self) -> None:
        self.get()

    def get(self) -> None:
        self.answer(404, {})

    def answer(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        # A HEAD's Content-Length is the body it would have had: the caller's, when it gives one.
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(OSError):  # the client may hang up early (one byte read): allowed
                self.wfile.write(body)
