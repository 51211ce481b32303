"""A Docker token service for distribution's `auth: token`: RS256 JWTs with an x5c header, as Harbor,
GitLab and docker/auth issue them. Counts token requests per scope so tests can assert reuse."""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Generator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .wire import LoopbackServer

ISSUER = "regprobe-test-issuer"
SERVICE = "regprobe-test-registry"


class TokenServer:
    def __init__(self, workdir: Path, users: dict[str, str], *, anonymous_pull: bool = True) -> None:
        self.users = users
        self.anonymous_pull = anonymous_pull
        self.requests: Counter[str] = Counter()  # scope -> token requests
        self.expires_in = 300
        self.field = "token"  # or "access_token", as some services answer
        #: OAuth2 refresh tokens (docker's identity tokens) -> the user they stand for.
        self.refresh_tokens: dict[str, str] = {}
        #: The forms POSTed to the realm (the OAuth2 flow), in order.
        self.posts: list[dict[str, str]] = []
        self.gets_with_credentials = 0
        self._lock = threading.Lock()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = workdir / "token-root.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self._server = LoopbackServer(self._handler())
        self.port = self._server.port
        self.realm = f"{self._server.url}/token"

    def registry_auth_config(self) -> dict[str, Any]:
        return {
            "token": {"realm": self.realm, "service": SERVICE, "issuer": ISSUER, "rootcertbundle": str(self.bundle)}
        }

    def start(self) -> TokenServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def issue(self, subject: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":", 2) if scope.count(":") >= 2 else (scope, "", "")
            granted = actions.split(",")
            if subject == "":  # anonymous: pull only, no catalog
                if not self.anonymous_pull or kind != "repository":
                    continue
                granted = [a for a in granted if a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + self.expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        x5c = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": x5c})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                scopes = query.get("scope", [])
                subject = ""
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                    if server.users.get(user) != password:
                        self._answer(401, {"details": "wrong credentials"})
                        return
                    subject = user
                    server.gets_with_credentials += 1
                with server._lock:
                    for scope in scopes or [""]:
                        server.requests[scope] += 1
                self._answer(200, {server.field: server.issue(subject, scopes), "expires_in": server.expires_in})

            def do_POST(self) -> None:
                """The OAuth2 refresh-token grant (distribution's spec/auth/oauth.md)."""
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                with server._lock:
                    server.posts.append(form)
                    server.requests[form.get("scope", "")] += 1
                subject = server.refresh_tokens.get(form.get("refresh_token", ""))
                if form.get("grant_type") != "refresh_token" or subject is None:
                    self._answer(401, {"error": "invalid_grant"})
                    return
                scopes = form.get("scope", "").split()
                self._answer(200, {"access_token": server.issue(subject, scopes), "expires_in": server.expires_in})

            def _answer(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


class PushAuth(httpx.Auth):
    """The test harness's own (sync) token client, so it can push to the token-auth registry."""

    def __init__(self, username: str, password: str) -> None:
        self.credentials = (username, password)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        challenge = response.headers.get("www-authenticate", "")
        if response.status_code != 401 or not challenge.startswith("Bearer "):
            return
        params = dict(part.split("=", 1) for part in challenge[7:].split('",'))
        params = {k: v.strip('"') for k, v in params.items()}
        token = httpx.get(
            params["realm"],
            params={"service": params["service"], "scope": params.get("scope", "")},
            auth=self.credentials,
        ).json()["token"]
        request.headers["Authorization"] = f"Bearer {token}"
        yield request
