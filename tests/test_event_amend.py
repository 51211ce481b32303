"""What a re-check may change in what serve publishes: only the tags it looked at again (the rule of
regprobe.carryover), the objects count kept exact, and a run that began before the re-check looked
never undoing it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from regprobe.digest import Digest
from regprobe.model import Finding, Kind, Problem, RegistryResult
from regprobe.serve import page
from regprobe.serve.amend import Amendment, apply, behind
from regprobe.serve.state import HeldMetrics, RunLog

M1, M2 = Digest("sha256", "1" * 64), Digest("sha256", "2" * 64)


def manifest(repository: str, digest: Digest, *tags: str) -> Finding:
    return Finding(repository, digest, Kind.MANIFEST, Problem.MISSING, 404, tags, None, "")


def run(started_at: float, *findings: Finding, complete: bool = True) -> RegistryResult:
    return RegistryResult("r", "http://r", True, complete, started_at=started_at, findings=list(findings))


def keys(*findings: Finding) -> dict[str, frozenset[tuple[str, Kind, str]]]:
    return {tag: ks for (_, tag), ks in behind(findings).items()}


def text(held: HeldMetrics) -> str:
    registry = CollectorRegistry()
    registry.register(held)
    return generate_latest(registry).decode()


def broken(held: HeldMetrics) -> set[tuple[str, str]]:
    return set(held.verdicts["r"].named)


def test_only_what_was_looked_at_again_changes() -> None:
    earlier = behind([manifest("a", M1, "v1", "v2"), manifest("b", M1, "v1")])
    # v1 of a re-verified intact, v3 found broken; v2 not looked at; b is another repository.
    after = apply(earlier, Amendment("a", 10.0, {"v1": frozenset(), **keys(manifest("a", M2, "v3"))}))
    assert after is not None and set(after) == {("a", "v2"), ("a", "v3"), ("b", "v1")}
    # Deleted tags go; a whole listing clears every tag beyond it; a deleted repository clears all of it.
    assert set(apply(earlier, Amendment("a", 10.0, {}, gone=frozenset({"v2"}))) or {}) == {("a", "v1"), ("b", "v1")}
    assert set(apply(earlier, Amendment("a", 10.0, {}, listed=frozenset({"v1"}))) or {}) == {("a", "v1"), ("b", "v1")}
    assert set(apply(earlier, Amendment("a", 10.0, {}, listed=frozenset())) or {}) == {("b", "v1")}
    # Deleted, then pushed again broken: listed with one tag, found broken.
    again = Amendment("a", 10.0, keys(manifest("a", M2, "v9")), listed=frozenset({"v9"}))
    assert set(apply(earlier, again) or {}) == {("a", "v9"), ("b", "v1")}
    # Nothing published yet: a re-check finding nothing broken claims nothing.
    assert apply(None, Amendment("a", 10.0, {"v1": frozenset()})) is None
    assert apply({}, Amendment("a", 10.0, {"v1": frozenset()})) == {}


def test_a_recheck_publishes_the_verdict_families_and_counts_objects_exactly() -> None:
    held = HeldMetrics(50)
    held.record(run(100.0))
    before = text(held)
    held.amend("r", "http://r", Amendment("a", 200.0, keys(manifest("a", M1, "v1"), manifest("a", M2, "v2"))))
    after = text(held)
    assert 'regprobe_image_broken{registry="r",repository="a",tag="v1"} 1.0' in after
    assert 'regprobe_broken_images{registry="r"} 2.0' in after
    assert 'regprobe_broken_objects{kind="manifest",registry="r"} 2.0' in after  # two objects, not max(1, 1)
    # The run's own families are the run's: a re-check is not a run.
    for line in before.splitlines():
        if line.startswith(("regprobe_last_run", "regprobe_run_complete", "regprobe_images_checked")):
            assert line in after
    held.amend("r", "http://r", Amendment("a", 300.0, {"v2": frozenset()}))
    assert 'regprobe_broken_objects{kind="manifest",registry="r"} 1.0' in text(held)
    assert held.broken_tags("r", "a", str(M1)) == ["v1"] and held.broken_tags("r", "a", str(M2)) == []


def test_a_recheck_before_any_run_publishes_only_what_it_found_broken() -> None:
    held = HeldMetrics(50)
    assert held.amend("r", "http://r", Amendment("a", 1.0, {"v1": frozenset()})) is None
    assert "regprobe_broken_images" not in text(held)
    held.amend("r", "http://r", Amendment("a", 2.0, keys(manifest("a", M1, "v1"))))
    out = text(held)
    assert 'regprobe_broken_images{registry="r"} 1.0' in out
    assert "regprobe_last_success_timestamp_seconds" not in out  # no run has said anything about success


def test_a_run_that_began_before_the_recheck_does_not_undo_it() -> None:
    """The run walked a/v1 intact, then an event deleted its child and the re-check found it broken; the
    run, ending after, must not clear it. A run that began after the re-check has the last word."""
    held = HeldMetrics(50)
    held.record(run(100.0))
    held.amend("r", "http://r", Amendment("a", 250.0, keys(manifest("a", M1, "v1"))))
    held.record(run(200.0))  # began at 200, before the re-check looked at 250
    assert broken(held) == {("a", "v1")}
    assert held.by_events["r"] == {("a", "v1")}
    assert held.verdicts["r"].kept == 0  # not "an earlier run's verdict": a re-check's
    held.record(run(300.0))  # began after: it saw the registry as it is
    assert broken(held) == set()
    assert held.by_events["r"] == frozenset()
    # And the other way round: a re-check that found a tag fixed outlives a run that saw it broken.
    held.amend("r", "http://r", Amendment("a", 450.0, {"v1": frozenset()}))
    held.record(run(400.0, manifest("a", M1, "v1")))
    assert broken(held) == set()


def test_the_page_tells_event_findings_from_kept_ones() -> None:
    held, log = HeldMetrics(50), RunLog()
    first = run(100.0, manifest("a", M1, "old"))
    log.record(first, held.record(first))
    cut = run(200.0, complete=False)
    cut.reached = {}
    log.record(cut, held.record(cut), held.by_events["r"])
    verdict = held.amend("r", "http://r", Amendment("a", 300.0, keys(manifest("a", M2, "new"))))
    log.amended("r", verdict, held.by_events["r"])
    html = page.render(log, [("r", "http://r")], 900, [])
    kept_part = html.split("Broken at an earlier run")[1].split("</p>")[0]
    assert "a:old" in kept_part and "a:new" not in kept_part
    assert "found by an event" in html and "<code>a:new</code>" in html.split("found by an event")[1]
    assert "None received since serve started." in html


def test_with_a_ledger_objects_it_does_not_know_are_not_undercounted() -> None:
    """A run with a ledger publishes the ledger's broken set: tags serve has no findings for. A re-check
    after it cannot count their objects, so no kind drops below the ledger's count."""
    from regprobe.model import KnownBroken

    held = HeldMetrics(50)
    ledger_run = run(100.0)
    ledger_run.known_broken = KnownBroken((("a", "old"),), {Kind.LAYER: 1})
    held.record(ledger_run)
    held.amend("r", "http://r", Amendment("a", 200.0, keys(manifest("a", M1, "new"))))
    out = text(held)
    assert 'regprobe_broken_objects{kind="layer",registry="r"} 1.0' in out
    assert 'regprobe_broken_objects{kind="manifest",registry="r"} 1.0' in out
    assert 'regprobe_broken_images{registry="r"} 2.0' in out
