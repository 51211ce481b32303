"""Credentials from docker's config.json, the way CI runners and Kubernetes hold them."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from pathlib import Path

from .errors import ConfigError
from .reference import DOCKER_HUB

# Docker Hub's credentials are stored under the v1 index URL, for historical reasons.
log = logging.getLogger(__name__)

_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def lookup(host: str, path: Path | None = None) -> tuple[str, str] | None:
    """(username, password) for ``host`` from config.json, or None when it holds none."""
    path = path or config_path()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read docker credentials: {type(exc).__name__}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a JSON object")
    auths = doc.get("auths")
    if auths is None:
        auths = {}
    if not isinstance(auths, dict):
        raise ConfigError(f"{path}: auths: must be an object")
    for key in _keys(host):
        entry = auths.get(key)
        if isinstance(entry, dict):
            return _decode(entry, f"{path}: auths[{key!r}]")
    helpers = doc.get("credHelpers")
    if not isinstance(helpers, dict):
        helpers = {}
    helper = next((helpers[k] for k in _keys(host) if k in helpers), None) or doc.get("credsStore")
    if helper:
        # Running a helper binary is out of scope; go on anonymously and say why a 401 may follow.
        log.warning(
            "%s: credentials for %s may be kept by credential helper %r, which regprobe does not run; "
            "give auth in the config or --username/--password-stdin",
            path,
            host,
            helper,
        )
    return None


def _keys(host: str) -> list[str]:
    if host in (DOCKER_HUB, "registry-1.docker.io", "index.docker.io"):
        return list(_HUB_KEYS)
    return [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]


def _decode(entry: dict[str, object], where: str) -> tuple[str, str] | None:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, password = base64.b64decode(auth, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(f"{where}.auth: not base64 of user:password") from None
        if not sep:
            raise ConfigError(f"{where}.auth: not base64 of user:password")
        return user, password
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str):
        return name, secret
    return None
