"""The HTTP client against request/response tables: what a real registry:2 can't be made to do."""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from regprobe.client import ClientSettings, RegistryClient, Reply, RetryPolicy
from regprobe.digest import Digest
from regprobe.errors import RegistryError

FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01, max_retry_after=0.05)
BLOB = Digest("sha256", "b" * 64)


def client(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> RegistryClient:
    settings = ClientSettings(url="http://registry.test", concurrency=4, timeout=2, retry=FAST, **kw)
    return RegistryClient(settings, transport=httpx.MockTransport(handler))


def table(*responses: httpx.Response) -> tuple[Callable[[httpx.Request], httpx.Response], list[httpx.Request]]:
    """Serve the responses in order (the last one repeats) and record the requests."""
    seen: list[httpx.Request] = []
    queue: Iterator[httpx.Response] = iter(responses)
    last = [responses[-1]]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        response = next(queue, None)
        if response is None:
            response = last[0]
        return httpx.Response(response.status_code, headers=response.headers, content=response.content)

    return handler, seen


def blob(c: RegistryClient, mode: str = "range") -> Reply:
    async def go() -> Reply:
        async with c:
            return await c.blob("app", BLOB, mode, 10)  # type: ignore[arg-type]

    return asyncio.run(go())


def test_503_twice_then_206_is_retried_and_counted() -> None:
    handler, seen = table(
        httpx.Response(503),
        httpx.Response(503),
        httpx.Response(206, headers={"content-range": "bytes 0-0/10"}, content=b"x"),
    )
    c = client(handler)
    reply = blob(c)
    assert (reply.status, reply.range_total, reply.received) == (206, 10, 1)
    assert len(seen) == 3 and seen[0].headers["range"] == "bytes=9-9"  # the last of 10
    assert (c.requests["server_error"], c.requests["retried"], c.requests["ok"]) == (2, 2, 1)


def test_5xx_that_outlasts_the_retries_is_returned_not_raised() -> None:
    handler, seen = table(httpx.Response(502))
    c = client(handler)
    assert blob(c).status == 502 and len(seen) == FAST.attempts


def test_404_is_an_answer_never_retried() -> None:
    handler, seen = table(httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]}))
    reply = blob(client(handler))
    assert (reply.status, reply.code, len(seen)) == (404, "BLOB_UNKNOWN", 1)


@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [
        ("7", 7.0),  # seconds
        ("in 30 s", 30.0),  # an HTTP date, written when the test runs
        ("3600", 60.0),  # capped at max_retry_after
        (email.utils.format_datetime(datetime(2015, 10, 21, tzinfo=UTC), usegmt=True), None),  # past: backoff only
        ("soon", None),  # unreadable: backoff only
    ],
)
def test_429_retry_after_is_honoured(retry_after: str, waited: float | None) -> None:
    """The wait before the retry is what the registry asked for (E6 in REGISTRY-QUIRKS.md), capped;
    the sleeps are recorded instead of slept."""
    if retry_after == "in 30 s":
        retry_after = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    handler, seen = table(
        httpx.Response(429, headers={"retry-after": retry_after}), httpx.Response(200, content=b"x" * 10)
    )
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    policy = RetryPolicy(attempts=3, base_delay=0.25, max_delay=8.0, max_retry_after=60.0)
    settings = ClientSettings(url="http://registry.test", retry=policy)
    c = RegistryClient(settings, transport=httpx.MockTransport(handler), sleep=sleep)
    assert blob(c, "head").status == 200
    assert len(seen) == 2 and c.requests["retried"] == 1 and c.requests["client_error"] == 1
    (slept,) = sleeps
    if waited is None:
        assert 0.125 <= slept <= 0.25  # the first backoff step, jittered
    else:
        assert waited - 2 <= slept <= waited


def test_an_empty_blob_is_asked_with_head() -> None:
    """A zero-byte blob has no last byte to ask for (registry:2 answers any Range on it with 416):
    in range mode it gets a HEAD, which proves all there is to prove."""
    handler, seen = table(httpx.Response(200, headers={"content-length": "0"}))

    async def go() -> Reply:
        async with client(handler) as c:
            return await c.blob("app", BLOB, "range", 0)

    assert asyncio.run(go()).status == 200
    assert [(r.method, r.headers.get("range")) for r in seen] == [("HEAD", None)]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]}', "BLOB_UNKNOWN"),
        (b'{"code": "NAME_UNKNOWN", "message": "repository name not known", "detail": null}', "NAME_UNKNOWN"),  # zot
        (b'{"errors": {"code": "X"}}', None),
        (b'{"errors": 5}', None),
        (b'{"errors": [5]}', None),
        (b'{"errors": []}', None),
        (b'{"errors": [{"code": 7}]}', None),
        (b'{"errors": [{"code": "BAD\\nLINE"}]}', None),  # never echoed into a report
        (b"[]", None),
        (b"", None),
        (b"<html><body>502 Bad Gateway</body></html>", None),
        (b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code></Error>", "NoSuchKey"),  # object storage (G5)
        (b"\xff\xfe", None),
    ],
)
def test_error_bodies_are_read_tolerantly(body: bytes, code: str | None) -> None:
    handler, _ = table(httpx.Response(404, content=body))
    reply = blob(client(handler))
    assert (reply.status, reply.code) == (404, code)


def test_timeout_becomes_unreachable_after_retries() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    c = client(handler)
    reply = blob(c)
    assert reply.status is None and reply.timeout and "ReadTimeout" in (reply.error or "")
    assert c.requests["timeout"] == FAST.attempts


def test_blob_redirect_to_storage_drops_authorization() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "registry.test":
            if "authorization" not in request.headers:
                return httpx.Response(401, headers={"www-authenticate": 'Basic realm="r"'})
            return httpx.Response(307, headers={"location": "https://bucket.s3.test/blob?X-Amz-Signature=secret"})
        return httpx.Response(206, headers={"content-range": "bytes 0-0/10"}, content=b"x")

    from regprobe.auth import RegistryAuth

    reply = blob(client(handler, auth=RegistryAuth("u", "p")))
    assert reply.status == 206
    storage = [r for r in seen if r.url.host == "bucket.s3.test"]
    assert storage and all("authorization" not in r.headers for r in storage)
    assert "X-Amz-Signature" not in reply.url  # presigned queries never reach output


def pages(c: RegistryClient) -> list[str]:
    async def go() -> list[str]:
        out: list[str] = []
        async with c:
            async for page in c.pages("/v2/_catalog", "repositories"):
                out.extend(page)
        return out

    return asyncio.run(go())


def test_retries_are_logged_with_the_registry_and_the_request(caplog: pytest.LogCaptureFixture) -> None:
    """-vv: each retry names the request and the registry it went to, and what came back - never the
    signed URL the registry redirected to."""
    answers = iter([httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE"}]})])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "registry.test":
            return httpx.Response(307, headers={"location": "https://bucket.s3.test/blob?X-Amz-Signature=secret"})
        return next(answers, None) or httpx.Response(206, headers={"content-range": "bytes 9-9/10"}, content=b"x")

    with caplog.at_level(logging.DEBUG, logger="regprobe.client"):
        assert blob(client(handler)).status == 206
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying")]
    assert line.startswith(f"retrying GET http://registry.test/v2/app/blobs/{BLOB} in ")
    assert line.endswith(
        ": try 1 of 3 answered 503 UNAVAILABLE (at https://bucket.s3.test, where the registry redirected)"
    )
    assert "secret" not in caplog.text and "X-Amz" not in caplog.text


def test_pagination_follows_relative_link_and_falls_back_when_n_is_too_big() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if params.get("n") == "1000":
            return httpx.Response(400, json={"errors": [{"code": "PAGINATION_NUMBER_INVALID"}]})
        if "last" not in params:
            return httpx.Response(
                200, json={"repositories": ["a", "b"]}, headers={"link": '</v2/_catalog?last=b&n=2>; rel="next"'}
            )
        return httpx.Response(200, json={"repositories": ["c"]})

    assert pages(client(handler)) == ["a", "b", "c"]


def test_pagination_link_to_another_host_is_not_followed() -> None:
    handler, seen = table(
        httpx.Response(
            200, json={"repositories": ["a"]}, headers={"link": '<https://evil.test/v2/_catalog?last=a>; rel="next"'}
        )
    )
    with pytest.raises(RegistryError, match="another host"):
        pages(client(handler))
    assert all(r.url.host == "registry.test" for r in seen)


@pytest.mark.parametrize("body", [b"not json", b'{"repositories": "a"}', b'{"repositories": [1, 2]}', b"[]"])
def test_hostile_listing_is_an_error(body: bytes) -> None:
    handler, _ = table(httpx.Response(200, content=body))
    with pytest.raises(RegistryError):
        pages(client(handler))


def test_null_tags_is_an_empty_repository() -> None:
    handler, _ = table(httpx.Response(200, json={"name": "a", "tags": None}))

    async def go() -> list[list[str]]:
        async with client(handler) as c:
            return [page async for page in c.pages("/v2/a/tags/list", "tags")]

    assert asyncio.run(go()) == [[]]


def test_manifest_over_the_size_bound_is_not_read() -> None:
    handler, _ = table(httpx.Response(200, content=b"{" + b" " * 5000 + b"}"))

    async def go() -> Reply:
        async with client(handler) as c:
            return await c.manifest("app", "latest", max_bytes=1024)

    reply = asyncio.run(go())
    assert reply.over_limit and reply.body == b""


def test_requests_in_flight_never_exceed_the_bound() -> None:
    in_flight, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        return httpx.Response(206, headers={"content-range": "bytes 0-0/10"}, content=b"x")

    async def go() -> None:
        async with client(handler) as c:  # type: ignore[arg-type]
            await asyncio.gather(*(c.blob(f"r{i}", BLOB, "range", 10) for i in range(40)))

    asyncio.run(go())
    assert peak == 4
