"""The only module that talks to the network (over :mod:`regprobe.transport`): one pooled HTTP client
per registry.

Each method performs one logical exchange (retried while the answer is transient) and returns a
:class:`Reply` stating what arrived - status, lengths, bytes received, the hash of what was read. It
never decides whether an object is broken; :mod:`regprobe.judge` does.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import math
import random
import re
import ssl
import time
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt

from . import errorbody
from . import mediatypes as mt
from .addresses import Guard, refusal
from .auth import parse_challenge
from .digest import Digest
from .errors import (
    AuthError,
    BlockedAddressError,
    NotRegistryError,
    PaginationError,
    RateLimitError,
    RedirectError,
    RegistryError,
)
from .facts import BlobMode, Reply
from .redact import display_url, origin, redact
from .transport import StatelessClient
from .transport import transport as _transport

log = logging.getLogger(__name__)

__all__ = ["BlobMode", "ClientSettings", "RegistryClient", "Reply", "RetryPolicy", "ssl_context"]
_ERROR_BODY_LIMIT = 64 << 10
#: Of an error body, what is kept on the reply for its detail (a registry's are a few hundred bytes).
_ERROR_BODY_KEPT = 4096
_MAX_PAGES = 100_000
_CHUNK = 64 << 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: As Go's net/http, which docker and containerd pull with: a chain they follow, regprobe follows.
_MAX_REDIRECTS = 10
#: A redirect's own body is read (keeping the connection) only when it is this small.
_SMALL_BODY = 4096


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    #: Longest wait a Retry-After gets; a registry asking for more is retried after this long (and a 429
    #: that outlasts every retry stops the run: see RateLimitError).
    max_retry_after: float = 60.0


@dataclass(frozen=True, slots=True)
class ClientSettings:
    url: str
    concurrency: int = 16
    timeout: float = 30.0
    auth: httpx.Auth | None = None
    verify: ssl.SSLContext | bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = "regprobe"
    #: Pulls to leave unspent when the registry announces its limit (Docker Hub's
    #: ``ratelimit-remaining``); None: a tenth of the limit, at least ``concurrency`` (requests in
    #: flight when the reserve is reached must not spend the rest).
    rate_limit_reserve: int | None = None
    #: What to do when an https URL reaches a plain-HTTP registry (``check``: ``--plain-http``).
    plain_http_hint: str = "give the registry an http:// url in the config"


def ssl_context(
    ca_file: str | None, cert_file: str | None, key_file: str | None, insecure: bool
) -> ssl.SSLContext | bool:
    if insecure:
        return False
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


class RegistryClient:
    def __init__(
        self,
        settings: ClientSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``sleep`` waits between retries (tests pass one that records instead of waiting)."""
        self.settings = settings
        self._sleep = sleep
        self.base = httpx.URL(settings.url)
        # Hot-path URLs are absolute strings: httpx parses each URL anyway, and a relative one is
        # parsed twice (once alone, once merged with base_url) - 40% of building a request.
        self._origin = display_url(self.base).rstrip("/")
        self.requests: Counter[str] = Counter()
        #: Why the run must stop (the rate limit is spent or nearly so); None while it may go on.
        self.stopped: str | None = None
        self._pulls_in_flight = 0
        self._rate: tuple[int, int | None, int | None] | None = None  # remaining, limit, window
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._read_timeout = httpx.Timeout(settings.timeout)
        limits = httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency)
        if transport is None:
            transport = _transport(settings.verify, limits, Guard(self.base.host))
        self._http = StatelessClient(
            base_url=settings.url,
            auth=settings.auth,
            verify=settings.verify,
            # Exchanges are bounded as a whole (_attempt), so no per-read timer: aiohttp re-arms one on
            # every chunk received. Full blob downloads, which are not bounded as a whole, set their own.
            timeout=httpx.Timeout(settings.timeout, read=None),
            limits=limits,
            # Redirects are followed by _send, which checks each target first (blob GETs go to object
            # storage and CDNs, and a registry must not send us anywhere it likes).
            follow_redirects=False,
            headers={"User-Agent": settings.user_agent},
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- listing ----------------------------------------------------------------------------------

    async def pages(
        self, path: str, key: str, page_size: int | None = 1000, max_pages: int = _MAX_PAGES
    ) -> AsyncGenerator[list[str], None]:
        """Yield the lists under ``key`` across ``Link: <...>; rel="next"`` pages (same host only).

        The Link is followed as sent, resolved against the request URL: ECR, ECR Public and Quay page
        with opaque cursors, and a ``last=`` made up here would be refused (ECR Public: 405) or, on
        Quay, answered with page 1 again. A listing that cannot be read to its end raises
        :class:`PaginationError`: the registry is incomplete, nothing is judged from half a list.
        """
        url = self.base.join(path)
        if page_size:
            url = url.copy_merge_params({"n": page_size})
        seen_urls: set[str] = set()
        seen_pages: set[bytes] = set()
        for number in range(max_pages):
            reply = await self._exchange("GET", url, {"Accept": "application/json"}, _read_json_body)
            _require_api(reply)
            if reply.status == 400 and reply.code == "PAGINATION_NUMBER_INVALID" and "n" in url.params:
                # The server's page limit (catalog.maxentries) is below what we asked: let it choose.
                url = url.copy_remove_param("n")
                continue
            if not reply.ok:
                if number > 0:
                    # The first page of a Link answers an error: the Link is wrong (Artifactory drops its
                    # repository-key prefix and answers 404), and what follows is unknown. Not a 404 of
                    # the repository: raised without the status so no caller reads it as "no tags".
                    raise PaginationError(
                        f"{display_url(url)}: page {number + 1}, from the previous page's Link: "
                        f"{reply.describe('GET')}; the listing is incomplete",
                        url=str(url),
                        code=reply.code,
                    )
                raise _listing_error(url, reply)
            names = _names(reply, key, url)
            if number == 0 and not names and getattr(self.settings.auth, "silent", False):
                # Quay answers an anonymous catalog with an empty page, no challenge: with credentials
                # configured, learn the scheme from /v2/ and ask again with them.
                await self.ping()
                if not getattr(self.settings.auth, "silent", False):
                    reply = await self._exchange("GET", url, {"Accept": "application/json"}, _read_json_body)
                    if not reply.ok:
                        raise _listing_error(url, reply)
                    names = _names(reply, key, url)
            page = hashlib.sha256("\0".join(names).encode()).digest() if names else b""
            if page and page in seen_pages:
                # Quay answers a cursor it cannot decrypt with page 1 again: following on never ends.
                raise PaginationError(
                    f"GET {display_url(url)}: page {number + 1} repeats an earlier page; the listing is incomplete",
                    url=str(url),
                )
            seen_pages.add(page)
            seen_urls.add(str(url))
            yield names
            next_url = reply.next_link
            if not next_url or not names:
                # An empty page ends the listing: distribution v3 sends a Link after a tag page of
                # exactly n entries, and the page it leads to is empty (tests/test_pagination.py).
                return
            target = url.join(next_url)
            if (target.scheme, target.host, target.port) != (url.scheme, url.host, url.port):
                raise PaginationError(
                    f"GET {display_url(url)}: pagination Link points to another host ({target.host}); not followed",
                    url=str(url),
                )
            if str(target) in seen_urls:
                raise PaginationError(
                    f"GET {display_url(url)}: pagination Link leads back to a page already read;"
                    " the listing is incomplete",
                    url=str(url),
                )
            url = target
        raise PaginationError(
            f"GET {path}: more than {max_pages} pages; stopped, the listing is incomplete", url=str(url)
        )

    async def ping(self) -> None:
        """``GET /v2/``: raise unless the registry answers (authenticating if it asks)."""
        url = self.base.join("/v2/")
        reply = await self._exchange("GET", url, {}, None)
        _require_api(reply)
        if not reply.ok:
            raise RegistryError(
                f"registry unreachable: {display_url(url)}: {reply.describe('GET')}", url=str(url), status=reply.status
            )

    # -- objects ----------------------------------------------------------------------------------

    async def manifest(self, repository: str, reference: str, max_bytes: int) -> Reply:
        url = f"{self._origin}/v2/{repository}/manifests/{reference}"
        # A manifest GET is what rate limits count (Docker Hub: a pull; HEAD is free).
        self._check_rate_limit()

        async def read(response: httpx.Response, reply: Reply) -> None:
            if reply.content_length is not None and reply.content_length > max_bytes:
                reply.over_limit = True
                return
            await _read_into(response, reply, limit=max_bytes, keep=True, hash_=True)

        # Pulls already under way will spend from what the registry last said is left.
        self._pulls_in_flight += 1
        try:
            return _require_api(await self._exchange("GET", url, {"Accept": mt.ACCEPT}, read))
        finally:
            self._pulls_in_flight -= 1

    async def manifest_head(self, repository: str, reference: str) -> Reply:
        """``HEAD`` a manifest: existence, length and (maybe) ``Docker-Content-Digest``, no body."""
        url = f"{self._origin}/v2/{repository}/manifests/{reference}"
        return _require_api(await self._exchange("HEAD", url, {"Accept": mt.ACCEPT}, None))

    async def blob(self, repository: str, digest: Digest, mode: BlobMode, expected_size: int) -> Reply:
        url = f"{self._origin}/v2/{repository}/blobs/{digest}"
        if mode == "head" or (mode == "range" and expected_size == 0):
            return await self._exchange("HEAD", url, {}, None)
        if mode == "range":
            # The last byte, which is read only if all the data is there: a registry whose descriptor cache
            # outlived the data, or whose data was cut short, still answers HEAD, and a Range for bytes it
            # no longer holds with the cached headers and then no body; the first byte of a cut blob
            # arrives (REGISTRY-FACTS.md). The first byte adds nothing the last one does not prove.
            # A server that ignores Range (200 and the whole blob: Quay on local storage, some proxies)
            # has served the blob: what arrives first is read, then the connection is closed, not drained.
            last = expected_size - 1

            async def one_byte(response: httpx.Response, reply: Reply) -> None:
                await _read_into(response, reply, limit=1, keep=False, hash_=False, stop_early=True)

            return await self._exchange("GET", url, {"Range": f"bytes={last}-{last}"}, one_byte)

        async def whole(response: httpx.Response, reply: Reply) -> None:
            await _read_into(response, reply, limit=None, keep=False, hash_=True, algorithm=digest.algorithm)

        return await self._exchange("GET", url, {}, whole, bounded=False)

    async def referrers(self, repository: str, subject: Digest, max_bytes: int, after: Reply | None = None) -> Reply:
        """One page of OCI 1.1's ``GET /v2/<repository>/referrers/<subject>``: the first, or the one the
        previous page ``after`` links to (``Link: rel="next"``, kept absolute in its ``next_link``) -
        followed only on the registry's own host, as :meth:`pages` does. The answer is returned whatever
        its status: whether the registry serves the API at all is learned from it (regprobe.referrers)."""
        url: httpx.URL | str = f"{self._origin}/v2/{repository}/referrers/{subject}"
        if after is not None and after.next_link:
            try:
                url = httpx.URL(after.next_link)
            except (httpx.InvalidURL, ValueError):
                why = f"GET {after.url}: referrers Link is not a URL; not followed"
                raise PaginationError(why, url=after.url) from None
            if _origin_key(url) != _origin_key(self.base):
                raise PaginationError(
                    f"GET {after.url}: referrers Link points to another host ({url.host}); not followed",
                    url=after.url,
                )

        async def read(response: httpx.Response, reply: Reply) -> None:
            if reply.content_length is not None and reply.content_length > max_bytes:
                reply.over_limit = True
                return
            await _read_into(response, reply, limit=max_bytes, keep=True, hash_=False)
            link = response.links.get("next", {}).get("url")
            try:
                reply.next_link = str(response.request.url.join(link)) if link else None
            except (httpx.InvalidURL, ValueError):
                reply.next_link = link  # refused when followed

        # Not _require_api: an HTML page here (a catch-all route) is one more way of not serving the API.
        return await self._exchange("GET", url, {"Accept": mt.OCI_INDEX}, read)

    async def cache_upstream(self, repository: str, digest: Digest) -> Reply:
        """``GET`` a blob that no registry holds (``digest`` has no known content), through a pull-through
        cache: the cache does not hold it, so it asks its upstream, and its answer says what it heard -
        404 when the upstream answered, 5xx when it did not. Distribution 3 passes an upstream 401 or 429
        on as it came. So here a 401 is not this run's credentials and a 429 not this run's rate limit:
        the answer is returned, never raised, and nothing is stopped. Retried while 5xx or no answer."""
        url = f"{self._origin}/v2/{repository}/blobs/{digest}"

        async def attempt() -> Reply:
            try:
                return await self._attempt("GET", url, {}, None, True)
            except AuthError as exc:
                return Reply(url, "GET", status=exc.status, code=exc.code)

        retrying = self._retrying(lambda reply: reply.failed or (reply.status or 0) >= 500)
        reply: Reply = await retrying(attempt)
        return reply

    # -- one exchange, retried ----------------------------------------------------------------------

    async def _exchange(
        self,
        method: str,
        url: httpx.URL | str,
        headers: Mapping[str, str],
        reader: Callable[[httpx.Response, Reply], Any] | None,
        bounded: bool = True,
    ) -> Reply:
        """One exchange, retried by tenacity while the answer is temporary (408, 429, 5xx, no answer,
        a body cut short); the last answer is returned whatever it was."""
        retrying = self._retrying(lambda reply: reply.temporary)
        reply: Reply = await retrying(self._attempt, method, url, headers, reader, bounded)
        if reply.status == 429:
            # Still limited after waiting as asked: every further request would earn another 429.
            self.stopped = f"rate limit reached: {reply.describe(method)} after {self.settings.retry.attempts} tries"
            raise RateLimitError(f"{method} {reply.url}: {self.stopped}", url=reply.url, status=429, code=reply.code)
        return reply

    def _retrying(self, again: Callable[[Reply], bool]) -> AsyncRetrying:
        """Attempts while ``again(reply)``, with backoff; the last reply is the result whatever it was."""
        return AsyncRetrying(
            stop=stop_after_attempt(self.settings.retry.attempts),
            retry=retry_if_result(again),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=self._count_retry,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )

    def _check_rate_limit(self) -> None:
        if self.stopped is None and self._rate is not None:
            remaining, limit, window = self._rate
            reserve = self.settings.rate_limit_reserve
            if reserve is None:
                reserve = max(self.settings.concurrency, math.ceil((limit or 0) / 10))
            remaining -= self._pulls_in_flight  # what is left once the pulls under way have counted
            if remaining <= reserve:
                per = f" per {window} s" if window else ""
                of = f" of {limit}{per}" if limit is not None else per
                self.stopped = (
                    f"rate limit nearly spent: the registry has {remaining} pulls left{of} (ratelimit-remaining);"
                    f" stopped to leave {reserve} for other pulls"
                )
        if self.stopped is not None:
            raise RateLimitError(self.stopped, url=str(self.base))

    def _note_rate_limit(self, reply: Reply) -> None:
        if reply.rate_remaining is not None:
            self._rate = (reply.rate_remaining, reply.rate_limit, reply.rate_window)

    def _wait(self, state: RetryCallState) -> float:
        policy = self.settings.retry
        backoff = min(policy.max_delay, policy.base_delay * 2 ** (state.attempt_number - 1))
        delay = random.uniform(backoff / 2, backoff)  # noqa: S311 - jitter, not cryptography
        reply = state.outcome.result() if state.outcome and not state.outcome.failed else None
        if reply is not None and reply.retry_after is not None:
            delay = max(delay, min(reply.retry_after, policy.max_retry_after))
        return delay

    def _count_retry(self, state: RetryCallState) -> None:
        self.requests["retried"] += 1
        reply = state.outcome.result() if state.outcome and not state.outcome.failed else None
        if reply is not None:
            # Which registry and request, and what it answered (issue 21); reply.url carries no query, and
            # a redirect's target only as its origin (redact.py).
            wait = state.next_action.sleep if state.next_action else 0.0
            tried = f"try {state.attempt_number} of {self.settings.retry.attempts}"
            log.debug("retrying %s %s in %.2fs: %s", reply.method, reply.url, wait, reply.describe(tried))

    async def _attempt(
        self,
        method: str,
        url: httpx.URL | str,
        headers: Mapping[str, str],
        reader: Callable[[httpx.Response, Reply], Any] | None,
        bounded: bool,
    ) -> Reply:
        # A str is a hot-path URL built here from the registry's origin and a repository, tag or digest: no
        # query, no userinfo, nothing to hide - and parsing it again only to show it cost ~13 µs a request.
        display = url if isinstance(url, str) else display_url(url)
        reply = Reply(url=display, method=method)
        # The whole exchange gets `timeout`: a server trickling a byte a second never trips a per-read
        # timeout. Full blob downloads (blob_check: digest) may rightly take longer: they get per-read
        # timeouts instead, and the run's deadline.
        total = self.settings.timeout if bounded else None
        per_read = httpx.USE_CLIENT_DEFAULT if bounded else self._read_timeout
        async with self._slots:
            try:
                async with asyncio.timeout(total):
                    request = self._http.build_request(method, url, headers=headers, timeout=per_read)
                    response = await self._send(request, reply)
                    try:
                        await self._read_response(response, reply, reader)
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
        self._note_rate_limit(reply)
        self.requests[_outcome(reply)] += 1
        return reply

    def _failure(self, exc: BaseException) -> str:
        """Why an exchange got no answer; for a TLS handshake answered in plain HTTP, what to do instead
        (the raw text is OpenSSL's WRONG_VERSION_NUMBER: issue 21)."""
        text = _exc_text(exc)
        if _plain_http_answer(exc):
            text += f"; the server speaks plain HTTP, not TLS: {self.settings.plain_http_hint}"
        return text

    async def _send(self, request: httpx.Request, reply: Reply) -> httpx.Response:
        """Send ``request``, following redirects as httpx would - the method kept (a HEAD presigned for
        HEAD stays HEAD), relative Locations resolved, ``Authorization`` only within its origin, so the
        registry's credentials never reach object storage - after checking each target: no https to
        http, no private, loopback or link-local address the registry does not live on (SSRF), no loops.

        Every hop is part of the one exchange: a retry starts again at the registry, which hands out a
        fresh URL (a presigned one may have expired; a CDN host may be down: Docker Hub alternates two).
        """
        registry = request.url
        visited = {registry}
        try:
            response = await self._http.send(request, stream=True)
        except BlockedAddressError as exc:  # the registry's own host is never blocked: its token realm was
            raise AuthError(f"{registry.scheme}://{registry.host}: token realm {exc}; not contacted") from None
        for _ in range(_MAX_REDIRECTS):
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or location is None:
                return response
            here = response.request
            await _discard(response)
            try:
                target = here.url.join(location.strip())
            except (httpx.InvalidURL, ValueError):
                raise self._refused(here.method, registry, None, "its Location is not a URL") from None
            why = _redirect_refusal(registry, here.url, target)
            if why is not None:
                raise self._refused(here.method, registry, target, why)
            if target in visited:
                raise self._refused(here.method, registry, target, "it leads back to a URL already visited (a loop)")
            visited.add(target)
            headers = here.headers.copy()
            del headers["host"]
            if _origin_key(target) != _origin_key(here.url):
                headers.pop("authorization", None)
            reply.answered_by = origin(target) if _origin_key(target) != _origin_key(registry) else None
            hop = httpx.Request(here.method, target, headers=headers, extensions=here.extensions)
            # No auth flow on hops: what the registry asked for was sent with the first request, and a
            # token for the registry is not for the storage host.
            try:
                response = await self._http.send(hop, stream=True, auth=None)
            except BlockedAddressError as exc:
                raise self._refused(here.method, registry, target, str(exc)) from None
        await _discard(response)
        raise self._refused(request.method, registry, None, f"more than {_MAX_REDIRECTS} redirects")

    def _refused(self, method: str, registry: httpx.URL, target: httpx.URL | None, why: str) -> RedirectError:
        where = f" to {origin(target)}" if target is not None else ""
        return RedirectError(
            f"{method} {display_url(registry)}: redirect{where} not followed: {why}", url=display_url(registry)
        )

    async def _read_response(
        self, response: httpx.Response, reply: Reply, reader: Callable[[httpx.Response, Reply], Any] | None
    ) -> None:
        _fill_headers(response, reply)
        status = response.status_code
        if status in (401, 403):
            self.requests["client_error"] += 1
            await _read_error(response, reply)
            if reply.answered_by is not None:
                # Object storage refusing a URL the registry signed (expired, wrong clock, bucket policy):
                # the registry's doing, and not about our credentials, which never went there.
                raise AuthError(
                    f"{reply.method} {reply.url}: {reply.describe()}: the storage host refused the registry's"
                    " signed URL",
                    url=reply.url,
                    status=status,
                    code=reply.code,
                )
            has_credentials = getattr(self.settings.auth, "has_credentials", self.settings.auth is not None)
            challenge = parse_challenge(response.headers.get("www-authenticate"))
            # A token accepted by the token service and still refused: the registry hides whether the
            # repository exists (Quay: 401; Docker Hub: insufficient_scope).
            hidden = response.request.headers.get("authorization", "").startswith("Bearer ") or (
                challenge is not None and challenge.params.get("error") == "insufficient_scope"
            )
            raise _auth_error(reply.method, reply.url, reply, bool(has_credentials), hidden)
        if status >= 400:
            await _read_error(response, reply)
        elif reader is not None and reply.method != "HEAD":
            await reader(response, reply)


_HTML_TYPES = ("text/html", "application/xhtml+xml")


def _require_api(reply: Reply) -> Reply:
    """Raise when a 2xx answer is an HTML page: a login portal or a wrong URL answering in the
    registry's place says nothing about any image, so it is an error of the run, never a finding.
    Only for the API's own documents (ping, listings, manifests): blobs may come from object storage
    with whatever Content-Type they were stored with. Docker-Distribution-API-Version is no test:
    many registries do not send it (REGISTRY-QUIRKS.md)."""
    media_type = (reply.content_type or "").split(";", 1)[0].strip().lower()
    if reply.status is not None and 200 <= reply.status < 300 and media_type in _HTML_TYPES:
        raise NotRegistryError(
            f"{reply.method} {reply.url} answered {reply.status} with an HTML page, not the registry API "
            "(a login portal or a wrong URL?)",
            url=reply.url,
            status=reply.status,
        )
    return reply


async def _read_json_body(response: httpx.Response, reply: Reply) -> None:
    await _read_into(response, reply, limit=16 << 20, keep=True, hash_=False)
    reply.next_link = response.links.get("next", {}).get("url")


def _listing_error(url: httpx.URL, reply: Reply) -> RegistryError:
    message = f"{display_url(url)}: {reply.describe('GET')}"
    return RegistryError(message, url=str(url), status=reply.status, code=reply.code)


def _names(reply: Reply, key: str, url: httpx.URL) -> list[str]:
    if reply.over_limit:
        raise RegistryError(f"GET {display_url(url)}: listing page over 16 MiB", url=str(url))
    # The Content-Type is not consulted: ECR labels its JSON text/plain.
    try:
        doc = json.loads(reply.body)
    except (ValueError, RecursionError):
        raise RegistryError(f"GET {display_url(url)}: listing is not JSON", url=str(url)) from None
    if not isinstance(doc, dict):
        raise RegistryError(f"GET {display_url(url)}: listing is not a JSON object", url=str(url))
    names = doc.get(key)
    if names is None:  # distribution answers `"tags": null` for a repository without tags
        return []
    if not isinstance(names, list):
        raise RegistryError(f"GET {display_url(url)}: '{key}' is not a list of strings", url=str(url))
    if key == "tags":
        names = _usable_tags(names, url)
    if not all(isinstance(n, str) for n in names):
        raise RegistryError(f"GET {display_url(url)}: '{key}' is not a list of strings", url=str(url))
    return names


_DIGEST_SHAPED = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def _usable_tags(entries: list[Any], url: httpx.URL) -> list[Any]:
    """Drop what a tag list holds that is no tag: ``null`` (Nexus 3.58) and digests (Artifactory lists
    ``sha256:...`` among the tags). Neither can be pulled by tag, so neither is judged; a warning
    says they were there."""
    kept = [e for e in entries if e is not None and not (isinstance(e, str) and _DIGEST_SHAPED.fullmatch(e))]
    if len(kept) != len(entries):
        nulls = sum(e is None for e in entries)
        log.warning(
            "GET %s: skipped %d null and %d digest-shaped entries in the tag list (not tags)",
            display_url(url),
            nulls,
            len(entries) - len(kept) - nulls,
        )
    return kept


async def _read_into(
    response: httpx.Response,
    reply: Reply,
    *,
    limit: int | None,
    keep: bool,
    hash_: bool,
    stop_early: bool = False,
    algorithm: str = "sha256",
) -> None:
    hasher = hashlib.new(algorithm) if hash_ else None
    chunks: list[bytes] = []
    # aiter_bytes, not aiter_raw: a Content-Encoding is transport; digests are over the decoded content.
    # Bytes are taken as they come (the transport's chunks, at most 16 KiB): gathering 64 KiB first would
    # wait on a slow server for bytes that are then thrown away, and lose the count of what did arrive
    # when the connection ends early ("after 0 of 740 body bytes" when 300 came: issue 21).
    async for chunk in response.aiter_bytes():
        reply.received += len(chunk)
        if limit is not None and reply.received > limit and not stop_early:
            reply.over_limit = True
            return
        if hasher is not None:
            hasher.update(chunk)
        if keep:
            chunks.append(chunk)
        if stop_early and limit is not None and reply.received >= limit:
            return
    if keep:
        reply.body = b"".join(chunks)
    if hasher is not None:
        reply.digest = Digest(algorithm, hasher.hexdigest())


async def _read_error(response: httpx.Response, reply: Reply) -> None:
    body = b""
    async for chunk in response.aiter_bytes(_CHUNK):
        body += chunk
        if len(body) >= _ERROR_BODY_LIMIT:
            break
    reply.said = errorbody.parse(body)
    reply.code = reply.said.code if reply.said else None
    reply.error_body = body[:_ERROR_BODY_KEPT]


def _fill_headers(response: httpx.Response, reply: Reply) -> None:
    reply.status = response.status_code
    headers = response.headers
    reply.content_type = headers.get("content-type")
    reply.content_length = _int(headers.get("content-length"))
    reply.header_digest = headers.get("docker-content-digest")
    content_range = headers.get("content-range", "")
    if "/" in content_range:
        reply.range_total = _int(content_range.rsplit("/", 1)[1])
    reply.retry_after = _retry_after(headers.get("retry-after"))
    remaining = _rate_header(headers.get("ratelimit-remaining"))
    if remaining is not None:
        reply.rate_remaining, reply.rate_window = remaining
        reply.rate_limit = (_rate_header(headers.get("ratelimit-limit")) or (None, None))[0]


def _rate_header(text: str | None) -> tuple[int, int | None] | None:
    """Docker Hub's ``100;w=21600``: a count, and the window in seconds."""
    if not text:
        return None
    count, _, rest = text.partition(";")
    value = _int(count)
    if value is None:
        return None
    window = rest.strip().removeprefix("w=") if rest.strip().startswith("w=") else None
    return value, _int(window)


def _int(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit():
        return None
    return int(text.strip())


def _retry_after(text: str | None) -> float | None:
    if not text:
        return None
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _outcome(reply: Reply) -> str:
    if reply.timeout:
        return "timeout"
    if reply.status is None or reply.truncated:
        return "network_error"
    if reply.status >= 500:
        return "server_error"
    if reply.status >= 400:
        return "client_error"
    return "ok"


def _auth_error(method: str, url: str, reply: Reply, had_credentials: bool, hidden: bool) -> AuthError:
    what = "refused the credentials" if had_credentials else "requires credentials (none configured)"
    if reply.status == 403:
        what = "denied access"
    elif hidden:
        who = "with these credentials" if had_credentials else "anonymously"
        what = f"grants no access: not accessible {who}, or unknown to the registry (it does not say which)"
    detail = f" ({reply.code})" if reply.code else ""
    return AuthError(
        f"{method} {url}: registry {what}: {reply.status}{detail}",
        url=url,
        status=reply.status,
        code=reply.code,
    )


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


def _origin_key(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


def _redirect_refusal(registry: httpx.URL, here: httpx.URL, target: httpx.URL) -> str | None:
    """Why a redirect from ``here`` to ``target`` must not be followed (regclient's policy), or None."""
    if target.scheme not in ("http", "https") or not target.host:
        return "not an http(s) URL"
    if here.scheme == "https" and target.scheme == "http":
        return "https to http downgrade (the signed URL and the data would travel in the clear)"
    return refusal(target.host, registry.host)


async def _discard(response: httpx.Response) -> None:
    """Done with a redirect: a small body is read so the connection can be used again, a large one
    costs the connection instead of its transfer."""
    length = _int(response.headers.get("content-length"))
    try:
        if length is not None and length <= _SMALL_BODY:
            await response.aread()
    finally:
        await response.aclose()
