"""Registry authentication as an ``httpx.Auth`` flow: Basic, and Docker token auth (Bearer).

The scheme is learned from the registry's first 401 challenge. With Bearer, tokens are fetched from the
challenge's realm - with credentials when we have them, anonymously otherwise - cached per scope until
shortly before ``expires_in``, and attached to later requests of the same scope up front, so a walk
costs one token request per repository, not one per request.

What goes where: the registry's credentials go to the registry origin (Basic) or to the token realm,
and to a realm only over https or on the registry's own host; a token only to the registry origin.
httpx strips ``Authorization`` when a redirect leaves the origin (blobs redirected to object storage).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from dataclasses import dataclass
from typing import NoReturn

import httpx

from .errors import AuthError, RegistryError

#: Tokens without ``expires_in`` live 60 s (the Docker token spec's default).
DEFAULT_TOKEN_LIFETIME = 60
_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_MAX_TOKEN_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic", "bearer"
    params: dict[str, str]


def parse_challenge(header: str | None) -> Challenge | None:
    """``Bearer realm="https://a/token",service="r",scope="repository:x:pull,push"`` -> Challenge.

    Quoted values may contain commas and escaped quotes; only the first challenge is used.
    """
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if not scheme or not scheme.isalpha():
        return None
    params: dict[str, str] = {}
    for key, value in _PARAM.findall(rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(key.lower(), value)
    return Challenge(scheme.lower(), params)


def scope_for(url: httpx.URL) -> str:
    """The token scope a request needs: the catalog, a repository's pull, or none (``/v2/``)."""
    path = url.path
    if path.startswith("/v2/_catalog"):
        return "registry:catalog:*"
    # The last marker: a repository may itself be named `a/manifests/b` (each component is valid).
    end = max(path.rfind(marker) for marker in ("/manifests/", "/blobs/", "/tags/"))
    if end > len("/v2"):
        return f"repository:{path[len('/v2/') : end]}:pull"
    return ""


class RegistryAuth(httpx.Auth):
    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self._credentials = (username, password) if username is not None and password is not None else None
        self._basic_header = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode() if self._credentials else None
        )
        self._registry_host: str | None = None
        self._scheme: str | None = None
        self._realm: httpx.URL | None = None
        self._service: str | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def has_credentials(self) -> bool:
        return self._credentials is not None

    def __repr__(self) -> str:  # never show secrets, even in a debugger or a traceback
        return f"RegistryAuth(scheme={self._scheme!r}, credentials={'***' if self._credentials else None})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise NotImplementedError("regprobe talks to registries through httpx.AsyncClient only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        scope = scope_for(request.url)
        sent: str | None = None
        if self._scheme == "basic":
            self._basic(request)
        elif self._scheme == "bearer":
            sent = self._cached(scope)
            if sent is None:
                async with self._lock(scope):  # concurrent walks of one repository share one fetch
                    sent = self._cached(scope)
                    if sent is None:
                        sent = await self._store(scope, (yield self._token_request(scope, request)))
            request.headers["Authorization"] = f"Bearer {sent}"

        response = yield request
        if response.status_code != 401:
            return
        challenge = parse_challenge(response.headers.get("www-authenticate"))
        if challenge is None:
            return
        if challenge.scheme == "basic":
            if self._credentials is None or self._scheme == "basic":
                return  # nothing to offer, or already refused: the 401 stands
            self._scheme = "basic"
            self._basic(request)
            yield request
        elif challenge.scheme == "bearer" and "realm" in challenge.params:
            self._scheme = "bearer"
            self._learn(challenge, request.url)
            # The challenge names the scope this request needs (without one: the scope of its path).
            wanted = challenge.params.get("scope", scope)
            async with self._lock(wanted):
                # Requests answered 401 together wait here for one fetch: the first fetches, the others
                # find its token. Only the token this request sent was refused; a newer one is tried.
                token = self._cached(wanted)
                if token is None or token == sent:
                    self._tokens.pop(wanted, None)
                    token = await self._store(wanted, (yield self._token_request(wanted, request)))
            if wanted != scope and wanted in self._tokens:
                # Next time this path's requests carry it up front instead of earning a 401 first.
                self._tokens[scope] = self._tokens[wanted]
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    # -- internals --------------------------------------------------------------------------------

    def _basic(self, request: httpx.Request) -> None:
        if self._basic_header is not None:
            request.headers["Authorization"] = self._basic_header

    def _lock(self, scope: str) -> asyncio.Lock:
        return self._locks.setdefault(scope, asyncio.Lock())

    def _cached(self, scope: str) -> str | None:
        entry = self._tokens.get(scope)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def _learn(self, challenge: Challenge, registry: httpx.URL) -> None:
        try:
            realm = httpx.URL(challenge.params["realm"])
        except (httpx.InvalidURL, ValueError):
            _refuse(registry, f"token realm {challenge.params['realm'][:100]!r} is not a URL")
        if realm.scheme not in ("http", "https") or not realm.host:
            _refuse(registry, "token realm is not an http(s) URL")
        if not _realm_allowed(realm.host, registry.host):
            # As go-containerregistry's validateRealmURL: a registry must not point us at the cloud
            # metadata service or an internal address it does not itself live on (SSRF).
            _refuse(registry, f"token realm {realm.host} is a private or link-local address; not contacted")
        self._realm, self._service = realm, challenge.params.get("service")
        self._registry_host = registry.host

    def _token_request(self, scope: str, original: httpx.Request) -> httpx.Request:
        assert self._realm is not None
        params = {}
        if self._service:
            params["service"] = self._service
        if scope:
            params["scope"] = scope
        # The registry request's timeouts apply to the token service too.
        timeout = original.extensions.get("timeout")
        request = httpx.Request(
            "GET", self._realm.copy_merge_params(params), extensions={"timeout": timeout} if timeout else None
        )
        # Credentials only where they cannot be read off the wire by someone else, or to the registry's
        # own host: a hostile registry must not be able to send them to any realm it likes over http.
        if self._basic_header is not None and (
            self._realm.scheme == "https" or self._realm.host == self._registry_host
        ):
            request.headers["Authorization"] = self._basic_header
        return request

    async def _store(self, scope: str, response: httpx.Response) -> str:
        realm = f"{response.request.url.scheme}://{response.request.url.host}{response.request.url.path}"
        # Read through httpx (it reads this response again once the flow moves on), but through a
        # stream that gives up past the bound: a chunked body has no length to refuse it by.
        response.stream = _Bounded(response.stream, _MAX_TOKEN_BODY, realm)
        body = await response.aread()
        if response.status_code in (401, 403):
            what = "refused the credentials" if self._credentials else "refused anonymous access"
            raise AuthError(f"token service {realm} {what} for scope {scope or '(none)'!r}: {response.status_code}")
        if response.status_code != 200:
            raise RegistryError(f"token service {realm} answered {response.status_code}", status=response.status_code)
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            lifetime = doc.get("expires_in") or DEFAULT_TOKEN_LIFETIME
        except (ValueError, AttributeError, RecursionError):
            raise RegistryError(f"token service {realm} answered something that is not a token document") from None
        if not isinstance(token, str) or not token or not isinstance(lifetime, int | float) or lifetime <= 0:
            raise RegistryError(f"token service {realm} answered no usable token")
        # Renew a little early so a token does not expire between attaching it and the registry checking it.
        self._tokens[scope] = (token, time.monotonic() + max(1.0, lifetime - min(10.0, lifetime / 4)))
        return token


class _Bounded(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream | httpx.SyncByteStream, limit: int, realm: str) -> None:
        assert isinstance(inner, httpx.AsyncByteStream)
        self._inner, self._limit, self._realm = inner, limit, realm

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise RegistryError(f"token service {self._realm} answered a body over {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _realm_allowed(realm_host: str, registry_host: str) -> bool:
    """A realm on the registry's own host is always allowed; an IP literal outside the public address
    space only for a registry that lives in the same kind of space (a lab's 10.x registry with its 10.x
    token service, loopback in tests) - and a link-local one (169.254.169.254, the metadata service)
    never."""
    if realm_host == registry_host:
        return True
    realm_ip = _ip(realm_host)
    if realm_ip is None or realm_ip.is_global:
        return True
    if realm_ip.is_link_local:
        return False
    registry_ip = _ip(registry_host)
    if registry_host == "localhost":
        return realm_ip.is_loopback
    return registry_ip is not None and not registry_ip.is_global and not registry_ip.is_link_local


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _refuse(registry: httpx.URL, why: str) -> NoReturn:
    raise AuthError(f"{registry.scheme}://{registry.host}: {why}")
