"""``POST /events`` in-process: only the shared secret gets in, bodies are bounded, what cannot be read is a
400, only configured registries and selected repositories are taken, each event once, and the queue of
re-checks stays within its bound whatever arrives. Each format's fixture (testdata/events) is posted to
a server configured with the registries it names, and lands in the same re-check as distribution's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest

from regprobe import config
from regprobe.digest import Digest
from regprobe.serve.app import Server
from regprobe.serve.events.pending import MAX_TAGS, Batch
from regprobe.serve.events.receiver import MAX_BODY

from .test_event_formats import A, B, D, E, H, fixture

SECRET = "hunter2-events"
BEARER = {"Authorization": f"Bearer {SECRET}"}
ECR_HOST = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
REGISTRIES: list[dict[str, Any]] = [
    {"name": "dist", "url": "http://registry.internal:5000", "repositories": {"include": ["team/*"]}},
    {"name": "gitlab", "url": "https://registry.gitlab.corp"},
    {"name": "harbor", "url": "https://hub.harbor.com"},
    {"name": "harbor-dev", "url": "https://harbor.dev"},
    {"name": "acr", "url": "https://myregistry.azurecr.io"},
    {"name": "quay", "url": "https://quay.io"},
    {"name": "hub", "url": "https://registry-1.docker.io", "repositories": {"list": ["svendowideit/testhook"]}},
    {"name": "ecr", "url": f"https://{ECR_HOST}"},
    {"name": "zot", "url": "http://zot.internal:5000"},
    {"name": "cache", "url": "http://cache.internal:5000", "pull_through": True, "storage_root": "/nonexistent"},
]


def server_with(tmp_path: Path, max_pending: int = 1000, **registries: Any) -> Server:
    secret = tmp_path / "events-secret"
    if not secret.exists():
        secret.write_text(SECRET + "\n")
    events = {"secret_file": str(secret), "settle": 60, "max_pending": max_pending}
    cfg = config.parse({"registries": REGISTRIES, "serve": {"events": events}}, "test.yaml")
    return Server(cfg, 3600, None)


def serving(server: Server, test: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def go() -> None:
        async with TestClient(TestServer(server.app())) as client:
            await test(client)

    asyncio.run(go())


def metric(server: Server, name: str, **labels: str) -> float:
    value = server.metrics.get_sample_value(name, labels)
    return 0.0 if value is None else value


def batch(server: Server, registry: str, repository: str) -> Batch:
    assert server.events is not None
    found = server.events.pending.waiting(registry, repository)
    assert found is not None, (registry, repository)
    return found


async def post(
    client: TestClient[Any, Any], body: Any, headers: dict[str, str] | None = None, query: str = ""
) -> tuple[int, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.post(f"/events{query}", data=data, headers=BEARER if headers is None else headers)
    return response.status, await response.text()


def post_fixture(client: TestClient[Any, Any], name: str, query: str = "") -> Awaitable[tuple[int, str]]:
    body, headers, _ = fixture(name)
    return post(client, body, {**BEARER, **{k.title(): v for k, v in headers.items()}}, query)


# --- every format, into the same re-check ----------------------------------------------------------------


def test_every_format_lands_in_its_repositorys_recheck(tmp_path: Path) -> None:
    server = server_with(tmp_path)

    async def test(client: TestClient[Any, Any]) -> None:
        assert await post_fixture(client, "distribution-push-tag") == (
            202,
            '{"accepted": 1, "ignored": 0, "refused": 0}',
        )
        # A pull and a blob push nothing broken needs: ignored; Team/API: refused; the rest taken.
        status, text = await post_fixture(client, "distribution-mixed-envelope")
        assert (status, json.loads(text)) == (202, {"accepted": 2, "ignored": 2, "refused": 1})
        assert await post_fixture(client, "distribution-v3-delete-tag") == (
            202,
            '{"accepted": 1, "ignored": 0, "refused": 0}',
        )
        for name in ("gitlab-push", "harbor-push", "harbor-delete", "harbor-retention", "harbor-cloudevents-push"):
            assert (await post_fixture(client, name))[0] == 202, name
        assert (await post_fixture(client, "harbor-pull"))[0] == 200
        # zot names no host: the endpoint URL says which registry it is.
        assert (await post_fixture(client, "zot-binary-push", "?registry=zot"))[0] == 202
        assert (await post_fixture(client, "zot-binary-delete-tag", "?registry=zot"))[0] == 202
        for name in ("acr-push", "acr-delete", "acr-eventgrid-push", "quay-push", "dockerhub-push", "ecr-push"):
            assert (await post_fixture(client, name))[0] == 202, name
        assert (await post_fixture(client, "ecr-delete"))[0] == 202

    serving(server, test)
    api = batch(server, "dist", "team/api")
    # Pushed, then (v3) deleted: v1 goes; "old" deleted; D (a manifest or a blob) deleted.
    assert (api.verify, api.deleted, api.digests) == (set(), {"old", "v1"}, {Digest.parse(D)})
    assert api.events == 4 and len(api.records) == 4
    assert batch(server, "gitlab", "group/project/image").verify == {"main"}
    assert batch(server, "harbor", "test-webhook/debian").verify == {"latest"}
    busybox = batch(server, "harbor-dev", "library/busybox")
    assert (busybox.verify, busybox.deleted, busybox.digests) == ({"1.36"}, {"1.35"}, {Digest.parse(B)})
    zot = batch(server, "zot", "team/api")
    # Pushed, then deleted by tag (untagged, and the manifest with it): the tag goes, its digest's tags
    # are re-verified.
    assert (zot.verify, zot.deleted, zot.digests) == (set(), {"v2"}, {Digest.parse(D)})
    assert batch(server, "acr", "hello-world").verify == {"v1"} and batch(server, "acr", "hello-world").digests == {
        Digest.parse(A)
    }
    assert batch(server, "acr", "aci-helloworld").verify == {"v1"}
    assert batch(server, "quay", "dgangaia/test").verify == {"latest", "v1.2"}
    assert batch(server, "hub", "svendowideit/testhook").verify == {"latest"}
    ecr = batch(server, "ecr", "my-repository-name")
    assert (ecr.verify, ecr.deleted, ecr.digests) == (set(), {"latest"}, {Digest.parse(E)})
    received = {
        (s.labels["registry"], s.labels["source"], s.labels["action"]): s.value
        for family in server.metrics.collect()
        if family.name == "regprobe_events_received"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert received[("dist", "distribution", "push")] == 1
    assert received[("dist", "distribution", "delete")] == 3
    assert received[("harbor-dev", "harbor", "delete")] == 2
    assert received[("quay", "quay", "push")] == 2
    assert received[("ecr", "ecr", "delete")] == 1
    assert metric(server, "regprobe_events_ignored_total", source="harbor", action="pull") == 1
    assert metric(server, "regprobe_events_ignored_total", source="distribution", action="push") == 1
    assert metric(server, "regprobe_events_rejected_total", reason="parse") == 1
    assert metric(server, "regprobe_event_queue_depth") == 10


def test_event_grid_subscription_is_validated(tmp_path: Path) -> None:
    server = server_with(tmp_path)

    async def test(client: TestClient[Any, Any]) -> None:
        status, text = await post_fixture(client, "acr-eventgrid-validation")
        assert (status, json.loads(text)) == (200, {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
        # Without the secret, no handshake: the subscription cannot be made to deliver to serve.
        status, _ = await post(client, fixture("acr-eventgrid-validation")[0], {})
        assert status == 401

    serving(server, test)


# --- who may send, and how much ------------------------------------------------------------------------------


def test_only_the_secret_gets_in_and_a_rotated_one_replaces_it(tmp_path: Path) -> None:
    server = server_with(tmp_path)
    secret = tmp_path / "events-secret"
    envelope = json.loads(fixture("distribution-push-tag")[0])

    async def test(client: TestClient[Any, Any]) -> None:
        refused = [
            {},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {SECRET}x"},
            {"Authorization": f"Token {SECRET}"},
            {"Authorization": f"Basic {SECRET}"},  # not base64 of user:password
        ]
        for headers in refused:
            response = await client.post("/events", json=envelope, headers=headers)
            assert response.status == 401, headers
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="regprobe events"'
        assert metric(server, "regprobe_events_rejected_total", reason="auth") == len(refused)
        assert metric(server, "regprobe_event_queue_depth") == 0

        # What an HTTP client sends for https://regprobe:<secret>@host/events (Quay, Docker Hub).
        import base64

        basic = base64.b64encode(f"regprobe:{SECRET}".encode()).decode()
        assert (await post(client, envelope, {"Authorization": f"Basic {basic}"}))[0] == 202

        secret.write_text("rotated\n")
        assert (await post(client, envelope))[0] == 401
        assert (await post(client, envelope, {"Authorization": "Bearer rotated"}))[0] == 200  # a duplicate now
        secret.unlink()  # gone: every sender refused, never the last secret read
        assert (await post(client, envelope, {"Authorization": "Bearer rotated"}))[0] == 401
        secret.write_text("back\n")
        assert (await post(client, envelope, {"Authorization": "Bearer back"}))[0] == 200
        secret.write_text("")  # emptied: refused too, the last secret read is not kept
        assert (await post(client, envelope, {"Authorization": "Bearer back"}))[0] == 401
        assert (await post(client, envelope, {"Authorization": "Bearer "}))[0] == 401

    serving(server, test)


def test_bodies_are_bounded(tmp_path: Path) -> None:
    server = server_with(tmp_path)

    async def test(client: TestClient[Any, Any]) -> None:
        big = b"{" + b" " * MAX_BODY + b"}"
        assert (await post(client, big))[0] == 413

        async def chunks() -> Any:  # no Content-Length: counted as it arrives
            for _ in range(MAX_BODY // 65536 + 2):
                yield b" " * 65536

        response = await client.post("/events", data=chunks(), headers=BEARER)
        assert response.status == 413
        assert metric(server, "regprobe_events_rejected_total", reason="too_large") == 2
        # Without the secret the body is not read at all: 401 whatever its size.
        assert (await post(client, big, {}))[0] == 401

    serving(server, test)


def test_unreadable_bodies_are_a_400_naming_why(tmp_path: Path) -> None:
    server = server_with(tmp_path)

    async def test(client: TestClient[Any, Any]) -> None:
        assert await post(client, b"not json") == (400, "the body is not JSON\n")
        status, text = await post(client, {"hello": "world"})
        assert status == 400 and "not an event of distribution/GitLab, Harbor" in text
        assert (await post(client, b"[" * 200_000))[0] == 400
        assert metric(server, "regprobe_events_rejected_total", reason="parse") == 3

    serving(server, test)


def test_events_are_off_without_a_secret(tmp_path: Path) -> None:
    cfg = config.parse({"registries": REGISTRIES}, "test.yaml")
    server = Server(cfg, 3600, None)

    async def test(client: TestClient[Any, Any]) -> None:
        response = await client.post("/events", json={}, headers=BEARER)
        assert response.status == 404
        assert "serve.events.secret_file" in await response.text()
        assert b"regprobe_events_received" not in generate_latest(server.metrics)

    serving(server, test)


# --- which events are taken ----------------------------------------------------------------------------------


def envelope(
    repository: str, host: str = "registry.internal:5000", event_id: str = "e1", tag: str = "v1"
) -> dict[str, Any]:
    return {
        "events": [
            {
                "id": event_id,
                "action": "push",
                "target": {"repository": repository, "tag": tag},
                "request": {"host": host},
            }
        ]
    }


def test_only_configured_registries_and_selected_repositories(tmp_path: Path) -> None:
    server = server_with(tmp_path)

    async def test(client: TestClient[Any, Any]) -> None:
        # Another host, another port of the same host, a name not configured: nothing queued, nothing asked.
        for body, query in (
            (envelope("team/api", "evil.internal:5000", "a"), ""),
            (envelope("team/api", "registry.internal:5001", "b"), ""),
            (envelope("team/api", "registry.internal:5000", "c"), "?registry=nope"),
        ):
            status, text = await post(client, body, query=query)
            assert (status, json.loads(text)["refused"]) == (200, 1)
        assert metric(server, "regprobe_events_rejected_total", reason="unknown_registry") == 3
        # Configured host, repository outside its selection.
        assert (await post(client, envelope("other/api", event_id="d")))[0] == 200
        assert metric(server, "regprobe_events_rejected_total", reason="unselected") == 1
        # A pull-through cache: left to its walks.
        assert (await post(client, envelope("team/api", "cache.internal:5000", "e")))[0] == 200
        assert metric(server, "regprobe_events_rejected_total", reason="pull_through") == 1
        # ?registry= wins over the host the event names (the registry's own, behind an ingress).
        assert (await post(client, envelope("team/api", "registry.example.com", "f"), query="?registry=dist"))[0] == 202
        assert metric(server, "regprobe_event_queue_depth") == 1
        page = await (await client.get("/")).text()
        assert "refused: no configured registry is &#x27;evil.internal:5000&#x27;" in page
        assert "refused: no configured registry is ?registry=&#x27;nope&#x27;" in page

    serving(server, test)


def test_each_event_is_taken_once(tmp_path: Path) -> None:
    server = server_with(tmp_path)

    async def test(client: TestClient[Any, Any]) -> None:
        assert (await post(client, envelope("team/api")))[0] == 202
        assert (await post(client, envelope("team/api")))[0] == 200  # the sender retried
        assert metric(server, "regprobe_events_rejected_total", reason="duplicate") == 1
        assert (
            metric(server, "regprobe_events_received_total", registry="dist", source="distribution", action="push") == 1
        )

    serving(server, test)
    assert batch(server, "dist", "team/api").events == 1


def test_the_queue_is_bounded_and_drops_are_counted(tmp_path: Path) -> None:
    """10,000 events for 10,000 repositories at once: max_pending are queued, the rest refused and
    counted; events for a repository already waiting still join it (bench/events_burst.py measures the
    memory)."""
    server = server_with(tmp_path, max_pending=100)

    async def test(client: TestClient[Any, Any]) -> None:
        for start in range(0, 10_000, 2_500):
            events = [
                {
                    "id": f"e{i}",
                    "action": "push",
                    "target": {"repository": f"team/r{i}", "tag": "v1"},
                    "request": {"host": "registry.internal:5000"},
                }
                for i in range(start, start + 2_500)
            ]
            status, _ = await post(client, {"events": events})
            assert status in (200, 202)
        assert metric(server, "regprobe_event_queue_depth") == 100
        assert metric(server, "regprobe_events_rejected_total", reason="queue_full") == 9_900
        assert (
            metric(server, "regprobe_events_received_total", registry="dist", source="distribution", action="push")
            == 100
        )
        # A repository already waiting takes more events without a new place.
        assert (await post(client, envelope("team/r0", event_id="again", tag="v2")))[0] == 202
        assert metric(server, "regprobe_event_queue_depth") == 100

    serving(server, test)
    assert batch(server, "dist", "team/r0").verify == {"v1", "v2"}


def test_a_batch_stays_bounded_and_keeps_the_order_of_its_events() -> None:
    from regprobe.serve.events.event import Action, Event
    from regprobe.serve.events.pending import MAX_RECORDS, Record

    def add(b: Batch, action: Action, tag: str | None = None, digest: str | None = None) -> None:
        event = Event("distribution", "k", action, "team/api", tag, Digest.parse(digest) if digest else None)
        b.add(event, Record(0.0, "dist", "distribution", event.describe()), [])

    b = Batch("dist", "team/api", 0.0, 0.0)
    add(b, Action.PUSH, "v1")
    add(b, Action.DELETE, "v1")
    assert (b.verify, b.deleted) == (set(), {"v1"})
    add(b, Action.PUSH, "v1")  # pushed again: verified, not dropped
    assert (b.verify, b.deleted) == ({"v1"}, set())
    add(b, Action.DELETE)  # the repository deleted: what came before is moot
    assert (b.verify, b.deleted, b.repository_gone) == (set(), set(), True)
    add(b, Action.PUSH, "v9")  # pushed after: verified after the series are dropped
    assert b.verify == {"v9"} and b.repository_gone
    for i in range(MAX_TAGS + 1):
        add(b, Action.PUSH, f"t{i}")
    assert b.whole and not b.verify  # beyond the bound: every tag, by listing the repository
    assert len(b.records) == MAX_RECORDS and b.events == MAX_TAGS + 6
    assert b.records[-1].description == f"push team/api:t{MAX_TAGS}"  # the newest kept: they are on the page
    add(b, Action.DELETE, "t1")
    add(b, Action.DELETE, digest=H)
    assert not (b.verify or b.deleted or b.digests)  # all covered by the whole repository's re-check
    add(b, Action.DELETE)
    assert b.repository_gone and not b.whole


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (None, "serve.events.secret_file: cannot read {path}: No such file or directory"),
        ("", "serve.events.secret_file: {path} is empty"),
    ],
)
def test_serve_will_not_start_without_its_events_secret(
    secret: str | None, message: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """serve stops at start (exit 2, naming the key); `run` with the same file is not concerned - a
    CronJob sharing the config has no such Secret mounted."""
    path = tmp_path / "events-secret"
    if secret is not None:
        path.write_text(secret)
    config = probe_config({"name": "r", "url": "http://127.0.0.1:1"}, serve={"events": {"secret_file": str(path)}})
    result = regprobe("serve", "-c", config)
    assert result.code == 2
    assert message.format(path=path) in result.err
    assert regprobe("run", "--no-push", "-c", config).code == 3  # probed (nothing answers), not refused
