"""`cache_dir`: a steady-state run re-GETs no manifest (Docker Hub counts GETs, not HEADs), and still
finds what breaks between runs. Requests are counted in the real registry's access log."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regprobe.cache import ManifestCache
from regprobe.digest import Digest

from .registry import Registry
from .util import wait_for

_KINDS = (("/manifests/", "manifest"), ("/blobs/", "blob"), ("/referrers/", "referrers"))
LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/v2/\S*) HTTP/[\d.]+" (?P<status>\d+) .*"regprobe/')


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry(
        tmp_path_factory.mktemp("logged"),
        cache=False,
        extra={"log": {"level": "error", "accesslog": {"disabled": False}}},
    ).start()
    yield reg
    reg.stop()


def requests(reg: Registry, since: int, run: Any = None) -> tuple[Counter[tuple[str, str]], int]:
    """(method, kind) counts of regprobe's requests after byte offset ``since`` of the access log.

    The registry writes a request's line after it has answered, so a line can land after the run has
    ended: given the run, wait until the log holds as many lines as the run says it made requests."""

    def read() -> tuple[Counter[tuple[str, str]], int]:
        text = (reg.workdir / "registry.log").read_text(errors="replace")
        counts: Counter[tuple[str, str]] = Counter()
        for match in LINE.finditer(text[since:]):
            path = match["path"]
            kind = next((kind for marker, kind in _KINDS if marker in path), "list")
            counts[(match["method"], kind)] += 1
        return counts, len(text)

    if run is None:
        return read()
    made = sum(n for outcome, n in run.report["registries"][0]["requests"].items() if outcome != "retried")

    def complete() -> tuple[Counter[tuple[str, str]], int] | None:
        found = read()
        return found if sum(found[0].values()) >= made else None

    logged: tuple[Counter[tuple[str, str]], int] = wait_for(complete, f"{made} access log lines")
    return logged


def test_steady_state_run_gets_no_manifest(
    logged: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    index = logged.push_index(f"{ns}/multi", "latest")  # 2 platforms + 2 attestations
    logged.push_image(f"{ns}/single", "v1")
    cache_dir = tmp_path / "cache"
    cfg = probe_config(
        {"name": "c", "url": logged.url, "repositories": {"include": [f"{ns}/*"]}}, cache_dir=str(cache_dir)
    )
    _, mark = requests(logged, 0)

    run = regprobe("run", "-c", cfg, "--format", "json")
    assert run.code == 0
    cold, mark = requests(logged, mark, run)
    assert cold[("GET", "manifest")] == 6  # 1 index + 4 children + 1 single image, each once

    run = regprobe("run", "-c", cfg, "--format", "json")
    assert run.code == 0
    warm, mark = requests(logged, mark, run)
    assert warm[("GET", "manifest")] == 0
    assert warm[("HEAD", "manifest")] == 2 + 4  # each tag, each child
    assert warm[("GET", "blob")] == cold[("GET", "blob")]  # blobs are still checked every run

    # What breaks between runs is still found: the HEAD of the cached child answers 404.
    logged.remove_revision_link(f"{ns}/multi", index.children[1].digest)
    result = regprobe("run", "-c", cfg, "--format", "json")
    assert result.code == 1
    finding = result.findings()[0]
    assert (finding["digest"], finding["problem"], finding["detail"]) == (
        index.children[1].digest,
        "missing",
        "HEAD answered 404",  # a HEAD carries no error body
    )


def test_cached_body_is_not_used_when_the_registry_now_holds_other_bytes(
    registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """Manifest data changed in storage after the cache learned it (bit rot, a bad restore): the HEAD's
    length disagrees with the cached body, so the body is fetched again and judged."""
    reg = registry_nocache
    index = reg.push_index(f"{ns}/multi", "latest", attestations=False)
    single = reg.push_image(f"{ns}/single", "v1")
    cfg = probe_config(
        {"name": "c", "url": reg.url, "repositories": {"include": [f"{ns}/*"]}}, cache_dir=str(tmp_path / "cache")
    )
    assert regprobe("run", "-c", cfg).code == 0  # the cache now holds every manifest

    child = reg.blob_path(index.children[0].digest)
    child.write_bytes(child.read_bytes() + b"\n")  # still JSON, no longer its digest
    top = reg.blob_path(single.digest)
    top.write_bytes(top.read_bytes()[:-1])  # the closing brace gone

    result = regprobe("run", "-c", cfg, "--format", "json")
    found = sorted((f["repository"], f["digest"], f["problem"]) for f in result.findings())
    assert found == [
        (f"{ns}/multi", index.children[0].digest, "digest_mismatch"),
        (f"{ns}/single", None, "server_error"),  # registry:2 cannot parse it either: 500 on every try
    ]
    # The HEAD's 500 has no body: a GET asks what the registry says about it.
    [said] = [f.get("registry_error") for f in result.findings() if f["problem"] == "server_error"]
    assert (said["code"], said["message"]) == ("UNKNOWN", "unknown error")
    assert said["detail"].startswith('{"Offset":')  # where its JSON ends early


def test_damaged_cache_entry_is_fetched_again(tmp_path: Path) -> None:
    cache = ManifestCache(tmp_path)
    body = b'{"schemaVersion": 2}'
    digest = Digest.of(body)
    cache.put(digest, body)
    assert cache.get(digest) == body
    (tmp_path / "manifests" / "sha256" / digest.encoded).write_bytes(b"tampered")
    assert cache.get(digest) is None
    assert not (tmp_path / "manifests" / "sha256" / digest.encoded).exists()


def test_prune_removes_unused_entries(tmp_path: Path) -> None:
    cache = ManifestCache(tmp_path)
    old, new = b"old", b"new"
    cache.put(Digest.of(old), old)
    cache.put(Digest.of(new), new)
    path = tmp_path / "manifests" / "sha256" / Digest.of(old).encoded
    os.utime(path, (0, 0))
    assert cache.prune() == 1
    assert cache.get(Digest.of(new)) == new and cache.get(Digest.of(old)) is None


def test_unusable_cache_dir_is_a_config_error(tmp_path: Path, regprobe: Any, probe_config: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cfg = probe_config({"name": "c", "url": "http://127.0.0.1:1"}, cache_dir=str(blocker / "cache"))
    result = regprobe("run", "-c", cfg)
    assert result.code == 2 and "cache_dir: cannot create" in result.err
