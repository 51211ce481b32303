"""Credentials from docker's config.json, in the spellings CI runners and Kubernetes write."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from regprobe import credentials
from regprobe.errors import ConfigError


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
    assert credentials.lookup(host, path) == ("ci", "pa:ss")  # the password may contain ':'


def test_username_password_entry_and_default_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"auths": {"r.test": {"username": "u", "password": "p"}}})
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert credentials.lookup("r.test") == ("u", "p")
    assert credentials.lookup("other.test") is None


def test_missing_file_means_anonymous(tmp_path: Path) -> None:
    assert credentials.lookup("r.test", tmp_path / "absent.json") is None


def test_credential_helper_is_named_not_crashed_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, {"credHelpers": {"r.test": "ecr-login"}})
    with caplog.at_level(logging.WARNING):
        assert credentials.lookup("r.test", path) is None
    assert "credential helper 'ecr-login'" in caplog.text


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
        credentials.lookup("r.test", write(tmp_path, doc))
