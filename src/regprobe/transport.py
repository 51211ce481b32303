"""What runs under httpx's API: aiohttp's connection pool, with the per-request work trimmed.

A walk is tens of thousands of small GET/HEAD exchanges, and on the registry's own host every
microsecond of client CPU is taken from the registry (docs/performance.md). httpx's own pool
(httpcore) costs several times the CPU per request that aiohttp's does, so httpx-aiohttp's transport
runs underneath. Its general-purpose request path re-parses and re-quotes each URL, builds a timeout
object and consults a cookie jar per request; for bodyless GET and HEAD this subclass skips all three.

Every name it connects to is resolved through the registry's :class:`~regprobe.addresses.Guard`, so a
token realm or redirect target that resolves to an internal address is never connected to.
"""

from __future__ import annotations

import os
import socket
import ssl

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

from .addresses import Guard

_Timeouts = tuple[float | None, float | None, float | None]


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, with each answer judged by the registry's guard before anything connects: the
    check sees the addresses the connection will use, however the name reached them (DNS, a hosts file,
    a numeric spelling only the system's resolver reads)."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self._resolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        resolved = await self._resolver.resolve(host, port, family)
        self._guard.admit(host, [entry["host"] for entry in resolved])  # raises BlockedAddressError
        return resolved

    async def close(self) -> None:
        await self._resolver.close()


class RegistryTransport(AiohttpTransport):
    def __init__(self, verify: ssl.SSLContext | bool, limits: httpx.Limits, guard: Guard) -> None:
        super().__init__(verify=verify, limits=limits, trust_env=False)
        self._timeouts: dict[_Timeouts, aiohttp.ClientTimeout] = {}
        self._guard = guard
        self._resolver: GuardedResolver | None = None

    def get_client(self) -> aiohttp.ClientSession:
        self._resolver = GuardedResolver(self._guard)
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
            resolver=self._resolver,
        )
        # No cookie jar: docker and containerd keep no cookies either, so a registry that needs one
        # would fail their pulls too - and the jar is consulted on every request.
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """httpx-aiohttp passes some aiohttp errors through unmapped - ClientResponseError, raised for an
        answer aiohttp cannot parse (a broken status line from a storage host or a proxy) - which would
        escape httpx's exception tree as a crash, with the presigned URL, query and all, in its text.
        They become httpx errors that say what went wrong and not where."""
        try:
            return await self._handle(request)
        except aiohttp.ClientResponseError as exc:
            what = " ".join(f"{exc.status}, {exc.message}".split())[:200]
            raise httpx.RemoteProtocolError(f"unparseable answer: {what}") from None
        except aiohttp.ClientError as exc:
            raise httpx.TransportError(type(exc).__name__) from None

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        if request.method not in ("GET", "HEAD") or _has_body(request):
            return await super().handle_async_request(request)
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        with map_aiohttp_exceptions():
            response = await self.client.request(
                request.method,
                # httpx keeps URLs percent-encoded already; yarl would parse and quote it again.
                yarl.URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                allow_redirects=False,  # httpx follows redirects, dropping credentials across hosts
                auto_decompress=False,  # httpx decodes; digests are over the decoded content
                compress=False,
                timeout=self._timeout(request.extensions.get("timeout") or {}),
                server_hostname=request.extensions.get("sni_hostname"),
            ).__aenter__()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=AiohttpResponseStream(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        await super().aclose()
        if self._resolver is not None:  # a resolver handed to a connector is not closed by it
            await self._resolver.close()

    def _timeout(self, timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeout.get("connect"), timeout.get("read"), timeout.get("pool"))
        cached = self._timeouts.get(key)
        if cached is None:
            cached = self._timeouts[key] = aiohttp.ClientTimeout(sock_connect=key[0], sock_read=key[1], connect=key[2])
        return cached


def _has_body(request: httpx.Request) -> bool:
    """Whether the request carries a body, as HTTP/1.1 itself says (RFC 9112 6.3): a Content-Length or a
    Transfer-Encoding header. Not by reading the stream: httpx hands a followed redirect (a registry
    sending blob GETs to S3 or GCS) the original's unread stream, which the general path would send as a
    chunked body - S3 answers that with 501, and other servers read its terminator as a new request."""
    headers = request.headers
    return "transfer-encoding" in headers or headers.get("content-length", "0").strip() != "0"


class StatelessClient(httpx.AsyncClient):
    """An httpx client that neither stores nor sends cookies, like docker and containerd: nothing a
    registry answers is carried into the next request but the auth flow's own tokens. Extracting
    cookies from each response was ~45 µs of CPU per request."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("regprobe's registry client keeps no cookies")


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        raise TypeError("regprobe's registry client keeps no cookies")


_NO_COOKIES = _NoCookies()


def transport(verify: ssl.SSLContext | bool, limits: httpx.Limits, guard: Guard) -> httpx.AsyncBaseTransport:
    """REGPROBE_HTTP_TRANSPORT=httpx selects httpx's own transport, for comparison in bench/ (without the
    connect-time guard: only address literals are judged there)."""
    if os.environ.get("REGPROBE_HTTP_TRANSPORT") == "httpx":
        return httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    return RegistryTransport(verify, limits, guard)
