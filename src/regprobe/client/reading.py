"""Reading an answer into a :class:`Reply`: its headers, its body within a bound, what an error body
says (:mod:`regprobe.errorbody`), and what a refusal (401/403) means. States what arrived; never
decides whether an object is broken (:mod:`regprobe.judge` does).
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx

from .. import errorbody
from ..auth import parse_challenge
from ..digest import Digest
from ..errors import AuthError, NotRegistryError
from ..facts import Reply

#: Reads a successful answer's body into the reply (HEAD answers and error answers are not given to it).
Reader = Callable[[httpx.Response, Reply], Awaitable[None]]

ERROR_BODY_LIMIT = 64 << 10
#: Of an error body, what is kept on the reply for its detail (a registry's are a few hundred bytes).
ERROR_BODY_KEPT = 4096
_CHUNK = 64 << 10
_HTML_TYPES = ("text/html", "application/xhtml+xml")


async def read_body(response: httpx.Response, reply: Reply, reader: Reader | None) -> None:
    """An error answer's body (bounded, parsed), or a successful one's as ``reader`` reads it."""
    if response.status_code >= 400:
        await read_error(response, reply)
    elif reader is not None and reply.method != "HEAD":
        await reader(response, reply)


def refusal(response: httpx.Response, reply: Reply, has_credentials: bool) -> AuthError:
    """What a 401 or 403 answer (headers and error body already read into ``reply``) means."""
    if reply.answered_by is not None:
        # Object storage refusing a URL the registry signed (expired, wrong clock, bucket policy):
        # the registry's doing, and not about our credentials, which never went there.
        return AuthError(
            f"{reply.method} {reply.url}: {reply.describe()}: the storage host refused the registry's signed URL",
            url=reply.url,
            status=reply.status,
            code=reply.code,
        )
    challenge = parse_challenge(response.headers.get("www-authenticate"))
    # A token accepted by the token service and still refused: the registry hides whether the
    # repository exists (Quay: 401; Docker Hub: insufficient_scope).
    hidden = response.request.headers.get("authorization", "").startswith("Bearer ") or (
        challenge is not None and challenge.params.get("error") == "insufficient_scope"
    )
    return _auth_error(reply.method, reply.url, reply, has_credentials, hidden)


def require_api(reply: Reply) -> Reply:
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


async def read_into(
    response: httpx.Response,
    reply: Reply,
    *,
    limit: int | None,
    keep: bool,
    hash_: bool,
    stop_early: bool = False,
    algorithm: str = "sha256",
) -> None:
    """Read the body into ``reply``: count, hash and keep what arrives. Past ``limit`` the body is
    ``over_limit``, or with ``stop_early`` enough: the rest is not read (a server ignoring Range sends
    the whole blob)."""
    hasher = hashlib.new(algorithm) if hash_ else None
    chunks: list[bytes] = []
    # aiter_bytes, not aiter_raw: a Content-Encoding is transport; digests are over the decoded content.
    # Bytes are taken as they come (the transport's chunks, at most 16 KiB): gathering 64 KiB first would
    # wait on a slow server for bytes that are then thrown away, and lose the count of what did arrive
    # when the connection ends early ("after 0 of 740 body bytes" when 300 came: issue 21).
    stream = response.aiter_bytes()
    async for chunk in stream:
        reply.received += len(chunk)
        if limit is not None and reply.received > limit and not stop_early:
            reply.over_limit = True
            await _abandon(response, stream)
            return
        if hasher is not None:
            hasher.update(chunk)
        if keep:
            chunks.append(chunk)
        if stop_early and limit is not None and reply.received >= limit:
            if reply.content_length is not None and reply.content_length <= reply.received:
                # All that was promised has arrived (a 206 of one byte): the next read ends the body,
                # which is cheaper than abandoning it.
                continue
            await _abandon(response, stream)
            return
    if keep:
        reply.body = b"".join(chunks)
    if hasher is not None:
        reply.digest = Digest(algorithm, hasher.hexdigest())


async def read_error(response: httpx.Response, reply: Reply) -> None:
    body = b""
    stream = response.aiter_bytes(_CHUNK)
    async for chunk in stream:
        body += chunk
        if len(body) >= ERROR_BODY_LIMIT:
            await _abandon(response, stream)
            break
    reply.said = errorbody.parse(body)
    reply.code = reply.said.code if reply.said else None
    reply.error_body = body[:ERROR_BODY_KEPT]


async def _abandon(response: httpx.Response, stream: AsyncIterator[bytes]) -> None:
    """Stop reading ``stream`` (``response``'s body) before its end, leaving nothing for asyncio's
    finaliser. httpx reads a body through a chain of async generators (``aiter_bytes``, ``aiter_raw``,
    the client's stream, the transport's): one left suspended is closed by the event loop in a task of
    its own (four per one-byte range check: 24,000 tasks per 2,000-tag walk, issue 22), and ``aclose()``
    on the outermost does not close the ones it iterates. Closing the response ends the chain at its
    source; running it out then finishes every generator in it, here."""
    await response.aclose()
    # What the transport had buffered, then its "connection closed": bounded, and nothing is waited for.
    with contextlib.suppress(httpx.HTTPError, httpx.StreamError):
        async for _ in stream:
            pass


def fill_headers(response: httpx.Response, reply: Reply) -> None:
    reply.status = response.status_code
    headers = response.headers
    reply.content_type = headers.get("content-type")
    reply.content_length = header_int(headers.get("content-length"))
    reply.header_digest = headers.get("docker-content-digest")
    content_range = headers.get("content-range", "")
    if "/" in content_range:
        reply.range_total = header_int(content_range.rsplit("/", 1)[1])
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
    value = header_int(count)
    if value is None:
        return None
    window = rest.strip().removeprefix("w=") if rest.strip().startswith("w=") else None
    return value, header_int(window)


def header_int(text: str | None) -> int | None:
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
