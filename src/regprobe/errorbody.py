"""What a registry says in an error body - its code, message and detail - read tolerantly and made safe
to show.

Read as go-containerregistry's transport/error.go reads it: ``{"errors": [{"code", "message",
"detail"}]}``, or zot's bare ``{"code": ...}``; or object storage's XML ``<Error><Code>`` and
``<Message>``, for a redirected blob (REGISTRY-QUIRKS.md G5). Anything else - HTML from a proxy, odd
shapes - is simply nothing said, never a failure of its own.

The body comes from the registry, or from whatever answers in its place: nothing of it reaches a report
unbounded or unsanitised. A code is a short identifier or nothing; a message or a detail is cut to
:data:`TEXT_LIMIT` characters, with control, format and line-breaking characters replaced (no ANSI
escapes or fake lines in a terminal, a log or the text report) and URLs and signing parameters masked
(:func:`regprobe.redact.redact`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .redact import redact

#: Characters kept of a message or a detail.
TEXT_LIMIT = 200
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_XML_CODE = re.compile(rb"<Error>\s*<Code>([A-Za-z0-9_.-]{1,64})</Code>")
_XML_MESSAGE = re.compile(rb"<Message>([^<]{1,1024})</Message>")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """The registry's own words about an error, bounded and sanitised (see the module's docstring)."""

    code: str | None
    message: str | None
    #: distribution's ``detail`` is any JSON (2.8: ``{"Offset": 32}``; v3: a string): a string as it
    #: is, anything else as compact JSON text.
    detail: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "detail": self.detail}

    def __str__(self) -> str:
        """``UNKNOWN: unknown error (detail: {"Offset":32})``, for people."""
        text = ": ".join(part for part in (self.code, self.message) if part)
        if self.detail:
            text += f" (detail: {self.detail})" if text else f"detail: {self.detail}"
        return text


def parse(body: bytes) -> ErrorBody | None:
    """What the error body says; None when it says nothing usable."""
    xml = _XML_CODE.search(body[:1024])
    if xml is not None:
        message = _XML_MESSAGE.search(body[:4096])
        return ErrorBody(
            xml.group(1).decode(), _text(message.group(1).decode("utf-8", "replace")) if message else None, None
        )
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    errors = doc.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else doc
    if not isinstance(first, dict):
        return None
    code = first.get("code")
    said = ErrorBody(
        code if isinstance(code, str) and _CODE.fullmatch(code) else None,
        _text(first.get("message")) if isinstance(first.get("message"), str) else None,
        _text(first.get("detail")),
    )
    return said if said.code or said.message or said.detail else None


def _text(value: object) -> str | None:
    if value is None or value == "" or value == {} or value == []:
        return None
    if isinstance(value, str):
        text = value[: TEXT_LIMIT * 4]
    else:
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)[: TEXT_LIMIT * 4]
        except (ValueError, TypeError, RecursionError):
            return None
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    text = _SPACES.sub(" ", redact(text)).strip()
    if len(text) > TEXT_LIMIT:
        text = text[: TEXT_LIMIT - 1] + "…"
    return text or None
