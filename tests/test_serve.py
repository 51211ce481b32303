"""`regprobe serve` against the real registry: the scheduled runs' metrics (same names and labels as
pushed), /probe confined to configured registries, the status page, /healthz, SIGTERM."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from regprobe.digest import Digest
from regprobe.model import Finding, Kind, Problem, RegistryResult
from regprobe.serve.ondemand import budget
from regprobe.serve.state import HeldMetrics

from .hostile import port_that_accepts_and_never_answers
from .registry import BASIC_PASSWORD, BASIC_USER, Registry
from .servers import Pushgateway, RegprobeServe
from .util import wait_for


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[RegprobeServe] = []

    def start(config: str, interval: str = "1h") -> RegprobeServe:
        server = RegprobeServe(tmp_path / f"serve{len(started)}", config, interval)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


def finished_run(server: RegprobeServe, registry: str) -> None:
    wait_for(lambda: server.value("regprobe_last_run_timestamp_seconds", registry=registry), f"a run of {registry}")


def shape(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> set[tuple[str, frozenset[str]]]:
    """(name, label names) of the contract's series, without what a scrape or a push adds."""
    return {
        (name, frozenset(k for k, _ in labels if k not in ("job", "instance")))
        for name, labels in samples
        if not name.startswith(("regprobe_serve_", "push_"))
    }


# --- scheduled runs --------------------------------------------------------------------------------------


def test_scheduled_run_serves_what_run_pushes(
    registry: Registry, ns: str, probe_config: Any, regprobe: Any, serve: Any, tmp_path: Path
) -> None:
    index = registry.push_index(f"{ns}/broken/api", "v1")
    registry.remove_revision_link(f"{ns}/broken/api", index.children[1].digest)
    registry.push_image(f"{ns}/healthy/api", "v1")
    broken = {"name": "broken", "url": registry.url, "repositories": {"include": [f"{ns}/broken/*"]}}
    healthy = {"name": "healthy", "url": registry.url, "repositories": {"include": [f"{ns}/healthy/*"]}}

    state = {"state_dir": str(tmp_path / "state")}  # serve runs the same probe, ledger and all
    server = serve(probe_config(broken, healthy, **state))
    finished_run(server, "broken")
    assert server.value("regprobe_images_known", registry="broken") == 1
    assert server.value("regprobe_images_verified_within_window", registry="broken") == 1
    assert server.value("regprobe_oldest_verification_age_seconds", registry="healthy") is not None
    assert server.value("regprobe_broken_images", registry="broken") == 1
    assert server.value("regprobe_image_broken", registry="broken", repository=f"{ns}/broken/api", tag="v1") == 1
    assert server.value("regprobe_broken_images", registry="healthy") == 0
    assert server.value("regprobe_last_success_timestamp_seconds", registry="healthy")
    assert server.value("regprobe_broken_objects", registry="broken", kind="manifest") == 1
    served = server.samples()

    # The same walk pushed by `regprobe run`: the same series, label for label.
    gateway = Pushgateway(tmp_path / "gateway").start()
    try:
        config = probe_config(broken, healthy, pushgateway={"url": gateway.url}, **state)
        assert regprobe("run", "-c", config).code == 1
        assert shape(served) == shape(gateway.samples())
    finally:
        gateway.stop()

    # Exposition-level: one HELP/TYPE per family across registries, and the process's own metrics.
    text = httpx.get(server.url + "/metrics", timeout=5).text
    assert text.count("# TYPE regprobe_broken_images gauge") == 1
    assert "process_resident_memory_bytes" in text
    assert server.value("regprobe_serve_runs_total") == 1


def finding(repository: str, tag: str) -> Finding:
    return Finding(repository, Digest("sha256", "b" * 64), Kind.LAYER, Problem.MISSING, 404, (tag,), None, "")


def held_text(held: HeldMetrics) -> str:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(held)
    return generate_latest(registry).decode()


def test_held_metrics_follow_the_push_semantics() -> None:
    """A failed run keeps the last success time and the last verdict, as the pushgateway keeps them
    after a POST; a completed run replaces everything, as a PUT does (metrics.py)."""
    held = HeldMetrics(50)
    broken = RegistryResult("r", "http://r", True, True, started_at=100.0, findings=[finding("a", "v1")])
    held.record(broken)
    held.record(RegistryResult("r", "http://r", catalog_accessible=False, complete=False, started_at=200.0))
    text = held_text(held)
    assert 'regprobe_last_success_timestamp_seconds{registry="r"} 100.0' in text
    assert 'regprobe_last_run_timestamp_seconds{registry="r"} 200.0' in text
    assert 'regprobe_image_broken{registry="r",repository="a",tag="v1"} 1.0' in text
    assert 'regprobe_catalog_accessible{registry="r"} 0.0' in text

    held.record(RegistryResult("r", "http://r", True, True, started_at=300.0))
    text = held_text(held)
    assert "regprobe_image_broken{" not in text
    assert 'regprobe_broken_images{registry="r"} 0.0' in text
    assert 'regprobe_last_success_timestamp_seconds{registry="r"} 300.0' in text


def test_fixed_image_leaves_the_metrics_on_the_next_run(
    registry: Registry, ns: str, probe_config: Any, serve: Any
) -> None:
    index = registry.push_index(f"{ns}/app", "v1")
    registry.remove_revision_link(f"{ns}/app", index.children[0].digest)
    server = serve(probe_config({"name": "fixme", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}), "1s")
    wait_for(lambda: server.value("regprobe_broken_images", registry="fixme") == 1, "the broken image")
    registry.push_index(f"{ns}/app", "v1")  # a rebuild: the tag moves to an intact index
    wait_for(lambda: server.value("regprobe_broken_images", registry="fixme") == 0, "the fixed image")
    assert server.value("regprobe_image_broken", registry="fixme", repository=f"{ns}/app", tag="v1") is None
    page = httpx.get(server.url + "/", timeout=5).text
    assert "Recent runs" in page and page.count("<td>yes</td><td>1</td><td>1</td>") >= 1  # the broken run


# --- /probe -----------------------------------------------------------------------------------------------


def probe(server: RegprobeServe, target: str, **params: str) -> httpx.Response:
    return httpx.get(server.url + "/probe", params={"target": target, **params}, timeout=30)


def probe_values(response: httpx.Response) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    assert response.status_code == 200, response.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def test_probe_walks_one_image_with_the_registry_credentials(
    basic_registry: Registry, ns: str, probe_config: Any, serve: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text(BASIC_PASSWORD + "\n")
    healthy = basic_registry.push_image(f"{ns}/app", "v1")
    broken = basic_registry.push_image(f"{ns}/app", "v2")
    basic_registry.warm(f"{ns}/app", broken.layers[0])
    basic_registry.remove_blob_data(broken.layers[0])
    cfg = {"name": "basic", "url": basic_registry.url, "auth": {"username": BASIC_USER, "password_file": str(secret)}}
    server = serve(probe_config(cfg))

    good = probe_values(probe(server, f"{basic_registry.host}/{ns}/app:v1"))
    assert good[("regprobe_probe_success", frozenset())] == 1
    assert good[("regprobe_probe_broken_objects", frozenset({("kind", "layer")}))] == 0
    bad = probe_values(probe(server, f"{basic_registry.host}/{ns}/app:v2"))
    assert bad[("regprobe_probe_success", frozenset())] == 0
    assert bad[("regprobe_probe_complete", frozenset())] == 1
    assert bad[("regprobe_probe_broken_objects", frozenset({("kind", "layer")}))] == 1
    # &blob_check= is honoured: HEAD is blind to data deleted behind the descriptor cache.
    blind = probe_values(probe(server, f"{basic_registry.host}/{ns}/app:v2", blob_check="head"))
    assert blind[("regprobe_probe_success", frozenset())] == 1
    assert healthy.digest != broken.digest
    assert BASIC_PASSWORD not in server.log()


def test_probe_of_a_registry_whose_secret_is_gone_fails_naming_it(
    basic_registry: Registry, ns: str, probe_config: Any, tmp_path: Path
) -> None:
    """A secret not mounted makes the scheduled run of that registry incomplete; an on-demand probe of
    it fails the same way, naming the file - never a walk with no credentials at all."""
    import asyncio

    from regprobe import config
    from regprobe.reference import Reference
    from regprobe.serve.ondemand import walk

    basic_registry.push_image(f"{ns}/app", "v1")
    missing = tmp_path / "not-mounted"
    cfg = config.load(
        probe_config(
            {
                "name": "basic",
                "url": basic_registry.url,
                "auth": {"username": BASIC_USER, "password_file": str(missing)},
            }
        )
    )
    ref = Reference.parse(f"{basic_registry.host}/{ns}/app:v1")
    result = asyncio.run(walk(cfg, cfg.registries[0], ref, "range", 10))
    assert not result.complete and result.requests.total() == 0
    (error,) = result.errors
    assert "password_file" in error and str(missing) in error


def test_probe_refuses_what_is_not_configured(registry: Registry, probe_config: Any, serve: Any) -> None:
    """Whoever reaches the port cannot aim the prober (and its credentials) anywhere else."""
    server = serve(probe_config({"name": "only", "url": registry.url}))
    bystander = socket.socket()
    bystander.bind(("127.0.0.1", 0))
    bystander.listen(8)
    bystander.setblocking(False)
    try:
        port = bystander.getsockname()[1]
        for target in (f"127.0.0.1:{port}/app:v1", f"localhost:{registry.port}/app:v1", "example.com/app:v1"):
            response = probe(server, target)
            assert response.status_code == 400, target
            assert "is not one of the configured registries" in response.text
        with pytest.raises(BlockingIOError):
            bystander.accept()  # nothing connected to it
    finally:
        bystander.close()
    for params, message in (
        ({"target": "UPPER/Case:v1"}, "target:"),
        ({"target": f"{registry.host}/app:v1", "blob_check": "all"}, "blob_check: must be one of head, range, digest"),
        ({}, "give exactly one target"),
    ):
        response = httpx.get(server.url + "/probe", params=params, timeout=10)
        assert response.status_code == 400 and message in response.text, (params, response.text)


def test_probe_answers_within_the_scrape_timeout(probe_config: Any, serve: Any) -> None:
    """A registry that accepts and never answers: the walk is cut at the scraper's timeout and reported
    as a failed probe, instead of the scrape itself failing."""
    sock, port = port_that_accepts_and_never_answers()
    try:
        server = serve(probe_config({"name": "mute", "url": f"http://127.0.0.1:{port}", "timeout": 120}))
        response = httpx.get(
            server.url + "/probe",
            params={"target": f"127.0.0.1:{port}/app:v1"},
            headers={"X-Prometheus-Scrape-Timeout-Seconds": "2"},
            timeout=30,  # far below the registry's 120 s request timeout: only the header can end it sooner
        )
        values = probe_values(response)
        assert values[("regprobe_probe_success", frozenset())] == 0
        assert values[("regprobe_probe_complete", frozenset())] == 0
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 1.5), ("30.5", 30.0), (None, 9.5), ("", 9.5), ("soon", 9.5), ("-1", 9.5), ("nan", 9.5), ("1e9", 299.5)],
)
def test_probe_budget_follows_the_scrape_timeout_header(header: str | None, seconds: float) -> None:
    assert budget(header) == seconds


def test_probe_debug_shows_the_report(registry: Registry, ns: str, probe_config: Any, serve: Any) -> None:
    index = registry.push_index(f"{ns}/app", "v1")
    registry.remove_revision_link(f"{ns}/app", index.children[0].digest)
    server = serve(probe_config({"name": "dbg", "url": registry.url}))
    response = probe(server, f"{registry.host}/{ns}/app:v1", debug="true")
    assert response.status_code == 200
    assert f"{ns}/app  tags: v1" in response.text and "missing" in response.text


# --- the process ---------------------------------------------------------------------------------------------


def test_sigterm_ends_a_run_in_flight(probe_config: Any, serve: Any) -> None:
    sock, port = port_that_accepts_and_never_answers()
    try:
        server = serve(probe_config({"name": "mute", "url": f"http://127.0.0.1:{port}", "timeout": 120}))
        assert httpx.get(server.url + "/healthz", timeout=5).text == "ok\n"
        wait_for(lambda: "A run is in progress" in httpx.get(server.url + "/", timeout=5).text, "the run to start")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=10) == 0
    finally:
        sock.close()


def test_sigterm_while_a_credential_helper_hangs(
    registry: Registry, probe_config: Any, serve: Any, docker_config: Any, credential_helper: Any
) -> None:
    """Issue 22: serve exited 23 s after SIGTERM (its grace is 2 s) while a scheduled run waited for a
    hanging helper in a thread. The helper is a child process now, killed with the schedule."""
    helper = credential_helper("hang").answers("{}", sleep=100)
    docker_config({"credHelpers": {registry.host: "hang"}})
    server = serve(probe_config({"name": "helped", "url": registry.url}))
    wait_for(helper.received, "the scheduled run to ask the helper", 60, 0.05)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0  # the helper would have answered after 100 s
    assert helper.running() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "soon"], "--interval: is not a duration"),
        (["--interval", "0s"], "--interval: must be between 1s and 24h"),
        (["--listen", "9839"], "--listen: is not HOST:PORT"),
    ],
)
def test_bad_flags_are_usage_errors(args: list[str], message: str, regprobe: Any, probe_config: Any) -> None:
    result = regprobe("serve", "-c", probe_config({"name": "r", "url": "http://127.0.0.1:1"}), *args)
    assert result.code == 2
    assert message in result.err


def test_taken_port_is_a_usage_error(regprobe: Any, probe_config: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = regprobe(
            "serve", "-c", probe_config({"name": "r", "url": "http://127.0.0.1:1"}), "--listen", f"127.0.0.1:{port}"
        )
    assert result.code == 2
    assert f"--listen 127.0.0.1:{port}: cannot listen" in result.err


# --- the status page in a real browser -------------------------------------------------------------------------


def test_status_page_in_headless_chromium(
    registry: Registry, ns: str, probe_config: Any, serve: Any, tmp_path: Path
) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/install-system-deps.sh installs it)")
    index = registry.push_index(f"{ns}/web", "2026.1")
    registry.remove_revision_link(f"{ns}/web", index.children[0].digest)
    server = serve(probe_config({"name": "<i>page</i>", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}))
    finished_run(server, "<i>page</i>")
    # --no-sandbox: Chromium's sandbox refuses to run as root, which is how CI containers run it.
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            server.url + "/",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    if proc.returncode != 0 and not proc.stdout:
        pytest.skip(f"chromium could not start here: {proc.stderr.strip()[-300:]}")
    dom = proc.stdout
    assert "<h1>regprobe</h1>" in dom
    assert "&lt;i&gt;page&lt;/i&gt;" in dom, "the registry name is escaped, not markup"
    assert "BROKEN" in dom
    assert f"<td>{ns}/web</td><td>2026.1</td>" in dom
    assert str(index.children[0].digest) in dom
    assert f"{index.children[0].digest}</code> (linux/amd64)" in dom  # the platform of the child
    assert "missing" in dom and "Recent runs" in dom
    assert "<script" not in dom


def test_held_metrics_keep_what_an_incomplete_run_did_not_reach() -> None:
    """serve merges like the pushgateway push (regprobe.carryover): the run cut short re-checked `a`
    (fixed) and never listed `b` or `c`, so their verdicts stand."""
    held = HeldMetrics(50)
    three = [finding(repo, "v1") for repo in ("a", "b", "c")]
    held.record(RegistryResult("r", "http://r", True, True, started_at=100.0, findings=three))
    verdict = held.record(RegistryResult("r", "http://r", True, False, started_at=200.0, reached={"a": frozenset()}))
    assert verdict is not None and verdict.kept == 2
    text = held_text(held)
    assert 'regprobe_broken_images{registry="r"} 2.0' in text
    assert 'regprobe_image_broken{registry="r",repository="a",tag="v1"}' not in text
    assert 'regprobe_image_broken{registry="r",repository="c",tag="v1"} 1.0' in text
    assert 'regprobe_last_success_timestamp_seconds{registry="r"} 100.0' in text


def test_a_registry_that_never_answers_does_not_hide_the_others(
    registry: Registry, ns: str, probe_config: Any, serve: Any
) -> None:
    """Issue 21 item 4: each registry's results are served as soon as its own walk ends, and its outcome
    is logged at the default level, while another registry's walk still hangs."""
    registry.push_image(f"{ns}/app", "v1")
    sock, port = port_that_accepts_and_never_answers()
    try:
        mute = {"name": "mute", "url": f"http://127.0.0.1:{port}", "timeout": 120}
        healthy = {"name": "healthy", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
        server = serve(probe_config(mute, healthy))
        wait_for(lambda: server.value("regprobe_run_complete", registry="healthy") == 1, "the healthy registry")
        assert server.value("regprobe_last_success_timestamp_seconds", registry="healthy")
        assert server.value("regprobe_last_run_timestamp_seconds", registry="mute") is None  # still walking
        page = httpx.get(server.url + "/", timeout=5).text
        assert "A run is in progress since" in page
        healthy_part = page.split("<h2>healthy ", 1)[1]
        assert healthy_part.split("</p>", 1)[0].endswith('<p class="ok"><strong>OK</strong>')
        assert "Not probed yet" in page.split("<h2>mute ", 1)[1].split("<h2>", 1)[0]
        wait_for(lambda: "registry healthy: OK: 1 tag walked in " in server.log(), "the outcome in the log")
        assert server.value("regprobe_serve_runs_total") == 0
    finally:
        sock.close()
