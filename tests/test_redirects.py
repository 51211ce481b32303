"""Blob redirects of the registries that cannot run here, replayed over real sockets through the real
client and transport (REGISTRY-QUIRKS.md section 4 and fixtures D3-D15). Each test says whether the
behaviour it replays is VERIFIED (read in the server's source or seen on a real server) or REPORTED.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from regprobe.auth import RegistryAuth
from regprobe.client import ClientSettings, RegistryClient, Reply, RetryPolicy
from regprobe.digest import Digest
from regprobe.errors import AuthError, RedirectError
from regprobe.judge import blob_reply
from regprobe.manifest import Descriptor

from .util import wait_for
from .wire import Quiet, serve

FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01)
BLOB = Digest("sha256", "b" * 64)
SIZE = 10
Seen = list[tuple[str, str, dict[str, str]]]  # method, path, headers (lower-case names)


async def _no_sleep(_: float) -> None:
    return None


def fetch(
    url: str, mode: str = "range", size: int = SIZE, verify: ssl.SSLContext | bool = False, **settings: Any
) -> tuple[Reply, RegistryClient]:
    async def go() -> tuple[Reply, RegistryClient]:
        client = RegistryClient(
            ClientSettings(url=url, timeout=2, retry=FAST, verify=verify, **settings), sleep=_no_sleep
        )
        async with client:
            return await client.blob("app", BLOB, mode, size), client  # type: ignore[arg-type]

    return asyncio.run(go())


def recording(seen: Seen, respond: Any) -> type[Quiet]:
    class Handler(Quiet):
        def get(self) -> None:
            seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            respond(self)

    return Handler


def storage_signed_per_method(seen: Seen) -> type[Quiet]:
    """Object storage whose URLs are signed for one method (S3's presigned HEAD vs GET): the other gets
    403 SignatureDoesNotMatch (D8). GET with Range: 206; HEAD: 200."""

    def respond(h: Quiet) -> None:
        if f"signed-for={h.command}" not in h.path:
            return h.answer(
                403, {"Content-Type": "application/xml"}, b"<Error><Code>SignatureDoesNotMatch</Code></Error>"
            )
        if h.command == "HEAD":
            return h.answer(200, {"Content-Length": str(SIZE)})
        h.answer(206, {"Content-Range": f"bytes 0-0/{SIZE}"}, b"x")

    return recording(seen, respond)


def redirecting(seen: Seen, status: int, location: Any) -> type[Quiet]:
    """A registry answering every blob request with ``status`` to ``location(handler)``."""
    return recording(seen, lambda h: h.answer(status, {"Location": location(h)}))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize(("mode", "method"), [("range", "GET"), ("head", "HEAD")])
def test_every_redirect_is_followed_with_its_method_and_range(status: int, mode: str, method: str) -> None:
    """VERIFIED: distribution answers 307 for GET and HEAD, presigning each for its own method (D8);
    Quay answers 302 (Flask's default; D3). REPORTED: GAR 302. A HEAD that became a GET would be refused
    by S3; a Range left behind would download whole layers."""
    at_storage: Seen = []
    at_registry: Seen = []
    with serve(storage_signed_per_method(at_storage)) as storage:
        location = lambda h: f"{storage}/bucket/key?signed-for={h.command}&X-Amz-Signature=s"  # noqa: E731
        with serve(redirecting(at_registry, status, location)) as url:
            reply, _ = fetch(url, mode)
    assert reply.ok and reply.status == (206 if method == "GET" else 200)
    assert blob_reply(reply, Descriptor("x", BLOB, SIZE), mode) is None  # type: ignore[arg-type]
    [(sent, _, headers)] = at_storage
    last = f"bytes={SIZE - 1}-{SIZE - 1}"
    assert (sent, headers.get("range")) == (method, last if method == "GET" else None)


def test_relative_location_is_resolved_against_the_registry_and_keeps_its_credentials() -> None:
    """REPORTED (ahmetb/serverless-registry-proxy#8): GAR answers 302 with a relative Location on its own
    host, ``/artifacts-downloads/.../downloads/<signature of ~1000 characters>`` (D9). Same origin, so the
    credentials may go along (GAR does not need them, but nothing else does either)."""
    signature = "AbCd" * 250
    seen: Seen = []

    def respond(h: Quiet) -> None:
        if h.headers.get("Authorization") is None:
            return h.answer(401, {"WWW-Authenticate": 'Basic realm="gar"'})
        if h.path.startswith("/v2/"):
            return h.answer(
                302, {"Location": f"/artifacts-downloads/namespaces/p/repositories/r/downloads/{signature}"}
            )
        h.answer(206, {"Content-Range": f"bytes 0-0/{SIZE}"}, b"x")

    with serve(recording(seen, respond)) as url:
        reply, _ = fetch(url, auth=RegistryAuth("ci", "secret"))
    assert (reply.status, reply.received, reply.answered_by) == (206, 1, None)
    assert [path.split("/downloads/")[-1] for _, path, _ in seen][-1] == signature
    assert seen[-1][2]["authorization"].startswith("Basic ")
    assert signature not in repr(reply)


@pytest.mark.parametrize("status", [401, 403])
def test_storage_refusing_the_signed_url_is_not_about_our_credentials(status: int) -> None:
    """D8: object storage refusing a URL the registry signed (expired, signed for another method, a
    clock off, a bucket policy). Our credentials never went there: the error must not send the operator
    to check them, and it is no finding."""
    at_storage: Seen = []

    def respond(h: Quiet) -> None:
        at_storage.append((h.command, h.path, {}))
        h.answer(status, {"Content-Type": "application/xml"}, b"<Error><Code>AccessDenied</Code></Error>")

    with serve(recording([], respond)) as storage:
        location = lambda h: f"{storage}/bucket/key?X-Amz-Signature=s"  # noqa: E731
        refused = pytest.raises(AuthError, match="the storage host refused the registry's signed URL")
        with serve(redirecting([], 307, location)) as url, refused as error:
            fetch(url, auth=RegistryAuth("ci", "secret"))
    assert "credentials" not in str(error.value) and len(at_storage) == 1


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for 127.0.0.1."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_https_to_http_downgrade_is_refused(tls: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    """D10, as regclient's redirect policy (VERIFIED in regclient's source): the signed URL and the data
    would cross the network in the clear. Refused before anything is sent there, and reported as an error
    of the run - never a finding, nothing was learnt about the blob."""
    at_storage: Seen = []
    at_registry: Seen = []
    with serve(storage_signed_per_method(at_storage)) as storage:
        location = lambda h: f"{storage}/bucket/key?signed-for=GET"  # noqa: E731
        with (
            serve(redirecting(at_registry, 307, location), tls=tls[0]) as url,
            pytest.raises(RedirectError, match="https to http downgrade") as refused,
        ):
            fetch(url, verify=tls[1])
    assert at_storage == [] and len(at_registry) == 1  # refused, and not retried
    assert f"redirect to {storage} not followed" in str(refused.value)


@pytest.mark.parametrize(
    ("registry_host", "target"),
    [
        ("127.0.0.1", "http://169.254.169.254/latest/meta-data/"),  # the cloud metadata service: never
        ("localhost", "http://10.0.0.7/internal"),  # a private address the registry does not live on
        ("localhost", "http://[fe80::1]/x"),
    ],
)
def test_redirect_to_an_internal_address_is_refused(registry_host: str, target: str) -> None:
    """D11: the SSRF guard the token realm has (go-containerregistry's validateRealmURL, VERIFIED), for
    redirects too: regprobe runs inside the cluster, with reach the registry's users may not have."""
    seen: Seen = []
    with (
        serve(redirecting(seen, 307, lambda h: target)) as url,
        pytest.raises(RedirectError, match="address the registry does not live on"),
    ):
        fetch(url.replace("127.0.0.1", registry_host))
    assert len(seen) == 1


def test_redirect_among_loopback_hosts_is_allowed_for_a_loopback_registry() -> None:
    """The other side of D11: a registry on a private address may send us to storage on one (a lab's
    10.x registry and its 10.x MinIO; here, loopback - as the real S3 tests do)."""
    at_storage: Seen = []
    with (
        serve(storage_signed_per_method(at_storage)) as storage,
        serve(redirecting([], 307, lambda h: f"{storage}/k?signed-for=GET")) as url,
    ):
        reply, _ = fetch(url)
    assert reply.ok and len(at_storage) == 1


def test_redirect_loop_stops_at_the_first_repeat_with_a_clear_error() -> None:
    """D12: blob -> A -> B -> A. Stopped when A comes round again, not retried: a loop is no outage that
    passes. An error of the run (which blob, which host), never a finding."""
    seen: Seen = []
    hops = {"a": "/b", "b": "/a"}
    with (
        serve(redirecting(seen, 307, lambda h: hops.get(h.path.strip("/"), "/a"))) as url,
        pytest.raises(RedirectError, match=r"leads back to a URL already visited \(a loop\)") as refused,
    ):
        fetch(url)
    assert [path for _, path, _ in seen] == [f"/v2/app/blobs/{BLOB}", "/a", "/b"]
    assert str(refused.value).startswith(f"GET {url}/v2/app/blobs/{BLOB}: redirect to {url} not followed")


def test_redirect_chain_is_bounded() -> None:
    """D12's other half: a chain that never repeats ends after 10 hops (Go's limit, which docker pulls
    with)."""
    seen: Seen = []
    with (
        serve(redirecting(seen, 302, lambda h: f"/hop/{len(seen)}")) as url,
        pytest.raises(RedirectError, match="more than 10 redirects"),
    ):
        fetch(url)
    assert len(seen) == 11


class _Firehose:
    """A server that ignores Range and streams a 100 MiB blob slowly (D5: Quay on local storage, VERIFIED
    in its source, and any proxy that drops Range), noting how much it wrote and when the client went."""

    size = 100 << 20

    def __init__(self) -> None:
        self.written = 0
        self.closed = threading.Event()

    def handler(self) -> type[Quiet]:
        hose = self

        class Handler(Quiet):
            def get(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(hose.size))
                self.end_headers()
                try:
                    while hose.written < hose.size:
                        self.wfile.write(b"z" * 100)
                        self.wfile.flush()
                        hose.written += 100
                        time.sleep(0.01)
                except OSError:
                    hose.closed.set()

        return Handler


def test_range_ignored_reads_a_byte_and_closes_the_connection() -> None:
    """200 and the whole blob to ``Range: bytes=0-0``: the blob is served, which is all a range check
    asks. What arrived first is read, then the connection is closed - not drained of 100 MiB, and not
    waited on until 64 KiB have trickled in."""
    hose = _Firehose()
    with serve(hose.handler()) as url:
        reply, client = fetch(url, size=_Firehose.size)
        wait_for(hose.closed.is_set, "the server to see the connection closed", timeout=20, interval=0.05)
    assert (reply.status, reply.content_length, reply.failed, reply.timeout) == (200, hose.size, False, False)
    assert 1 <= reply.received < 64 << 10
    assert hose.written < 1 << 20
    assert blob_reply(reply, Descriptor("x", BLOB, hose.size), "range") is None
    assert client.requests["ok"] == 1


@contextlib.contextmanager
def resetting_host() -> Iterator[tuple[str, list[int]]]:
    """A host that accepts connections and resets them (RST): a CDN edge that is down (D15)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted: list[int] = []

    def run() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = sock.accept()
                accepted.append(1)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

    threading.Thread(target=run, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", accepted
    finally:
        sock.close()


def test_cdn_host_that_resets_is_retried_through_the_registry() -> None:
    """REPORTED (since ~2026-05): Docker Hub sends blob GETs to two CDNs, chosen per request (D15). A
    dead edge is retried by asking the registry again - a fresh redirect, maybe to the other CDN - never
    by hammering the dead URL."""
    at_storage: Seen = []
    at_registry: Seen = []
    with resetting_host() as (dead, accepted), serve(storage_signed_per_method(at_storage)) as live:
        targets = [f"{dead}/blob?verify=1-sig", f"{live}/blob?signed-for=GET&verify=2-sig"]
        location = lambda h: targets[(len(at_registry) - 1) % 2]  # noqa: E731
        with serve(redirecting(at_registry, 307, location)) as url:
            reply, client = fetch(url)
    assert reply.ok and reply.answered_by == live
    # aiohttp itself resends an idempotent request once on a reset connection (RFC 9112 9.3.1): two
    # connections to the dead edge at most, then the registry is asked again.
    assert (len(at_registry), len(at_storage)) == (2, 1) and 1 <= len(accepted) <= 2
    assert client.requests["retried"] == 1


def test_cdn_host_that_stays_down_is_named_in_the_verdict() -> None:
    """Which host failed matters to whoever is paged: the registry answered, its CDN did not."""
    at_registry: Seen = []
    with (
        resetting_host() as (dead, _),
        serve(redirecting(at_registry, 307, lambda h: f"{dead}/blob?verify=1-sig")) as url,
    ):
        reply, _ = fetch(url)
    assert reply.failed and len(at_registry) == FAST.attempts
    assert f"GET failed (at {dead}, where the registry redirected): " in reply.describe()
    assert "sig" not in reply.describe()
