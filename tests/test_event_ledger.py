"""An event's re-check in the verification ledger (``state_dir``): written as a run writes, after the run
that holds the ledger when the re-check ends, never over a newer verdict; and the ledger's ``reaches``
narrowing a deleted digest's re-check to the tags that reach it - with a real registry and serve."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import yaml

from regprobe import config
from regprobe.ledger import Ledger, LedgerView, ObjectVerdict, TagVerdict, ledger_path
from regprobe.serve.amend import Amendment
from regprobe.serve.events.ledger import LedgerWriter, LedgerWrites

from .registry import Registry
from .servers import RegprobeServe
from .test_events import SECRET
from .util import wait_for

URL = "http://127.0.0.1:5000"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def writer(tmp_path: Path) -> tuple[LedgerWriter, config.RegistryConfig, Path]:
    cfg = config.parse({"registries": [{"name": "r", "url": URL}], "state_dir": str(tmp_path)}, "test.yaml")
    return LedgerWriter(cfg), cfg.registries[0], ledger_path(tmp_path, "r")


def writes(at: float, verdict: str = "broken", **amendment: object) -> LedgerWrites:
    tag = TagVerdict("a", "v1", D1, verdict, "manifest missing", reaches=(D1, D2))  # type: ignore[arg-type]
    recorded = ((tag,), (ObjectVerdict("a", D2, "manifest", verdict),))  # type: ignore[arg-type]
    return LedgerWrites(Amendment("a", at, {}, **amendment), (recorded,))  # type: ignore[arg-type]


def test_a_recheck_waits_for_the_run_that_holds_the_ledger(tmp_path: Path) -> None:
    w, registry, path = writer(tmp_path)
    with Ledger.open(path, identity=f"r {URL}") as held:  # a run walking
        held.note_listed("a", ["v1", "gone"], now=100.0)
        asyncio.run(w.write(registry, writes(200.0, gone=frozenset({"gone"}))))
        assert held.tag("a", "v1") is not None and held.tag("a", "v1").verdict is None  # type: ignore[union-attr]
    asyncio.run(w.write(registry))  # the server, once that run is published
    with LedgerView.open(path) as view:
        state = view.tag("a", "v1")
        assert state is not None and (state.verdict, state.verified_at) == ("broken", 200.0)
        assert view.tag("a", "gone") is None
        assert [(b.tag, b.problems) for b in view.broken_tags()] == [("v1", ())]
        assert view.reaching_in("a", D2) == frozenset({"v1"})


def test_a_newer_verdict_in_the_ledger_stands(tmp_path: Path) -> None:
    w, registry, path = writer(tmp_path)
    with Ledger.open(path, identity=f"r {URL}") as ledger:
        ledger.record([TagVerdict("a", "v1", D1, "ok")], [], now=300.0)  # the run walked it after
    asyncio.run(w.write(registry, writes(200.0)))
    with LedgerView.open(path) as view:
        state = view.tag("a", "v1")
        assert state is not None and (state.verdict, state.verified_at) == ("ok", 300.0)


def test_the_server_writes_what_waited_once_the_registrys_run_is_published(tmp_path: Path) -> None:
    from regprobe.model import RegistryResult
    from regprobe.serve.app import Server

    secret = tmp_path / "secret"
    secret.write_text("s")
    cfg = config.parse(
        {
            "registries": [{"name": "r", "url": URL}],
            "state_dir": str(tmp_path),
            "serve": {"events": {"secret_file": str(secret)}},
        },
        "test.yaml",
    )
    server = Server(cfg, 3600, None)
    events = server.events
    assert events is not None
    path = ledger_path(tmp_path, "r")

    async def go() -> None:
        with Ledger.open(path, identity=f"r {URL}"):  # the run, walking
            await events.rechecker.ledger.write(cfg.registries[0], writes(200.0))
        await server.record(RegistryResult("r", URL, True, True, started_at=100.0))

    asyncio.run(go())
    with LedgerView.open(path) as view:
        state = view.tag("a", "v1")
        assert state is not None and state.verdict == "broken"


def test_what_a_recheck_could_not_verify_goes_first_next_run(tmp_path: Path) -> None:
    w, registry, path = writer(tmp_path)
    with Ledger.open(path, identity=f"r {URL}") as ledger:
        ledger.note_listed("a", ["v1", "v2"], now=100.0)
        ledger.record([TagVerdict("a", "v1", D1, "ok"), TagVerdict("a", "v2", D1, "ok")], [], now=100.0)
    unverified = LedgerWrites(Amendment("a", 200.0, {}), (), frozenset({"v2"}))
    asyncio.run(w.write(registry, unverified))
    with LedgerView.open(path) as view:
        assert [(t.tag, t.verified_at) for t in view.tags()] == [("v2", None), ("v1", 100.0)]


def test_reaching_in_knows_only_what_walks_reached(tmp_path: Path) -> None:
    with Ledger.open(ledger_path(tmp_path, "r"), identity=f"r {URL}") as ledger:
        ledger.note_listed("a", ["v1", "v2", "new"], now=100.0)
        ledger.record(
            [TagVerdict("a", "v1", D1, "ok", reaches=(D1, D2)), TagVerdict("a", "v2", D2, "ok", reaches=(D2,))],
            [ObjectVerdict("a", D1, "manifest", "ok"), ObjectVerdict("a", D2, "manifest", "ok")],
            now=100.0,
        )
        assert ledger.reaching_in("a", D1) == frozenset({"v1", "new"})  # "new" never walked: it might
        assert ledger.reaching_in("a", D2) == frozenset({"v1", "v2", "new"})
        assert ledger.reaching_in("a", "sha256:" + "3" * 64) is None  # no walk reached it: cannot tell
        assert ledger.reaching_in("b", D1) is None


def test_with_a_ledger_a_delete_rechecks_only_the_tags_that_reach_it(tmp_path: Path, ns: str) -> None:
    """serve with state_dir: its run records every tag's objects; a deleted index child is re-checked
    in the one tag that reaches it (not the repository's other tag), found broken, and written to the
    ledger - whose broken set the next run publishes."""
    state = tmp_path / "state"
    secret_file = tmp_path / "events-secret"
    secret_file.write_text(SECRET)
    config_path = tmp_path / "config.yaml"
    server = RegprobeServe(tmp_path / "serve", str(config_path), interval="1h")
    name = f"led-{ns}"
    endpoint = {
        "name": "regprobe",
        "url": f"{server.url}/events?registry={name}",
        "headers": {"Authorization": [f"Bearer {SECRET}"]},
        "timeout": "1s",
        "threshold": 3,
        "backoff": "1s",
        "ignore": {"actions": ["pull"]},
    }
    registry = Registry(tmp_path / "registry", extra={"notifications": {"endpoints": [endpoint]}}).start()
    repository = f"{ns}/app"
    try:
        index = registry.push_index(repository, "v1", attestations=False)
        registry.push_image(repository, "other")
        config_path.write_text(
            yaml.safe_dump(
                {
                    "registries": [{"name": name, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}],
                    "state_dir": str(state),
                    "serve": {"events": {"secret_file": str(secret_file), "settle": 0.5}},
                }
            )
        )
        server.start()
        wait_for(lambda: server.value("regprobe_last_success_timestamp_seconds", registry=name), "the first run")
        # The pushes, announced before serve listened, arrive as the registry retries them.
        pushes = {"registry": name, "source": "distribution", "action": "push"}
        wait_for(lambda: (server.value("regprobe_events_received_total", **pushes) or 0) >= 2, "the push events")
        wait_for(lambda: "waiting for its re-check" not in httpx.get(server.url, timeout=5).text, "push re-checks")
        ledger = ledger_path(state, name)
        with LedgerView.open(ledger) as view:
            walked = view.tag(repository, "other")
            assert walked is not None and walked.verified_at is not None

        deleted = time.time()
        assert registry.http.delete(f"/v2/{repository}/manifests/{index.children[0].digest}").status_code == 202
        wait_for(
            lambda: server.value("regprobe_image_broken", registry=name, repository=repository, tag="v1") == 1,
            "v1 broken",
        )
        rows = httpx.get(server.url, timeout=5).text.split("<tr>")
        (row,) = [r for r in rows if f"delete {repository}@" in r]
        assert "<td>BROKEN: v1</td></tr>" in row, row  # "other" does not reach the child

        def written() -> bool:
            with LedgerView.open(ledger) as view:
                state_v1 = view.tag(repository, "v1")
                return state_v1 is not None and state_v1.verdict == "broken" and (state_v1.verified_at or 0) >= deleted

        wait_for(written, "the re-check's verdict in the ledger")
        with LedgerView.open(ledger) as view:
            other = view.tag(repository, "other")
            assert other is not None and other.verified_at == walked.verified_at  # not re-verified
            assert {(b.tag, b.problems[0][0]) for b in view.broken_tags()} == {("v1", "manifest")}
    finally:
        server.stop()
        registry.stop()
