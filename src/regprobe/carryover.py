"""What a run may clear: only what it looked at again (issue 21, item 6).

A run that completed has a fresh verdict on every selected tag: its broken images replace the earlier
ones whole. A run cut short (deadline, SIGTERM, a registry that stopped answering) has not. Published as
it is, its shorter list would resolve the alerts of images it never re-checked. So an incomplete run's
verdict is merged with the previous one (on the pushgateway for ``run``, in memory for ``serve``), tag by
tag:

* **reached, fresh verdict** - the run listed the tag's repository and walked the tag to the end, every
  object it reaches looked at: broken if it has a finding, intact (cleared) if not. A tag with a finding
  is broken whatever else its walk could not see.
* **reached, no fresh verdict** - listed, but its walk was cut off, met an object it could not look at
  (refused, unreachable after retries, rate limited), or was skipped: keeps its earlier verdict.
* **no longer listed** - the run listed the repository and the tag is not there any more: cleared (a
  deleted tag cannot be pulled, broken or not). A repository whose listing says it has no tags clears
  all of its tags.
* **not reached** - the run never listed the repository (cut off before it, the listing failed, or the
  catalog could not be read): every tag keeps its earlier verdict. A repository removed from the
  catalog is cleared only by the next complete run.

The pushgateway names at most ``max_broken_series`` broken tags (the first in (repository, tag) order);
the rest are known only by count. An incomplete run cannot tell whether it re-checked those, so it keeps
their count, less the tags it found broken that sort after the last named one (which may be them: a tag
must not be counted twice). The next complete run sets the exact count.

Broken objects by kind have no tags to match: while any earlier verdict is kept, an incomplete run
publishes the larger of the earlier and its own count per kind; once it kept nothing, its own counts.

With a ledger (``state_dir``) none of this is needed: the ledger's broken set - every tag whose last
verdict is broken, by name, with the objects behind it - is the verdict of every run, complete or not
(docs/design/continuous-verification.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .model import Kind, RegistryResult
from .tagorder import NaturalKey, natural_key

Image = tuple[str, str]


@dataclass(frozen=True, slots=True)
class BrokenImages:
    """One registry's published verdict on its images."""

    #: Broken (repository, tag) pairs known by name.
    named: frozenset[Image]
    #: Broken tags beyond those named: a verdict read back from the pushgateway, whose
    #: regprobe_image_broken series stop at max_broken_series.
    unnamed: int = 0
    objects: Mapping[Kind, int] = field(default_factory=dict)
    #: How many of these are earlier verdicts the run that published them did not re-check.
    kept: int = 0

    @property
    def count(self) -> int:
        return len(self.named) + self.unnamed

    def sorted(self) -> list[Image]:
        return sorted(self.named, key=_order)

    @classmethod
    def of(cls, result: RegistryResult) -> BrokenImages:
        """The verdict of this run alone."""
        return cls(frozenset(result.broken_images), 0, dict(result.broken_objects()))

    @classmethod
    def published(cls, count: int, named: Iterable[Image], objects: Mapping[Kind, int]) -> BrokenImages:
        """A verdict as the metrics carry it: the count, and the first ``max_broken_series`` by name."""
        names = frozenset(named)
        return cls(names, max(0, count - len(names)), dict(objects))


def carry(previous: BrokenImages | None, result: RegistryResult) -> BrokenImages | None:
    """The verdict to publish after ``result``; None when there is none to publish (an incomplete run
    that found nothing, with no earlier verdict: it claims nothing about integrity)."""
    fresh = BrokenImages.of(result)
    known = result.known_broken
    if known is not None:
        # A ledger's broken set is the verdict, complete run or not: it already keeps what the run did not
        # look at again, and drops what it re-checked intact or found deleted.
        named = frozenset(known.images)
        return BrokenImages(named, 0, {kind: known.objects.get(kind, 0) for kind in Kind}, len(named - fresh.named))
    if result.complete:
        return fresh
    if previous is None:
        return fresh if fresh.named else None
    named = fresh.named | {image for image in previous.named if _kept(image, result.reached)}
    unnamed = previous.unnamed
    if unnamed:
        last = max(previous.named, key=_order, default=None)
        maybe_them = {image for image in fresh.named - previous.named if last is None or _order(image) > _order(last)}
        unnamed = max(0, unnamed - len(maybe_them))
    kept = len(named - fresh.named) + unnamed
    objects: Counter[Kind] = Counter(fresh.objects)
    if kept:
        for kind, count in previous.objects.items():
            objects[kind] = max(objects[kind], count)
    return BrokenImages(frozenset(named), unnamed, {kind: objects[kind] for kind in Kind}, kept)


def _order(image: Image) -> tuple[str, NaturalKey]:
    """The order the series are published in (and capped by): repository, then tag, naturally."""
    return image[0], natural_key(image[1])


def _kept(image: Image, reached: Mapping[str, frozenset[str]]) -> bool:
    repository, tag = image
    unsettled = reached.get(repository)
    return unsettled is None or tag in unsettled
