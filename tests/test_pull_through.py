"""A pull-through cache (`pull_through: true`) in front of a real upstream, both real distribution
registries (2.8.2 and v3): a run verifies what the cache holds, makes it fetch nothing from upstream, and
takes an upstream outage for what it is - exit 3 with its reason, never a finding (issue 21 item 3)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from regprobe.mediatypes import ACCEPT
from regprobe.pullthrough import CANARY, upstream_detail

from .registry import BINARIES, FLAVOURS, Image, Registry
from .test_fsck import data_file, revision_link, snapshot
from .util import only, wait_for
from .wire import Quiet, serve

V2 = "docker/registry/v2"


@dataclass
class Cache:
    upstream: Registry
    proxy: Registry
    multi: Image  # an index: amd64 pulled through the cache, arm64 and the attestations never
    app: Image  # lib/app:v1, pulled whole
    other: Image  # lib/other:v1, pulled whole

    def storage(self) -> dict[str, tuple[str, int, int]]:
        """The cache's storage tree (paths, sizes, mtimes): what a run must leave as it found it."""
        return snapshot(self.proxy.root / V2)

    def upstream_requests(self) -> list[str]:
        """``METHOD PATH`` of every request the upstream has answered, from its access log."""
        log = (self.upstream.workdir / "registry.log").read_text(errors="replace")
        return re.findall(r'"((?:GET|HEAD|PUT|POST|PATCH|DELETE) \S+) HTTP/1\.1"', log)

    def config(self, **extra: Any) -> dict[str, Any]:
        return {
            "name": "cache",
            "url": self.proxy.url,
            "pull_through": True,
            "storage_root": str(self.proxy.root),
            **extra,
        }


def pull(proxy: Registry, repository: str, reference: str, blobs: list[str]) -> None:
    """Pull a manifest and the given blobs through the cache, and wait until it has stored them."""
    assert proxy.http.get(f"/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT}).status_code == 200
    for digest in blobs:
        assert proxy.http.get(f"/v2/{repository}/blobs/{digest}").status_code == 200
    repo = proxy.root / V2 / "repositories" / repository
    # Distribution 2.8 stores a blob after the response has gone out, through an upload it then removes.
    wait_for(
        lambda: (
            all((repo / "_layers/sha256" / d.split(":", 1)[1] / "link").exists() for d in blobs)
            and all((proxy.root / data_file(d)).exists() for d in blobs)
            and not any((repo / "_uploads").glob("*"))
        ),
        "the cache to store what was pulled",
        10,
        0.02,
    )


@pytest.fixture(params=FLAVOURS, ids=[f"distribution{f}" for f in FLAVOURS])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cache]:
    flavour = request.param
    if not os.path.exists(BINARIES[flavour]):
        pytest.skip(f"distribution {flavour} is not installed ({BINARIES[flavour]})")
    upstream = Registry(tmp_path / "upstream", cache=False, flavour=flavour)
    upstream.config["log"] = {"level": "error", "accesslog": {"disabled": False}}  # what reached upstream
    upstream.start()
    logged = {"level": "error", "accesslog": {"disabled": False}}
    proxy = Registry(
        tmp_path / "cache", cache=False, flavour=flavour, extra={"proxy": {"remoteurl": upstream.url}, "log": logged}
    )
    proxy.start()
    multi = upstream.push_index("lib/multi", "latest")
    app = upstream.push_image("lib/app", "v1")
    upstream.push_image("lib/app", "v2")  # upstream only: tags/list through the cache lists it
    other = upstream.push_image("lib/other", "v1")
    amd64 = multi.children[0]
    pull(proxy, "lib/multi", "latest", [])
    pull(proxy, "lib/multi", amd64.digest, [amd64.config, *amd64.layers])
    pull(proxy, "lib/app", "v1", [app.config, *app.layers])
    pull(proxy, "lib/other", "v1", [other.config, *other.layers])
    yield Cache(upstream, proxy, multi, app, other)
    proxy.stop()
    upstream.stop()


def only_the_canary(requests: list[str]) -> bool:
    """What a run may make the upstream answer: the cache's own ping of it, and the canary blob."""
    return all(r == "GET /v2/" or r.endswith(f"/blobs/{CANARY}") for r in requests)


def test_healthy_cache_is_walked_from_its_storage_and_fetches_nothing(
    cache: Cache, regprobe: Any, probe_config: Any
) -> None:
    before, seen = cache.storage(), len(cache.upstream_requests())

    run = regprobe("run", "-c", probe_config(cache.config()), "--format", "json", "--no-push")

    report = run.report["registries"][0]
    assert (run.code, report["findings"], report["errors"], report["complete"]) == (0, [], [], True)
    # multi:latest, app:v1, other:v1 - not app:v2, which only upstream's tags/list would have named.
    assert (report["repositories"], report["images_checked"]) == (3, 3)
    assert cache.storage() == before  # not one file added, removed, resized or rewritten
    after = cache.upstream_requests()[seen:]
    assert after and only_the_canary(after), after


def test_a_walk_without_pull_through_makes_the_cache_fetch(cache: Cache, regprobe: Any, probe_config: Any) -> None:
    """Why pull_through exists: `index_children: false` judges a missing child right, but asking for it
    (HEAD as much as GET) makes the cache fetch it, and every platform's blobs after it."""
    before = cache.storage()
    config = {"name": "cache", "url": cache.proxy.url, "index_children": False, "blob_check": "head"}

    assert regprobe("run", "-c", probe_config(config), "--format", "json", "--no-push").code == 0

    arm64 = cache.multi.children[1]
    gained = set(cache.storage()) - set(before)
    assert revision_link("lib/multi", arm64.digest).removeprefix(f"{V2}/") in gained
    wait_for(lambda: (cache.proxy.root / data_file(arm64.layers[0])).exists(), "the arm64 layer to be stored", 10, 0.05)


def test_findings_only_for_what_the_cache_serves_broken(cache: Cache, regprobe: Any, probe_config: Any) -> None:
    """Lost content the cache would fetch again is not asked for (and is not a finding); content it
    serves broken from its own storage - and would serve so forever - is."""
    amd64 = cache.multi.children[0]
    proxy = cache.proxy
    proxy.remove_revision_link("lib/multi", amd64.digest)  # the child: not held any more
    proxy.remove_blob_data(cache.app.layers[0])  # link kept, data gone: the cache would fetch it again
    proxy.storage.write(data_file(cache.other.digest)[len(V2) + 1 :], b"{")  # a manifest it cannot read back
    proxy.truncate_blob(cache.app.layers[1])  # served as 0 bytes from storage, never fetched again
    before, seen = cache.storage(), len(cache.upstream_requests())

    run = regprobe("run", "-c", probe_config(cache.config()), "--format", "json", "--no-push")

    finding = only(run.findings())
    assert (finding["repository"], finding["digest"], finding["kind"], finding["tags"]) == (
        "lib/app",
        cache.app.layers[1],
        "layer",
        ["v1"],
    )
    assert finding["problem"] in ("size_mismatch", "truncated")
    assert run.code == 1 and run.report["registries"][0]["errors"] == []
    # lib/other:v1's manifest is not held, so the tag is not walked: multi:latest and app:v1 are.
    assert run.report["registries"][0]["images_checked"] == 2
    assert cache.storage() == before
    assert only_the_canary(cache.upstream_requests()[seen:])

    # fsck on the same storage names the rest: what a pull would fetch again (and --repair tidies).
    disk = regprobe("fsck", str(proxy.root), "--no-index-children", "--format", "json")
    assert sorted((f["digest"], f["problem"]) for f in disk.report["findings"]) == sorted(
        [
            (cache.app.layers[0], "missing"),
            (cache.app.layers[1], "size_mismatch"),
            (cache.other.digest, "digest_mismatch"),
        ]
    )


def test_referrers_the_cache_holds_are_walked_from_its_storage(cache: Cache, regprobe: Any, probe_config: Any) -> None:
    """app:v1 has two signatures upstream, in its fallback tag's index; the cache was asked for the tag
    and the first one only. The cache's storage says what it holds: the fallback index (read by digest,
    not by tag, which the cache would resolve upstream) and the one signature - walked; the other is
    not asked for (the cache would fetch it) and not a finding. The referrers API is never asked. A
    signature blob the cache serves emptied is a `referrer` finding on app:v1."""
    upstream, proxy, app = cache.upstream, cache.proxy, cache.app
    held = upstream.push_referrer("lib/app", app.digest, "application/vnd.dev.cosign.artifact.sig.v1+json", b"one")
    upstream.push_referrer("lib/app", app.digest, "application/vnd.dev.cosign.artifact.sig.v1+json", b"two")
    layer = json.loads(upstream.http.get(f"/v2/lib/app/manifests/{held}", headers={"Accept": ACCEPT}).content)
    pull(proxy, "lib/app", f"sha256-{app.digest[7:]}", [])
    pull(proxy, "lib/app", held, [layer["config"]["digest"], layer["layers"][0]["digest"]])
    before, seen = cache.storage(), len(cache.upstream_requests())

    healthy = regprobe("run", "-c", probe_config(cache.config()), "--format", "json", "--no-push")
    assert cache.storage() == before
    proxy.truncate_blob(layer["layers"][0]["digest"])
    broken = regprobe("run", "-c", probe_config(cache.config()), "--format", "json", "--no-push")

    report = healthy.report["registries"][0]
    # A cache holds what was pulled: a subject it lacks is not gone, so no dangling is looked for.
    assert (healthy.code, report["findings"], report["dangling"], report["images_checked"]) == (0, [], None, 3)
    finding = only(broken.findings())
    assert (finding["kind"], finding["digest"], finding["subject"], finding["tags"]) == (
        "referrer",
        layer["layers"][0]["digest"],
        app.digest,
        ["v1"],
    )
    asked = cache.upstream_requests()[seen:]
    assert only_the_canary(asked) and not any("/referrers/" in r for r in asked), asked
    proxy_log = (proxy.workdir / "registry.log").read_text(errors="replace")
    assert f"/v2/lib/app/manifests/{held}" in proxy_log and "/referrers/" not in proxy_log


def test_upstream_down_is_exit_3_naming_it_never_a_finding(cache: Cache, regprobe: Any, probe_config: Any) -> None:
    upstream_url = cache.upstream.url
    cache.upstream.stop()
    before = cache.storage()

    run = regprobe("run", "-c", probe_config(cache.config()), "--format", "json", "--no-push")

    report = run.report["registries"][0]
    assert (run.code, report["findings"], report["complete"]) == (3, [], False)
    error = only([{"text": e} for e in report["errors"]])["text"]
    assert "the cache gets no answer from it" in error
    assert upstream_url in error and "connection refused" in error, error
    assert report["images_checked"] == 3  # what the cache holds is still walked
    assert cache.storage() == before


REFUSALS = {
    503: "the cache gets no answer from it",
    429: "it rate-limits the cache",
    401: "it refuses the cache's credentials",
}


def test_upstream_refusing_the_cache_is_exit_3(cache: Cache, regprobe: Any, probe_config: Any) -> None:
    """Docker Hub's 429 (TOOMANYREQUESTS), a 503, refused credentials: distribution 2.8 passes each on as a
    500, distribution 3 passes 401 and 429 on as they came - neither is this run's rate limit or
    credentials, and the rest of the cache is walked."""
    status = 0

    class Refusing(Quiet):
        def get(self) -> None:
            if self.path == "/v2/":
                self.answer(200, {"Content-Type": "application/json"}, b"{}")
                return
            code = {429: "TOOMANYREQUESTS", 401: "UNAUTHORIZED"}.get(status, "UNAVAILABLE")
            body = json.dumps({"errors": [{"code": code, "message": "no"}]}).encode()
            self.answer(status, {"Content-Type": "application/json"}, body)

    proxy = cache.proxy
    before = cache.storage()
    with serve(Refusing) as fake:
        proxy.stop()
        proxy.config["proxy"] = {"remoteurl": fake}
        proxy.start()
        for status, why in REFUSALS.items():
            run = regprobe("run", "-c", probe_config(cache.config()), "--format", "json", "--no-push")

            report = run.report["registries"][0]
            assert (run.code, report["findings"], report["images_checked"]) == (3, [], 3), status
            assert why in only([{"text": e} for e in report["errors"]])["text"], report["errors"]
    assert cache.storage() == before


@pytest.mark.parametrize("cache", ["2"], indirect=True)  # regprobe's logic, the same on both
def test_storage_root_must_be_the_caches(cache: Cache, regprobe: Any, probe_config: Any, tmp_path: Path) -> None:
    """An empty mount is not an empty cache, and another registry's storage is not this cache's."""
    empty = tmp_path / "not-mounted"
    empty.mkdir()
    run = regprobe("run", "-c", probe_config(cache.config(storage_root=str(empty))), "--format", "json", "--no-push")
    assert run.code == 3
    assert run.report["registries"][0]["errors"] == [
        f"storage_root {empty}: no {V2} under it (not the cache's rootdirectory, or not mounted)"
    ]

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / V2 / "repositories/lib/app").mkdir(parents=True)
    run = regprobe(
        "run", "-c", probe_config(cache.config(storage_root=str(elsewhere))), "--format", "json", "--no-push"
    )
    errors = run.report["registries"][0]["errors"]
    assert run.code == 3 and run.report["registries"][0]["images_checked"] == 0
    assert sorted(e.split(":", 1)[0] for e in errors) == ["lib/multi", "lib/other"], errors
    # The two repositories are walked side by side: their errors come in either order.
    assert any(f"storage_root {elsewhere} holds no repository lib/multi, which the cache lists" in e for e in errors)


def test_upstream_detail_reads_both_distributions() -> None:
    """The detail of the cache's 500, as each distribution sends it (captured from the real servers)."""
    v2 = (
        b'{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":{"Op":"Get","URL":"http://127.0.0.1:46757/v2/",'
        b'"Err":{"Op":"dial","Net":"tcp","Source":null,"Addr":{"IP":"127.0.0.1","Port":46757,"Zone":""},'
        b'"Err":{"Syscall":"connect","Err":111}}}}]}'
    )
    v3 = (
        b'{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"Get \\"http://127.0.0.1:45461/v2/\\": '
        b'dial tcp 127.0.0.1:45461: connect: connection refused"}]}'
    )
    assert (
        upstream_detail(v2) == "Get http://127.0.0.1:46757/v2/: dial tcp 127.0.0.1:46757: connect: connection refused"
    )
    assert (
        upstream_detail(v3) == 'Get "http://127.0.0.1:45461/v2/": dial tcp 127.0.0.1:45461: connect: connection refused'
    )
    assert upstream_detail(b'{"errors":[{"code":"UNKNOWN","detail":{"Status":"503 Service Unavailable"}}]}') == (
        "upstream answered 503 Service Unavailable"
    )
    for odd in (b"", b"<html>", b"[]", b'{"errors":[]}', b'{"errors":[{"detail":{"Err":{"Err":{"Err":{}}}}}]}'):
        upstream_detail(odd)  # no crash, whatever the shape
    secret = b'{"errors":[{"detail":"Get \\"https://u:pw@up.example/v2/?X-Amz-Signature=abc\\": EOF"}]}'
    assert "pw" not in (upstream_detail(secret) or "") and "abc" not in (upstream_detail(secret) or "")
    assert len(upstream_detail(b'{"errors":[{"detail":"' + b"x" * 5000 + b'"}]}') or "") <= 300


def test_expired_content_is_neither_walked_nor_a_finding(tmp_path: Path, regprobe: Any, probe_config: Any) -> None:
    """The cache's own expiry (proxy.ttl: settable on distribution 3, 7 days on 2.8) removes a manifest's
    revision link, layer links and blob data, and keeps the tag link: the next pull resolves the tag at
    upstream and fetches it all again. Not lost, so neither the run nor fsck reports it."""
    if not os.path.exists(BINARIES["3"]):
        pytest.skip("distribution 3 is not installed")
    upstream = Registry(tmp_path / "upstream", cache=False, flavour="3").start()
    proxy = Registry(
        tmp_path / "cache", cache=False, flavour="3", extra={"proxy": {"remoteurl": upstream.url, "ttl": "1s"}}
    ).start()
    try:
        app = upstream.push_image("lib/app", "v1")
        pull(proxy, "lib/app", "v1", [app.config, *app.layers])
        expired = proxy.root / revision_link("lib/app", app.digest)
        wait_for(lambda: not expired.exists(), "the cache to expire the manifest", 20, 0.1)
        blobs = [proxy.root / data_file(d) for d in (app.config, *app.layers)]
        wait_for(lambda: not any(b.exists() for b in blobs), "the cache to expire the blobs", 20, 0.1)
        assert (proxy.root / V2 / "repositories/lib/app/_manifests/tags/v1/current/link").exists()
        before = snapshot(proxy.root / V2)
        config = {"name": "cache", "url": proxy.url, "pull_through": True, "storage_root": str(proxy.root)}

        run = regprobe("run", "-c", probe_config(config), "--format", "json", "--no-push")

        assert (run.code, run.findings(), run.report["registries"][0]["images_checked"]) == (0, [], 0)
        assert snapshot(proxy.root / V2) == before
        assert regprobe("fsck", str(proxy.root), "--no-index-children", "--format", "json").code == 0
        assert regprobe("fsck", str(proxy.root), "--format", "json").code == 1  # a private registry's view
    finally:
        proxy.stop()
        upstream.stop()


@pytest.mark.parametrize("cache", ["2"], indirect=True)  # regprobe's logic, the same on both
def test_probe_target_on_a_cache_walks_only_what_it_holds(cache: Cache, probe_config: Any) -> None:
    """serve's /probe?target= and `run` share the policy: an image the cache does not hold is not asked
    for (that would be a pull through the cache), and the probe says so instead of judging it."""
    from regprobe import config
    from regprobe.reference import Reference
    from regprobe.serve.ondemand import walk

    cfg = config.load(probe_config(cache.config()))
    before, seen = cache.storage(), len(cache.upstream_requests())

    def target(ref: str) -> Any:
        return asyncio.run(walk(cfg, cfg.registries[0], Reference.parse(f"{cache.proxy.host}/{ref}"), "range", 30))

    held = target("lib/app:v1")
    assert (held.complete, held.findings, held.images_checked) == (True, [], 1)
    for ref in ("lib/app:v2", f"lib/multi@{cache.multi.children[1].digest}"):
        result = target(ref)
        assert (result.complete, result.findings) == (False, [])
        assert "the cache does not hold it" in only([{"e": e} for e in result.errors])["e"], result.errors
    assert cache.storage() == before
    assert only_the_canary(cache.upstream_requests()[seen:])


@pytest.mark.parametrize("cache", ["2"], indirect=True)  # regprobe's logic, the same on both
def test_unreadable_storage_is_not_held_and_leaves_the_run_incomplete(
    cache: Cache, regprobe: Any, probe_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What regprobe cannot read in the cache's storage it does not know the cache holds: it is not asked
    for (that might be a fetch), and the run says what it could not read instead of calling it intact."""
    layers = cache.proxy.root / V2 / "repositories/lib/app/_layers/sha256"
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if isinstance(path, str) and path == str(layers):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)  # as a non-root user would meet a directory mode 0
    before, seen = cache.storage(), len(cache.upstream_requests())

    run = regprobe("run", "-c", probe_config(cache.config()), "--format", "json", "--no-push")

    report = run.report["registries"][0]
    assert (run.code, report["findings"], report["images_checked"]) == (3, [], 3)
    error = only([{"e": e} for e in report["errors"]])["e"]
    assert error.startswith("lib/app: cannot read ") and "Permission denied" in error, error
    assert cache.storage() == before
    assert only_the_canary(cache.upstream_requests()[seen:])
