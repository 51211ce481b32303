"""Credentials from docker's config.json, the way CI runners, Kubernetes and `docker login` keep them:
inline (``auths``), or with a credential helper (``credHelpers``, ``credsStore``)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import credhelper
from .errors import ConfigError
from .reference import DOCKER_HUB

log = logging.getLogger(__name__)

# Docker Hub's credentials are stored under the v1 index URL, for historical reasons.
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


@dataclass(frozen=True, slots=True)
class Credentials:
    """What docker's config gives for a registry: a user and password, or an identity token (an OAuth2
    refresh token, exchanged at the token realm - what `docker login` keeps for Docker Hub SSO, ACR)."""

    username: str | None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)


async def lookup(host: str, path: Path | None = None) -> Credentials | None:
    """Credentials for ``host`` as docker finds them in config.json, or None when it holds none:
    ``credHelpers[host]``, else ``credsStore``, else ``auths`` (also where a helper knows nothing)."""
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
    helpers = doc.get("credHelpers")
    if not isinstance(helpers, dict):
        helpers = {}
    key = next((k for k in _keys(host) if k in helpers), None)
    helper, where = (helpers[key], f"credHelpers[{key!r}]") if key else (doc.get("credsStore"), "credsStore")
    if helper:
        if not isinstance(helper, str):
            raise ConfigError(f"{path}: {where}: must be a helper name")
        found = await credhelper.get(helper, _server_url(host), f"{path}: {where}")
        if found is not None:
            return _credentials(*found)
    for key in _keys(host):
        entry = auths.get(key)
        if isinstance(entry, dict):
            decoded = _decode(entry, f"{path}: auths[{key!r}]")
            if decoded is not None:
                return decoded
    return None


def _server_url(host: str) -> str:
    """What docker hands a helper: Hub credentials live under the v1 index URL, others under the host."""
    return _HUB_KEYS[0] if host in (DOCKER_HUB, "registry-1.docker.io", "index.docker.io") else host


def _credentials(username: str, secret: str) -> Credentials:
    # docker's helper protocol: the user name "<token>" says the secret is an identity token.
    if username == "<token>":
        return Credentials(None, identity_token=secret)
    return Credentials(username, secret)


def _keys(host: str) -> list[str]:
    if host in (DOCKER_HUB, "registry-1.docker.io", "index.docker.io"):
        return list(_HUB_KEYS)
    return [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]


def _decode(entry: dict[str, object], where: str) -> Credentials | None:
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials(None, identity_token=token)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, password = base64.b64decode(auth, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(f"{where}.auth: not base64 of user:password") from None
        if not sep:
            raise ConfigError(f"{where}.auth: not base64 of user:password")
        return Credentials(user, password)
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str):
        return Credentials(name, secret)
    return None
