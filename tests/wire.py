"""Small HTTP servers on real loopback sockets, for wire behaviour a real registry:2 cannot be made to
show (other registries' redirects, CDNs, rate limits; REGISTRY-QUIRKS.md section 8)."""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextlib.contextmanager
def serve(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve ``handler`` on a loopback port of the kernel's choosing (over TLS with ``tls``, a server
    context); yields ``http(s)://127.0.0.1:PORT``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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
