"""WWW-Authenticate parsing and the token flow against request tables (odd challenges, expiry, realms
on other hosts) - what a real token service is not made to do."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from regprobe import auth as auth_mod
from regprobe.auth import Challenge, RegistryAuth, parse_challenge, parse_challenges, scope_for
from regprobe.client import ClientSettings, RegistryClient, RetryPolicy
from regprobe.digest import Digest
from regprobe.errors import AuthError

BLOB = Digest("sha256", "c" * 64)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Basic realm="Registry Realm"', Challenge("basic", {"realm": "Registry Realm"})),
        (
            'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
            Challenge(
                "bearer",
                {
                    "realm": "https://auth.docker.io/token",
                    "service": "registry.docker.io",
                    "scope": "repository:library/alpine:pull",
                },
            ),
        ),
        (
            'Bearer realm="https://a/t", scope="repository:x:pull,push"',
            Challenge("bearer", {"realm": "https://a/t", "scope": "repository:x:pull,push"}),
        ),
        ("bearer REALM=https://a/t,service=svc", Challenge("bearer", {"realm": "https://a/t", "service": "svc"})),
        ('Bearer realm="quote \\" inside"', Challenge("bearer", {"realm": 'quote " inside'})),
        ("", None),
        ("   ", None),
        ("=weird", None),
    ],
)
def test_parse_challenge(header: str, expected: Challenge | None) -> None:
    assert parse_challenge(header) == expected


@given(st.text(max_size=200))
def test_parse_challenge_never_raises(header: str) -> None:
    parse_challenge(header)


def test_scope_for() -> None:
    assert scope_for(httpx.URL("http://r/v2/_catalog?n=10")) == "registry:catalog:*"
    assert scope_for(httpx.URL("http://r/v2/team/app/manifests/v1")) == "repository:team/app:pull"
    assert scope_for(httpx.URL("http://r/v2/a/blobs/sha256:x")) == "repository:a:pull"
    assert scope_for(httpx.URL("http://r/v2/a/b/tags/list")) == "repository:a/b:pull"
    # OCI 1.1 referrers: a pull of the repository (Artifactory names no scope in its challenge).
    assert scope_for(httpx.URL("http://r/v2/a/b/referrers/sha256:x")) == "repository:a/b:pull"
    assert scope_for(httpx.URL("http://r/v2/")) == ""
    # A valid repository name may contain a marker as a component: the last one ends the name.
    assert scope_for(httpx.URL("http://r/v2/a/manifests/b/manifests/v1")) == "repository:a/manifests/b:pull"
    assert scope_for(httpx.URL("http://r/v2/a/blobs/b/tags/list")) == "repository:a/blobs/b:pull"


class TokenRegistry:
    """A registry and its token service in one handler."""

    def __init__(
        self,
        realm: str = "https://auth.test/token",
        expires_in: int | None = 300,
        token_status: int = 200,
        delay: float = 0.0,
    ) -> None:
        self.realm, self.expires_in, self.token_status = realm, expires_in, token_status
        #: Seconds each answer takes: with it, concurrent requests really overlap.
        self.delay = delay
        self.token_requests: Counter[str] = Counter()
        self.realm_authorization: list[str | None] = []
        self.issued = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.delay)
        if request.url.path == "/token":
            self.token_requests[request.url.params.get("scope", "")] += 1
            self.realm_authorization.append(request.headers.get("authorization"))
            if self.token_status != 200:
                return httpx.Response(self.token_status)
            self.issued += 1
            doc: dict[str, object] = {"token": f"tok-{self.issued}"}
            if self.expires_in is not None:
                doc["expires_in"] = self.expires_in
            return httpx.Response(200, content=json.dumps(doc).encode())
        if not request.headers.get("authorization", "").startswith("Bearer tok-"):
            scope = scope_for(request.url)
            return httpx.Response(
                401, headers={"www-authenticate": f'Bearer realm="{self.realm}",service="reg",scope="{scope}"'}
            )
        return httpx.Response(206, headers={"content-range": "bytes 0-0/10"}, content=b"x")


def make_client(handler: TokenRegistry, auth: RegistryAuth) -> RegistryClient:
    settings = ClientSettings(
        url="https://registry.test", concurrency=8, auth=auth, retry=RetryPolicy(attempts=2, base_delay=0.001)
    )
    return RegistryClient(settings, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("scheme_known", [False, True])
def test_one_token_per_scope_under_concurrency(scheme_known: bool) -> None:
    """30 concurrent blob checks over 3 repositories, with a token service slow enough for them to
    overlap: one token per scope, whether the 401 challenge sends them all for a token at once (the
    first requests) or they attach one up front (once the scheme is known)."""
    handler = TokenRegistry(delay=0.02)

    async def go() -> list[int | None]:
        async with make_client(handler, RegistryAuth("u", "p")) as c:
            if scheme_known:
                await c.blob("warm-up", BLOB, "range", 10)
            replies = await asyncio.gather(*(c.blob(f"repo{i % 3}", BLOB, "range", 10) for i in range(30)))
        return [r.status for r in replies]

    assert asyncio.run(go()) == [206] * 30
    expected = Counter({f"repository:repo{i}:pull": 1 for i in range(3)})
    if scheme_known:
        expected["repository:warm-up:pull"] = 1
    assert handler.token_requests == expected


def test_expired_token_is_renewed(monkeypatch: pytest.MonkeyPatch) -> None:
    # The auth module's own clock, not a sleep: a loaded machine can't stretch the first two requests
    # past the token's one-second life.
    now = [1000.0]
    monkeypatch.setattr(auth_mod, "time", SimpleNamespace(monotonic=lambda: now[0]))
    handler = TokenRegistry(expires_in=1)

    async def go() -> list[int]:
        counts = []
        async with make_client(handler, RegistryAuth()) as c:
            for step in (0.0, 0.9, 0.2):  # fetched, reused just before expiry, renewed just after
                now[0] += step
                await c.blob("repo", BLOB, "range", 10)
                counts.append(handler.token_requests["repository:repo:pull"])
        return counts

    assert asyncio.run(go()) == [1, 1, 2]


def test_token_is_renewed_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 300 s token is replaced 10 s before it expires, so it cannot lapse between being attached and
    being checked by the registry."""
    now = [1000.0]
    monkeypatch.setattr(auth_mod, "time", SimpleNamespace(monotonic=lambda: now[0]))
    handler = TokenRegistry(expires_in=300)

    async def go() -> list[int]:
        counts = []
        async with make_client(handler, RegistryAuth()) as c:
            for step in (0.0, 289.0, 2.0):  # fetched, reused at 289 s, renewed at 291 s (before 300)
                now[0] += step
                await c.blob("repo", BLOB, "range", 10)
                counts.append(handler.token_requests["repository:repo:pull"])
        return counts

    assert asyncio.run(go()) == [1, 1, 2]


def test_refused_basic_credentials_are_not_sent_again() -> None:
    """GitLab bans an address after repeated bad credentials: each request offers them once."""
    offered: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if "authorization" in request.headers:
            offered.append(request.headers["authorization"])
        return httpx.Response(401, headers={"www-authenticate": 'Basic realm="registry"'})

    async def go() -> None:
        settings = ClientSettings(url="https://registry.test", auth=RegistryAuth("u", "wrong"))
        async with RegistryClient(settings, transport=httpx.MockTransport(handler)) as c:
            for _ in range(3):
                with pytest.raises(AuthError, match="refused the credentials"):
                    await c.blob("repo", BLOB, "range", 10)

    asyncio.run(go())
    assert len(offered) == 3


def test_the_challenge_scope_is_the_one_asked_for() -> None:
    """The registry names the scope it wants (here not the one the path suggests): that is the scope
    requested, and its token is then sent up front for the same path."""
    wanted = "repository:team/app:pull,push"
    asked: list[str] = []
    challenged = [0]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            scope = request.url.params.get("scope", "")
            asked.append(scope)
            return httpx.Response(200, json={"token": f"for {scope}"})
        if request.headers.get("authorization") != f"Bearer for {wanted}":
            challenged[0] += 1
            realm = 'Bearer realm="https://auth.test/token",service="reg"'
            return httpx.Response(401, headers={"www-authenticate": f'{realm},scope="{wanted}"'})
        return httpx.Response(206, headers={"content-range": "bytes 0-0/10"}, content=b"x")

    async def go() -> list[int | None]:
        settings = ClientSettings(url="https://registry.test", auth=RegistryAuth())
        async with RegistryClient(settings, transport=httpx.MockTransport(handler)) as c:
            return [(await c.blob("team/app", BLOB, "range", 10)).status for _ in range(2)]

    assert asyncio.run(go()) == [206, 206]
    assert asked == [wanted] and challenged == [1]


@pytest.mark.parametrize(
    ("registry", "realm", "allowed"),
    [
        ("https://registry.test", "https://169.254.169.254/latest/meta-data", False),  # cloud metadata
        ("https://registry.test", "https://[fd00:ec2::254]/token", False),
        ("https://registry.test", "https://10.0.0.6/token", False),
        ("https://registry.test", "https://127.0.0.1/token", False),
        ("https://10.0.0.5", "https://10.0.0.6/token", True),  # a lab registry and its token service
        ("https://10.0.0.5", "https://169.254.169.254/token", False),
        ("https://169.254.1.1", "https://169.254.1.1/token", True),  # the registry's own host
        ("https://registry.test", "https://auth.example.com/token", True),
        ("https://localhost:5000", "http://127.0.0.1:5001/token", True),
        # Issue 22: what the system's resolver reads as an address is judged as that address.
        ("https://registry.test", "https://0x7f.0.0.1/token", False),
        ("https://registry.test", "https://0177.0.1/token", False),
        ("https://registry.test", "https://127.1/token", False),
        ("https://registry.test", "https://2130706433/token", False),
        ("https://registry.test", "https://127.0.0.1./token", False),
        ("https://registry.test", "https://0xa9.0xfe.0xa9.0xfe/token", False),
        ("https://registry.test", "https://0x8.0x8.0x8.0x8/token", True),  # public, however spelt
        ("https://10.0.0.5", "https://0xa.0.0.6/token", True),
        ("https://10.0.0.5", "https://[::ffff:169.254.169.254]/token", False),  # IPv4-mapped
        ("https://10.0.0.5", "https://[::ffff:a9fe:a9fe]/token", False),
        ("https://10.0.0.5", "https://[64:ff9b::a9fe:a9fe]/token", False),  # NAT64 in an IPv6-only cluster
        ("https://10.0.0.5", "https://[fd00:ec2::254]/token", False),  # AWS metadata is a ULA, not link-local
        ("https://10.0.0.5", "https://100.100.100.200/token", False),  # Alibaba Cloud's metadata service
        # The same kind of space, not any space outside the public one: a lab registry may not send us
        # to our own host, nor a registry on this host into the network.
        ("https://10.0.0.5", "https://127.0.0.1/token", False),
        ("https://10.0.0.5", "https://0.0.0.0/token", False),  # connects to this host
        ("https://127.0.0.1:5000", "https://10.0.0.6/token", False),
        ("https://8.8.8.8", "https://10.0.0.6/token", False),  # a public registry
    ],
)
def test_realm_on_an_internal_address_is_refused(registry: str, realm: str, allowed: bool) -> None:
    contacted: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v2/repo/blobs/" + str(BLOB):
            contacted.append(str(request.url))
            return httpx.Response(200, json={"token": "t"})
        if request.headers.get("authorization") != "Bearer t":
            return httpx.Response(401, headers={"www-authenticate": f'Bearer realm="{realm}",service="reg"'})
        return httpx.Response(206, headers={"content-range": "bytes 0-0/10"}, content=b"x")

    async def go() -> int | None:
        settings = ClientSettings(url=registry, auth=RegistryAuth("u", "p"))
        async with RegistryClient(settings, transport=httpx.MockTransport(handler)) as c:
            return (await c.blob("repo", BLOB, "range", 10)).status

    if allowed:
        assert asyncio.run(go()) == 206 and len(contacted) == 1
    else:
        with pytest.raises(AuthError, match="address the registry does not live on; not contacted"):
            asyncio.run(go())
        assert contacted == []


def test_anonymous_token_request_carries_no_credentials() -> None:
    handler = TokenRegistry()

    async def go() -> None:
        async with make_client(handler, RegistryAuth()) as c:
            await c.blob("repo", BLOB, "range", 10)

    asyncio.run(go())
    assert handler.realm_authorization == [None]


def test_credentials_never_go_to_a_plain_http_realm_on_another_host() -> None:
    handler = TokenRegistry(realm="http://collector.test/token")

    async def go() -> None:
        async with make_client(handler, RegistryAuth("u", "secret-pw")) as c:
            await c.blob("repo", BLOB, "range", 10)

    asyncio.run(go())
    assert handler.realm_authorization == [None]


def test_refused_token_is_an_auth_error() -> None:
    handler = TokenRegistry(token_status=401)

    async def go() -> None:
        async with make_client(handler, RegistryAuth("u", "p")) as c:
            await c.blob("repo", BLOB, "range", 10)

    with pytest.raises(AuthError, match="refused the credentials"):
        asyncio.run(go())


def test_auth_repr_hides_secrets() -> None:
    assert "hunter2" not in repr(RegistryAuth("u", "hunter2"))


def test_endless_token_body_is_cut_off() -> None:
    """A token realm streaming without end (no Content-Length) costs a bounded read, then an error."""
    from regprobe.errors import RegistryError

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 65536

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, content=endless())
        return httpx.Response(401, headers={"www-authenticate": 'Bearer realm="https://auth.test/token",service="r"'})

    async def go() -> None:
        settings = ClientSettings(url="https://registry.test", auth=RegistryAuth(), retry=RetryPolicy(attempts=1))
        async with RegistryClient(settings, transport=httpx.MockTransport(handler)) as c:
            await c.blob("repo", BLOB, "range", 10)

    with pytest.raises(RegistryError, match="over 1048576 bytes"):
        asyncio.run(asyncio.wait_for(go(), 30))


# -- registry quirks (REGISTRY-QUIRKS.md section 3 and C1-C10) --------------------------------------

FORGEJO = (
    'Bearer realm="https://c.test/v2/token",service="container_registry",scope="*",'
    'Basic realm="https://c.test/v2",service="container_registry",scope="*"'
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # C7 (Forgejo, REPORTED in renovate's common.ts): two challenges in one header; Bearer preferred.
        (
            FORGEJO,
            Challenge("bearer", {"realm": "https://c.test/v2/token", "service": "container_registry", "scope": "*"}),
        ),
        ('Basic realm="r", Bearer realm="https://a/t"', Challenge("bearer", {"realm": "https://a/t"})),
        # C6 (Nexus forceBasicAuth, REPORTED): the scheme in capitals.
        (
            'BASIC realm="Sonatype Nexus Repository Manager"',
            Challenge("basic", {"realm": "Sonatype Nexus Repository Manager"}),
        ),
        # A Bearer without a realm cannot be answered; Basic can.
        ('Bearer service="x", Basic realm="r"', Challenge("bearer", {"service": "x"})),
    ],
)
def test_parse_challenge_prefers_bearer(header: str, expected: Challenge) -> None:
    assert parse_challenge(header) == expected


def test_parse_challenges_keeps_every_challenge() -> None:
    assert [c.scheme for c in parse_challenges(FORGEJO)] == ["bearer", "basic"]
    assert parse_challenges(FORGEJO)[1].params["realm"] == "https://c.test/v2"


class Realm:
    """A token-auth registry as a request table: what the token service answers is set per test."""

    def __init__(self, challenge: str, token: Callable[[httpx.Request], httpx.Response]) -> None:
        self.challenge, self.token = challenge, token
        self.token_requests: list[httpx.Request] = []
        self.registry_requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            self.token_requests.append(request)
            return self.token(request)
        self.registry_requests.append(request)
        if request.headers.get("authorization", "").startswith("Bearer good"):
            return httpx.Response(206, headers={"content-range": "bytes 0-0/10"}, content=b"x")
        return httpx.Response(401, headers={"www-authenticate": self.challenge})


def probe_blobs(handler: Callable[[httpx.Request], httpx.Response], auth: RegistryAuth, *repos: str) -> list[object]:
    """One blob check per repository, concurrently; each one's status, or the error it raised."""

    async def go() -> list[object]:
        settings = ClientSettings(url="https://registry.test", auth=auth, retry=RetryPolicy(attempts=1))
        async with RegistryClient(settings, transport=httpx.MockTransport(handler)) as c:
            replies = await asyncio.gather(*(c.blob(r, BLOB, "range", 10) for r in repos), return_exceptions=True)
        return [r if isinstance(r, BaseException) else r.status for r in replies]

    return asyncio.run(go())


def test_token_is_fetched_with_get_and_access_token_is_read() -> None:
    """C2 (ACR, VERIFIED in Azure/acr docs): the answer has `access_token` and no `token`; C1/C3: the
    realm is asked with GET (Quay, Harbor answer POST with 405)."""

    def token(request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            return httpx.Response(405)
        return httpx.Response(200, json={"access_token": "good-acr"})

    handler = Realm('Bearer realm="https://auth.test/oauth2/token",service="r.azurecr.io"', token)
    assert probe_blobs(handler, RegistryAuth("00000000-0000-0000-0000-000000000000", "refresh"), "hello-world") == [206]
    assert [r.method for r in handler.token_requests] == ["GET"]


def test_token_without_expires_in_lives_60_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Quay, GitLab and GHCR send no expires_in: the token is kept 60 s (renewed 10 s early), not for ever."""
    now = [1000.0]
    monkeypatch.setattr(auth_mod, "time", SimpleNamespace(monotonic=lambda: now[0]))
    handler = TokenRegistry(expires_in=None)

    async def go() -> list[int]:
        counts = []
        async with make_client(handler, RegistryAuth()) as c:
            for step in (0.0, 49.0, 2.0):  # fetched, reused at 49 s, renewed at 51 s
                now[0] += step
                await c.blob("repo", BLOB, "range", 10)
                counts.append(handler.token_requests["repository:repo:pull"])
        return counts

    assert asyncio.run(go()) == [1, 1, 2]


def test_challenge_without_scope_gets_the_repository_pull_scope() -> None:
    """C5 (Artifactory, Nexus; REPORTED): no scope in the challenge; the token service grants access only
    to what is asked for, so the scope is made from the path."""

    def token(request: httpx.Request) -> httpx.Response:
        granted = request.url.params.get("scope") == "repository:team/app:pull"
        return httpx.Response(200, json={"token": "good" if granted else "empty"})

    handler = Realm('Bearer realm="https://auth.test/v2/token",service="https://auth.test/v2/token"', token)
    assert probe_blobs(handler, RegistryAuth(), "team/app") == [206]


def test_quay_catalog_scope_refused_then_a_token_without_scope() -> None:
    """C1 (Quay, VERIFIED in endpoints/v2/v2auth.py): the scope regex accepts only repository scopes;
    registry:catalog:* is answered 400. The catalog is then read with a token for no scope."""
    asked: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/auth":
            scope = request.url.params.get("scope")
            asked.append(scope)
            if scope is not None:
                message = f"Unable to decode repository and actions: {scope}"
                return httpx.Response(400, json={"errors": [{"code": "INVALID_REQUEST", "message": message}]})
            return httpx.Response(200, json={"token": "quay-identity"})
        if request.headers.get("authorization") != "Bearer quay-identity":
            challenge = 'Bearer realm="https://quay.test/v2/auth",service="quay.io",scope="registry:catalog:*"'
            return httpx.Response(401, headers={"www-authenticate": challenge})
        return httpx.Response(200, json={"repositories": ["ns/a"]})

    async def go() -> list[str]:
        settings = ClientSettings(url="https://quay.test", auth=RegistryAuth("u", "p"))
        async with RegistryClient(settings, transport=httpx.MockTransport(handler)) as c:
            return [name async for page in c.pages("/v2/_catalog", "repositories") for name in page]

    assert asyncio.run(go()) == ["ns/a"]
    assert asked == ["registry:catalog:*", None]


def test_basic_on_the_catalog_and_bearer_on_repositories() -> None:
    """A6 (Harbor, VERIFIED in v2auth/auth.go): the catalog challenges Basic, repositories Bearer. Each
    keeps the scheme it asked for, so interleaved requests earn no further 401s."""
    basic = "Basic " + base64.b64encode(b"admin:pw").decode()
    challenges: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent = request.headers.get("authorization")
        if request.url.path == "/service/token":
            return httpx.Response(200, json={"token": "harbor-jwt", "expires_in": 1800})
        if request.url.path == "/v2/_catalog":
            if sent != basic:
                challenges.append("catalog")
                return httpx.Response(401, headers={"www-authenticate": 'Basic realm="harbor"'})
            last = request.url.params.get("last")
            link = {} if last else {"link": '</v2/_catalog?last=p%2Fa&n=1>; rel="next"'}
            return httpx.Response(200, json={"repositories": ["p/b" if last else "p/a"]}, headers=link)
        if sent != "Bearer harbor-jwt":
            challenges.append("tags")
            realm = 'Bearer realm="https://harbor.test/service/token",service="harbor-registry"'
            return httpx.Response(401, headers={"www-authenticate": f'{realm},scope="repository:p/a:pull"'})
        return httpx.Response(200, json={"name": "p/a", "tags": ["v1"]})

    async def go() -> list[str]:
        settings = ClientSettings(url="https://harbor.test", auth=RegistryAuth("admin", "pw"))
        names: list[str] = []
        async with RegistryClient(settings, transport=httpx.MockTransport(handler)) as c:
            async for page in c.pages("/v2/_catalog", "repositories", page_size=1):
                names.extend(page)
                async for tags in c.pages("/v2/p/a/tags/list", "tags"):
                    names.extend(tags)
        return names

    assert asyncio.run(go()) == ["p/a", "v1", "p/b", "v1"]
    assert challenges == ["catalog", "tags"]


def test_credentials_refused_by_the_token_service_are_offered_once() -> None:
    """C4 (GitLab, VERIFIED in jwt_controller.rb): bad credentials count toward an address ban. Eight
    repositories walked at once: the token service sees the credentials once, every check fails."""

    def token(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED", "message": "HTTP Basic: Access denied"}]})

    handler = Realm('Bearer realm="https://auth.test/jwt/auth",service="container_registry"', token)
    outcomes = probe_blobs(handler, RegistryAuth("u", "wrong"), *(f"repo{i}" for i in range(8)))
    assert all(isinstance(o, AuthError) and "refused the credentials" in str(o) for o in outcomes), outcomes
    assert len(handler.token_requests) == 1


def test_anonymous_refusal_of_one_scope_does_not_stop_the_others() -> None:
    """C11 (GHCR, REPORTED): the token service refuses an anonymous token for a private package (401):
    that repository is not accessible; the others still are."""

    def token(request: httpx.Request) -> httpx.Response:
        if "private" in request.url.params.get("scope", ""):
            return httpx.Response(
                401, json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
            )
        return httpx.Response(200, json={"token": "good"})

    handler = Realm('Bearer realm="https://auth.test/token",service="ghcr.io"', token)
    outcomes = probe_blobs(handler, RegistryAuth(), "o/private", "o/public")
    assert isinstance(outcomes[0], AuthError) and outcomes[1] == 206


def test_insufficient_scope_is_one_reauth_then_not_accessible() -> None:
    """C9 / A9 / B13 (Docker Hub, REPORTED): every token is issued (with no access), every request is
    refused with insufficient_scope. One re-auth per request, then "not accessible", never a loop."""

    def token(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"token": "no-access", "access_token": "no-access", "expires_in": 300})

    challenge = 'Bearer realm="https://auth.test/token",service="registry.docker.io",scope="repository:alpine:pull"'
    handler = Realm(challenge + ',error="insufficient_scope"', token)
    (outcome,) = probe_blobs(handler, RegistryAuth(), "alpine")
    assert isinstance(outcome, AuthError) and "not accessible anonymously, or unknown to the registry" in str(outcome)
    assert (len(handler.registry_requests), len(handler.token_requests)) == (2, 1)
