"""`regprobe serve`'s process, in-process: its schedule survives a bug in one run, /healthz tells when the
schedule is gone, the page leaves "in progress" when a run ends, /probe refuses beyond its limit, and
the status page escapes and ranks what it shows."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from regprobe import config
from regprobe.carryover import BrokenImages
from regprobe.digest import Digest
from regprobe.model import Dangling, Finding, Kind, Problem, RegistryResult
from regprobe.serve import app as app_mod
from regprobe.serve import page
from regprobe.serve.app import MAX_PROBES, Server
from regprobe.serve.state import RunLog

from .hostile import port_that_accepts_and_never_answers


def server_for(url: str, interval: float = 0.01) -> Server:
    return Server(config.parse({"registries": [{"name": "r", "url": url}]}, "test.yaml"), interval, None)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` on the loop until it holds; fail naming ``what`` after 30 s."""
    try:
        async with asyncio.timeout(30):
            while not condition():  # noqa: ASYNC110 - the state polled has no event to wait on
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def serving(server: Server, test: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def go() -> None:
        async with TestClient(TestServer(server.app())) as client:
            await test(client)

    asyncio.run(go())


# --- the schedule ------------------------------------------------------------------------------------------


def test_a_bug_in_one_run_does_not_end_the_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug escaping a run (run_config never raises for registry trouble, so it is injected here) is
    logged and the next run still starts; /healthz stays ok and the page leaves "in progress"."""
    calls = 0

    async def buggy(*args: Any, **kwargs: Any) -> list[RegistryResult]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return []

    monkeypatch.setattr(app_mod, "run_config", buggy)
    server = server_for("http://127.0.0.1:1")

    async def test(client: TestClient[Any, Any]) -> None:
        schedule = server.start_schedule()
        await until(lambda: calls >= 2, "a second run")
        assert not schedule.done()
        assert (await client.get("/healthz")).status == 200
        schedule.cancel()

    serving(server, test)


def test_healthz_fails_once_the_schedule_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever ends the schedule (here a BaseException a run lets through), /healthz answers 503, so the
    liveness probe restarts the pod instead of serving frozen metrics."""

    class Fatal(BaseException):
        pass

    async def fatal(*args: Any, **kwargs: Any) -> list[RegistryResult]:
        raise Fatal

    monkeypatch.setattr(app_mod, "run_config", fatal)
    server = server_for("http://127.0.0.1:1")

    async def test(client: TestClient[Any, Any]) -> None:
        assert (await client.get("/healthz")).status == 200
        schedule = server.start_schedule()
        await until(schedule.done, "the schedule to end")
        response = await client.get("/healthz")
        assert (response.status, await response.text()) == (503, "the probe schedule has stopped\n")

    serving(server, test)


def test_the_page_leaves_in_progress_when_a_run_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    release = asyncio.Event()

    async def slow(*args: Any, **kwargs: Any) -> list[RegistryResult]:
        await release.wait()
        return []

    monkeypatch.setattr(app_mod, "run_config", slow)
    server = server_for("http://127.0.0.1:1", interval=3600)

    async def test(client: TestClient[Any, Any]) -> None:
        schedule = server.start_schedule()
        await until(lambda: server.runs.running_since is not None, "the run to start")
        assert "A run is in progress since" in await (await client.get("/")).text()
        release.set()
        await until(lambda: server.finished._value.get() == 1, "the run to end")
        text = await (await client.get("/")).text()
        assert "Waiting for the next run." in text and "in progress" not in text
        schedule.cancel()

    serving(server, test)


# --- /probe ----------------------------------------------------------------------------------------------------


def test_probes_beyond_the_limit_get_503() -> None:
    """MAX_PROBES walks of a registry that never answers are in flight: the next is refused at once,
    not queued behind them."""
    sock, port = port_that_accepts_and_never_answers()
    server = server_for(f"http://127.0.0.1:{port}")
    params = {"target": f"127.0.0.1:{port}/app:v1"}
    headers = {"X-Prometheus-Scrape-Timeout-Seconds": "60"}

    async def test(client: TestClient[Any, Any]) -> None:
        walks = [asyncio.create_task(client.get("/probe", params=params, headers=headers)) for _ in range(MAX_PROBES)]
        await until(server._probe_slots.locked, f"{MAX_PROBES} walks in flight")
        response = await client.get("/probe", params=params)
        assert (response.status, await response.text()) == (503, f"{MAX_PROBES} probes already in flight\n")
        for walk in walks:
            walk.cancel()
        await asyncio.gather(*walks, return_exceptions=True)

    try:
        serving(server, test)
    finally:
        sock.close()


# --- the status page ---------------------------------------------------------------------------------------------


def finding(detail: str, tag: str = "v1") -> Finding:
    return Finding("team/app", Digest("sha256", "d" * 64), Kind.LAYER, Problem.MISSING, 404, (tag,), None, detail)


def rendered(*results: RegistryResult, verdict: BrokenImages | None = None, keep: int = 10) -> str:
    log = RunLog(keep)
    for result in results:
        log.record(result, verdict)
    return page.render(log, [("r", "http://r")], 900)


def test_what_a_registry_sends_is_escaped_on_the_page() -> None:
    """Finding details and errors quote what the registry answered: markup there must stay text."""
    result = RegistryResult(
        "r",
        "http://r",
        True,
        False,
        findings=[finding("GET answered 404 <img src=x onerror=alert(1)>")],
        errors=["catalog: <script>alert(2)</script>"],
    )
    text = rendered(result)
    assert "<img" not in text and "<script>" not in text
    assert "GET answered 404 &lt;img src=x onerror=alert(1)&gt;" in text
    assert "catalog: &lt;script&gt;alert(2)&lt;/script&gt;" in text


def test_broken_wins_over_incomplete_on_the_page() -> None:
    cut_short = RegistryResult("r", "http://r", True, False, findings=[finding("")], errors=["deadline reached"])
    assert '<p class="broken"><strong>BROKEN</strong></p>' in rendered(cut_short)
    nothing_found = RegistryResult("r", "http://r", True, False, errors=["deadline reached"])
    assert '<p class="incomplete"><strong>INCOMPLETE</strong></p>' in rendered(nothing_found)


def test_earlier_verdicts_an_incomplete_run_kept_are_shown() -> None:
    cut_short = RegistryResult("r", "http://r", True, False, errors=["deadline reached"], reached={})
    kept = BrokenImages(frozenset({("team/app", "v1"), ("team/api", "v2")}), 0, {}, kept=2)
    text = rendered(cut_short, verdict=kept)
    assert '<p class="broken"><strong>BROKEN</strong></p>' in text
    assert "<tr><th>broken images</th><td>2</td></tr>" in text
    assert "<code>team/api:v2</code>, <code>team/app:v1</code>" in text


def test_the_run_history_is_bounded() -> None:
    runs = [RegistryResult("r", "http://r", True, True, started_at=float(i)) for i in range(25)]
    log = RunLog(10)
    for result in runs:
        log.record(result)
    assert [run.started_at for run in log.registries["r"].runs] == [float(i) for i in range(24, 14, -1)]


def test_dangling_referrers_are_counted_and_listed_apart_from_broken_images() -> None:
    subject = Digest("sha256", "e" * 64)
    dangling = [
        Dangling("team/app", Digest("sha256", "f" * 64), subject, "application/spdx+json", "subject_missing", "t"),
        Dangling("team/app", None, subject, None, "orphaned_fallback_tag", "sha256-<e>"),
    ]
    text = rendered(RegistryResult("r", "http://r", True, True, dangling=dangling))
    assert '<p class="ok"><strong>OK</strong></p>' in text
    assert "<tr><th>dangling referrers</th><td>2 <small>" in text
    assert "<td>SBOM (SPDX) <code>sha256:" + "f" * 64 + "</code></td>" in text
    assert "<td>fallback tag sha256-&lt;e&gt;</td>" in text  # escaped, as everything the registry names
