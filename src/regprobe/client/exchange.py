"""One exchange with a registry: a request sent (redirects followed, :mod:`.redirects`), its answer read
into a :class:`Reply` (:mod:`.reading`), retried while temporary (:mod:`.retry`), and counted by outcome
(``regprobe_requests``). A failure to get an answer - timeout, refused connection, TLS, a body cut
short - is a fact on the reply, not an exception: the judge decides what it means.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

import httpx

from ..addresses import Guard
from ..errors import RedirectError
from ..facts import Reply
from ..redact import display_url, redact
from ..transport import StatelessClient
from ..transport import transport as _transport
from . import reading, redirects
from .ratelimit import RateLimitGate
from .reading import Reader
from .retry import Retry, temporary
from .settings import ClientSettings


class Exchange:
    def __init__(
        self,
        settings: ClientSettings,
        gate: RateLimitGate,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self._gate = gate
        #: Requests by outcome (``ok``, ``client_error``, ``server_error``, ``timeout``,
        #: ``network_error``, ``retried``).
        self.requests: Counter[str] = Counter()
        self.retry = Retry(settings.retry, self.requests, sleep)
        self.slots = asyncio.Semaphore(settings.concurrency)
        self._read_timeout = httpx.Timeout(settings.timeout)
        limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
        if transport is None:
            transport = _transport(settings.verify, limits, Guard(httpx.URL(settings.url).host))
        self.http = StatelessClient(
            base_url=settings.url,
            auth=settings.auth,
            verify=settings.verify,
            # Exchanges are bounded as a whole (attempt), so no per-read timer: aiohttp re-arms one on
            # every chunk received. Full blob downloads, which are not bounded as a whole, set their own.
            timeout=httpx.Timeout(settings.timeout, read=None),
            limits=limits,
            # Redirects are followed by redirects.send, which checks each target first.
            follow_redirects=False,
            headers={"User-Agent": settings.user_agent},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __call__(
        self,
        method: str,
        url: httpx.URL | str,
        headers: Mapping[str, str],
        reader: Reader | None,
        bounded: bool = True,
    ) -> Reply:
        """One exchange, retried while the answer is temporary (408, 429, 5xx, no answer, a body cut
        short); the last answer is returned whatever it was - but a 429 that outlasts the retries stops
        the run (:class:`RateLimitError`)."""
        reply = await self.retry.run(temporary, self.attempt, method, url, headers, reader, bounded)
        if reply.status == 429:
            raise self._gate.limited(method, reply, self.settings.retry.attempts)
        return reply

    async def attempt(
        self,
        method: str,
        url: httpx.URL | str,
        headers: Mapping[str, str],
        reader: Reader | None,
        bounded: bool,
    ) -> Reply:
        """One try, not retried."""
        # A str is a hot-path URL built here from the registry's origin and a repository, tag or digest: no
        # query, no userinfo, nothing to hide - and parsing it again only to show it cost ~13 µs a request.
        display = url if isinstance(url, str) else display_url(url)
        reply = Reply(url=display, method=method)
        # The whole exchange gets `timeout`: a server trickling a byte a second never trips a per-read
        # timeout. Full blob downloads (blob_check: digest) may rightly take longer: they get per-read
        # timeouts instead, and the run's deadline.
        total = self.settings.timeout if bounded else None
        per_read = httpx.USE_CLIENT_DEFAULT if bounded else self._read_timeout
        async with self.slots:
            try:
                async with asyncio.timeout(total):
                    request = self.http.build_request(method, url, headers=headers, timeout=per_read)
                    response = await redirects.send(self.http, request, reply)
                    try:
                        await self.read(response, reply, reader)
                    finally:
                        await response.aclose()
            except httpx.TimeoutException as exc:
                cause = exc.__cause__
                if cause is not None and not isinstance(cause, TimeoutError):
                    # The aiohttp transport maps every connection failure (refused, reset, TLS
                    # verification) to ConnectTimeout; the cause says what really happened.
                    reply.error = self._failure(cause)
                else:
                    reply.timeout, reply.error = True, f"{type(exc).__name__} after {self.settings.timeout:g}s"
            except TimeoutError:
                reply.timeout, reply.error = True, f"no complete answer within {self.settings.timeout:g}s"
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if reply.status is not None:
                    # Headers arrived, then the connection ended early: the stale descriptor cache mode.
                    reply.truncated = True
                else:
                    reply.error = self._failure(exc)
            except httpx.TransportError as exc:
                reply.error = self._failure(exc)
            except RedirectError:
                self.requests["network_error"] += 1  # no answer about the object: nothing was asked of it
                raise
        self._gate.note(reply)
        self.requests[outcome(reply)] += 1
        return reply

    async def read(self, response: httpx.Response, reply: Reply, reader: Reader | None) -> None:
        """The answer into ``reply``; a 401 or 403 raises the :class:`AuthError` it means."""
        reading.fill_headers(response, reply)
        if response.status_code in (401, 403):
            self.requests["client_error"] += 1
            await reading.read_error(response, reply)
            auth = self.settings.auth
            raise reading.refusal(response, reply, bool(getattr(auth, "has_credentials", auth is not None)))
        await reading.read_body(response, reply, reader)

    def _failure(self, exc: BaseException) -> str:
        """Why an exchange got no answer; for a TLS handshake answered in plain HTTP, what to do instead
        (the raw text is OpenSSL's WRONG_VERSION_NUMBER: issue 21)."""
        text = _exc_text(exc)
        if _plain_http_answer(exc):
            text += f"; the server speaks plain HTTP, not TLS: {self.settings.plain_http_hint}"
        return text


def outcome(reply: Reply) -> str:
    """The ``regprobe_requests`` outcome an attempt is counted under."""
    if reply.timeout:
        return "timeout"
    if reply.status is None or reply.truncated:
        return "network_error"
    if reply.status >= 500:
        return "server_error"
    if reply.status >= 400:
        return "client_error"
    return "ok"


def _exc_text(exc: BaseException) -> str:
    # Library exceptions embed the URL (aiohttp's ClientResponseError: the presigned one, query and all).
    return f"{type(exc).__name__}: {redact(str(exc))[:200]}" if str(exc) else type(exc).__name__


#: OpenSSL's reasons when a TLS ClientHello is answered with plain HTTP (the version depends on OpenSSL's).
_PLAIN_HTTP_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"})


def _plain_http_answer(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it: aiohttp wraps the SSLError) is a TLS handshake that got a plain
    HTTP answer."""
    for _ in range(8):  # a chain is short; a cycle must not loop
        if exc is None:
            return False
        # getattr: aiohttp's ClientConnectorSSLError is an ssl.SSLError without a reason of its own.
        if isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None) in _PLAIN_HTTP_REASONS:
            return True
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "os_error", None)
    return False
