"""Where distribution 2.8.2 and v3 answer differently on the wire (docs/registries.md, "distribution v3"),
asked raw of the real servers so that table stays true. What regprobe makes of the answers is tested
with the walk (test_walk_registry.py), on both."""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest

from .registry import Registry

pytestmark = pytest.mark.each_registry


def ask(reg: Registry, path: str, **headers: str) -> tuple[int, httpx.Headers, bytes, str | None]:
    """Status, headers, the body bytes that arrived, and the error that cut it short (if one did)."""
    body = b""
    # A connection of its own: after an answer cut short mid-body, a kept-alive connection of the shared
    # client may be one the server has already closed, and the next request on it fails before any status.
    try:
        with (
            httpx.Client(base_url=reg.url, verify=False) as fresh,
            fresh.stream("GET", path, headers=headers) as response,
        ):
            try:
                for chunk in response.iter_raw():
                    body += chunk
            except httpx.TransportError as cut:
                return response.status_code, response.headers, body, type(cut).__name__
            return response.status_code, response.headers, body, None
    except httpx.TransportError as failed:
        return 0, httpx.Headers(), body, type(failed).__name__


def test_ranges_on_empty_and_short_data(registry_nocache: Registry, ns: str, flavour: str) -> None:
    reg, repo = registry_nocache, f"{ns}/app"
    empty = reg.push_blob(repo, b"")
    short = reg.push_image(repo, "v1", layers=[os.urandom(1364)]).layers[0]
    reg.shorten_blob(short, 682)

    status, headers, body, cut = ask(reg, f"/v2/{repo}/blobs/{empty}", Range="bytes=0-0")
    if flavour == "2":
        assert (status, headers.get("content-range"), body, cut) == (416, "bytes */0", b"", None)
    else:
        assert (status, headers.get("content-length"), headers.get("content-range"), cut) == (200, "0", None, None)

    # The last byte of what the descriptor promises is past the end of what is stored.
    status, headers, body, cut = ask(reg, f"/v2/{repo}/blobs/{short}", Range="bytes=1363-1363")
    assert (status, headers.get("content-range"), len(body)) == (416, "bytes */682", 33)
    if flavour == "2":
        # Content-Length says the stored size, 33 bytes come, and the connection closes mid-body.
        assert (headers.get("content-length"), cut) == ("682", "RemoteProtocolError")
    else:
        assert (headers.get("content-length"), cut) == ("33", None)


def test_malformed_requests_and_error_details(registry_nocache: Registry, ns: str, flavour: str) -> None:
    reg, repo = registry_nocache, f"{ns}/app"
    reg.push_image(repo, "v1")

    def error(path: str) -> tuple[int, Any, Any]:
        response = reg.http.get(path)
        (first,) = response.json()["errors"]
        return response.status_code, first["code"], first["detail"]

    catalog = reg.http.get("/v2/_catalog?n=-1")
    if flavour == "2":
        assert catalog.status_code == 200  # n ignored
        assert error(f"/v2/{repo}/manifests/sha256:xyz")[:2] == (500, "UNKNOWN")
        assert error(f"/v2/{repo}/manifests/nope") == (404, "MANIFEST_UNKNOWN", {"Tag": "nope"})
    else:
        assert (catalog.status_code, catalog.json()["errors"][0]["code"]) == (400, "PAGINATION_NUMBER_INVALID")
        assert error(f"/v2/{repo}/manifests/sha256:xyz")[:2] == (400, "DIGEST_INVALID")
        assert error(f"/v2/{repo}/manifests/nope") == (404, "MANIFEST_UNKNOWN", "unknown tag=nope")
