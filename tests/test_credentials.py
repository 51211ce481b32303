"""Credentials from docker's config.json, in the spellings CI runners and Kubernetes write."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from regprobe import credentials, credhelper
from regprobe.credentials import Credentials
from regprobe.errors import ConfigError

from .util import wait_for


def lookup(host: str, path: Path | None = None) -> Credentials | None:
    return asyncio.run(credentials.lookup(host, path))


def write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    return path


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("registry.example.com", "registry.example.com"),
        ("https://registry.example.com", "registry.example.com"),
        ("registry.example.com:5000", "registry.example.com:5000"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("https://index.docker.io/v1/", "registry-1.docker.io"),
        ("docker.io", "docker.io"),
    ],
)
def test_auths_entry_spellings(tmp_path: Path, key: str, host: str) -> None:
    path = write(tmp_path, {"auths": {key: {"auth": b64("ci:pa:ss")}}})
    assert lookup(host, path) == Credentials("ci", "pa:ss")  # the password may contain ':'


def test_username_password_entry_and_default_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"auths": {"r.test": {"username": "u", "password": "p"}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert lookup("r.test") == Credentials("u", "p")
    assert lookup("other.test") is None


def test_missing_file_means_anonymous(tmp_path: Path) -> None:
    assert lookup("r.test", tmp_path / "absent.json") is None


def test_cred_helpers_as_docker_runs_them(docker_config: Any, credential_helper: Any) -> None:
    """credHelpers[host] wins, then credsStore, then auths; the helper gets `get` and the server URL."""
    per_host = credential_helper("ecr-login").keeps("AWS", "ecr-secret")
    store = credential_helper("desktop").keeps("hub-user", "hub-secret")
    path = docker_config(
        {
            "auths": {"r.test": {"auth": b64("inline:ignored")}, "other.test": {}},
            "credHelpers": {"r.test": "ecr-login"},
            "credsStore": "desktop",
        }
    )
    assert lookup("r.test", path) == Credentials("AWS", "ecr-secret")
    assert per_host.received() == [{"argv": ["get"], "stdin": "r.test"}]
    # Docker Desktop leaves `auths: {host: {}}` behind and keeps the secret in the store.
    assert lookup("other.test", path) == Credentials("hub-user", "hub-secret")
    assert lookup("docker.io", path) == Credentials("hub-user", "hub-secret")
    assert [call["stdin"] for call in store.received()] == ["other.test", "https://index.docker.io/v1/"]


def test_helper_without_credentials_falls_back_to_auths(docker_config: Any, credential_helper: Any) -> None:
    credential_helper("pass").answers("credentials not found in native keychain\n", exit_code=1)
    path = docker_config({"auths": {"r.test": {"auth": b64("ci:inline")}}, "credsStore": "pass"})
    assert lookup("r.test", path) == Credentials("ci", "inline")
    assert lookup("other.test", path) is None


def test_token_username_is_an_identity_token(docker_config: Any, credential_helper: Any) -> None:
    credential_helper("acr").keeps("<token>", "refresh-me")
    path = docker_config({"credHelpers": {"r.test": "acr"}, "auths": {"s.test": {"identitytoken": "tok2"}}})
    assert lookup("r.test", path) == Credentials(None, identity_token="refresh-me")
    assert lookup("s.test", path) == Credentials(None, identity_token="tok2")
    assert "refresh-me" not in repr(lookup("r.test", path))


@pytest.mark.parametrize(
    ("program", "message"),
    [
        (None, "credential helper docker-credential-gone not found on PATH"),
        ("s3cr3t-in-the-error\n", "credential helper docker-credential-gone failed (exit 3) for r.test"),
        ("not json", "credential helper docker-credential-gone answered no Username/Secret document"),
        ('{"Username": "u"}', "credential helper docker-credential-gone answered no Username/Secret document"),
        # Sent as is, an empty secret ends as a 401 (exit 3, "refused the credentials"): the helper's fault.
        (
            '{"Username": "u", "Secret": ""}',
            "credential helper docker-credential-gone answered no Username/Secret document",
        ),
        (" " * (1 << 20) + "{}", "credential helper docker-credential-gone answered over 1048576 bytes"),
    ],
)
def test_helper_trouble_is_a_config_error_naming_it(
    docker_config: Any, credential_helper: Any, program: str | None, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    if program is not None:
        credential_helper("gone").answers(program, exit_code=3 if "s3cr3t" in program else 0)
    path = docker_config({"credHelpers": {"r.test": "gone"}})
    with caplog.at_level(logging.DEBUG), pytest.raises(ConfigError) as caught:
        lookup("r.test", path)
    assert str(caught.value) == f"{path}: credHelpers['r.test']: {message}"
    assert "s3cr3t" not in caplog.text  # a helper's output is never logged


def test_the_helpers_secret_is_never_logged(
    docker_config: Any, credential_helper: Any, caplog: pytest.LogCaptureFixture
) -> None:
    credential_helper("vault").keeps("ci", "s3cr3t-from-the-helper")
    path = docker_config({"credsStore": "vault"})
    with caplog.at_level(logging.DEBUG):
        assert lookup("r.test", path) == Credentials("ci", "s3cr3t-from-the-helper")
    assert "credentials for r.test from credential helper docker-credential-vault" in caplog.text
    assert "s3cr3t" not in caplog.text


def test_a_cancelled_lookup_kills_its_helper(docker_config: Any, credential_helper: Any) -> None:
    """Issue 22: a stop cancels the lookup; the helper is killed then, not waited for."""
    helper = credential_helper("hang").answers("{}", sleep=100)
    path = docker_config({"credsStore": "hang"})

    async def cancelled() -> list[int]:
        asking = asyncio.create_task(credentials.lookup("r.test", path))
        await asyncio.to_thread(wait_for, helper.received, "the helper to be asked", 60, 0.02)
        asking.cancel()
        async with asyncio.timeout(30):  # the helper would answer after 100 s
            with pytest.raises(asyncio.CancelledError):
                await asking
        running: list[int] = helper.running()  # asked while the loop runs: closing it kills the helper anyway
        return running

    assert asyncio.run(cancelled()) == [] and len(helper.received()) == 1


def test_a_hanging_helper_is_stopped(
    docker_config: Any, credential_helper: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    credential_helper("slow").answers("{}", sleep=60)
    monkeypatch.setattr(credhelper, "TIMEOUT", 0.5)
    with pytest.raises(
        ConfigError, match=r"credsStore: credential helper docker-credential-slow did not answer within 0\.5s"
    ):
        lookup("r.test", docker_config({"credsStore": "slow"}))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"auths": {"r.test": {"auth": "!!!"}}}, "not base64"),
        ({"auths": {"r.test": {"auth": b64("no-colon")}}}, "not base64 of user:password"),
        ({"auths": []}, "auths: must be an object"),
        ([], "not a JSON object"),
    ],
)
def test_broken_config_json_is_a_config_error(tmp_path: Path, doc: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        lookup("r.test", write(tmp_path, doc))
