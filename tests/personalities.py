"""Registries that cannot run here, as faithful fakes on a real socket: one in-memory registry whose
wire behaviour - challenges, token answers, pagination, error bodies - comes from a per-registry
:class:`Personality` table, each entry replaying REGISTRY-QUIRKS.md (section 8 fixture specs).

Images are built with tests/registry.py's own push helpers (they only need ``push_blob`` and
``push_manifest``), so the fakes serve the same shapes as the real registry does.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal, cast
from urllib.parse import parse_qs, quote, urlsplit

from .registry import OCI_INDEX, OCI_MANIFEST, Image, Registry, sha256
from .wire import LoopbackServer, Quiet

USER, PASSWORD = "ci", "s3cret"

#: (path, cursor, n, base URL) -> the Link header value
LinkStyle = Callable[[str, str, int, str], str]


def standard_link(path: str, cursor: str, n: int, base: str) -> str:
    # distribution, Harbor, GHCR: relative, keys sorted, `last` URL-encoded.
    return f'<{path}?last={quote(cursor, safe="")}&n={n}>; rel="next"'


def _error(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message, "detail": {}}]}).encode()


def _index(manifests: list[dict[str, Any]]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()


def _bare_error(code: str, message: str) -> bytes:  # zot's authn failures: one object, no list
    return json.dumps({"code": code, "message": message, "detail": None}).encode()


@dataclass(frozen=True)
class Personality:
    name: str
    auth: Literal["bearer", "basic"] = "bearer"
    basic_word: str = "Basic"
    realm_path: str = "/token"
    service: str = "registry"
    token_fields: tuple[str, ...] = ("token",)
    expires_in: int | None = None
    #: The challenge names the scope (Artifactory and Nexus leave it out).
    challenge_scope: bool = True
    catalog: Literal["yes", "basic-admin", "hidden-anonymous", "empty", "404", "insufficient_scope"] = "yes"
    #: The token service refuses `registry:catalog:*` with 400 (Quay).
    catalog_scope_refused: bool = False
    catalog_challenge_scope: str = "registry:catalog:*"
    #: Most entries a page holds, whatever n asks; None honours n.
    page: int | None = 2
    #: A Link after a page of exactly n tags too (distribution v3's tag lists; not its catalog).
    trailing_link: bool = False
    #: All tags at once, no Link, whatever n says (GitLab's legacy repositories).
    ignores_n: bool = False
    link: LinkStyle = standard_link
    #: Cursors the client cannot make up (Quay's Fernet tokens, ECR's ids).
    opaque_cursor: bool = False
    #: (status, code, message) for n above the server's limit
    n_limit: tuple[int, int, str, str] | None = None
    error_body: Callable[[str, str], bytes] = _error
    auth_error_body: Callable[[str, str], bytes] = _error
    empty_404: bool = False
    missing_code: str = "MANIFEST_UNKNOWN"
    blob_missing_code: str = "BLOB_UNKNOWN"
    #: Answer for a repository the registry does not show: 404 (code) or hidden behind a 401.
    unknown_repository: Literal["404", "401", "insufficient_scope"] = "404"
    tags_content_type: str = "application/json"
    #: Entries in tag lists that are no tags (Nexus: null; Artifactory: digests).
    odd_tags: tuple[object, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    #: Repository names start with this path (Artifactory's repository key).
    prefix: str = ""
    namespace: str = "team"
    #: The catalog does not work: the config names the repositories.
    needs_list: bool = False
    #: OCI manifests only for clients that accept OCI types (distribution v3).
    oci_accept_required: bool = False
    head_405: bool = False
    #: Blob GETs redirect to a same-host download path with a relative Location (GAR).
    relative_blob_redirect: bool = False
    #: A tag the registry lists but will not serve: ("policy", Harbor 412) or ("expired", Quay 404).
    unservable_tag: Literal["policy", "expired"] | None = None
    #: /v2/ answers an anonymous client 401 with the body `true` (Quay).
    ping_body: bytes = b"{}"
    #: The token service answers POST with this status (it wants GET).
    post_status: int = 405
    user: str = USER
    #: Which listing n_limit applies to.
    n_limit_on: str = "/tags/list"
    #: OCI 1.1 referrers API: ``none`` (distribution, GHCR, GitLab: 404 page not found), ``spec`` (an index
    #: of every manifest whose subject is the digest, paged by ``page``; a subject it does not hold gets an
    #: empty list, as zot answers), ``harbor`` (the whole answer is 404 NOT_FOUND when one listed referrer
    #: is gone; ``{}`` for a subject it does not hold), ``page`` (a catch-all route: 200 with an HTML page),
    #: ``manifest-unknown`` (GHCR: 404 MANIFEST_UNKNOWN, no API).
    referrers_api: Literal["none", "spec", "harbor", "page", "manifest-unknown"] = "none"
    #: GitLab reads a manifest reference ``sha256-<hex>`` as the digest ``sha256:<hex>``: the fallback tag of
    #: a subject answers the subject itself (EVENTS-AND-REFERRERS.md).
    fallback_tag_is_digest: bool = False


def _opaque(index: int) -> str:
    return base64.urlsafe_b64encode(f"cursor-{index}-{uuid.uuid4().hex[:6]}".encode()).decode()


class FakeRegistry:
    """One registry with a personality, serving in-memory images on 127.0.0.1 (port 0)."""

    def __init__(self, personality: Personality) -> None:
        self.p = personality
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.tokens: dict[str, tuple[str, set[str]]] = {}
        self.cursors: dict[str, int] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        #: Subject -> its referrers' descriptors, as the registry's index of them holds them: kept when a
        #: referrer's manifest is deleted (what breaks), dropped with the subject only by Harbor.
        self.referrers: dict[str, list[dict[str, Any]]] = {}
        self.token_requests: Counter[str] = Counter()
        self.refused_credentials = 0
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._handler())
        self.url = self._server.url

    def start(self) -> FakeRegistry:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    # -- content, through tests/registry.py's helpers -------------------------------------------------

    def push_blob(self, repository: str, data: bytes) -> str:
        self.blobs[sha256(data)] = data
        return sha256(data)

    def push_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> str:
        digest = sha256(body)
        self.manifests[digest] = (media_type, body)
        self.tags.setdefault(repository, {})
        if not reference.startswith("sha256:"):
            self.tags[repository][reference] = digest
        doc = json.loads(body)
        subject = doc.get("subject", {}).get("digest") if isinstance(doc.get("subject"), dict) else None
        if subject:
            artifact_type = doc.get("artifactType") or doc.get("config", {}).get("mediaType", "")
            entry = {"mediaType": media_type, "digest": digest, "size": len(body), "artifactType": artifact_type}
            self.referrers.setdefault(subject, []).append(entry)
        return digest

    def push_image(self, repository: str, tag: str | None) -> Image:
        return Registry.push_image(cast(Registry, self), repository, tag)

    def push_index(self, repository: str, tag: str) -> Image:
        platforms = [{"architecture": arch, "os": "linux"} for arch in ("amd64", "arm64")]
        kids = [self.push_image(repository, None) for _ in platforms]
        entries = [
            {"mediaType": OCI_MANIFEST, "digest": k.digest, "size": len(self.manifests[k.digest][1]), "platform": p}
            for k, p in zip(kids, platforms, strict=True)
        ]
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        return Image(repository, self.push_manifest(repository, tag, body, OCI_INDEX), children=kids)

    def repository(self, name: str) -> str:
        return f"{self.p.prefix}{self.p.namespace}/{name}"

    # -- the wire ---------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        reg = self

        class Handler(Quiet):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send(reg.p.post_status, b"")

            def get(self) -> None:  # GET and HEAD (Quiet)
                with reg._lock:
                    reg.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                path = parts.path
                if path == reg.p.realm_path:
                    return self.token(query)
                if path.startswith("/artifacts-downloads/"):  # GAR's download host: no credentials needed
                    return self.blob(path.rsplit("/", 1)[1], redirected=True)
                if not path.startswith("/v2/"):
                    return self.send(404, b"404 page not found\n", "text/plain; charset=utf-8")
                scope = self.scope_of(path)
                if not self.authorized(path, scope):
                    return
                if path == "/v2/":
                    return self.send(200, b"{}")
                if path == "/v2/_catalog":
                    return self.catalog(query)
                if path.endswith("/tags/list"):
                    return self.tag_list(path, path[4:].rpartition("/tags/list")[0], query)
                if "/referrers/" in path and reg.p.referrers_api != "none":
                    repo, _, subject = path[4:].rpartition("/referrers/")
                    if repo not in reg.tags:
                        return self.unknown_repository(repo)
                    return self.referrers(path, subject, query)
                for marker in ("/manifests/", "/blobs/"):
                    if marker in path:
                        repo, _, ref = path[4:].rpartition(marker)
                        if repo not in reg.tags:
                            return self.unknown_repository(repo)
                        return self.manifest(repo, ref) if marker == "/manifests/" else self.blob(ref)
                return self.send(404, b"404 page not found\n", "text/plain; charset=utf-8")

            # -- auth ---------------------------------------------------------------------------

            def scope_of(self, path: str) -> str:
                if path == "/v2/_catalog":
                    return "registry:catalog:*"
                for marker in ("/manifests/", "/blobs/", "/tags/list", "/referrers/"):
                    if marker in path:
                        return f"repository:{path[4:].rpartition(marker)[0]}:pull"
                return ""

            def basic_user(self) -> str | None:
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return None
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                return user if password == PASSWORD and user == reg.p.user else None

            def challenge(self, scope: str, error: str | None = None) -> str:
                p = reg.p
                if p.auth == "basic":
                    return f'{p.basic_word} realm="{reg.url}/",service="{p.service}"'
                text = f'Bearer realm="{reg.url}{p.realm_path}",service="{p.service}"'
                if p.challenge_scope and (scope or reg.p.name == "zot"):
                    text += f',scope="{p.catalog_challenge_scope if scope.startswith("registry:") else scope}"'
                return text + (f',error="{error}"' if error else "")

            def authorized(self, path: str, scope: str) -> bool:
                p = reg.p
                header = self.headers.get("Authorization", "")
                if p.auth == "basic":
                    if self.basic_user() is not None:
                        return True
                    self.deny(scope, None)
                    return False
                if path == "/v2/_catalog" and p.catalog == "basic-admin":
                    if self.basic_user() is not None:  # Harbor: system admins only, Basic only
                        return True
                    self.send(
                        401,
                        _error("UNAUTHORIZED", "unauthorized to list catalog"),
                        headers={"WWW-Authenticate": 'Basic realm="harbor"'},
                    )
                    return False
                if path == "/v2/_catalog" and p.catalog == "hidden-anonymous" and not header:
                    return True  # Quay: an anonymous catalog is an empty one, no challenge
                if p.name == "harbor" and self.basic_user() is not None:
                    return True
                token = reg.tokens.get(header[7:]) if header.startswith("Bearer ") else None
                if token is None:
                    self.deny(scope, "invalid_token" if header.startswith("Bearer ") else None)
                    return False
                user, granted = token
                needed = p.catalog_challenge_scope if path == "/v2/_catalog" else scope
                if needed in granted or (path == "/v2/_catalog" and user and p.catalog_scope_refused):
                    return True
                if scope == "" and (user or p.name != "quay"):
                    return True
                self.deny(scope, None if p.unknown_repository == "401" else "insufficient_scope")
                return False

            def deny(self, scope: str, error: str | None) -> None:
                if reg.p.name == "quay" and self.path.startswith("/v2/") and scope == "":
                    return self.send(401, b"true", headers={"WWW-Authenticate": self.challenge(scope)})
                body = reg.p.auth_error_body("UNAUTHORIZED", "authentication required")
                self.send(401, body, headers={"WWW-Authenticate": self.challenge(scope, error)})

            def token(self, query: dict[str, str]) -> None:
                p = reg.p
                scope = query.get("scope")
                with reg._lock:
                    reg.token_requests[scope or ""] += 1
                if p.name == "gitlab" and query.get("service") != p.service:
                    return self.send(404, b"")
                user = ""
                if self.headers.get("Authorization", "").startswith("Basic "):
                    if self.basic_user() is None:
                        with reg._lock:
                            reg.refused_credentials += 1
                        body = b"" if p.name == "harbor" else _error("UNAUTHORIZED", "HTTP Basic: Access denied")
                        return self.send(401, body)
                    user = p.user
                if scope is not None and scope.startswith("registry:") and p.catalog_scope_refused:
                    message = f"Unable to decode repository and actions: {scope}"
                    return self.send(400, _error("INVALID_REQUEST", message))
                granted = set()
                for one in (scope or "").split():
                    name = one.split(":")[1] if one.count(":") == 2 else ""
                    if one == p.catalog_challenge_scope:
                        # The catalog: for the configured user (an admin), on Docker Hub for nobody.
                        if user and p.catalog != "insufficient_scope":
                            granted.add(one)
                    elif name in reg.tags or (user and not p.challenge_scope):
                        granted.add(one)  # Artifactory: a user's token reads any path; 404s tell the rest
                value = uuid.uuid4().hex
                with reg._lock:
                    reg.tokens[value] = (user, granted)
                doc: dict[str, object] = {f: value for f in p.token_fields}
                if p.expires_in is not None:
                    doc["expires_in"] = p.expires_in
                self.send(200, json.dumps(doc).encode())

            # -- listings -----------------------------------------------------------------------

            def paged(self, path: str, items: list[Any], query: dict[str, str]) -> tuple[list[Any], str | None]:
                p = reg.p
                n_asked = int(query["n"]) if query.get("n", "").isdigit() else None
                if p.ignores_n:
                    return items, None
                limit = p.page or n_asked or len(items) or 1
                size = min(limit, n_asked) if n_asked else limit
                start = 0
                cursor = query.get("next_page") or query.get("last")
                if cursor:
                    if p.opaque_cursor:
                        start = reg.cursors.get(cursor, 0)  # Quay: an unknown cursor is page 1 again
                    elif cursor.isdigit() and p.prefix:
                        start = int(cursor)  # Artifactory: offsets
                    else:
                        start = items.index(cursor) + 1 if cursor in items else len(items)
                page = items[start : start + size]
                trailing = p.trailing_link and len(page) == size and path.endswith("/tags/list")
                more = start + size < len(items) or trailing
                if not more:
                    return page, None
                end = start + size
                if p.opaque_cursor:
                    token = _opaque(end)
                    reg.cursors[token] = end
                    return page, p.link(path, token, size, reg.url)
                if p.prefix and path != "/v2/_catalog":
                    return page, p.link(path.replace(p.prefix, "", 1), str(end), size, reg.url)
                last = next((i for i in reversed(page) if isinstance(i, str)), "")
                return page, p.link(path, last, size, reg.url)

            def check_n(self, query: dict[str, str]) -> bool:
                limit = reg.p.n_limit
                applies = urlsplit(self.path).path.endswith(reg.p.n_limit_on)
                if limit and applies and query.get("n", "").isdigit() and int(query["n"]) > limit[0]:
                    self.send(limit[1], _error(limit[2], limit[3]))
                    return False
                return True

            def catalog(self, query: dict[str, str]) -> None:
                p = reg.p
                if p.catalog == "404":
                    return self.send(404, b"404 page not found\n", "text/plain; charset=utf-8")
                if p.catalog == "empty" or (p.catalog == "hidden-anonymous" and "Authorization" not in self.headers):
                    return self.send(200, b'{"repositories":[]}')
                if not self.check_n(query):
                    return
                names = sorted(reg.tags)
                page, link = self.paged("/v2/_catalog", names, query)
                self.send(200, json.dumps({"repositories": page}).encode(), headers={"Link": link} if link else None)

            def tag_list(self, path: str, repo: str, query: dict[str, str]) -> None:
                if repo not in reg.tags:
                    return self.unknown_repository(repo)
                if not self.check_n(query):
                    return
                tags: list[Any] = sorted(reg.tags[repo])
                if reg.p.odd_tags:
                    tags = [tags[0], *reg.p.odd_tags, *tags[1:]]
                page, link = self.paged(path, tags, query)
                body = json.dumps({"name": repo, "tags": page}).encode()
                self.send(200, body, reg.p.tags_content_type, {"Link": link} if link else None)

            def referrers(self, path: str, subject: str, query: dict[str, str]) -> None:
                p = reg.p
                if p.referrers_api == "page":
                    return self.send(200, b"<!DOCTYPE html><html>Sign in</html>", "text/html; charset=utf-8")
                if p.referrers_api == "manifest-unknown":
                    return self.send(404, _error("MANIFEST_UNKNOWN", "manifest unknown"))
                if subject not in reg.manifests:
                    # zot: an empty list; Harbor: an empty JSON object.
                    return self.send(200, b"{}" if p.referrers_api == "harbor" else _index([]), OCI_INDEX)
                entries = reg.referrers.get(subject, [])
                if p.referrers_api == "harbor" and any(e["digest"] not in reg.manifests for e in entries):
                    # Harbor's handler looks each accessory up and fails the whole answer on the first gone.
                    return self.send(404, _error("NOT_FOUND", "artifact not found"))
                digests = [e["digest"] for e in entries]
                page, link = self.paged(path, digests, query)
                shown = [e for e in entries if e["digest"] in page]
                self.send(200, _index(shown), OCI_INDEX, {"Link": link} if link else None)

            def unknown_repository(self, repo: str) -> None:
                mode = reg.p.unknown_repository
                if mode == "404":
                    return self.missing("NAME_UNKNOWN", f"repository {repo} not found")
                self.deny(f"repository:{repo}:pull", "insufficient_scope" if mode == "insufficient_scope" else None)

            # -- objects ------------------------------------------------------------------------

            def missing(self, code: str, message: str) -> None:
                if reg.p.empty_404:
                    return self.send(404, b"", None)
                self.send(404, reg.p.error_body(code, message))

            def manifest(self, repo: str, ref: str) -> None:
                p = reg.p
                if self.command == "HEAD" and p.head_405:
                    return self.send(405, b"")
                if ref == "unservable" and p.unservable_tag == "policy":
                    message = "current image with 3 vulnerabilities cannot be pulled due to configured policy"
                    return self.send(412, _error("PROJECTPOLICYVIOLATION", message))
                if ref == "unservable" and p.unservable_tag == "expired":
                    return self.send(404, _error("TAG_EXPIRED", f"Tag {ref} was deleted or has expired"))
                digest = reg.tags[repo].get(ref, ref)
                if p.fallback_tag_is_digest and re.fullmatch(r"sha256-[a-f0-9]{64}", ref):
                    digest = ref.replace("-", ":", 1)
                found = reg.manifests.get(digest)
                if found is None:
                    return self.missing(p.missing_code, "manifest unknown")
                media, body = found
                accept = self.headers.get("Accept", "")
                if p.oci_accept_required and media.startswith("application/vnd.oci") and media not in accept:
                    return self.missing(
                        "MANIFEST_UNKNOWN", "OCI manifest found, but accept header does not support OCI manifests"
                    )
                self.send(200, body, media, {"Docker-Content-Digest": digest})

            def blob(self, digest: str, redirected: bool = False) -> None:
                p = reg.p
                data = reg.blobs.get(digest)
                if data is None:
                    return self.missing(p.blob_missing_code, "blob unknown to registry")
                if p.relative_blob_redirect and not redirected and self.command == "GET":
                    location = f"/artifacts-downloads/namespaces/p/repositories/r/downloads/{digest}"
                    return self.send(302, b"", None, {"Location": location})
                asked = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
                if asked and int(asked[1]) <= int(asked[2]) < len(data):
                    first, last = int(asked[1]), int(asked[2])
                    return self.send(
                        206,
                        data[first : last + 1],
                        "application/octet-stream",
                        {"Content-Range": f"bytes {first}-{last}/{len(data)}"},
                    )
                self.send(200, data, "application/octet-stream")

            def send(
                self,
                status: int,
                body: bytes,
                content_type: str | None = "application/json",
                headers: dict[str, str] | None = None,
            ) -> None:
                extra = {**reg.p.headers, **(headers or {})}
                if content_type and body:
                    extra["Content-Type"] = content_type
                extra["Docker-Distribution-API-Version"] = "registry/2.0"
                self.answer(status, extra, body)

        return Handler


def _zot_link(path: str, cursor: str, n: int, base: str) -> str:
    return f'<{path}?n={n}&last={cursor}>; rel="next"'  # n first, last not encoded


def _acr_link(path: str, cursor: str, n: int, base: str) -> str:
    return f'<{path}?last={cursor}&n={n}&orderby=>; rel="next"'


def _quay_link(path: str, cursor: str, n: int, base: str) -> str:
    return f'<{path}?n={n}&next_page={cursor}>; rel="next"'


def _ecr_link(path: str, cursor: str, n: int, base: str) -> str:
    return f'<{base}{path}?last={cursor}>; rel="next"'  # absolute, opaque, no n


def _nexus_link(path: str, cursor: str, n: int, base: str) -> str:
    return f'<{base}{path}?n={n}&last={cursor}>; rel="next"'  # absolute


def _artifactory_link(path: str, cursor: str, n: int, base: str) -> str:
    return f'<{path}?last={cursor}&n={n}>; rel="next"'  # the repository key already dropped


PERSONALITIES = {
    p.name: p
    for p in [
        # VERIFIED in harbor's source (v2auth/auth.go, catalog.go, tag.go, token service, error codes).
        Personality(
            "harbor",
            user="robot$ci",
            realm_path="/service/token",
            service="harbor-registry",
            expires_in=1800,
            catalog="basic-admin",
            namespace="proj",
            missing_code="NOT_FOUND",
            blob_missing_code="NOT_FOUND",
            unservable_tag="policy",
            referrers_api="harbor",  # VERIFIED in src/server/registry/referrers.go
        ),
        # VERIFIED in gitlabhq's auth service (service name, token without expires_in); the legacy tag
        # list ignoring n is REPORTED (MR !98215). The catalog is for instance admins: listed instead.
        # REPORTED (EVENTS-AND-REFERRERS.md): no referrers API, and sha256-<hex> resolves as the digest.
        Personality(
            "gitlab",
            realm_path="/jwt/auth",
            service="container_registry",
            ignores_n=True,
            needs_list=True,
            fallback_tag_is_digest=True,
        ),
        # REPORTED (renovate, smg-project#2348): no catalog, relative Links of 100, not lexical.
        # REPORTED (EVENTS-AND-REFERRERS.md): no referrers API, 404 MANIFEST_UNKNOWN.
        Personality("ghcr", service="ghcr.io", catalog="404", needs_list=True, referrers_api="manifest-unknown"),
        # REPORTED (regclient#539, distribution#1203): no catalog for anyone, library/ names.
        Personality(
            "dockerhub",
            service="registry.docker.io",
            token_fields=("token", "access_token"),
            expires_in=300,
            catalog="insufficient_scope",
            namespace="library",
            unknown_repository="insufficient_scope",
            needs_list=True,
            headers={"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "99;w=21600"},
        ),
        # REPORTED (renovate ecr.ts, ggcr#681, deitch/docker_registry2#34): Basic AWS:<token>, opaque
        # absolute Links, text/plain JSON, 405 for n over 1000.
        Personality(
            "ecr",
            auth="basic",
            user="AWS",
            service="ecr.amazonaws.com",
            link=_ecr_link,
            opaque_cursor=True,
            tags_content_type="text/plain; charset=utf-8",
            n_limit=(1000, 405, "UNSUPPORTED", "Invalid parameter at 'maxResults' failed to satisfy constraint"),
        ),
        # VERIFIED in Azure/acr's docs (AAD-OAuth.md): access_token only, POST password grant 400, orderby=.
        Personality("acr", realm_path="/oauth2/token", token_fields=("access_token",), link=_acr_link, post_status=400),
        # REPORTED (HarborGuard#151, serverless-registry-proxy#8): an empty catalog, relative 302 downloads.
        Personality("gar", catalog="empty", needs_list=True, relative_blob_redirect=True),
        # VERIFIED in quay's source (v2auth.py, catalog.py, pagination, errors): see the fixture specs.
        Personality(
            "quay",
            realm_path="/v2/auth",
            service="quay.io",
            catalog="hidden-anonymous",
            catalog_scope_refused=True,
            link=_quay_link,
            opaque_cursor=True,
            namespace="ns",
            unknown_repository="401",
            unservable_tag="expired",
        ),
        # REPORTED (containerd#3556, renovate#15080, skopeo#2346): no scope in the challenge, the
        # repository key in the path, digests among the tags.
        Personality(
            "artifactory",
            realm_path="/artifactory/api/docker/docker-local/v2/token",
            challenge_scope=False,
            prefix="docker-local/",
            page=None,
            link=_artifactory_link,
            odd_tags=("sha256:" + "d" * 64,),
            headers={"X-JFrog-Version": "Artifactory/7.46.11"},
        ),
        # REPORTED (nexus-public#117, #659, skopeo#2409): BASIC in capitals, absolute Links, null tags.
        Personality("nexus", auth="basic", basic_word="BASIC", link=_nexus_link, odd_tags=(None,)),
        # VERIFIED in zot's source (routes.go, authn.go, bearer_auth.go): bare error objects, empty 404s,
        # `repository::pull` for the catalog, n first in Links.
        Personality(
            "zot",
            realm_path="/auth",
            service="zot",
            catalog_challenge_scope="repository::pull",
            link=_zot_link,
            auth_error_body=_bare_error,
            empty_404=True,
            referrers_api="spec",
        ),
        # VERIFIED on distribution v3.1.2 (tests/test_pagination.py runs the real one): pages of n, with a
        # Link after an exact multiple of tags, 400 for n above maxentries, OCI only for OCI-accepting clients.
        Personality(
            "distribution-v3",
            trailing_link=True,
            n_limit=(2, 400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested"),
            n_limit_on="/_catalog",
            oci_accept_required=True,
        ),
    ]
}


def with_changes(name: str, **changes: Any) -> Personality:
    return replace(PERSONALITIES[name], **changes)
