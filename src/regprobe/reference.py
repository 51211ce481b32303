"""Image references: ``host[:port]/repo[:tag][@digest]``, with Docker Hub short names normalised.

Follows the grammar of distribution's ``reference`` package (the one ``docker pull`` uses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .digest import Digest
from .errors import DigestError, InvalidReferenceError

DOCKER_HUB: Final = "docker.io"
# docker.io is the name people write; the API lives elsewhere.
DOCKER_HUB_API: Final = "registry-1.docker.io"
_HUB_ALIASES: Final = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_COMPONENT: Final = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
#: A whole repository path: components joined by "/" (length is checked by validate_repository).
REPOSITORY: Final = re.compile(rf"{_COMPONENT.pattern}(?:/{_COMPONENT.pattern})*")
_TAG: Final = re.compile(r"[\w][\w.-]{0,127}")
_HOST: Final = re.compile(
    r"(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)"
    r"(?::[0-9]{1,5})?"
)
_MAX_NAME: Final = 255


def validate_repository(name: str) -> str:
    """Raise unless ``name`` is a valid repository path (it ends up in URLs)."""
    if not name or len(name) > _MAX_NAME:
        raise InvalidReferenceError(f"repository name {name[:80]!r} must be 1-{_MAX_NAME} characters")
    for part in name.split("/"):
        if not _COMPONENT.fullmatch(part):
            raise InvalidReferenceError(
                f"repository name {name[:80]!r}: component {part[:40]!r} must be lowercase "
                "alphanumerics separated by '.', '_', '__' or '-'"
            )
    return name


def validate_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise InvalidReferenceError(f"tag {tag[:80]!r} is not a valid tag (letters, digits, '_', '.', '-'; max 128)")
    return tag


@dataclass(frozen=True, slots=True)
class Reference:
    host: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        if not text or len(text) > 1024 or text != text.strip():
            raise InvalidReferenceError(f"reference {text[:80]!r} is empty, too long or has surrounding space")
        rest, digest = text, None
        if "@" in rest:
            rest, _, digest_text = rest.partition("@")
            try:
                digest = Digest.parse(digest_text)
            except DigestError as exc:
                raise InvalidReferenceError(f"reference {text[:80]!r}: {exc}") from None
        tag = None
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            validate_tag(tag)
        first, sep, remainder = rest.partition("/")
        if sep and (("." in first or ":" in first or first == "localhost") or first.startswith("[")):
            host, name = first, remainder
            if not _HOST.fullmatch(host):
                raise InvalidReferenceError(f"reference {text[:80]!r}: {host[:80]!r} is not a valid host")
        else:
            host, name = DOCKER_HUB, rest
        if host.lower() in _HUB_ALIASES:
            host = DOCKER_HUB
            if "/" not in name:
                name = f"library/{name}"
        try:
            validate_repository(name)
        except InvalidReferenceError as exc:
            raise InvalidReferenceError(f"reference {text[:80]!r}: {exc}") from None
        if tag is None and digest is None:
            tag = "latest"
        return cls(host, name, tag, digest)

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    def __str__(self) -> str:
        out = f"{self.host}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out
