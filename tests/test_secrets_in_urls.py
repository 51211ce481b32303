"""Secrets registries put in URLs never reach logs, reports or metrics (REGISTRY-QUIRKS.md section 4,
fixtures D1-D3b): presigned queries (S3 ``X-Amz-Signature``/``X-Amz-Credential``, Azure ``sig``,
CloudFront ``Signature`` and Quay's ``username``, Docker Hub's ``verify``) and tokens in the path (Quay's
``/_storage_proxy/<JWT>/``, GAR's ``/downloads/<signature>``). The URL shapes are VERIFIED from Quay's
and distribution's source, REPORTED for the hosted registries.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import generate_latest

from regprobe import config
from regprobe.metrics import build
from regprobe.redact import display_url, redact
from regprobe.runner import run_config

from .hostile import HostileRegistry
from .registry import sha256
from .wire import Quiet, serve

JWT = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLXRoZS1wcm94eQ"
SECRETS = ("AKIASECRETCREDENTIAL", "deadbeefsignature", "alice", "cf-signature", "azure-sig", "1700000000-hubsig")
QUERY = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIASECRETCREDENTIAL%2F20260101%2Fus-east-1"
    "&X-Amz-Signature=deadbeefsignature&username=alice&Signature=cf-signature&sig=azure-sig"
    "&verify=1700000000-hubsig"
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://s3.example.com/bucket/docker/data?{QUERY}", "https://s3.example.com/bucket/docker/data"),
        (
            f"https://quay.example.com/_storage_proxy/{JWT}/https/s3.example.com/bucket/key?{QUERY}",
            "https://quay.example.com/_storage_proxy/…/https/s3.example.com/bucket/key",
        ),
        (
            "https://gar.example.com/artifacts-downloads/namespaces/p/repositories/r/downloads/" + "AbCd" * 250,
            "https://gar.example.com/artifacts-downloads/namespaces/p/repositories/r/downloads/…",
        ),
        (  # D3b's token: base64 of a JWT, short, not JWT-shaped - masked for where it stands
            "https://quay.example.com/_storage_proxy/ZXlKaGJHY2lPaUpTVXpJMU5pSjku/https/s3.example.com/b/k",
            "https://quay.example.com/_storage_proxy/…/https/s3.example.com/b/k",
        ),
        (f"https://h.example.com/x/{JWT}/y", "https://h.example.com/x/…/y"),  # a JWT anywhere in the path
        ("https://ci:hunter2@registry.example.com:5000/v2/", "https://registry.example.com:5000/v2/"),
        (  # a digest is no secret: what an operator needs to find the object
            f"http://127.0.0.1:5000/v2/a/b/blobs/{sha256(b'x')}",
            f"http://127.0.0.1:5000/v2/a/b/blobs/{sha256(b'x')}",
        ),
    ],
)
def test_urls_are_shown_without_their_secrets(url: str, shown: str) -> None:
    assert display_url(url) == shown
    assert redact(f"failed: url='{url}' (see {url})") == f"failed: url='{shown}' (see {shown})"


def test_signing_parameters_are_masked_wherever_a_text_carries_them() -> None:
    assert redact(f"a query on its own: ?{QUERY}").count("…") == 7
    assert not any(secret in redact(f"?{QUERY}") for secret in SECRETS)


@contextlib.contextmanager
def unparseable_host() -> Iterator[str]:
    """Answers every request with a broken status line: aiohttp raises an error whose text holds the
    whole URL it requested."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    def run() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = sock.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 2OO Fine\r\nContent-Length: 1\r\n\r\nx")

    threading.Thread(target=run, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_presigned_urls_never_reach_logs_reports_or_metrics(regprobe: Any, probe_config: Any) -> None:
    """Quay with FEATURE_PROXY_STORAGE redirects to ``/_storage_proxy/<JWT>/...?<signed query>`` (D3b),
    other registries to a presigned query (D1-D3). The config is served from such a URL; the layer's
    storage host answers something unparseable (a broken proxy), so the error texts of the libraries
    underneath - which embed the URL - are in play too. Debug logs, JSON, text and the metrics hold none
    of the secrets."""
    evil = HostileRegistry().start()

    class Storage(Quiet):
        def get(self) -> None:
            self.answer(206, {"Content-Range": f"bytes 0-0/{len(evil.config)}"}, evil.config[:1])

    try:
        with serve(Storage) as storage, unparseable_host() as broken:
            targets = {
                sha256(evil.config): f"{storage}/_storage_proxy/{JWT}/https/s3.example.com/bucket/config?{QUERY}",
                sha256(evil.layer): f"{broken}/_storage_proxy/{JWT}/https/s3.example.com/bucket/layer?{QUERY}",
            }
            evil.blob_redirect, evil.redirect_status = targets.get, 302
            path = probe_config({"name": "quay", "url": evil.url}, timeout=5)
            as_json = regprobe("run", "-c", path, "--no-push", "--format", "json", "-vv")
            as_text = regprobe("run", "-c", path, "--no-push", "-vv")
            results = asyncio.run(run_config(config.load(path)))
    finally:
        evil.stop()

    assert as_json.code == 1, as_json.out + as_json.err
    [finding] = as_json.findings()
    assert (finding["kind"], finding["problem"], finding["status"]) == ("layer", "unreachable", None)
    assert f"GET failed (at {broken}, where the registry redirected): RemoteProtocolError" in finding["detail"]
    metrics = generate_latest(build(results[0], 50)).decode()
    everything = as_json.out + as_json.err + as_text.out + as_text.err + metrics + repr(results)
    for secret in (*SECRETS, JWT, "X-Amz-"):
        assert secret not in everything
