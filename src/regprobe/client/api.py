"""The registry API's verbs: one pooled client per registry, one method per kind of question."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable

import httpx

from .. import mediatypes as mt
from ..digest import Digest
from ..errors import AuthError, RegistryError
from ..facts import BlobMode, Reply
from ..redact import display_url
from . import listing
from .exchange import Exchange
from .ratelimit import RateLimitGate, RateLimitStop
from .reading import read_into, require_api
from .settings import ClientSettings


class RegistryClient:
    def __init__(
        self,
        settings: ClientSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``sleep`` waits between retries (tests pass one that records instead of waiting)."""
        self.settings = settings
        self.base = httpx.URL(settings.url)
        # Hot-path URLs are absolute strings: httpx parses each URL anyway, and a relative one is
        # parsed twice (once alone, once merged with base_url) - 40% of building a request.
        self._origin = display_url(self.base).rstrip("/")
        self._gate = RateLimitGate(str(self.base), settings.concurrency, settings.rate_limit_reserve)
        self.exchange = Exchange(settings, self._gate, transport, sleep)
        #: Requests by outcome, retries included (``regprobe_requests``).
        self.requests: Counter[str] = self.exchange.requests

    @property
    def stopped(self) -> RateLimitStop | None:
        """Why the run must stop - the registry refused us (429 after the retries), or its pulls are nearly
        spent (a reserve is kept for others); None while it may go on."""
        return self._gate.stopped

    async def aclose(self) -> None:
        await self.exchange.aclose()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- listing ----------------------------------------------------------------------------------

    def pages(
        self, path: str, key: str, page_size: int | None = 1000, max_pages: int = listing.MAX_PAGES
    ) -> AsyncGenerator[list[str], None]:
        """Yield the lists under ``key`` across ``Link: <...>; rel="next"`` pages (same host only).

        The Link is followed as sent, resolved against the request URL: ECR, ECR Public and Quay page
        with opaque cursors, and a ``last=`` made up here would be refused (ECR Public: 405) or, on
        Quay, answered with page 1 again. A listing that cannot be read to its end raises
        :class:`PaginationError`: the registry is incomplete, nothing is judged from half a list.
        """
        return listing.pages(self, path, key, page_size, max_pages)

    async def ping(self) -> None:
        """``GET /v2/``: raise unless the registry answers (authenticating if it asks)."""
        url = self.base.join("/v2/")
        reply = await self.exchange("GET", url, {}, None)
        require_api(reply)
        if not reply.ok:
            raise RegistryError(
                f"registry unreachable: {display_url(url)}: {reply.describe('GET')}", url=str(url), status=reply.status
            )

    # -- objects ----------------------------------------------------------------------------------

    async def manifest(self, repository: str, reference: str, max_bytes: int) -> Reply:
        url = f"{self._origin}/v2/{repository}/manifests/{reference}"

        async def read(response: httpx.Response, reply: Reply) -> None:
            if reply.content_length is not None and reply.content_length > max_bytes:
                reply.over_limit = True
                return
            await read_into(response, reply, limit=max_bytes, keep=True, hash_=True)

        # A manifest GET is what rate limits count (Docker Hub: a pull; HEAD is free).
        with self._gate.pull():
            return require_api(await self.exchange("GET", url, {"Accept": mt.ACCEPT}, read))

    async def manifest_head(self, repository: str, reference: str) -> Reply:
        """``HEAD`` a manifest: existence, length and (maybe) ``Docker-Content-Digest``, no body."""
        url = f"{self._origin}/v2/{repository}/manifests/{reference}"
        return require_api(await self.exchange("HEAD", url, {"Accept": mt.ACCEPT}, None))

    async def blob(self, repository: str, digest: Digest, mode: BlobMode, expected_size: int) -> Reply:
        url = f"{self._origin}/v2/{repository}/blobs/{digest}"
        if mode == "head" or (mode == "range" and expected_size == 0):
            return await self.exchange("HEAD", url, {}, None)
        if mode == "range":
            # The last byte, which is read only if all the data is there: a registry whose descriptor cache
            # outlived the data, or whose data was cut short, still answers HEAD, and a Range for bytes it
            # no longer holds with the cached headers and then no body; the first byte of a cut blob
            # arrives (REGISTRY-FACTS.md). The first byte adds nothing the last one does not prove.
            # A server that ignores Range (200 and the whole blob: Quay on local storage, some proxies)
            # has served the blob: what arrives first is read, then the connection is closed, not drained.
            last = expected_size - 1

            async def one_byte(response: httpx.Response, reply: Reply) -> None:
                await read_into(response, reply, limit=1, keep=False, hash_=False, stop_early=True)

            return await self.exchange("GET", url, {"Range": f"bytes={last}-{last}"}, one_byte)

        async def whole(response: httpx.Response, reply: Reply) -> None:
            await read_into(response, reply, limit=None, keep=False, hash_=True, algorithm=digest.algorithm)

        return await self.exchange("GET", url, {}, whole, bounded=False)

    async def referrers(self, repository: str, subject: Digest, max_bytes: int, after: Reply | None = None) -> Reply:
        """One page of OCI 1.1's ``GET /v2/<repository>/referrers/<subject>``: the first, or the one the
        previous page ``after`` links to (``Link: rel="next"``, kept absolute in its ``next_link``) -
        followed only on the registry's own host, as :meth:`pages` does. The answer is returned whatever
        its status: whether the registry serves the API at all is learned from it (regprobe.referrers)."""
        return await listing.referrers_page(self, repository, subject, max_bytes, after)

    async def cache_upstream(self, repository: str, digest: Digest) -> Reply:
        """``GET`` a blob that no registry holds (``digest`` has no known content), through a pull-through
        cache: the cache does not hold it, so it asks its upstream, and its answer says what it heard -
        404 when the upstream answered, 5xx when it did not. Distribution 3 passes an upstream 401 or 429
        on as it came. So here a 401 is not this run's credentials and a 429 not this run's rate limit:
        the answer is returned, never raised, and nothing is stopped. Retried while 5xx or no answer."""
        url = f"{self._origin}/v2/{repository}/blobs/{digest}"

        async def attempt() -> Reply:
            try:
                return await self.exchange.attempt("GET", url, {}, None, True)
            except AuthError as exc:
                return Reply(url, "GET", status=exc.status, code=exc.code)

        return await self.exchange.retry.run(lambda reply: reply.failed or (reply.status or 0) >= 500, attempt)
