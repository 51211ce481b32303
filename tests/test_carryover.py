"""What an incomplete run may clear (regprobe.carryover): only the tags it looked at again."""

from __future__ import annotations

from regprobe.carryover import BrokenImages, carry
from regprobe.digest import Digest
from regprobe.model import Finding, Kind, Problem, RegistryResult


def finding(repository: str, *tags: str, kind: Kind = Kind.MANIFEST) -> Finding:
    return Finding(repository, Digest("sha256", "c" * 64), kind, Problem.MISSING, 404, tags, None, "")


def run(*findings: Finding, complete: bool = False, reached: dict[str, frozenset[str]] | None = None) -> RegistryResult:
    return RegistryResult("r", "http://r", True, complete, findings=list(findings), reached=reached or {})


EARLIER = BrokenImages(frozenset({("a", "v1"), ("b", "v1"), ("c", "v1")}), 0, {Kind.MANIFEST: 3})


def test_a_complete_run_replaces_the_verdict() -> None:
    verdict = carry(EARLIER, run(finding("a", "v1"), complete=True))
    assert verdict is not None
    assert (verdict.named, verdict.count, verdict.kept) == (frozenset({("a", "v1")}), 1, 0)
    assert verdict.objects[Kind.MANIFEST] == 1 and verdict.objects[Kind.LAYER] == 0


def test_an_incomplete_run_keeps_what_it_did_not_reach() -> None:
    """The issue's case: 3 broken, the next run cut short finds 1 of them; the count stays 3."""
    verdict = carry(EARLIER, run(finding("a", "v1"), reached={"a": frozenset()}))
    assert verdict is not None
    assert verdict.named == EARLIER.named and verdict.count == 3 and verdict.kept == 2
    assert verdict.objects[Kind.MANIFEST] == 3  # the earlier count stands while earlier verdicts are kept


def test_an_incomplete_run_clears_what_it_rechecked_or_found_gone() -> None:
    # a: walked, intact now. b: its repository was listed and v1 is not there any more. c: listed but
    # its walk was cut off (unsettled): kept. d: new breakage found.
    reached = {"a": frozenset(), "b": frozenset({"v2"}), "c": frozenset({"v1"}), "d": frozenset()}
    verdict = carry(EARLIER, run(finding("d", "v9", kind=Kind.LAYER), reached=reached))
    assert verdict is not None
    assert verdict.named == {("c", "v1"), ("d", "v9")} and verdict.kept == 1
    assert verdict.objects[Kind.MANIFEST] == 3 and verdict.objects[Kind.LAYER] == 1


def test_an_incomplete_run_that_rechecked_everything_publishes_its_own_counts() -> None:
    verdict = carry(EARLIER, run(reached={"a": frozenset(), "b": frozenset(), "c": frozenset()}))
    assert verdict is not None
    assert verdict.count == 0 and verdict.kept == 0 and verdict.objects[Kind.MANIFEST] == 0


def test_without_an_earlier_verdict_an_incomplete_run_claims_only_what_it_found() -> None:
    assert carry(None, run(reached={"a": frozenset()})) is None
    verdict = carry(None, run(finding("a", "v1")))
    assert verdict is not None and verdict.count == 1 and verdict.kept == 0


def test_tags_beyond_max_broken_series_keep_their_count() -> None:
    """Read back from the pushgateway with max_broken_series 1: a:v1 named, 2 more known by count only."""
    earlier = BrokenImages.published(3, [("a", "v1")], {Kind.MANIFEST: 3})
    assert earlier.unnamed == 2
    fixed_named = carry(earlier, run(reached={"a": frozenset()}))
    assert fixed_named is not None and fixed_named.count == 2 and fixed_named.kept == 2
    # A tag found broken that sorts after the last named one may be one of the unnamed: not counted twice.
    found_one = carry(earlier, run(finding("c", "v1"), reached={"a": frozenset({"v1"}), "c": frozenset()}))
    assert found_one is not None and found_one.named == {("a", "v1"), ("c", "v1")} and found_one.count == 3
    # One that sorts before it cannot be (the named ones are the first in order): a new breakage.
    new = carry(earlier, run(finding("0", "v1"), reached={"0": frozenset()}))
    assert new is not None and new.count == 4
