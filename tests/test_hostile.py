"""Whatever a registry sends, regprobe ends in bounded time and memory and reports it as findings:
no hang, no crash, no broken image called healthy. The server is real (a socket), the behaviour hostile."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from .hostile import HostileRegistry, port_that_accepts_and_never_answers
from .registry import sha256 as digest
from .util import only


@pytest.fixture
def evil() -> Iterator[HostileRegistry]:
    reg = HostileRegistry().start()
    yield reg
    reg.stop()


def run(regprobe: Any, probe_config: Any, evil: HostileRegistry, **extra: Any) -> Any:
    cfg = {"name": "evil", "url": evil.url, "timeout": 1, **extra}
    return regprobe("run", "-c", probe_config(cfg), "--format", "json")


def test_healthy_baseline(evil: HostileRegistry, regprobe: Any, probe_config: Any) -> None:
    result = run(regprobe, probe_config, evil)
    assert result.code == 0 and result.report["registries"][0]["images_checked"] == 1


def test_cookies_are_neither_kept_nor_sent(evil: HostileRegistry, regprobe: Any, probe_config: Any) -> None:
    # Like docker and containerd: a registry that needed a cookie would fail their pulls too.
    evil.mode = "set-cookie"
    result = run(regprobe, probe_config, evil)
    assert result.code == 0 and result.report["registries"][0]["images_checked"] == 1
    assert len(evil.requests) >= 5
    assert not [headers for _, _, headers in evil.requests if "Cookie" in headers or "cookie" in headers]


@pytest.mark.parametrize(
    ("mode", "detail"),
    [
        ("not-json", "body is not JSON"),
        ("wrong-types", "no 'layers' list"),
        ("schema1", "schema1 manifest: unsupported"),
        ("unknown-type", "unsupported manifest media type 'application/x-evil'"),
        ("bad-digest", "layers[0].digest"),
    ],
)
def test_unusable_manifests_are_invalid_findings(
    evil: HostileRegistry, regprobe: Any, probe_config: Any, mode: str, detail: str
) -> None:
    evil.mode = mode
    result = run(regprobe, probe_config, evil)
    assert result.code == 1
    (finding,) = result.findings()
    assert (finding["kind"], finding["problem"], finding["tags"]) == ("manifest", "invalid", ["v1"])
    assert detail in finding["detail"]
    assert finding["digest"] is not None and finding["digest"].startswith("sha256:")
    # A malformed digest is never used to build a URL.
    assert not any(".." in path for _, path, _ in evil.requests)


def test_missing_content_type_is_fine_when_the_body_says_what_it_is(
    evil: HostileRegistry, regprobe: Any, probe_config: Any
) -> None:
    evil.mode = "no-content-type"
    assert run(regprobe, probe_config, evil).code == 0


def test_body_that_does_not_hash_to_its_digest(evil: HostileRegistry, regprobe: Any) -> None:
    evil.mode = "lying-digest"
    host = evil.url.removeprefix("http://")
    result = regprobe(
        "check", "--plain-http", "--timeout", "1", "--format", "json", f"{host}/evil/app@{digest(evil.manifest)}"
    )
    assert result.code == 1
    (finding,) = result.findings()
    assert (finding["kind"], finding["problem"]) == ("manifest", "digest_mismatch")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["hang-manifest", "trickle-manifest"])
def test_silent_or_trickling_server_ends_within_the_timeout(
    evil: HostileRegistry, regprobe: Any, probe_config: Any, mode: str
) -> None:
    evil.mode = mode
    result = run(regprobe, probe_config, evil)
    assert result.code == 1
    (finding,) = result.findings()
    assert (finding["problem"], finding["digest"], finding["tags"]) == ("unreachable", None, ["v1"])
    assert "within 1s" in finding["detail"] or "Timeout" in finding["detail"]


@pytest.mark.timeout(60)
def test_blob_that_never_answers(evil: HostileRegistry, regprobe: Any, probe_config: Any) -> None:
    evil.mode = "hang-blob"
    result = run(regprobe, probe_config, evil)
    assert result.code == 1
    assert {(f["kind"], f["problem"]) for f in result.findings()} == {
        ("config", "unreachable"),
        ("layer", "unreachable"),
    }


@pytest.mark.timeout(60)
def test_registry_that_accepts_and_never_answers(regprobe: Any, probe_config: Any) -> None:
    sock, port = port_that_accepts_and_never_answers()
    try:
        result = regprobe("run", "-c", probe_config({"name": "mute", "url": f"http://127.0.0.1:{port}", "timeout": 1}))
    finally:
        sock.close()
    assert result.code == 3 and "catalog" in result.out


def test_64_mib_manifest_costs_bounded_memory(evil: HostileRegistry, regprobe: Any, probe_config: Any) -> None:
    evil.mode = "huge-manifest"
    tracemalloc.start()
    try:
        result = run(regprobe, probe_config, evil, timeout=10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.code == 1
    (finding,) = result.findings()
    assert (finding["problem"], finding["digest"]) == ("invalid", None)
    assert "size bound" in finding["detail"]
    assert peak < 24 << 20, f"peak {peak >> 20} MiB while refusing a 64 MiB manifest (bound: 4 MiB)"


def test_deadline_bounds_a_whole_run_of_slow_answers(evil: HostileRegistry, regprobe: Any, probe_config: Any) -> None:
    evil.mode = "hang-blob"
    cfg = {"name": "evil", "url": evil.url, "timeout": 30}
    result = regprobe("run", "-c", probe_config(cfg, deadline=2), "--format", "json")
    entry = result.report["registries"][0]
    assert result.code == 3 and not entry["complete"] and "deadline" in entry["errors"][0]
    assert entry["findings"] == []  # cut off by the deadline is not evidence of anything


def test_index_pointing_back_at_itself_is_reported_not_followed(
    evil: HostileRegistry, regprobe: Any, probe_config: Any
) -> None:
    evil.mode = "loop-index"
    result = run(regprobe, probe_config, evil)
    assert result.code == 1
    (finding,) = result.findings()
    assert (finding["digest"], finding["problem"]) == ("sha256:" + "e" * 64, "digest_mismatch")
    assert sum(1 for _, path, _ in evil.requests if "/manifests/" in path) == 2


def test_loop_guard_even_if_hashes_collided() -> None:
    """Defence in depth: were a registry able to serve an index under its own digest (a sha256 fixed
    point), the walk still stops. The client here is a stand-in that claims every body hashes right."""
    import asyncio
    import json

    from regprobe.digest import Digest
    from regprobe.facts import Reply
    from regprobe.walk import RepositoryWalk, WalkPolicy

    me = Digest("sha256", "f" * 64)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": str(me), "size": 1}],
        }
    ).encode()

    class Colliding:
        async def manifest(self, repository: str, reference: str, max_bytes: int) -> Reply:
            return Reply(url="x", status=200, body=body, digest=me, content_type=None)

    walk = RepositoryWalk(Colliding(), "loop", WalkPolicy())  # type: ignore[arg-type]
    asyncio.run(asyncio.wait_for(walk.walk_tag("v1"), 5))
    (finding,) = walk.findings()
    assert finding.problem.value == "invalid" and finding.digest == me
    assert walk.nodes[("manifest", me)].bound == "loop"


def test_a_refused_sibling_loses_no_finding_and_is_reported_once(
    evil: HostileRegistry, regprobe: Any, probe_config: Any
) -> None:
    """The config answers 403, its sibling layer 404, and four tags share both: the layer's finding is
    kept (a failing sibling must not orphan the others), and the refusal is one error naming all four."""
    evil.mode, evil.tags = "denied-config", ["v1", "v2", "v3", "v4"]
    result = run(regprobe, probe_config, evil)
    assert result.code == 1
    finding = only(result.findings())
    assert (finding["kind"], finding["problem"], finding["tags"]) == ("layer", "missing", ["v1", "v2", "v3", "v4"])
    (error,) = result.report["registries"][0]["errors"]
    assert digest(evil.config) in error and "403" in error and "(tags: v1, v2, v3, v4)" in error
    assert result.report["registries"][0]["complete"] is False


def test_odd_error_body_is_no_code_not_a_crash(evil: HostileRegistry, regprobe: Any, probe_config: Any) -> None:
    evil.mode = "odd-error-body"  # 404 {"errors": 5}
    result = run(regprobe, probe_config, evil)
    finding = only(result.findings())
    assert (finding["kind"], finding["problem"], finding["detail"]) == ("layer", "missing", "GET answered 404")
    assert result.report["registries"][0]["errors"] == []


def test_digest_mode_download_is_bounded_per_read_not_as_a_whole(
    evil: HostileRegistry, regprobe: Any, probe_config: Any
) -> None:
    """A full download (blob_check: digest) may take longer than `timeout` while bytes keep coming
    (here ~1.1 s against 0.5 s): it is judged on its content, not cut off."""
    evil.mode = "trickle-blob"
    result = run(regprobe, probe_config, evil, timeout=0.5, blob_check="digest")
    assert result.code == 0, result.out
    assert result.report["registries"][0]["requests"]["timeout"] == 0


def test_digest_mode_download_that_stalls_is_cut_by_the_read_timeout(
    evil: HostileRegistry, regprobe: Any, probe_config: Any
) -> None:
    evil.mode = "stall-blob"
    cfg = {"name": "evil", "url": evil.url, "timeout": 0.5, "blob_check": "digest"}
    # The run's deadline is the outer bound: without a read timeout the stall would end the run there,
    # incomplete and without a finding.
    result = regprobe("run", "-c", probe_config(cfg, deadline=20), "--format", "json")
    finding = only(result.findings())
    assert (finding["kind"], finding["problem"]) == ("layer", "unreachable")
    assert "timed out" in finding["detail"]


def test_wrong_docker_content_digest_is_never_trusted(
    evil: HostileRegistry, regprobe: Any, probe_config: Any, tmp_path: Any
) -> None:
    """The header names another object: the tag is still walked as what its body hashes to, and the
    cache holds that body under its own digest only."""
    evil.mode = "wrong-header-digest"
    cache = tmp_path / "cache"
    for _ in range(2):  # cold, then with the cache
        result = regprobe(
            "run", "-c", probe_config({"name": "evil", "url": evil.url}, cache_dir=str(cache)), "--format", "json"
        )
        assert result.code == 0 and result.report["registries"][0]["images_checked"] == 1
    entries = sorted(p.name for p in (cache / "manifests" / "sha256").iterdir())
    assert entries == [digest(evil.manifest).split(":", 1)[1]]


@pytest.mark.parametrize(("mode", "problem"), [("healthy", None), ("range-ignored-short", "size_mismatch")])
def test_range_ignored_answer_is_judged_by_its_length(
    evil: HostileRegistry, regprobe: Any, probe_config: Any, mode: str, problem: str | None
) -> None:
    """This registry ignores `Range` and answers 200 with the whole blob (Quay on local storage does,
    D5 in REGISTRY-QUIRKS.md): one byte proves it serves, and Content-Length must still be the
    descriptor's size."""
    evil.mode = mode
    result = run(regprobe, probe_config, evil)
    assert [(f["kind"], f["problem"]) for f in result.findings()] == ([("layer", problem)] if problem else [])
    ranged = {{k.lower(): v for k, v in h.items()}.get("range") for _, path, h in evil.requests if "/blobs/" in path}
    assert ranged == {f"bytes={len(blob) - 1}-{len(blob) - 1}" for blob in (evil.config, evil.layer)}


@pytest.mark.parametrize(
    ("mode", "run_path", "check_path"),
    [
        ("html-manifest", "/v2/evil/app/manifests/v1", "/v2/evil/app/manifests/v1"),
        ("html-portal", "/v2/_catalog", "/v2/"),  # check pings /v2/ first: no catalog to read
    ],
)
def test_html_page_is_not_the_registry_api(
    evil: HostileRegistry, regprobe: Any, probe_config: Any, mode: str, run_path: str, check_path: str
) -> None:
    # A login portal or a wrong URL answering 200 with HTML says nothing about any image: the run could
    # not look (exit 3), it must not report a broken image (exit 1).
    evil.mode = mode
    probe_run = run(regprobe, probe_config, evil)
    check = regprobe("check", "--plain-http", "--format", "json", f"{evil.url[7:]}/evil/app:v1")
    for result, path in ((probe_run, run_path), (check, check_path)):
        assert result.code == 3, result.out
        entry = result.report["registries"][0]
        assert entry["findings"] == [] and entry["complete"] is False
        assert f"GET {evil.url}{path} answered 200 with an HTML page, not the registry API" in entry["errors"][0]


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_registry_failing_everything_is_an_outage_not_broken_images(
    evil: HostileRegistry, regprobe: Any, probe_config: Any, command: str
) -> None:
    """Issue 21: the listings were read, then every request answers 500 (storage lost mid-run). Each
    object failing on every try proves nothing about the object: asked for the repository's tag list
    after the failures, the registry fails that too - exit 3, no findings."""
    evil.mode = "outage"
    if command == "run":
        result = run(regprobe, probe_config, evil)
    else:
        host = evil.url.removeprefix("http://")
        result = regprobe("check", "--plain-http", "--timeout", "1", "--format", "json", f"{host}/evil/app:v1")
    assert result.code == 3, result.out
    entry = result.report["registries"][0]
    assert entry["findings"] == [] and entry["complete"] is False
    [error] = entry["errors"]
    assert error.startswith(
        "evil/app: tag v1: GET answered 500 UNKNOWN; the registry failed this repository's tag list"
    )
    tag_lists = [path for _, path, _ in evil.requests if "/tags/list" in path]
    assert tag_lists[-1].endswith("/tags/list?n=1")  # the question asked after the failures


def test_what_a_registry_says_in_a_500_is_bounded_and_sanitised(
    evil: HostileRegistry, regprobe: Any, probe_config: Any
) -> None:
    """The registry's code, message and detail go into reports: never escapes, line breaks, bidi controls,
    signed URLs or unbounded text."""
    evil.mode = "hostile-500"
    result = run(regprobe, probe_config, evil)
    text = regprobe("run", "-c", probe_config({"name": "evil", "url": evil.url, "timeout": 1}))
    assert result.code == 1
    finding = only(result.findings())
    assert (finding["problem"], finding["detail"]) == ("server_error", "tag v1: GET answered 500")
    said = finding["registry_error"]
    assert said["code"] is None  # not an identifier: not echoed
    assert said["message"] == "[2J [32mOK [0m registry OK " + "x" * 172 + "…"  # 200 characters
    assert said["detail"] == '{"url":"https://bucket.s3.example/key"}'  # query and all masked off
    assert "the registry says: [2J [32mOK [0m registry OK x" in text.out
    for out in (result.out, text.out):
        assert "\x1b" not in out and "SECRET" not in out and "AKIA" not in out and "\u202e" not in out
        assert "! fake line" not in out
