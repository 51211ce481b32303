"""Redirects, followed by regprobe rather than httpx so that each target is checked first: blob GETs go to
object storage and CDNs (S3, GCS, Docker Hub's CDN), and a registry must not send us anywhere it likes.
"""

from __future__ import annotations

import httpx

from ..addresses import refusal
from ..errors import AuthError, BlockedAddressError, RedirectError
from ..facts import Reply
from ..redact import display_url, origin
from .reading import header_int

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: As Go's net/http, which docker and containerd pull with: a chain they follow, regprobe follows.
MAX_REDIRECTS = 10
#: A redirect's own body is read (keeping the connection) only when it is this small.
_SMALL_BODY = 4096


async def send(http: httpx.AsyncClient, request: httpx.Request, reply: Reply) -> httpx.Response:
    """Send ``request``, following redirects as httpx would - the method kept (a HEAD presigned for
    HEAD stays HEAD), relative Locations resolved, ``Authorization`` only within its origin, so the
    registry's credentials never reach object storage - after checking each target: no https to
    http, no private, loopback or link-local address the registry does not live on (SSRF), no loops.
    ``reply.answered_by`` names the host that answered when it is not the registry.

    Every hop is part of the one exchange: a retry starts again at the registry, which hands out a
    fresh URL (a presigned one may have expired; a CDN host may be down: Docker Hub alternates two).
    """
    registry = request.url
    visited = {registry}
    try:
        response = await http.send(request, stream=True)
    except BlockedAddressError as exc:  # the registry's own host is never blocked: its token realm was
        raise AuthError(f"{registry.scheme}://{registry.host}: token realm {exc}; not contacted") from None
    for _ in range(MAX_REDIRECTS):
        location = response.headers.get("location")
        if response.status_code not in _REDIRECTS or location is None:
            return response
        here = response.request
        await _discard(response)
        try:
            target = here.url.join(location.strip())
        except (httpx.InvalidURL, ValueError):
            raise _refused(here.method, registry, None, "its Location is not a URL") from None
        why = _redirect_refusal(registry, here.url, target)
        if why is not None:
            raise _refused(here.method, registry, target, why)
        if target in visited:
            raise _refused(here.method, registry, target, "it leads back to a URL already visited (a loop)")
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
            response = await http.send(hop, stream=True, auth=None)
        except BlockedAddressError as exc:
            raise _refused(here.method, registry, target, str(exc)) from None
    await _discard(response)
    raise _refused(request.method, registry, None, f"more than {MAX_REDIRECTS} redirects")


def _refused(method: str, registry: httpx.URL, target: httpx.URL | None, why: str) -> RedirectError:
    where = f" to {origin(target)}" if target is not None else ""
    return RedirectError(
        f"{method} {display_url(registry)}: redirect{where} not followed: {why}", url=display_url(registry)
    )


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
    length = header_int(response.headers.get("content-length"))
    try:
        if length is not None and length <= _SMALL_BODY:
            await response.aread()
    finally:
        await response.aclose()
