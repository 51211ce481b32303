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


def hub_repository(host: str, name: str) -> str:
    """Docker Hub keeps its official images under ``library/``: there, ``alpine`` is ``library/alpine``
    (a token for ``repository:alpine:pull`` grants nothing, and the request is refused)."""
    return f"library/{name}" if host.lower() in _HUB_ALIASES and "/" not in name else name


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
    def parse(cls, text: str, default_tag: str | None = "latest") -> Reference:
        """``default_tag`` is the tag of a reference naming neither tag nor digest (None: no tag).

        Every error message starts with ``reference 'TEXT':``.
        """
        if not text or len(text) > 1024 or text != text.strip():
            raise InvalidReferenceError(f"reference {text[:80]!r}: empty, too long or has surrounding space")
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
            try:
                validate_tag(tag)
            except InvalidReferenceError as exc:
                raise InvalidReferenceError(f"reference {text[:80]!r}: {exc}") from None
        first, sep, remainder = rest.partition("/")
        if sep and (("." in first or ":" in first or first == "localhost") or first.startswith("[")):
            host, name = first, remainder
            if not _HOST.fullmatch(host):
                raise InvalidReferenceError(f"reference {text[:80]!r}: {host[:80]!r} is not a valid host")
        else:
            host, name = DOCKER_HUB, rest
        if host.lower() in _HUB_ALIASES:
            name = hub_repository(host, name)
            host = DOCKER_HUB
        try:
            validate_repository(name)
        except InvalidReferenceError as exc:
            raise InvalidReferenceError(f"reference {text[:80]!r}: {exc}") from None
        if tag is None and digest is None:
            tag = default_tag
        return cls(host, name, tag, digest)

    def registry_lookalike(self, text: str) -> str | None:
        """The registry ``text`` (parsed into this Docker Hub reference) probably meant, or None.

        Docker reads a bare ``127.0.0.1:5000`` or ``localhost:5000`` as the Hub image
        ``library/127.0.0.1`` with tag ``5000``; so do we, and this names the host a person meant.
        """
        if self.host != DOCKER_HUB or "/" in text.partition("@")[0]:
            return None
        name = self.repository.removeprefix("library/")
        if "." not in name and name != "localhost":
            return None
        return f"{name}:{self.tag}" if self.tag and self.tag.isdigit() else name

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
