"""Judges one repository's storage facts against a garbage-collection plan. Pure functions, no I/O.

A pull walks tag -> manifest -> index children -> config and layers, per repository. The collection
breaks that walk where it removes a revision link the walk passes through (``manifest eligible for
deletion``: on 2.8 with ``--delete-untagged``, every child of every index, since children carry no tag)
or deletes blob data the walk reads (``blob eligible for deletion``: configs, layers, and manifests' own
content, shared by all repositories). The walk stops at the first such object, as a client's pull, the
HTTP walk and fsck do, so the findings are the objects a pull after the collection fails on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from .. import manifest as manifest_mod
from ..digest import Digest
from ..fsck.storage import RepositoryFacts
from ..model import KIND_ORDER, Kind
from .plan import Plan


class Reason(StrEnum):
    """Why a pull fails after the collection; in order of precedence when one object has several."""

    UNTAGGED = "untagged manifest"  # a tag's own manifest: tagged after the dry run ran
    UNTAGGED_CHILD = "untagged child manifest"  # an index child: --delete-untagged removes its revision link
    BLOB = "blob"  # its data is deleted


_REASONS = list(Reason)


@dataclass(frozen=True, slots=True)
class GcFinding:
    repository: str
    digest: Digest
    kind: Kind
    #: Every tag of the repository whose pull needs the object.
    tags: tuple[str, ...]
    #: The smallest digest among the manifests that reference it on the way from a tag; None for a tag's own.
    parent: Digest | None
    reason: Reason
    detail: str

    def to_json(self) -> dict[str, object]:
        return {
            "repository": self.repository,
            "digest": str(self.digest),
            "kind": self.kind.value,
            "tags": list(self.tags),
            "parent": str(self.parent) if self.parent else None,
            "reason": self.reason.value,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class _Sighting:
    """One way a tag's pull meets a doomed object; kind, reason, detail and parent belong together."""

    digest: Digest
    parent: Digest | None
    kind: Kind
    reason: Reason
    detail: str

    def rank(self) -> tuple[int, int, bool, str]:
        # The finding shows one sighting whole: config before layer (as fsck names a blob that is both),
        # the most direct reason, then the smallest parent - named before none (a tag's own manifest).
        return (KIND_ORDER[self.kind], _REASONS.index(self.reason), self.parent is None, str(self.parent or ""))


def judge(facts: RepositoryFacts, plan: Plan) -> list[GcFinding]:
    """What every tag of the repository would fail on after the collection, sorted by :func:`order`."""
    # Only bodies read through a revision link are here (Storage.collect): a manifest without one is
    # already unpullable, fsck's to report, not the collection's doing.
    usable = {d: b.parsed for d, b in facts.manifests.items() if b.parsed is not None}
    doomed = plan.manifests.get(facts.name, frozenset())
    by_target: dict[Digest, list[str]] = {}
    for tag, link in sorted(facts.tags.items()):
        if link.target is not None:
            by_target.setdefault(link.target, []).append(tag)

    sightings: dict[Digest, list[_Sighting]] = {}
    tags: dict[Digest, set[str]] = {}
    for target, target_tags in sorted(by_target.items()):
        for sighting in _breaks(target, usable, doomed, plan.blobs):
            sightings.setdefault(sighting.digest, []).append(sighting)
            tags.setdefault(sighting.digest, set()).update(target_tags)

    findings = []
    for digest, seen in sightings.items():
        shown = min(seen, key=_Sighting.rank)
        findings.append(
            GcFinding(
                facts.name, digest, shown.kind, tuple(sorted(tags[digest])), shown.parent, shown.reason, shown.detail
            )
        )
    findings.sort(key=order)
    return findings


def order(f: GcFinding) -> tuple[str, int, Digest]:
    """Report order: repository, then kind as a pull meets them (manifest, config, layer), then digest."""
    return (f.repository, KIND_ORDER[f.kind], f.digest)


def _breaks(
    target: Digest,
    usable: Mapping[Digest, manifest_mod.Manifest],
    doomed: frozenset[Digest],
    blobs: frozenset[Digest],
) -> Iterator[_Sighting]:
    """What a pull of ``target`` would fail on after the collection."""
    seen = {target}
    stack: list[tuple[Digest, Digest | None]] = [(target, None)]
    while stack:
        digest, parent = stack.pop()
        parsed = usable.get(digest)
        if digest in doomed:
            reason = Reason.UNTAGGED_CHILD if parent is not None else Reason.UNTAGGED
            yield _Sighting(digest, parent, Kind.MANIFEST, reason, _unlinked(digest, parsed, blobs))
            continue
        if digest in blobs:
            yield _Sighting(digest, parent, Kind.MANIFEST, Reason.BLOB, "its data is deleted")
            continue
        if parsed is None:
            continue  # already broken or unreadable: fsck's to report, not the collection's doing
        if isinstance(parsed, manifest_mod.Index):
            for child in parsed.children:
                if child.digest not in seen:  # an index may list a child twice, or itself
                    seen.add(child.digest)
                    stack.append((child.digest, digest))
            continue
        for descriptor, kind in _blobs_of(parsed):
            if descriptor.digest in blobs:
                yield _Sighting(descriptor.digest, digest, kind, Reason.BLOB, "its data is deleted")


def _blobs_of(image: manifest_mod.Image) -> list[tuple[manifest_mod.Descriptor, Kind]]:
    # Foreign layers are served from their `urls`, never by the registry: nothing to lose here.
    pairs = [(image.config, Kind.CONFIG)] + [(layer, Kind.LAYER) for layer in image.layers]
    return [(d, k) for d, k in pairs if not d.foreign]


def _unlinked(digest: Digest, parsed: manifest_mod.Manifest | None, blobs: frozenset[Digest]) -> str:
    """Whether putting the revision link back would be enough, or the content goes too."""
    if parsed is None:
        below: list[Digest] = []
    elif isinstance(parsed, manifest_mod.Index):
        below = [c.digest for c in parsed.children]
    else:
        below = [d.digest for d, _ in _blobs_of(parsed)]
    lost = len({d for d in [digest, *below] if d in blobs})
    if lost:
        return f"its revision link is removed, and {lost} of the blobs it needs are deleted"
    return "its revision link is removed; the blobs it needs are kept"
