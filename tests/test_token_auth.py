"""A real registry behind Docker token auth (distribution `auth: token`) and a token service."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .registry import Registry
from .tokenserver import PushAuth, TokenServer

USERS = {"ci": "token-password-1", "admin": "admin-password-2"}

pytestmark = pytest.mark.each_registry


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path_factory.mktemp("tokens"), USERS).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory, tokens: TokenServer, flavour: str) -> Iterator[Registry]:
    reg = Registry(
        tmp_path_factory.mktemp("token-registry"),
        cache=False,
        extra={"auth": tokens.registry_auth_config()},
        flavour=flavour,
    )
    reg.http.auth = PushAuth("admin", USERS["admin"])
    reg.start()
    yield reg
    reg.stop()


def test_token_auth_walk_with_config_credentials(
    token_registry: Registry, tokens: TokenServer, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    for repo in ("a", "b"):
        for tag in ("v1", "v2", "v3"):
            token_registry.push_image(f"{ns}/{repo}", tag)
    index = token_registry.push_index(f"{ns}/multi", "latest")
    token_registry.remove_revision_link(f"{ns}/multi", index.children[0].digest)
    secret = tmp_path / "password"
    secret.write_text(USERS["ci"])
    tokens.requests.clear()
    cfg = {
        "name": "tok",
        "url": token_registry.url,
        "auth": {"username": "ci", "password_file": str(secret)},
        "repositories": {"include": [f"{ns}/*"]},
    }

    result = regprobe("run", "-c", probe_config(cfg), "--format", "json", "-vv")

    assert result.code == 1, result.err
    entry = result.report["registries"][0]
    assert (entry["repositories"], entry["images_checked"]) == (3, 7)
    assert [(f["kind"], f["problem"]) for f in entry["findings"]] == [("manifest", "missing")]
    # One token per scope for the whole walk, not one per request.
    assert tokens.requests["registry:catalog:*"] == 1
    for repo in ("a", "b", "multi"):
        assert tokens.requests[f"repository:{ns}/{repo}:pull"] == 1
    assert USERS["ci"] not in result.out + result.err
    assert "eyJ" not in result.out + result.err  # no JWT (they all start so) in any output at -vv


def test_anonymous_pull_tokens_for_check(token_registry: Registry, tokens: TokenServer, ns: str, regprobe: Any) -> None:
    token_registry.push_image(f"{ns}/public", "v1")
    result = regprobe("check", "--plain-http", "--format", "json", f"{token_registry.host}/{ns}/public:v1")
    assert result.code == 0, result.out + result.err


def test_anonymous_catalog_is_refused_not_reported_broken(
    token_registry: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    token_registry.push_image(f"{ns}/app", "v1")
    result = regprobe("run", "-c", probe_config({"name": "anon", "url": token_registry.url}), "--format", "json")
    entry = result.report["registries"][0]
    assert result.code == 3 and entry["findings"] == [] and entry["catalog_accessible"] is False
    assert "401" in entry["errors"][0]


def test_wrong_password_is_an_access_problem(
    token_registry: Registry,
    tokens: TokenServer,
    ns: str,
    regprobe: Any,
    probe_config: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_registry.push_image(f"{ns}/app", "v1")
    monkeypatch.setenv("TOKEN_PW", "not-the-password")
    cfg = {"name": "wrong", "url": token_registry.url, "auth": {"username": "ci", "password_env": "TOKEN_PW"}}
    result = regprobe("run", "-c", probe_config(cfg), "--format", "json")
    entry = result.report["registries"][0]
    assert result.code == 3 and entry["findings"] == []
    # The realm as it is, port included (it once said http://127.0.0.1/token), and no query.
    assert f"token service {tokens.realm} refused the credentials" in entry["errors"][0]
    assert "not-the-password" not in result.out + result.err


def test_docker_config_json_and_access_token_field(
    token_registry: Registry,
    tokens: TokenServer,
    ns: str,
    regprobe: Any,
    probe_config: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_registry.push_image(f"{ns}/app", "v1")
    docker = tmp_path / "docker"
    docker.mkdir()
    auth = base64.b64encode(f"ci:{USERS['ci']}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {f"http://{token_registry.host}": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    monkeypatch.setattr(tokens, "field", "access_token")
    try:
        cfg = {"name": "dc", "url": token_registry.url, "repositories": {"include": [f"{ns}/*"]}}
        result = regprobe("run", "-c", probe_config(cfg), "--format", "json")
    finally:
        monkeypatch.undo()
    assert result.code == 0, result.out + result.err
    assert result.report["registries"][0]["images_checked"] == 1


def test_identity_token_from_a_credential_helper(
    token_registry: Registry,
    tokens: TokenServer,
    ns: str,
    regprobe: Any,
    docker_config: Any,
    credential_helper: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A helper answering the user `<token>` gives an identity token: it is exchanged at the realm with
    the OAuth2 refresh-token grant (a POSTed form), never sent as a password."""
    token_registry.push_image(f"{ns}/app", "v1")
    monkeypatch.setitem(tokens.refresh_tokens, "refresh-abc-123", "ci")
    helper = credential_helper("acr").keeps("<token>", "refresh-abc-123")
    docker_config({"credHelpers": {token_registry.host: "acr"}})
    monkeypatch.setattr(tokens, "posts", [])
    monkeypatch.setattr(tokens, "gets_with_credentials", 0)

    result = regprobe("check", "--plain-http", "-vv", f"{token_registry.host}/{ns}/app:v1")

    assert result.code == 0, result.out + result.err
    assert helper.received() == [{"argv": ["get"], "stdin": token_registry.host}]
    assert tokens.posts and all(
        (p["grant_type"], p["refresh_token"], p["client_id"]) == ("refresh_token", "refresh-abc-123", "regprobe")
        for p in tokens.posts
    )
    assert {p.get("scope") for p in tokens.posts} == {None, f"repository:{ns}/app:pull"}  # None: GET /v2/
    assert tokens.gets_with_credentials == 0
    assert "refresh-abc-123" not in result.out + result.err

    # A refresh token the service does not know is refused credentials, not a broken image.
    monkeypatch.delitem(tokens.refresh_tokens, "refresh-abc-123")
    refused = regprobe("check", "--plain-http", "--format", "json", f"{token_registry.host}/{ns}/app:v1")
    assert refused.code == 3 and refused.findings() == []
    assert "refused the credentials" in refused.report["registries"][0]["errors"][0]
