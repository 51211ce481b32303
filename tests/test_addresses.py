"""Where a registry may send regprobe (issue 22): a token realm or redirect target is judged by the
address the connection would really use - an address in any spelling the system's resolver reads, a
name by what it resolves to - over real sockets, from a registry known by a public-looking name."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regprobe.addresses import address
from regprobe.auth import RegistryAuth
from regprobe.client import ClientSettings, RegistryClient, Reply, RetryPolicy
from regprobe.digest import Digest
from regprobe.errors import AuthError, RedirectError

from .wire import Quiet, serve

BLOB = Digest("sha256", "d" * 64)
FAST = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.01)

#: 127.0.0.1 as httpx lets it through and the system's resolver reads it (0177.0.0.1: httpx refuses it).
LOOPBACK = [
    "0x7f.0.0.1",
    "0177.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "127.0.0.1.",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
]
METADATA = ["0xa9.0xfe.0xa9.0xfe", "2852039166", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("[::ffff:169.254.169.254]", "169.254.169.254"),
        ("::ffff:a9fe:a9fe", "169.254.169.254"),
        ("[64:ff9b::a9fe:a9fe]", "169.254.169.254"),
        ("[::1]", "::1"),
        ("0x", None),
        ("registry.example", None),
        ("0x7g.0.0.1", None),
        ("08.0.0.1", None),  # not octal: inet_aton refuses it
        ("256.0.0.1", None),
        ("1.2.3.4.5", None),
        ("1.2.65536", None),
        ("127..1", None),
        ("", None),
    ],
)
def test_address_spellings(host: str, expected: str | None) -> None:
    assert address(host) == (ipaddress.ip_address(expected) if expected else None)


@given(st.text(alphabet="0123456789abcdefxX.", max_size=24))
def test_address_reads_what_inet_aton_reads(text: str) -> None:
    """The system's own reading (glibc's inet_aton, which getaddrinfo uses for numeric hosts) is the
    reference: whatever it reads as an address, the guard reads as the same address."""
    try:
        packed = socket.inet_aton(text)
    except OSError:
        if not text.endswith("."):  # a trailing dot is read as the address, to be safe
            assert address(text) is None
        return
    assert address(text) == ipaddress.IPv4Address(packed)


# --- over real sockets ---------------------------------------------------------------------------------------


@pytest.fixture
def internal() -> Iterator[tuple[int, list[str]]]:
    """A server on this host that a registry must not reach through regprobe: its port and the paths
    asked of it. It answers as the token service and storage a hostile registry would want it to be."""
    seen: list[str] = []

    class Internal(Quiet):
        def get(self) -> None:
            seen.append(self.path)
            if self.path.startswith("/token"):
                return self.answer(200, {"Content-Type": "application/json"}, b'{"token": "t"}')
            self.answer(206, {"Content-Range": "bytes 0-0/10"}, b"x")

    with serve(Internal) as url:
        yield int(url.rsplit(":", 1)[1]), seen


def hostile(kind: str, target: str) -> type[Quiet]:
    """A registry that sends its blob requests to ``target`` (scheme, host and port): a ``redirect``
    (307), or a ``realm`` for its token challenge."""

    class Registry(Quiet):
        def get(self) -> None:
            if kind == "redirect":
                return self.answer(307, {"Location": f"{target}/internal"})
            if self.headers.get("Authorization") != "Bearer t":
                return self.answer(401, {"WWW-Authenticate": f'Bearer realm="{target}/token",service="r"'})
            self.answer(206, {"Content-Range": "bytes 0-0/10"}, b"x")

    return Registry


async def _no_sleep(_: float) -> None:
    return None


def blob(url: str, timeout: float = 5) -> Reply:
    async def go() -> Reply:
        settings = ClientSettings(url=url, timeout=timeout, retry=FAST, auth=RegistryAuth("ci", "secret"))
        async with RegistryClient(settings, sleep=_no_sleep) as client:
            return await client.blob("app", BLOB, "range", 10)

    return asyncio.run(go())


REFUSED = {"redirect": RedirectError, "realm": AuthError}


@pytest.mark.parametrize("kind", ["redirect", "realm"])
@pytest.mark.parametrize("spelling", LOOPBACK)
def test_internal_address_in_any_spelling_is_not_contacted(
    kind: str, spelling: str, internal: tuple[int, list[str]], hosts: dict[str, str]
) -> None:
    """Issue 22 as reproduced: a registry known by a name sent regprobe to ``0x7f.0.0.1:PORT`` - the
    internal server got the token request, and a redirect there was followed (206)."""
    port, seen = internal
    hosts["registry.example"] = "127.0.0.1"
    refused = pytest.raises(REFUSED[kind], match=r"is 127\.0\.0\.1, a loopback address the registry does not live on")
    with serve(hostile(kind, f"http://{spelling}:{port}")) as url, refused:
        blob(url.replace("127.0.0.1", "registry.example"))
    assert seen == []


def test_four_part_octal_is_no_url_to_httpx(internal: tuple[int, list[str]], hosts: dict[str, str]) -> None:
    """``0177.0.0.1`` never gets as far as the guard: httpx refuses it as a URL - a realm is refused, a
    Location is an answer httpx cannot follow (no answer about the blob)."""
    port, seen = internal
    hosts["registry.example"] = "127.0.0.1"
    target = f"http://0177.0.0.1:{port}"
    with serve(hostile("realm", target)) as url, pytest.raises(AuthError, match="is not a URL"):
        blob(url.replace("127.0.0.1", "registry.example"))
    with serve(hostile("redirect", target)) as url:
        reply = blob(url.replace("127.0.0.1", "registry.example"))
    assert reply.status is None and "Invalid IPv4 address" in (reply.error or "")
    assert seen == []


@pytest.mark.parametrize("kind", ["redirect", "realm"])
@pytest.mark.parametrize("registry_host", ["registry.example", "127.0.0.1"])
@pytest.mark.parametrize("spelling", METADATA)
def test_metadata_service_in_any_spelling_is_never_contacted(
    kind: str, registry_host: str, spelling: str, hosts: dict[str, str]
) -> None:
    """Link-local is refused even to a registry that itself lives outside the public space: an
    IPv4-mapped 169.254.169.254 is 169.254.169.254."""
    hosts["registry.example"] = "127.0.0.1"
    refused = pytest.raises(REFUSED[kind], match=r"is 169\.254\.169\.254, a link-local address")
    with serve(hostile(kind, f"http://{spelling}")) as url, refused:
        blob(url.replace("127.0.0.1", registry_host))


@pytest.mark.parametrize("kind", ["redirect", "realm"])
@pytest.mark.parametrize(
    ("name", "resolved", "space"),
    [("metadata.example", "169.254.169.254", "link-local"), ("intranet.example", "10.0.0.7", "private")],
)
def test_names_are_judged_by_the_address_they_resolve_to(
    kind: str, name: str, resolved: str, space: str, hosts: dict[str, str]
) -> None:
    """The gap the address check left open: a name of the registry's choosing that resolves inside.
    Refused when the transport resolves it - before a connection is tried (nothing listens there)."""
    hosts.update({"registry.example": "127.0.0.1", name: resolved})
    refused = pytest.raises(REFUSED[kind], match=rf"{name} resolves to {resolved}, a {space} address the registry")
    with serve(hostile(kind, f"http://{name}")) as url, refused:
        blob(url.replace("127.0.0.1", "registry.example"), timeout=2)


@pytest.mark.parametrize("kind", ["redirect", "realm"])
def test_names_resolving_where_the_registry_lives_are_followed(
    kind: str, internal: tuple[int, list[str]], hosts: dict[str, str]
) -> None:
    """The other side: a registry whose name resolves into a space may send regprobe to names there (in
    a cluster: registry.ns.svc and minio.ns.svc; here, both on loopback)."""
    port, seen = internal
    hosts.update({"registry.example": "127.0.0.1", "storage.example": "127.0.0.1"})
    with serve(hostile(kind, f"http://storage.example:{port}")) as url:
        reply = blob(url.replace("127.0.0.1", "registry.example"))
    assert (reply.status, reply.received) == (206, 1)
    assert seen == (["/internal"] if kind == "redirect" else ["/token?service=r&scope=repository%3Aapp%3Apull"])
