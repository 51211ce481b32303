"""One registry's probe on the real registry: how far it reads ahead, how many workers it starts, what a
selection that selects nothing means, the order of its findings, and a run stopped by a signal."""

from __future__ import annotations

import asyncio
import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.gen_storage import Writer

from regprobe.addresses import Guard
from regprobe.client import ClientSettings, RegistryClient
from regprobe.counters import Counters
from regprobe.probe import Pinned, Selection, probe_registry
from regprobe.stop import StopRequest
from regprobe.transport import transport
from regprobe.walk import WalkPolicy

from .hostile import port_that_accepts_and_never_answers
from .registry import Registry
from .servers import Pushgateway
from .util import wait_for

JOB = "registry-integrity-probe"


class Recording(httpx.AsyncBaseTransport):
    """The real transport, watched: the path of every request in order, and the most asyncio tasks alive
    when one was sent."""

    def __init__(self, concurrency: int, host: str) -> None:
        self.inner = transport(False, httpx.Limits(max_connections=concurrency), Guard(host))
        self.paths: list[str] = []
        self.peak_tasks = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        self.peak_tasks = max(self.peak_tasks, len(asyncio.all_tasks()))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def probe(registry: Registry, concurrency: int, **kwargs: Any) -> tuple[Any, Recording]:
    recording = Recording(concurrency, registry.host.split(":")[0])

    async def go() -> Any:
        settings = ClientSettings(url=registry.url, concurrency=concurrency, timeout=30)
        async with RegistryClient(settings, transport=recording) as client:
            return await probe_registry("r", client, WalkPolicy(), deadline=time.monotonic() + 600, **kwargs)

    return asyncio.run(go()), recording


@pytest.mark.each_registry
def test_catalog_is_read_only_as_fast_as_repositories_are_listed(tmp_path: Path, flavour: str) -> None:
    paged = Registry(tmp_path / "paged", extra={"catalog": {"maxentries": 5}}, flavour=flavour).start()
    try:
        for i in range(30):
            paged.push_image(f"paged/repo{i:02}", "v1", layers=[b"shared" * 10])

        result, recording = probe(paged, concurrency=1)

        assert result.complete and result.images_checked == 30, result.errors
        last_page = max(i for i, path in enumerate(recording.paths) if path == "/v2/_catalog")
        listed_before = {p for p in recording.paths[:last_page] if p.endswith("/tags/list")}
        # At concurrency 1 at most 2 repositories are queued or being listed: before the last page of 5
        # is asked for, all but those and the page before it are listed. Unbounded, the catalog raced ahead.
        assert len(listed_before) >= 30 - 5 - 2, recording.paths
    finally:
        paged.stop()


def test_worker_pool_follows_the_work_not_the_flag(registry: Registry, ns: str) -> None:
    image = registry.push_image(f"{ns}/app", "v1")

    result, recording = probe(registry, concurrency=1024, pinned=[Pinned(f"{ns}/app", "v1", None)])

    assert result.complete and result.images_checked == 1 and result.findings == []
    # ping, manifest, config, layers; its referrers: the API (2.8.2: 404, so not asked again this run) and,
    # with no tag list read, a HEAD of its fallback tag (404: none)
    assert len(recording.paths) == 1 + 1 + 1 + len(image.layers) + 2
    assert recording.peak_tasks < 20  # one image, not 2 x 1024 idle workers


@pytest.mark.each_registry
def test_findings_sorted_by_repository_kind_digest(registry_nocache: Registry, ns: str, regprobe: Any) -> None:
    a = registry_nocache.push_image(f"{ns}/a", "v1")
    b = registry_nocache.push_image(f"{ns}/b", "v1")
    for image in (a, b):
        registry_nocache.remove_layer_link(image.repository, image.layers[1])
        registry_nocache.remove_layer_link(image.repository, image.config)
    host = registry_nocache.host
    refs = [f"{host}/{ns}/b:v1", f"{host}/{ns}/a:v1"]  # walked, and finished, b first

    result = regprobe("check", "--plain-http", "--format", "json", *refs)
    text = regprobe("check", "--plain-http", *refs)

    order = [(f["repository"], f["kind"]) for f in result.findings()]
    assert order == [(f"{ns}/a", "config"), (f"{ns}/a", "layer"), (f"{ns}/b", "config"), (f"{ns}/b", "layer")]
    repositories = [line.split()[0] for line in text.out.splitlines() if line.startswith(f"  {ns}/")]
    assert repositories == [f"{ns}/a", f"{ns}/b"]


@pytest.mark.parametrize(
    ("repositories", "error"),
    [
        ({"include": ["{ns}/nothing-*"]}, "repositories.include matched none of "),
        ({"list": ["{ns}/app"], "include": ["{ns}/other"]}, "repositories.include matched none of 1 repositories"),
        ({"include": ["{ns}/*"], "exclude": ["{ns}/app*"]}, "repositories.exclude removed all 1 repositories"),
    ],
)
def test_selection_that_selects_nothing_is_an_error(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, repositories: dict[str, list[str]], error: str
) -> None:
    registry.push_image(f"{ns}/app", "v1")
    selection = {key: [p.format(ns=ns) for p in patterns] for key, patterns in repositories.items()}
    cfg = {"name": "local", "url": registry.url, "repositories": selection}

    result = regprobe("run", "-c", probe_config(cfg), "--format", "json")

    assert result.code == 3
    entry = result.report["registries"][0]
    assert (entry["complete"], entry["images_checked"], entry["findings"]) == (False, 0, [])
    assert error in entry["errors"][0]


def test_an_empty_catalog_is_said_to_be_empty(tmp_path: Path, regprobe: Any, probe_config: Any) -> None:
    """No include was set, so none is to blame: the registry lists nothing at all."""
    empty = Registry(tmp_path / "empty", cache=False).start()
    try:
        result = regprobe("run", "-c", probe_config({"name": "empty", "url": empty.url}), "--format", "json")
    finally:
        empty.stop()
    assert result.code == 3
    entry = result.report["registries"][0]
    assert entry["catalog_accessible"] is True
    assert entry["errors"] == ["the catalog lists no repositories (an empty registry, or none these credentials see)"]


def test_a_shard_owning_nothing_is_not_an_empty_selection(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    registry.push_image(f"{ns}/app", "v1")
    cfg = probe_config({"name": "local", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}})
    codes = [regprobe("run", "-c", cfg, "--shard", f"{i}/2", "--format", "json") for i in range(2)]
    assert [r.code for r in codes] == [0, 0]
    assert sorted(r.report["registries"][0]["images_checked"] for r in codes) == [0, 1]


@pytest.mark.each_registry
def test_listed_repository_the_registry_does_not_know(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    registry.push_image(f"{ns}/app", "v1")
    registry.push_image(f"{ns}/untagged", None)  # catalog-listed, no tags: 404 NAME_UNKNOWN on tags/list
    listed = {"name": "listed", "url": registry.url, "repositories": {"list": [f"{ns}/app", f"{ns}/typo"]}}
    catalog = {"name": "catalog", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}

    result = regprobe("run", "-c", probe_config(listed, catalog), "--format", "json")
    text = regprobe("run", "-c", probe_config(listed))

    assert result.code == 3
    by_list, by_catalog = result.report["registries"]
    assert (by_list["complete"], by_list["images_checked"], by_list["findings"]) == (False, 1, [])
    assert by_list["errors"] == [
        f"{ns}/typo: repositories.list names it, but the registry does not know it "
        f"({registry.url}/v2/{ns}/typo/tags/list: GET answered 404 NAME_UNKNOWN)"
    ]
    assert (by_catalog["complete"], by_catalog["images_checked"], by_catalog["errors"]) == (True, 1, [])
    assert f"! {ns}/typo: repositories.list names it" in text.out


@pytest.fixture(scope="module")
def logged_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry writing its access log, to see a walk under way."""
    reg = Registry(
        tmp_path_factory.mktemp("logged"), extra={"log": {"level": "error", "accesslog": {"disabled": False}}}
    ).start()
    yield reg
    reg.stop()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_walk_reports_and_pushes_an_incomplete_run(
    logged_registry: Registry,
    ns: str,
    regprobe: Any,
    probe_config: Any,
    pushgateway: Pushgateway,
    signum: signal.Signals,
) -> None:
    reg, tags = logged_registry, 3000
    reg.push_image(f"{ns}/small", "v1")
    big = reg.push_image(f"{ns}/big", "t0")
    writer = Writer(reg.root)  # thousands of tags on one manifest, written straight into storage
    for i in range(1, tags):
        writer.tag(f"{ns}/big", f"t{i}", big.digest)
    name = f"reg-{ns}"
    labels = {"job": JOB, "registry": name}
    push = {"url": pushgateway.url}
    small = {"name": name, "url": reg.url, "repositories": {"list": [f"{ns}/small"]}}
    assert regprobe("run", "-c", probe_config(small, pushgateway=push)).code == 0
    last_success = pushgateway.value("regprobe_last_success_timestamp_seconds", **labels)
    assert last_success is not None
    everything = {"name": name, "url": reg.url, "concurrency": 1, "repositories": {"list": [f"{ns}/big"]}}
    access_log = reg.workdir / "registry.log"

    proc = subprocess.Popen(
        [sys.executable, "-m", "regprobe", "run", "-c", probe_config(everything, pushgateway=push), "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: access_log.read_text().count(f'"GET /v2/{ns}/big/manifests/t') >= 100,
            "the walk under way",
            60,
            0.05,
        )
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()

    assert proc.returncode == 3, err
    assert "Traceback" not in err
    entry = json.loads(out)["registries"][0]
    assert entry["complete"] is False and entry["findings"] == []
    assert 100 <= entry["images_checked"] < tags
    assert entry["errors"][0].startswith(f"stopped by {signum.name} after ")
    assert entry["push"] == {"ok": True, "error": None}
    assert pushgateway.value("regprobe_run_complete", **labels) == 0
    assert pushgateway.value("regprobe_images_checked", **labels) == entry["images_checked"]
    assert pushgateway.value("regprobe_last_success_timestamp_seconds", **labels) == last_success


def _run_process(config: str) -> subprocess.Popen[str]:
    return _regprobe_process("run", "-c", config, "--format", "json")


def _regprobe_process(*args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "regprobe", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_while_a_credential_helper_hangs_reports_pushes_and_exits(
    registry: Registry, ns: str, probe_config: Any, pushgateway: Pushgateway, docker_config: Any, credential_helper: Any
) -> None:
    """Issue 22: a helper that hangs (a cloud API, a locked keyring) kept `run` 24 s past SIGTERM, and
    Kubernetes kills at 30 s. The helper is killed and the run reported and pushed as stopped."""
    helper = credential_helper("hang").answers("{}", sleep=100)
    docker_config({"credHelpers": {registry.host: "hang"}})
    name = f"reg-{ns}"
    proc = _run_process(probe_config({"name": name, "url": registry.url}, pushgateway={"url": pushgateway.url}))
    try:
        wait_for(helper.received, "the credential helper to be asked", 60, 0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)  # the helper would have answered after 100 s
    finally:
        proc.kill()

    assert proc.returncode == 3, err
    assert "Traceback" not in err
    entry = json.loads(out)["registries"][0]
    assert entry["errors"] == ["stopped by SIGTERM before it was probed; the run is incomplete"]
    assert entry["push"] == {"ok": True, "error": None}
    assert pushgateway.value("regprobe_run_complete", job=JOB, registry=name) == 0
    assert helper.running() == []


def test_check_is_stopped_the_same_way(registry: Registry, ns: str, docker_config: Any, credential_helper: Any) -> None:
    """`check` reaches a registry by the same path as `run` (issue 22: it ran the helper on the event
    loop's thread, where no signal could reach it)."""
    helper = credential_helper("hang").answers("{}", sleep=100)
    docker_config({"credHelpers": {registry.host: "hang"}})
    proc = _regprobe_process("check", "--plain-http", "--format", "json", f"{registry.host}/{ns}/app:v1")
    try:
        wait_for(helper.received, "the credential helper to be asked", 60, 0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)  # the helper would have answered after 100 s
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert json.loads(out)["registries"][0]["errors"] == [
        "stopped by SIGTERM before it was probed; the run is incomplete"
    ]
    assert helper.running() == []


def test_a_second_sigterm_ends_the_process_at_once(
    registry: Registry, ns: str, probe_config: Any, docker_config: Any, credential_helper: Any
) -> None:
    """After the first signal its default action is back: a second SIGTERM ends a run whose push hangs
    (here a pushgateway that accepts and never answers, which the first stop gives 5 s)."""
    helper = credential_helper("hang").answers("{}", sleep=100)
    docker_config({"credHelpers": {registry.host: "hang"}})
    mute, port = port_that_accepts_and_never_answers()
    proc = _run_process(
        probe_config({"name": f"reg-{ns}", "url": registry.url}, pushgateway={"url": f"http://127.0.0.1:{port}"})
    )
    try:
        wait_for(helper.received, "the credential helper to be asked", 60, 0.05)
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: select.select([mute], [], [], 0)[0], "the push to connect", 60, 0.05)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        proc.kill()
        mute.close()
    assert proc.returncode == -signal.SIGTERM


def test_a_cut_off_run_records_which_listed_tags_it_did_not_judge(registry: Registry, ns: str) -> None:
    """What an incomplete run may clear (regprobe.carryover): every listed tag whose walk did not finish
    is recorded as unsettled (a repository never listed is not recorded at all: tests/test_metrics.py)."""
    image = registry.push_image(f"{ns}/many", "t0")
    writer = Writer(registry.root)
    tags = {f"t{i}" for i in range(40)}
    for tag in tags - {"t0"}:
        writer.tag(f"{ns}/many", tag, image.digest)
    stop = StopRequest()

    class StopAfterFive(Counters):
        def tag_done(self) -> None:
            super().tag_done()
            if self.tags_done == 5:
                stop.request("test")

    result, _ = probe(registry, 1, progress=StopAfterFive("r"), stop=stop, selection=Selection(include=(f"{ns}/*",)))
    assert not result.complete and result.images_checked < len(tags)
    unsettled = result.reached[f"{ns}/many"]
    assert unsettled < tags and len(unsettled) == len(tags) - result.images_checked
