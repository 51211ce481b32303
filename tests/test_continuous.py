"""A run as one step of continuous verification, on the real registry (issue 23): a budget that covers a
fifth of the registry per run still verifies every tag within six runs, damage in the tail is found
within the window, a broken tag pushed between runs is found by the very next one, and a broken tag is
looked at again every run; without a ledger the turning ring still covers everything; a run killed
mid-way leaves a ledger the next one uses; concurrent runs are refused.

Registries are written straight into storage (bench/gen_storage) - fast at any size."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from bench.gen_storage import Plan, Writer, generate

from regprobe import config as config_mod
from regprobe.ledger import Ledger, LedgerView, ledger_path
from regprobe.runner import run_config

from .hostile import HostileRegistry
from .registry import Registry
from .util import wait_for

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
    return sum(1 for _, path, _ in plan.requests if "/_catalog" not in path and not path.endswith("/tags/list"))


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
    for runs in range(1, 6):
        code, entry, _, _ = run(regprobe, cfg)
        if entry["findings"]:
            break
    assert code == 1 and runs <= 5
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
    # Fixed names, so the ring is known: the fullest eighth of it holds 20 of the 100 tags, and a run
    # walks some 25 of them (a third of what a walk with shared objects costs: here each tag is walked
    # alone, its repository's other tags being elsewhere on the ring).
    plan = generate(registry.root, repositories=10, tags=10, prefix="rotation")
    cfg = config_mod.load(
        probe_config(
            {"name": "rotation", "url": registry.url, "concurrency": 4, "repositories": {"include": ["rotation/*"]}},
            budget={"requests": verification_requests(plan) // 3},
        )
    )
    window = cfg.coverage.window_seconds
    start = 1_800_000_000.0 - 1_800_000_000.0 % window  # the ring's origin: a run then starts at position 0
    seen: list[set[Image]] = []
    for k in range(8):
        (result,) = asyncio.run(run_config(cfg, now=start + k * window / 8))
        assert (result.complete, result.stopped, result.findings) == (False, "budget", [])
        assert result.errors[0].startswith("stopped taking tags: budget.requests spent")
        coverage = result.coverage
        assert coverage is not None and coverage.ledger is None and coverage.verified_tags is not None
        assert (coverage.known, coverage.oldest_age_seconds) == (100, None)
        seen.append(set(coverage.verified_tags))
        assert 20 <= len(seen[-1]) <= 35
    assert all(not a <= b and not b <= a for a, b in itertools.pairwise(seen))
    assert set().union(*seen) == set(plan.tags)
    # The same start walks the same arc (as far as the budget's cut, which the timing moves a tag or two).
    (again,) = asyncio.run(run_config(cfg, now=start))
    repeated = set(again.coverage.verified_tags or ()) if again.coverage else set()
    assert repeated <= seen[0] or seen[0] <= repeated
