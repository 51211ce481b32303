"""What a registry event says, whatever its format: which repository changed and how."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from ...digest import Digest

#: The formats understood (``regprobe_events_received{source}``). GitLab's registry sends distribution's
#: envelope and cannot be told apart from it.
Source = Literal["distribution", "harbor", "zot", "acr", "quay", "dockerhub", "ecr"]
SOURCES: tuple[Source, ...] = ("distribution", "harbor", "zot", "acr", "quay", "dockerhub", "ecr")


class ParseError(ValueError):
    """A body, or one event in it, that is not an event of a known format; the message says what is wrong
    (HTTP 400 when nothing in the body could be used)."""


class Action(StrEnum):
    PUSH = "push"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Event:
    """One change to one repository.

    A push names a tag, a digest or both. A delete names a tag (that tag is gone), a digest (a manifest or
    a blob: distribution's events cannot tell which), both (a tag deleted with the manifest it named), or
    neither (the whole repository is gone).
    """

    source: Source
    #: The sender's event id, else a hash of the event's own JSON: a retried delivery has the same key.
    key: str
    action: Action
    repository: str
    tag: str | None = None
    digest: Digest | None = None
    #: ``host[:port]`` of the registry the event names; None for formats that name none (zot).
    host: str | None = None

    @property
    def reference(self) -> str:
        """``repo:tag``, ``repo@sha256:0123456789ab``, ``repo:tag@...``, or ``repo`` (the repository)."""
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest.short}"
        return out

    def describe(self) -> str:
        return f"{self.action.value} {self.reference}"


#: Well-formed events that call for no re-check (``regprobe_events_ignored{source,action}``): pulls, pushes
#: by digest of objects no broken tag needs, and the rest (scans, charts, quotas, repository creation).
Ignored = Literal["pull", "push", "other"]
