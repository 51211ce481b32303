"""Registry events end to end: a real registry:2 whose ``notifications`` endpoint is a real ``regprobe
serve``, which re-checks what each event touched between its runs (docs/design/events.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .registry import FLAVOURS, PEERS, Registry
from .servers import SERVE_SCRAPE_JOB, Prometheus, RegprobeServe
from .util import wait_for

SECRET = "events-s3cret"
RULES = Path(__file__).parents[1] / "alerts" / "regprobe.rules.yml"


@dataclass
class Wired:
    registry: Registry
    server: RegprobeServe
    name: str
    secret_file: Path

    def broken(self, repository: str, tag: str) -> float | None:
        return self.server.value("regprobe_image_broken", registry=self.name, repository=repository, tag=tag)

    def outcomes(self) -> str:
        return httpx.get(self.server.url + "/", timeout=5).text


def wire(tmp_path: Path, ns: str, flavour: str = "2", settle: float = 1.0) -> Wired:
    """serve (events on, a run at start and none after) and a registry notifying it, as an operator wires
    them: the endpoint URL with the registry's name, the secret in a header."""
    secret_file = tmp_path / "events-secret"
    secret_file.write_text(SECRET + "\n")
    config = tmp_path / "config.yaml"
    server = RegprobeServe(tmp_path / "serve", str(config), interval="1h")
    name = f"ev-{ns}"
    endpoint = {
        "name": "regprobe",
        "url": f"{server.url}/events?registry={name}",
        "headers": {"Authorization": [f"Bearer {SECRET}"]},
        "timeout": "1s",
        "threshold": 3,
        "backoff": "1s",
    }
    registry = Registry(tmp_path / "registry", flavour=flavour, extra={"notifications": {"endpoints": [endpoint]}})
    registry.start()
    config.write_text(
        yaml.safe_dump(
            {
                "registries": [{"name": name, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}],
                "serve": {"events": {"secret_file": str(secret_file), "settle": settle}},
            }
        )
    )
    server.start()
    # The first run ends (nothing to walk yet: an incomplete run, "no repositories").
    wait_for(lambda: server.value("regprobe_last_run_timestamp_seconds", registry=name), "serve's first run")
    return Wired(registry, server, name, secret_file)


@pytest.fixture
def wired(tmp_path: Path, ns: str) -> Iterator[Wired]:
    w = wire(tmp_path, ns)
    yield w
    w.server.stop()
    w.registry.stop()


def accepted(w: Wired, source: str = "distribution", action: str = "push") -> float:
    return w.server.value("regprobe_events_received_total", registry=w.name, source=source, action=action) or 0


def settled(w: Wired, pushes: int) -> None:
    """Wait until ``pushes`` push events were taken and every event taken has its re-check's outcome."""
    wait_for(lambda: accepted(w) >= pushes and "waiting for its re-check" not in w.outcomes(), "the pushes re-checked")


def test_a_deleted_index_child_shows_broken_within_seconds_and_a_fix_resolves_it(
    wired: Wired, ns: str, tmp_path: Path, record_property: Any
) -> None:
    w, repository = wired, f"{ns}/app"
    index = w.registry.push_index(repository, "v1", attestations=False)
    w.registry.push_image(repository, "standalone")
    # The push events re-check v1 and standalone: intact, nothing published as broken.
    settled(w, 2)
    assert "OK: standalone, v1" in w.outcomes() or "OK: v1" in w.outcomes()
    assert w.broken(repository, "v1") is None

    child = index.children[1].digest
    deleted = time.monotonic()
    assert w.registry.http.delete(f"/v2/{repository}/manifests/{child}").status_code == 202
    wait_for(
        lambda: w.broken(repository, "v1") == 1, "v1 broken on /metrics after the delete", timeout=60, interval=0.1
    )
    elapsed = time.monotonic() - deleted
    record_property("delete_to_metrics_seconds", round(elapsed, 2))
    print(f"\nindex child deleted -> regprobe_image_broken on /metrics: {elapsed:.2f}s")
    assert w.server.value("regprobe_broken_images", registry=w.name) == 1
    assert w.server.value("regprobe_broken_objects", registry=w.name, kind="manifest") == 1
    assert w.broken(repository, "standalone") is None  # re-verified with the repository: intact
    assert (w.server.value("regprobe_event_recheck_seconds_count", registry=w.name) or 0) >= 2
    assert accepted(w, action="delete") == 1
    log = w.server.log()
    assert f"registry {w.name}: event delete {repository}@{child[:19]} (distribution) -> BROKEN: v1" in log
    page = w.outcomes()
    assert "Recent events" in page and "BROKEN: v1" in page and "found by an event" in page

    # The fix: the child pushed again by digest. No tag in its event, but it is what v1 is missing.
    mend(w.registry, repository, index, 1)
    wait_for(lambda: w.broken(repository, "v1") is None, "v1 resolved after the child came back", timeout=60)
    assert w.server.value("regprobe_broken_images", registry=w.name) == 0
    assert w.server.value("regprobe_broken_objects", registry=w.name, kind="manifest") == 0


def mend(registry: Registry, repository: str, index: Any, which: int) -> None:
    """Push an index child again, by digest, from the bytes the registry still holds."""
    child = index.children[which].digest
    data = registry.blob_path(child).read_bytes()
    registry.push_manifest(repository, child, data, "application/vnd.oci.image.manifest.v1+json")


def test_deleting_a_broken_image_drops_its_series(wired: Wired, ns: str) -> None:
    """A tagged manifest deleted by digest: distribution announces the digest and each tag it carried.
    The tag's series go, and the other tags are re-verified."""
    w, repository = wired, f"{ns}/app"
    index = w.registry.push_index(repository, "v1", attestations=False)
    w.registry.tag(repository, "v1-alias", index.digest)
    w.registry.push_image(repository, "v2")
    settled(w, 3)
    assert w.registry.http.delete(f"/v2/{repository}/manifests/{index.children[0].digest}").status_code == 202
    wait_for(lambda: w.broken(repository, "v1") == 1 and w.broken(repository, "v1-alias") == 1, "two broken tags")

    assert w.registry.http.delete(f"/v2/{repository}/manifests/{index.digest}").status_code == 202
    wait_for(lambda: w.server.value("regprobe_broken_images", registry=w.name) == 0, "the deleted tags' series gone")
    assert w.broken(repository, "v1") is None and w.broken(repository, "v1-alias") is None
    assert w.server.value("regprobe_image_broken", registry=w.name) is None
    assert "gone, series dropped: v1, v1-alias" in w.outcomes()


@pytest.mark.skipif("3" not in FLAVOURS or not (PEERS / "registry").exists(), reason="distribution v3 not installed")
def test_a_tag_delete_drops_that_tags_series(tmp_path: Path, ns: str) -> None:
    """distribution v3 deletes tags (2.8 answers DIGEST_INVALID): the event names the tag alone."""
    w = wire(tmp_path, ns, flavour="3")
    try:
        repository = f"{ns}/app"
        index = w.registry.push_index(repository, "v1", attestations=False)
        w.registry.tag(repository, "v2", index.digest)
        settled(w, 2)
        assert w.registry.http.delete(f"/v2/{repository}/manifests/{index.children[0].digest}").status_code == 202
        wait_for(lambda: w.broken(repository, "v1") == 1 and w.broken(repository, "v2") == 1, "both tags broken")
        assert w.registry.http.delete(f"/v2/{repository}/manifests/v1").status_code == 202
        wait_for(lambda: w.broken(repository, "v1") is None, "v1's series gone")
        assert w.broken(repository, "v2") == 1  # untouched: still broken
        assert w.server.value("regprobe_broken_images", registry=w.name) == 1
        assert "event delete " + repository + ":v1 (distribution) -> gone, series dropped: v1" in w.server.log()
    finally:
        w.server.stop()
        w.registry.stop()


def test_wrong_or_missing_secret_is_refused_and_changes_nothing(wired: Wired, ns: str) -> None:
    w, repository = wired, f"{ns}/app"
    index = w.registry.push_index(repository, "v1", attestations=False)
    settled(w, 1)
    received = accepted(w)
    child = index.children[0].digest
    # A delete announced by someone without the secret: as distribution would send it.
    envelope = {
        "events": [
            {
                "id": "forged-1",
                "action": "delete",
                "target": {"digest": index.digest, "repository": repository},
                "request": {"host": w.registry.host},
            }
        ]
    }
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {SECRET}"}):
        answer = httpx.post(f"{w.server.url}/events?registry={w.name}", json=envelope, headers=headers, timeout=5)
        assert answer.status_code == 401, headers
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert w.server.value("regprobe_events_rejected_total", reason="auth") == 3
    assert accepted(w) == received
    assert accepted(w, action="delete") == 0
    assert w.server.value("regprobe_event_queue_depth") == 0
    assert "forged" not in w.outcomes()

    # Rotated: the registry's old secret is refused from now on, the new one accepted.
    w.secret_file.write_text("rotated\n")
    assert w.registry.http.delete(f"/v2/{repository}/manifests/{child}").status_code == 202
    wait_for(
        lambda: (w.server.value("regprobe_events_rejected_total", reason="auth") or 0) > 3, "the old secret refused"
    )
    assert w.broken(repository, "v1") is None
    assert "events: refused (auth)" in w.server.log()
    assert SECRET not in w.server.log() and "rotated" not in w.server.log()


def test_the_alert_fires_in_prometheus_from_an_event(wired: Wired, ns: str, tmp_path: Path) -> None:
    w, repository = wired, f"{ns}/api"
    index = w.registry.push_index(repository, "v1", attestations=False)
    prometheus = Prometheus(tmp_path / "prometheus", f"127.0.0.1:{w.server.port}", [RULES], job=SERVE_SCRAPE_JOB)
    try:
        prometheus.start()
        wait_for(lambda: prometheus.query(f'regprobe_last_run_timestamp_seconds{{registry="{w.name}"}}'), "a scrape")
        assert w.registry.http.delete(f"/v2/{repository}/manifests/{index.children[1].digest}").status_code == 202

        def firing() -> list[dict[str, Any]]:
            return [
                a
                for a in prometheus.alerts()
                if a["labels"].get("alertname") == "RegistryManifestIntegrityFailure"
                and a["labels"].get("registry") == w.name
                and a["state"] == "firing"
            ]

        alert = wait_for(firing, "RegistryManifestIntegrityFailure firing", timeout=60)[0]
        assert f"Broken: {repository}:v1." in alert["annotations"]["description"]
    finally:
        prometheus.stop()


def test_a_delete_is_believed_only_when_the_registry_agrees(wired: Wired, ns: str) -> None:
    """Events arrive out of order, tags are pushed again, and whoever holds the secret could forge one:
    a tag an event says is deleted is dropped only once the registry's listing no longer has it; still
    listed, it is verified; when the listing cannot be read, nothing changes."""
    w, repository = wired, f"{ns}/app"
    index = w.registry.push_index(repository, "v1", attestations=False)
    settled(w, 1)
    assert w.registry.http.delete(f"/v2/{repository}/manifests/{index.children[0].digest}").status_code == 202
    wait_for(lambda: w.broken(repository, "v1") == 1, "v1 broken")

    def forged(event_id: str) -> None:
        body = {"events": [{"id": event_id, "action": "delete", "target": {"repository": repository, "tag": "v1"}}]}
        headers = {"Authorization": f"Bearer {SECRET}"}
        answer = httpx.post(f"{w.server.url}/events?registry={w.name}", json=body, headers=headers, timeout=5)
        assert answer.status_code == 202, answer.text

    with w.registry.unlistable_tags(repository):
        forged("forged-1")
        wait_for(lambda: "not verified" in w.outcomes(), "the re-check that could not list")
    assert w.broken(repository, "v1") == 1
    forged("forged-2")
    wait_for(lambda: w.outcomes().count("BROKEN: v1") >= 2, "the deleted-but-listed tag verified")
    assert w.broken(repository, "v1") == 1
    assert "gone, series dropped" not in w.outcomes()


def test_rechecks_share_a_client_per_registry_renewed_and_closed(
    registry: Registry, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-checks of one registry share its client (connections, tokens, concurrency); an old one is
    replaced and closed once its last re-check is done; a registry that cannot be reached right now
    leaves no broken client behind."""
    import asyncio

    from regprobe import config
    from regprobe.client import RegistryClient
    from regprobe.runner import NotProbed
    from regprobe.runner import configured_settings as real_settings
    from regprobe.serve.events import recheck as recheck_mod

    cfg = config.parse({"registries": [{"name": "r", "url": registry.url}]}, "test.yaml")
    (configured,) = cfg.registries
    closed: list[RegistryClient] = []
    real_close = RegistryClient.aclose

    async def aclose(self: RegistryClient) -> None:
        closed.append(self)
        await real_close(self)

    monkeypatch.setattr(RegistryClient, "aclose", aclose)
    registry.push_image(f"{ns}/app", "v1")

    async def go() -> None:
        clients = recheck_mod.Clients(cfg)
        async with clients.use(configured) as first, clients.use(configured) as again:
            assert first is again
            await first.ping()
        monkeypatch.setattr(recheck_mod.Clients, "MAX_AGE", 0.0)
        async with clients.use(configured) as renewed:
            assert renewed is not first and closed == [first]
            async with clients.use(configured) as newest:  # renewed again, in use: not closed yet
                assert closed == [first]
            assert closed == [first]
        assert closed == [first, renewed]

        async def unavailable(*args: object) -> object:
            raise NotProbed("auth.password_file: cannot read /run/secrets/x")

        monkeypatch.setattr(recheck_mod, "configured_settings", unavailable)
        with pytest.raises(NotProbed):
            async with clients.use(configured):
                pass
        monkeypatch.setattr(recheck_mod, "configured_settings", real_settings)
        async with clients.use(configured) as back:
            await back.ping()
        await clients.close()
        assert closed == [first, renewed, newest, back]

    asyncio.run(go())
