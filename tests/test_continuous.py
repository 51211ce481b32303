"""A run as one step of continuous verification, on the real registry (issue 23): a budget that covers a
fifth of the registry per run still verifies every tag within six runs, damage in the tail is found
within the window, a broken tag pushed between runs is found by the very next one, and a broken tag is
looked at again every run; without a ledger the turning ring still covers everything; a run killed
mid-way leaves a ledger the next one uses; concurrent runs are refused.

Registries are written straight into storage (bench/gen_storage) - fast at any size."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from bench.gen_storage import Plan, Writer, generate

from regprobe import config as config_mod
from regprobe.client import ClientSettings, RegistryClient
from regprobe.ledger import Ledger, LedgerError, LedgerView, ObjectVerdict, TagVerdict, ledger_path
from regprobe.model import RegistryResult
from regprobe.plan import Clock, LedgerPlan, RotationPlan
from regprobe.plan import Plan as Plan_
from regprobe.probe import Selection, probe_registry
from regprobe.runner import run_config
from regprobe.walk import WalkPolicy

from .hostile import HostileRegistry
from .registry import Registry
from .util import only, wait_for

Image = tuple[str, str]


def run(regprobe: Any, cfg: str) -> tuple[int, dict[str, Any], float, float]:
    """One ``regprobe run``: its exit code, its registry entry, and the wall time it began and ended."""
    began = time.time()
    result = regprobe("run", "-c", cfg, "--format", "json", "-q")
    return result.code, result.report["registries"][0], began, time.time()


def ledger(regprobe: Any, cfg: str, *flags: str) -> dict[str, Any]:
    result = regprobe("ledger", "-c", cfg, "--format", "json", *flags)
    assert result.code == 0, result.err
    return result.report["registries"][0]  # type: ignore[no-any-return]


def verified(entry: dict[str, Any]) -> set[Image]:
    named = entry["coverage"]["verified_tags"]
    assert named is not None, "more than 100 verified: not named"
    return {(t["repository"], t["tag"]) for t in named}


def verification_requests(plan: Plan) -> int:
    """What walking every tag costs, the listing (catalog, tag lists) left out."""
    return sum(1 for _, path, _ in plan.requests if "/_catalog" not in path and "/tags/list" not in path)


def own_layer(registry: Registry, repository: str, tag: str) -> str:
    """The layer only this single-platform tag has (gen_storage: a base layer shared by the repository,
    then one of its own)."""
    v2 = registry.v2 / "repositories" / repository / "_manifests" / "tags" / tag / "current" / "link"
    manifest = json.loads(registry.blob_path(v2.read_text()).read_bytes())
    assert manifest["mediaType"].endswith("manifest.v1+json"), "an index: pick a single-platform tag"
    return str(manifest["layers"][1]["digest"])


def test_a_fifth_per_run_verifies_every_tag_within_six_runs_and_finds_damage_within_the_window(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    plan = generate(registry.root, repositories=20, tags=10, prefix=ns)  # 200 tags, a fifth of them indexes
    everything = set(plan.tags)
    budget = verification_requests(plan) // 5
    cfg = probe_config(
        # Few in flight: the budget is kept by forecast, which counts the tags in flight as still to pay.
        {"name": ns, "url": registry.url, "concurrency": 2, "repositories": {"include": [f"{ns}/*"]}},
        state_dir=str(tmp_path / "state"),
        budget={"requests": budget},
    )

    # Six runs of a fifth each: every tag verified, each by the run the JSON names, when the ledger says.
    named: dict[Image, tuple[float, float]] = {}
    for _ in range(6):
        code, entry, began, ended = run(regprobe, cfg)
        assert (code, entry["complete"], entry["stopped"], entry["findings"]) == (0, True, "budget", [])
        # The listing is not counted: a tag list per repository, and a catalog page or three (it is shared).
        assert sum(entry["requests"].values()) - 20 - 3 <= budget
        assert entry["coverage"]["known"] == 200
        for image in verified(entry):
            named[image] = (began, ended)
    assert set(named) == everything
    assert entry["coverage"]["verified_within_window"] == 200
    states = {(t["repository"], t["tag"]): t for t in ledger(regprobe, cfg)["tags"]}
    assert set(states) == everything
    for image, (began, ended) in named.items():
        assert states[image]["verdict"] == "ok"
        assert began <= states[image]["verified_at"] <= ended, image

    # A blob deleted in the tail - under the tag least recently verified - is found within the window:
    # five more runs at most, however far back it is.
    oldest = ledger(regprobe, cfg, "--oldest", "20")["tags"]
    tail = next(t for t in oldest if int(t["tag"][1:]) % 5)  # gen_storage: v0, v5 are indexes
    repository, tag = tail["repository"], tail["tag"]
    layer = own_layer(registry, repository, tag)
    data = registry.blob_path(layer).read_bytes()
    registry.remove_blob_data(layer)
    for _ in range(5):
        code, entry, _, _ = run(regprobe, cfg)
        if entry["findings"]:
            break
    assert code == 1
    assert [(f["repository"], f["digest"], f["tags"]) for f in entry["findings"]] == [(repository, layer, [tag])]

    # A broken tag pushed between runs is found by the very next run (new tags are verified first).
    writer = Writer(registry.root)
    pushed = f"{ns}/team000/app00000"
    manifest = registry.http.get(
        f"/v2/{pushed}/manifests/v1", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
    ).content
    body = json.loads(manifest)
    body["layers"][1]["digest"] = "sha256:" + "e" * 64  # a layer the registry never had
    digest = writer.blob(json.dumps(body).encode())
    writer.revision(pushed, digest)
    writer.tag(pushed, "broken-new", digest)
    code, entry, _, _ = run(regprobe, cfg)
    broken = {(f["repository"], t) for f in entry["findings"] for t in f["tags"]}
    assert code == 1 and broken == {(repository, tag), (pushed, "broken-new")}

    # Broken tags are looked at again every run - they stay broken on fresh evidence - and resolve on it.
    before = {t["tag"]: t["verified_at"] for t in ledger(regprobe, cfg, "--broken")["tags"]}
    code, entry, began, _ = run(regprobe, cfg)
    after = {t["tag"]: t["verified_at"] for t in ledger(regprobe, cfg, "--broken")["tags"]}
    assert code == 1 and set(after) == set(before) == {tag, "broken-new"}
    assert all(after[t] > before[t] and after[t] >= began for t in after)
    registry.restore_blob_data(layer, data)
    code, entry, _, _ = run(regprobe, cfg)
    assert {(f["repository"], t) for f in entry["findings"] for t in f["tags"]} == {(pushed, "broken-new")}
    assert [t["tag"] for t in ledger(regprobe, cfg, "--broken")["tags"]] == ["broken-new"]


def test_without_a_ledger_runs_cut_short_turn_the_ring_and_cover_everything(
    registry: Registry, probe_config: Any
) -> None:
    """No state_dir: each run is cut to about a quarter by its budget and is incomplete (only a ledger
    proves coverage), but runs started at successive times walk successive arcs of the ring - not the same
    head of the catalog each time - and together verify every tag."""
    plan = generate(registry.root, repositories=6, tags=10, prefix="rotation")
    cfg = config_mod.load(
        probe_config(
            {"name": "rotation", "url": registry.url, "concurrency": 4, "repositories": {"include": ["rotation/*"]}},
            budget={"requests": verification_requests(plan) // 4},
        )
    )
    window = cfg.coverage.window_seconds
    start = 1_800_000_000.0 - 1_800_000_000.0 % window  # the ring's origin: a run then starts at its first tag
    seen: list[set[Image]] = []
    for k in range(6):  # each run starts 10 tags further round, and walks some 15
        (result,) = asyncio.run(run_config(cfg, now=start + k * window / 6))
        assert (result.complete, result.stopped, result.findings) == (False, "budget", [])
        assert result.errors[0].startswith("stopped taking tags: budget.requests spent")
        coverage = result.coverage
        assert coverage is not None and coverage.ledger is None and coverage.verified_tags is not None
        assert (coverage.known, coverage.oldest_age_seconds) == (60, None)
        seen.append(set(coverage.verified_tags))
        assert 10 <= len(seen[-1]) <= 25, len(seen[-1])
    assert all(not a <= b and not b <= a for a, b in itertools.pairwise(seen))
    assert set().union(*seen) == set(plan.tags)
    # A repository's tags sit together on the ring: a run walks whole repositories but at its ends.
    assert sum(1 for r in {repository for repository, _ in seen[0]} if len({t for rr, t in seen[0] if rr == r}) == 10)
    # The same start walks the same arc (as far as the budget's cut, which the timing moves a tag or two).
    (again,) = asyncio.run(run_config(cfg, now=start))
    repeated = set(again.coverage.verified_tags or ()) if again.coverage else set()
    assert repeated <= seen[0] or seen[0] <= repeated


def test_a_ring_that_starts_inside_a_repository_still_walks_it_as_one(registry: Registry, probe_config: Any) -> None:
    """The run starts at the ring's third tag, inside a repository whose first two tags come last: the
    repository's first unit is held open for them, so nothing is requested twice - exactly the minimal
    walk, even with one unit in flight at a time (the first is done long before the plan's end)."""
    plan = generate(registry.root, repositories=4, tags=5, prefix="wrap")
    names = sorted({repository for repository, _ in plan.tags})
    cfg = config_mod.load(
        probe_config({"name": "wrap", "url": registry.url, "concurrency": 1, "repositories": {"list": names}})
    )
    window = cfg.coverage.window_seconds
    origin = 1_800_000_000.0 - 1_800_000_000.0 % window
    (result,) = asyncio.run(run_config(cfg, now=origin + window * 2.5 / 20))
    assert (result.complete, result.images_checked, result.findings) == (True, 20, [])
    sent = sum(count for outcome, count in result.requests.items() if outcome != "retried")
    assert sent == 1 + len(names) + verification_requests(plan)  # GET /v2/, the tag lists, the walk


def test_a_run_killed_mid_way_leaves_a_ledger_the_next_run_uses(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """SIGKILL while repositories are being recorded: the ledger opens as it is (not set aside), holds
    every repository recorded before the kill whole, and the next run takes up the tags never verified."""
    writer = Writer(registry.root)  # 1,000 tags, 25 on each repository's image, written straight into storage
    for r in range(40):
        image = registry.push_image(f"{ns}/app{r:02}", "t0", layers=[b"shared" * 100])
        for t in range(1, 25):
            writer.tag(image.repository, f"t{t}", image.digest)
    state = tmp_path / "state"
    entry = {"name": ns, "url": registry.url, "concurrency": 1, "repositories": {"include": [f"{ns}/*"]}}
    cfg = probe_config(entry, state_dir=str(state))
    path = ledger_path(state, ns)

    def recorded() -> int:
        try:
            with LedgerView.open(path) as view:
                return sum(1 for t in view.tags() if t.verified_at is not None)
        except LedgerError:  # not there yet, or being created
            return 0

    proc = subprocess.Popen([sys.executable, "-m", "regprobe", "run", "-c", cfg, "-q"], stderr=subprocess.PIPE)
    try:
        wait_for(lambda: recorded() >= 50, "two repositories recorded", 60, 0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    with LedgerView.open(path) as view:
        before = {(t.repository, t.tag) for t in view.tags() if t.verified_at is not None}
    assert 50 <= len(before) < 1000
    per_repository = {r: sum(1 for rr, _ in before if rr == r) for r, _ in before}
    assert set(per_repository.values()) == {25}, "a repository's verdicts are recorded whole or not at all"

    # The next run (a budget for some 50 tags) opens the same ledger and verifies tags never verified.
    code, entry_after, _, _ = run(regprobe, probe_config(entry, state_dir=str(state), budget={"requests": 60}))
    assert (code, entry_after["complete"], entry_after["coverage"]["known"]) == (0, True, 1000)
    again = verified(entry_after)
    assert again and not again & before
    assert entry_after["coverage"]["verified_within_window"] == len(before) + len(again)


def test_a_second_run_on_a_ledger_is_refused_and_a_ledger_that_cannot_be_written_fails_that_run(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    registry.push_image(f"{ns}/app", "v1")
    entry = {"name": ns, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    state = tmp_path / "state"
    with Ledger.open(ledger_path(state, ns), identity=f"{ns} {registry.url}"):
        code, busy, _, _ = run(regprobe, probe_config(entry, state_dir=str(state)))
    assert (code, busy["complete"], busy["stopped"], busy["images_checked"]) == (3, False, "error", 0)
    assert busy["errors"] == [f"ledger {ledger_path(state, ns)} is held by another run (pid {os.getpid()})"]

    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    code, failed, _, _ = run(regprobe, probe_config(entry, state_dir=str(not_a_directory / "state")))
    assert (code, failed["complete"], failed["images_checked"]) == (3, False, 0)
    assert failed["errors"][0].startswith(f"cannot create the ledger {not_a_directory}/state/")
    assert failed["errors"][0].endswith(": Not a directory")


def test_a_listing_that_fails_deletes_nothing_and_the_ledger_keeps_what_it_did_not_reach(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    registry.push_image(f"{ns}/a", "v1")
    registry.push_image(f"{ns}/a", "v2")
    b = registry.push_image(f"{ns}/b", "v1")
    registry.remove_blob_data(b.layers[0])
    state = str(tmp_path / "state")

    def config(*names: str) -> str:
        selection = {"list": [f"{ns}/{n}" for n in names]}
        return str(probe_config({"name": ns, "url": registry.url, "repositories": selection}, state_dir=state))

    code, first, _, _ = run(regprobe, config("a", "b"))
    assert (code, first["coverage"]["known"], [f["tags"] for f in first["findings"]]) == (1, 3, [["v1"]])
    registry.storage.remove_tree(f"repositories/{ns}/a/_manifests/tags/v2")

    # b not selected and a typo: the listing is incomplete, so nothing goes - neither a:v2 (deleted) nor
    # b:v1, which this run never looked at and which is still published broken.
    code, partial, _, _ = run(regprobe, config("a", "typo"))
    assert (code, partial["complete"], partial["findings"], partial["coverage"]["known"]) == (1, False, [], 3)
    assert verified(partial) == {(f"{ns}/a", "v1")}
    metrics = regprobe("run", "-c", config("a", "typo"), "--no-push", "--format", "metrics").out
    assert f'regprobe_image_broken{{registry="{ns}",repository="{ns}/b",tag="v1"}} 1.0' in metrics
    assert f'regprobe_broken_images{{registry="{ns}"}} 1.0' in metrics
    assert f'regprobe_broken_objects{{kind="layer",registry="{ns}"}} 1.0' in metrics
    text = regprobe("run", "-c", config("a", "typo")).out.splitlines()
    assert text[0].endswith("  BROKEN") and text[2].startswith("  coverage: 1 verified by this run (done), 3 of 3 ")
    assert text[2].endswith("; 1 tag broken at the last look not reached (`regprobe ledger --broken`)")

    # A listing that completes forgets what it no longer lists.
    code, complete, _, _ = run(regprobe, config("a"))
    assert (code, complete["complete"], complete["coverage"]["known"]) == (0, True, 1)
    assert "regprobe_image_broken{" not in regprobe("run", "-c", config("a"), "--no-push", "--format", "metrics").out


def test_the_scrub_finds_a_corrupt_blob_and_every_run_after_hashes_it_until_it_is_whole(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """Bit rot (same size, other bytes) passes every one-byte check; the scrub hashes it and names the
    tags that reach it; those tags are then verified first, hashing that blob, until it is whole again."""
    shared = os.urandom(3000)
    registry.push_image(f"{ns}/app", "v1", layers=[shared, os.urandom(100)])
    registry.push_image(f"{ns}/app", "v2", layers=[shared, os.urandom(100)])
    registry.push_image(f"{ns}/other", "v1", layers=[os.urandom(100)])
    layer = f"sha256:{hashlib.sha256(shared).hexdigest()}"
    registry.corrupt_blob(layer)
    cfg = probe_config(
        {"name": ns, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}},
        state_dir=str(tmp_path / "state"),
        scrub={"bytes_per_run": "1MiB"},
    )

    code, first, _, _ = run(regprobe, cfg)
    finding = only(first["findings"])
    assert code == 1 and (finding["repository"], finding["digest"]) == (f"{ns}/app", layer)
    assert (finding["problem"], finding["kind"], finding["tags"]) == ("digest_mismatch", "layer", ["v1", "v2"])
    assert finding["detail"].startswith("found by the digest scrub: content hashes to sha256:")
    assert first["scrub"]["blobs"] == 5 and first["scrub"]["bytes"] >= 3000  # the config all three share, 4 layers
    assert [t["tag"] for t in ledger(regprobe, cfg, "--broken")["tags"]] == ["v1", "v2"]
    metrics = regprobe("run", "-c", cfg, "--no-push", "--format", "metrics").out
    assert f'regprobe_scrub_oldest_age_seconds{{registry="{ns}"}}' in metrics

    # The next runs verify those tags first and hash the blob though blob_check is range: fresh evidence.
    code, second, _, _ = run(regprobe, cfg)
    finding = only(second["findings"])
    assert code == 1 and finding["tags"] == ["v1", "v2"] and finding["detail"].startswith("content hashes to")
    registry.restore_blob_data(layer, shared)
    # Without the scrub this time: the walk's own hashing says the blob is whole again.
    unscrubbed = probe_config(
        {"name": ns, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}, state_dir=str(tmp_path / "state")
    )
    code, healed, _, _ = run(regprobe, unscrubbed)
    assert (code, healed["findings"], healed["scrub"]) == (0, [], None)
    assert ledger(regprobe, cfg, "--broken")["tags"] == []
    with LedgerView.open(ledger_path(tmp_path / "state", ns)) as view:
        assert view.suspects() == frozenset()


@pytest.mark.parametrize("kept", [False, True], ids=["no-ledger", "ledger"])
def test_a_tag_deleted_between_the_listing_and_its_walk_is_no_broken_image(
    registry: Registry, ns: str, tmp_path: Path, kept: bool
) -> None:
    """The listing comes first, so a tag may be deleted before the run walks it (a whole run later, not a
    moment): 404 by tag, the repository is listed again, and a tag no longer there is dropped - in every
    unit, the first one too (held open until the plan's end, in case the ring wraps round to it)."""
    names = tuple(f"{ns}/app{i}" for i in range(3))
    for name in names:
        registry.push_image(name, "v1")

    def listed_with_a_ghost(plan: Plan_) -> Plan_:
        listed = plan.listed
        plan.listed = lambda repository, tags: listed(repository, [*tags, "deleted-since"])  # type: ignore[method-assign]
        return plan

    async def go(ledger: Ledger | None) -> RegistryResult:
        async with RegistryClient(ClientSettings(url=registry.url, concurrency=1)) as client:
            clock = Clock()
            plan: Plan_ = LedgerPlan(ledger, clock, 86400.0) if ledger else RotationPlan(clock, 86400.0)
            selection = Selection(names=names)
            return await probe_registry(
                "r",
                client,
                WalkPolicy(),
                selection=selection,
                deadline=time.monotonic() + 60,
                plan=listed_with_a_ghost(plan),
            )

    if kept:
        with Ledger.open(ledger_path(tmp_path, "r"), identity="r") as ledger:
            result = asyncio.run(go(ledger))
            assert [t.tag for t in ledger.tags()] == ["v1"] * 3  # the ghosts are forgotten
    else:
        result = asyncio.run(go(None))
    assert (result.complete, result.findings, result.images_checked, result.errors) == (True, [], 3, [])
    assert result.coverage is not None and (result.coverage.known, result.coverage.verified) == (3, 3)


@pytest.mark.parametrize("state", [True, False], ids=["ledger", "no-ledger"])
def test_a_deadline_that_cuts_the_walk_is_a_spent_budget_only_with_a_ledger(
    regprobe: Any, probe_config: Any, tmp_path: Path, state: bool
) -> None:
    evil = HostileRegistry().start()
    evil.mode = "hang-manifest"  # the walk never gets an answer: the deadline cuts it
    try:
        extra = {"state_dir": str(tmp_path / "state")} if state else {}
        code, entry, _, _ = run(regprobe, probe_config({"name": "evil", "url": evil.url}, deadline=1, **extra))
    finally:
        evil.stop()
    assert (entry["stopped"], entry["images_checked"], entry["coverage"]["verified"]) == ("deadline", 0, 0)
    if state:
        assert (code, entry["complete"], entry["errors"], entry["coverage"]["known"]) == (0, True, [], 1)
    else:
        assert (code, entry["complete"]) == (3, False)
        assert entry["errors"] == ["deadline reached after 1s; the run is incomplete"]


def test_a_corrupt_blob_no_known_tag_reaches_is_forgotten_not_reported(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    kept = registry.push_image(f"{ns}/app", "v1", layers=[os.urandom(200)])
    dropped = registry.push_image(f"{ns}/app", "v2", layers=[os.urandom(200)])
    entry = {"name": ns, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    state = str(tmp_path / "state")
    assert run(regprobe, probe_config(entry, state_dir=state))[0] == 0
    registry.storage.remove_tree(f"repositories/{ns}/app/_manifests/tags/v2")  # the tag goes, its blobs stay
    registry.corrupt_blob(dropped.layers[0])
    code, scrubbed, _, _ = run(regprobe, probe_config(entry, state_dir=state, scrub={"bytes_per_run": "1MiB"}))
    assert (code, scrubbed["findings"], scrubbed["scrub"]["blobs"]) == (0, [], 3)  # a config, two layers
    with LedgerView.open(ledger_path(state, ns)) as view:
        assert view.oldest_scrub_age(time.time()) is not None
        assert [t.tag for t in view.tags()] == ["v1"] and kept.layers[0] != dropped.layers[0]
    code, again, _, _ = run(regprobe, probe_config(entry, state_dir=state, scrub={"bytes_per_run": "1MiB"}))
    assert (code, again["scrub"]["blobs"]) == (0, 2)  # the forgotten blob is not read again


def test_one_finding_per_object_though_its_tags_were_walked_in_separate_units(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """Tags of one repository apart in the plan are walked in separate units; a broken object they share
    is still one finding naming them all."""
    shared = os.urandom(500)
    registry.push_image(f"{ns}/a", "v1", layers=[shared, os.urandom(10)])
    state = str(tmp_path / "state")

    def config(*names: str) -> str:
        selection = {"list": [f"{ns}/{n}" for n in names]}
        return str(probe_config({"name": ns, "url": registry.url, "repositories": selection}, state_dir=state))

    assert run(regprobe, config("a"))[0] == 0
    registry.push_image(f"{ns}/a", "v2", layers=[shared, os.urandom(10)])
    registry.push_image(f"{ns}/b", "w1")
    registry.remove_blob_data(f"sha256:{hashlib.sha256(shared).hexdigest()}")
    # The plan: a:v2 and b:w1 (new), then a:v1 (verified before) - a's tags in two units.
    code, entry, _, _ = run(regprobe, config("a", "b"))
    finding = only(entry["findings"])
    assert (code, finding["repository"], finding["tags"]) == (1, f"{ns}/a", ["v1", "v2"])


def test_a_ledger_that_fails_mid_run_stops_the_run_and_loses_no_finding(registry: Registry, ns: str) -> None:
    image = registry.push_image(f"{ns}/app", "v1")
    registry.remove_blob_data(image.layers[0])

    class Failing(RotationPlan):
        persistent = True

        def record(self, repository: str, tags: Sequence[TagVerdict], objects: Sequence[ObjectVerdict]) -> None:
            raise sqlite3.OperationalError("database or disk is full")

    async def go() -> RegistryResult:
        async with RegistryClient(ClientSettings(url=registry.url, concurrency=2)) as client:
            plan = Failing(Clock(), 86400.0)
            selection = Selection(names=(f"{ns}/app",))
            return await probe_registry(
                "r", client, WalkPolicy(), selection=selection, deadline=time.monotonic() + 60, plan=plan
            )

    result = asyncio.run(go())
    assert (result.complete, result.stopped) == (False, "error")
    assert result.errors == ["ledger: cannot write: database or disk is full; no more tags taken"]
    assert [f.tags for f in result.findings] == [("v1",)]


def test_a_blob_the_scrub_cannot_read_is_an_error_of_the_run_never_a_finding(
    regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    evil = HostileRegistry().start()
    try:
        entry = {"name": "evil", "url": evil.url, "timeout": 1}
        cfg = probe_config(entry, state_dir=str(tmp_path / "state"), scrub={"bytes_per_run": "1MiB"})
        code, healthy, _, _ = run(regprobe, cfg)
        assert (code, healthy["scrub"]["blobs"]) == (0, 2)
        evil.mode, evil.down = "outage", True  # from now on everything answers 500
        code, down, _, _ = run(regprobe, cfg)
    finally:
        evil.stop()
    assert (code, down["findings"], down["scrub"]["blobs"]) == (3, [], 0)
    scrub_errors = [e for e in down["errors"] if e.startswith("scrub: evil/app@sha256:")]
    assert len(scrub_errors) == 2 and all("GET answered 500" in e for e in scrub_errors)
