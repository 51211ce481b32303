"""The verification ledger: order of work, coverage, crash safety, one writer, and what a ledger that is
not ours becomes (rebuilt, never a crash)."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from regprobe import rotation
from regprobe.ledger import Ledger, LedgerBusyError, ObjectVerdict, TagVerdict, ledger_path

ID = "private http://127.0.0.1:5000"


def _open(tmp_path: Path, identity: str = ID) -> Ledger:
    return Ledger.open(ledger_path(tmp_path, "private"), identity=identity)


def test_plan_takes_broken_then_new_then_least_recently_verified(tmp_path: Path) -> None:
    with _open(tmp_path) as ledger:
        ledger.note_listed("a", ["old", "older", "broken", "fresh"], now=100.0)
        ledger.record([TagVerdict("a", "older", "sha256:1", "ok")], [], now=110.0)
        ledger.record([TagVerdict("a", "old", "sha256:2", "ok")], [], now=120.0)
        ledger.record([TagVerdict("a", "broken", "sha256:3", "broken", "layer missing")], [], now=130.0)
        ledger.note_listed("a", ["old", "older", "broken", "fresh"], now=200.0)
        ledger.note_listed("b", ["new"], now=200.0)
        assert list(ledger.plan(listed_since=200.0)) == [
            ("a", "broken"),
            ("a", "fresh"),
            ("b", "new"),
            ("a", "older"),
            ("a", "old"),
        ]
        # An event that says a tag changed puts it with the never-verified.
        ledger.mark_changed("a", "old")
        assert list(ledger.plan(listed_since=200.0))[1:4] == [("a", "fresh"), ("a", "old"), ("b", "new")]


def test_plan_holds_only_what_this_run_listed(tmp_path: Path) -> None:
    with _open(tmp_path) as ledger:
        ledger.note_listed("a", ["gone", "kept"], now=100.0)
        ledger.note_listed("a", ["kept"], now=200.0)
        assert list(ledger.plan(listed_since=200.0)) == [("a", "kept")]
        assert ledger.forget_unlisted(200.0, ["a"]) == 1
        assert [t.tag for t in ledger.tags()] == ["kept"]


def test_coverage_counts_tags_verified_within_the_window(tmp_path: Path) -> None:
    with _open(tmp_path) as ledger:
        ledger.note_listed("a", ["t1", "t2", "t3"], now=1000.0)
        ledger.record([TagVerdict("a", "t1", "sha256:1", "ok")], [], now=1000.0)
        ledger.record([TagVerdict("a", "t2", "sha256:2", "broken")], [], now=5000.0)
        cov = ledger.coverage(window=3600.0, now=6000.0)
        assert (cov.known, cov.within_window) == (3, 1)
        # t3 was never verified: its age counts from when it was first seen, the oldest here.
        assert cov.oldest_age == 5000.0
        assert [t.tag for t in ledger.broken()] == ["t2"]


def test_verdicts_survive_reopening_and_a_second_writer_is_refused(tmp_path: Path) -> None:
    ledger = _open(tmp_path)
    ledger.record([TagVerdict("a", "v1", "sha256:1", "ok")], [ObjectVerdict("a", "sha256:9", "layer", "ok", 10)], 1.0)
    with pytest.raises(LedgerBusyError, match=r"held by another run \(pid \d+\)"):
        _open(tmp_path)
    ledger.close()
    with _open(tmp_path) as again:
        state = again.tag("a", "v1")
        assert state is not None and (state.digest, state.verdict, state.verified_at) == ("sha256:1", "ok", 1.0)
        assert again.scrub_candidates(100) == [("sha256:9", 10, "a")]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"not a database at all" * 100), id="garbage"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:1000]), id="truncated"),
        pytest.param(lambda p: _set_version(p, 99), id="foreign-version"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
    ],
)
def test_a_ledger_that_is_not_ours_is_rebuilt_with_a_warning(tmp_path: Path, damage, caplog) -> None:
    with _open(tmp_path) as ledger:
        ledger.note_listed("a", [f"t{i}" for i in range(200)], now=1.0)
    damage(ledger.path)
    with caplog.at_level(logging.WARNING, logger="regprobe.ledger"), _open(tmp_path) as rebuilt:
        assert rebuilt.coverage(60, 2.0).known == 0
        rebuilt.note_listed("a", ["t0"], now=2.0)
        assert list(rebuilt.plan(2.0)) == [("a", "t0")]
    assert "set aside" in caplog.text and "verifies every tag again" in caplog.text
    assert ledger.path.with_name(ledger.path.name + ".corrupt").exists()


def test_a_ledger_of_another_registry_is_not_used(tmp_path: Path, caplog) -> None:
    with _open(tmp_path) as ledger:
        ledger.record([TagVerdict("a", "v1", "sha256:1", "ok")], [], 1.0)
    with caplog.at_level(logging.WARNING), _open(tmp_path, identity="private http://elsewhere") as other:
        assert other.tag("a", "v1") is None
    assert "another registry" in caplog.text


def _set_version(path: Path, version: int) -> None:
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()


def test_a_run_killed_mid_way_leaves_a_ledger_the_next_run_uses(tmp_path: Path) -> None:
    """SIGKILL while a writer commits repository after repository: the ledger opens clean and holds
    every repository committed before the kill, whole."""
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from regprobe.ledger import Ledger, TagVerdict, ObjectVerdict, ledger_path
        ledger = Ledger.open(ledger_path(Path({str(tmp_path)!r}), "private"), identity={ID!r})
        for r in range(100000):
            tags = [TagVerdict(f"r{{r}}", f"t{{i}}", "sha256:1", "ok") for i in range(20)]
            objs = [ObjectVerdict(f"r{{r}}", f"sha256:{{r}}-{{i}}", "layer", "ok", 5) for i in range(20)]
            ledger.record(tags, objs, now=float(r))
            if r == 20:
                print("ready", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with _open(tmp_path) as ledger:
        per_repo: dict[str, int] = {}
        for state in ledger.tags():
            per_repo[state.repository] = per_repo.get(state.repository, 0) + 1
        assert len(per_repo) > 20
        assert set(per_repo.values()) == {20}, "a repository's verdicts are committed whole or not at all"


def test_scrub_takes_the_least_recently_scrubbed_within_the_byte_budget(tmp_path: Path) -> None:
    with _open(tmp_path) as ledger:
        objs = [ObjectVerdict("a", f"sha256:{i}", "layer", "ok", size=100) for i in range(5)]
        ledger.record([], objs, now=1.0)
        ledger.record_scrub("sha256:0", "ok", now=50.0)
        chosen = [d for d, _, _ in ledger.scrub_candidates(byte_budget=250)]
        assert chosen == ["sha256:1", "sha256:2"]
        # A blob larger than the budget is still taken alone, or it would never be scrubbed.
        assert len(ledger.scrub_candidates(byte_budget=10)) == 1
        for d in ("sha256:1", "sha256:2", "sha256:3", "sha256:4"):
            ledger.record_scrub(d, "ok", now=60.0)
        assert ledger.oldest_scrub_age(now=100.0) == 50.0


def test_ledger_files_of_two_registries_never_collide(tmp_path: Path) -> None:
    assert ledger_path(tmp_path, "a/b") != ledger_path(tmp_path, "a_b")
    assert ledger_path(tmp_path, "a/b", "2/4").name == "a%2Fb.shard-2-of-4.ledger.sqlite"


def test_without_a_ledger_successive_cut_runs_cover_everything() -> None:
    """Runs every 15 minutes over a 24 h window that each verify only 40 of 1,000 tags: a fixed order
    would verify the same 40 each time; the turning ring covers all of them within the window."""
    tags = [(f"r{i % 37}", f"t{i}") for i in range(1000)]
    window, interval = 86400.0, 900.0
    seen: set[tuple[str, str]] = set()
    runs = int(window / interval)
    for run in range(runs):
        seen.update(rotation.rotated(tags, now=1_700_000_000.0 + run * interval, window=window)[:40])
    assert len(seen) == len(tags)
    # Deterministic: the same start time plans the same order.
    assert rotation.rotated(tags, 5.0, window) == rotation.rotated(list(reversed(tags)), 5.0, window)


def test_objects_no_walk_reached_in_two_windows_age_out_with_their_blobs(tmp_path: Path) -> None:
    with _open(tmp_path) as ledger:
        ledger.record([], [ObjectVerdict("a", "sha256:old", "layer", "ok", 10)], now=100.0)
        ledger.record([], [ObjectVerdict("a", "sha256:new", "layer", "ok", 10)], now=500.0)
        ledger.age_out(older_than=200.0)
        assert [d for d, _, _ in ledger.scrub_candidates(1000)] == ["sha256:new"]
        assert ledger.reaching("sha256:old") == []
