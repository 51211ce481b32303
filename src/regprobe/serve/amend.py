"""What an event's re-check may change in the published verdict: only what it looked at again.

The rule of regprobe.carryover for a run cut short, applied to a re-check, which looks at one
repository: a tag re-verified gets its fresh verdict (broken with the objects that break it, or intact);
a tag its listing no longer has is cleared; every other tag keeps its verdict. A re-check that could
not look (the registry refused, a walk cut off) changes nothing but the tags it found broken.

``regprobe_broken_objects`` needs the objects behind each broken tag: serve keeps them per tag
(:data:`Behind`), from each run's findings and each re-check's, so the count stays exact as tags come and
go.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..carryover import BrokenImages, Image
from ..model import Finding, Kind

#: A broken object as the objects count knows it: one per (repository, kind, digest); a tag that does
#: not resolve at all is an object of its own.
ObjectKey = tuple[str, Kind, str]
#: Per broken tag, the broken objects it reaches.
Behind = Mapping[Image, frozenset[ObjectKey]]


def behind(findings: Iterable[Finding]) -> dict[Image, frozenset[ObjectKey]]:
    """The broken objects behind each tag these findings name."""
    out: dict[Image, set[ObjectKey]] = {}
    for finding in findings:
        for tag in finding.tags:
            digest = str(finding.digest) if finding.digest else f"tag:{tag}"
            out.setdefault((finding.repository, tag), set()).add((finding.repository, finding.kind, digest))
    return {image: frozenset(keys) for image, keys in out.items()}


@dataclass(frozen=True, slots=True)
class Amendment:
    """What one re-check of one repository found."""

    repository: str
    #: Unix time the re-check began looking: a run that started later saw the registry after it.
    checked_at: float
    #: Fresh verdicts: each tag re-verified, with the broken objects it reaches (empty: intact).
    verdicts: Mapping[str, frozenset[ObjectKey]]
    #: Tags an event named that the repository's listing no longer has.
    gone: frozenset[str] = frozenset()
    #: The repository's whole tag list when the re-check read it: every tag beyond it is gone. Empty:
    #: the repository has no tags any more.
    listed: frozenset[str] | None = None

    def settles(self, image: Image) -> bool:
        """Whether this re-check replaces ``image``'s verdict (fresh, or gone)."""
        repository, tag = image
        if repository != self.repository:
            return False
        if tag in self.gone or tag in self.verdicts:
            return True
        return self.listed is not None and tag not in self.listed


def apply(broken: Behind | None, amendment: Amendment) -> dict[Image, frozenset[ObjectKey]] | None:
    """The broken tags after ``amendment``, with the objects behind each. None (no verdict) stays None
    while nothing is broken: a re-check of a few tags claims nothing about a registry never walked."""
    now = {image: keys for image, keys in (broken or {}).items() if not amendment.settles(image)}
    now.update({(amendment.repository, tag): keys for tag, keys in amendment.verdicts.items() if keys})
    if broken is None and not now:
        return None
    return now


def verdict(broken: Behind, unnamed: int = 0, kept: int = 0, earlier: Mapping[Kind, int] | None = None) -> BrokenImages:
    """The published verdict on these broken tags: distinct broken objects counted by kind. A tag whose
    objects serve does not know (a ledger's broken set names tags, not objects) cannot be counted: then
    no kind counts fewer than ``earlier`` did."""
    objects: Counter[Kind] = Counter({kind: 0 for kind in Kind})
    objects.update(kind for _, kind, _ in frozenset().union(*broken.values()))
    if earlier is not None and not all(broken.values()):
        for kind, count in earlier.items():
            objects[kind] = max(objects[kind], count)
    return BrokenImages(frozenset(broken), unnamed, dict(objects), kept)
