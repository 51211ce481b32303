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
import contextlib
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from dataclasses import dataclass
from typing import NoReturn

import httpx

from .addresses import refusal
from .errors import AuthError, RegistryError
from .redact import display_url

#: Tokens without ``expires_in`` live 60 s (the Docker token spec's default).
DEFAULT_TOKEN_LIFETIME = 60
#: The catalog's scope; Quay's token service refuses it (400) and wants no scope for the catalog.
CATALOG_SCOPE = "registry:catalog:*"
_MAX_TOKEN_BODY = 1 << 20


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic", "bearer"
    params: dict[str, str]


_ITEM = re.compile(
    r'[\s,]*(?:([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)|([A-Za-z][A-Za-z0-9_.+-]*)(?=[\s,]|$))'
)


def parse_challenges(header: str | None) -> list[Challenge]:
    """Every challenge of a ``WWW-Authenticate`` header, in order. One header may carry several
    (Forgejo: ``Bearer realm=...,scope="*",Basic realm=...``); schemes are case-insensitive (Nexus:
    ``BASIC``). Quoted values may contain commas and escaped quotes. Parsing stops at what it cannot
    read; what came before stands."""
    challenges: list[Challenge] = []
    position, text = 0, (header or "").strip()
    while position < len(text):
        match = _ITEM.match(text, position)
        if match is None or match.end() == position:
            break
        position = match.end()
        key, value, scheme = match.groups()
        if scheme is not None:
            challenges.append(Challenge(scheme.lower(), {}))
        elif challenges and key is not None:
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            challenges[-1].params.setdefault(key.lower(), value)
        else:
            break  # parameters before any scheme: not a challenge
    return challenges


def parse_challenge(header: str | None) -> Challenge | None:
    """The challenge to answer: Bearer (with a realm) when the registry offers it, else the first one.

    ``Bearer realm="https://a/token",service="r",scope="repository:x:pull,push"`` -> Challenge.
    """
    challenges = parse_challenges(header)
    bearer = [c for c in challenges if c.scheme == "bearer" and "realm" in c.params]
    preferred = bearer or challenges
    return preferred[0] if preferred else None


def scope_for(url: httpx.URL) -> str:
    """The token scope a request needs: the catalog, a repository's pull, or none (``/v2/``)."""
    path = url.path
    if path.startswith("/v2/_catalog"):
        return CATALOG_SCOPE
    # The last marker: a repository may itself be named `a/manifests/b` (each component is valid).
    end = max(path.rfind(marker) for marker in ("/manifests/", "/blobs/", "/tags/", "/referrers/"))
    if end > len("/v2"):
        return f"repository:{path[len('/v2/') : end]}:pull"
    return ""


class RegistryAuth(httpx.Auth):
    def __init__(
        self, username: str | None = None, password: str | None = None, *, identity_token: str | None = None
    ) -> None:
        """``identity_token``: an OAuth2 refresh token (docker's ``<token>`` user), exchanged at the
        token realm with ``grant_type=refresh_token`` as docker and go-containerregistry do."""
        self._credentials = (username, password) if username is not None and password is not None else None
        self._identity_token = identity_token
        self._basic_header = (
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode() if self._credentials else None
        )
        self._registry_host: str | None = None
        #: The scheme learned last, for scopes not challenged yet; and the scheme each scope was
        #: challenged with (Harbor asks Basic for its catalog and Bearer for repositories).
        self._scheme: str | None = None
        self._schemes: dict[str, str] = {}
        self._realm: httpx.URL | None = None
        self._service: str | None = None
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: Until the token service has accepted the credentials once, they are offered by one request
        #: at a time; once it refused them they are never offered again (GitLab bans the address).
        self._gate = asyncio.Lock()
        self._accepted = False
        self._refused: str | None = None

    @property
    def has_credentials(self) -> bool:
        return self._credentials is not None or self._identity_token is not None

    @property
    def silent(self) -> bool:
        """Credentials configured, and not one request has carried anything yet (no challenge seen)."""
        return self._credentials is not None and self._scheme is None

    def __repr__(self) -> str:  # never show secrets, even in a debugger or a traceback
        return f"RegistryAuth(scheme={self._scheme!r}, credentials={'***' if self.has_credentials else None})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise NotImplementedError("regprobe talks to registries through httpx.AsyncClient only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        scope = scope_for(request.url)
        sent: str | None = None
        scheme = self._schemes.get(scope, self._scheme)
        if scheme == "basic":
            self._basic(request)
        elif scheme == "bearer":
            sent = self._cached(scope)
            if sent is None:
                async with self._lock(scope):  # concurrent walks of one repository share one fetch
                    sent = self._cached(scope)
                    if sent is None:
                        # Driven inline (as below): a flow cannot delegate its yields to a helper.
                        fetch = self._fetch(scope, request)
                        try:  # closed here, not by the garbage collector: it may hold the credential gate
                            step = await anext(fetch)
                            while isinstance(step, httpx.Request):
                                step = await fetch.asend((yield step))
                        finally:
                            await fetch.aclose()
                        sent = step
            request.headers["Authorization"] = f"Bearer {sent}"

        response = yield request
        if response.status_code != 401:
            return
        challenge = parse_challenge(response.headers.get("www-authenticate"))
        if challenge is None:
            return
        if challenge.scheme == "basic":
            if self._basic_header is None or request.headers.get("authorization") == self._basic_header:
                return  # nothing to offer, or offered and refused: the 401 stands, never a second try
            self._scheme = self._schemes[scope] = "basic"
            self._basic(request)
            yield request
        elif challenge.scheme == "bearer" and "realm" in challenge.params:
            self._scheme = self._schemes[scope] = "bearer"
            self._learn(challenge, request.url)
            # The challenge names the scope this request needs (without one - Artifactory, Nexus - the
            # scope of its path: repository:NAME:pull).
            wanted = challenge.params.get("scope", scope)
            async with self._lock(wanted):
                # Requests answered 401 together wait here for one fetch: the first fetches, the others
                # find its token. Only the token this request sent was refused; a newer one is tried -
                # once: a registry refusing every token (insufficient_scope) gets one re-auth per request.
                token = self._cached(wanted)
                if token is None or token == sent:
                    self._tokens.pop(wanted, None)
                    fetch = self._fetch(wanted, request)
                    try:  # closed here, not by the garbage collector: it may hold the credential gate
                        step = await anext(fetch)
                        while isinstance(step, httpx.Request):
                            step = await fetch.asend((yield step))
                    finally:
                        await fetch.aclose()
                    token = step
            if wanted != scope and wanted in self._tokens:
                # Next time this path's requests carry it up front instead of earning a 401 first.
                self._tokens[scope] = self._tokens[wanted]
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    # -- internals --------------------------------------------------------------------------------

    async def _fetch(self, scope: str, original: httpx.Request) -> AsyncGenerator[httpx.Request | str, httpx.Response]:
        """Yield the token requests for ``scope`` (the flow sends each and passes its answer back),
        then the token. GET, never POST: Harbor, GCR and Artifactory refuse the OAuth2 POST."""
        credentialed = self._offers_credentials()
        async with self._gate if credentialed and not self._accepted else contextlib.nullcontext():
            if credentialed and self._refused is not None:
                raise AuthError(self._refused)
            response = yield self._token_request(scope, original)
            if response.status_code == 400 and scope == CATALOG_SCOPE:
                # Quay: "Unable to decode repository and actions: registry:catalog:*". Its catalog is
                # read with the identity of a token for no scope.
                response = yield self._token_request("", original)
            try:
                token = await self._store(scope, response)
            except AuthError as exc:
                if credentialed and response.status_code == 401:
                    self._refused = f"{exc} (not offered again this run)"
                raise
            self._accepted = self._accepted or credentialed
        yield token

    def _offers_credentials(self) -> bool:
        realm = self._realm
        return (
            (self._basic_header is not None or self._identity_token is not None)
            and realm is not None
            and (realm.scheme == "https" or realm.host == self._registry_host)
        )

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
        why = refusal(realm.host, registry.host)
        if why is not None:
            # As go-containerregistry's validateRealmURL: a registry must not point us at the cloud
            # metadata service or an internal address it does not itself live on (SSRF).
            _refuse(registry, f"token realm {why}; not contacted")
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
        if self._identity_token is not None and self._offers_credentials():
            # https://distribution.github.io/distribution/spec/auth/oauth/ - a POSTed form, never a query.
            form = {**params, "client_id": "regprobe", "grant_type": "refresh_token"}
            form["refresh_token"] = self._identity_token
            return httpx.Request("POST", self._realm, data=form, extensions={"timeout": timeout} if timeout else None)
        request = httpx.Request(
            "GET", self._realm.copy_merge_params(params), extensions={"timeout": timeout} if timeout else None
        )
        # Credentials only where they cannot be read off the wire by someone else, or to the registry's
        # own host: a hostile registry must not be able to send them to any realm it likes over http.
        if self._offers_credentials():
            assert self._basic_header is not None
            request.headers["Authorization"] = self._basic_header
        return request

    async def _store(self, scope: str, response: httpx.Response) -> str:
        realm = display_url(response.request.url)  # with its port, without the query (issue 21)
        # Read through httpx (it reads this response again once the flow moves on), but through a
        # stream that gives up past the bound: a chunked body has no length to refuse it by.
        response.stream = _Bounded(response.stream, _MAX_TOKEN_BODY, realm)
        body = await response.aread()
        if response.status_code in (401, 403):
            what = "refused the credentials" if self.has_credentials else "refused anonymous access"
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


def _refuse(registry: httpx.URL, why: str) -> NoReturn:
    raise AuthError(f"{registry.scheme}://{registry.host}: {why}")
