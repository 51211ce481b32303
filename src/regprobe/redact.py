"""URLs as they may appear in logs, reports and error texts: without the secrets registries put in them.

Presigned storage URLs carry credentials in the query (S3 ``X-Amz-Signature``/``X-Amz-Credential``,
Azure ``sig``, CloudFront ``Signature``, Docker Hub's CDN ``verify``, Quay's CDN even the ``username``),
and some in the path (Quay's ``/_storage_proxy/<JWT>/...``, GAR's ``/downloads/<signature>``;
REGISTRY-QUIRKS.md section 4). So a shown URL never has a query or userinfo, and path segments that
look like tokens are masked. Texts from libraries (httpx, aiohttp exceptions embed the URL) go through
:func:`redact` before they are kept.
"""

from __future__ import annotations

import re

import httpx

MASK = "…"
#: Path segments at least this long are signatures or tokens: digests (``sha256:`` + 64 hex, 71
#: characters) and repository components stay readable.
_LONG_SEGMENT = 100
_JWT = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.?[A-Za-z0-9_-]*$")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]]+")
#: ``name=value`` of a signing parameter, wherever it appears in a text (a query printed on its own).
_SECRET_PARAM = re.compile(
    r"(?i)\b(x-amz-[a-z-]+|sig|signature|verify|username|token|access_token|key-pair-id|policy|se|sv|expires)"
    r"=[^&\s'\"]*"
)


def display_url(url: httpx.URL | str) -> str:
    """``scheme://host[:port]/path``: no query, no userinfo, token-like path segments masked."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return MASK
    segments = parsed.raw_path.split(b"?", 1)[0].decode("ascii", "replace").split("/")
    masked: list[str] = []
    for i, segment in enumerate(segments):
        after_proxy = i > 0 and segments[i - 1] == "_storage_proxy"
        if after_proxy or len(segment) >= _LONG_SEGMENT or _JWT.match(segment):
            masked.append(MASK)
        else:
            masked.append(segment)
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii', 'replace')}{'/'.join(masked)}"


def origin(url: httpx.URL) -> str:
    """``scheme://host[:port]``: all that is shown of a redirect's target."""
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def redact(text: str) -> str:
    """``text`` with every URL in it reduced to :func:`display_url` and signing parameters masked."""
    text = _URL.sub(lambda m: display_url(m.group(0)), text)
    return _SECRET_PARAM.sub(lambda m: m.group(0).split("=", 1)[0] + "=" + MASK, text)
