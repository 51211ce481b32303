"""Judges one repository's storage facts against a garbage-collection plan. Pure functions, no I/O.

A pull walks tag -> manifest -> index children -> config and layers, per repository. The collection
breaks that walk where it removes a revision link the walk passes through (``manifest eligible for
deletion``: with ``--delete-untagged``, every child of every index, since children carry no tag) or
deletes blob data the walk reads (``blob eligible for deletion``: configs, layers, and manifests' own
content, shared by all repositories). The walk stops at the first such object, as a client's pull, the
HTTP walk and fsck do, so the findings are the objects a pull after the collection fails on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from .. import manifest as manifest_mod
from ..digest import Digest
from ..fsck.storage import RepositoryFacts
from ..model import Kind
from ..tagorder import sorted_tags
from .plan import Plan


class Reason(StrEnum):
    UNTAGGED_CHILD = "untagged child manifest"  # an index child: --delete-untagged removes its revision link
    UNTAGGED = "untagged manifest"  # a tag's own manifest: tagged after the dry run ran
    BLOB = "blob"  # its data is deleted


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


@dataclass(slots=True)
class _Hit:
    kind: Kind
    reason: Reason
    detail: str
    parents: set[Digest | None] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Judgement:
    findings: list[GcFinding]
    #: Manifests the plan removes from this repository that it does not have: the plan is not of this
    #: storage, or a real collection already removed them.
    unknown_manifests: list[Digest]


def judge(facts: RepositoryFacts, plan: Plan) -> Judgement:
    doomed = plan.manifests.get(facts.name, frozenset())
    usable = {
        d: b.parsed
        for d, b in facts.manifests.items()
        if b.parsed is not None and (link := facts.revisions.get(d)) is not None and link.target is not None
    }
    by_target: dict[Digest, list[str]] = {}
    for tag in sorted_tags(facts.tags):
        link = facts.tags[tag]
        if link.target is not None:
            by_target.setdefault(link.target, []).append(tag)

    hits: dict[Digest, _Hit] = {}
    for target, tags in sorted(by_target.items()):
        for digest, parent, kind, reason, detail in _breaks(target, usable, doomed, plan.blobs):
            hit = hits.get(digest)
            if hit is None:
                hit = hits[digest] = _Hit(kind, reason, detail)
            elif kind is Kind.CONFIG:
                hit.kind = Kind.CONFIG  # config and layer of different images: named as fsck names it
            hit.parents.add(parent)
            hit.tags.update(tags)

    findings = [
        GcFinding(facts.name, d, h.kind, tuple(sorted_tags(h.tags)), _first(h.parents), h.reason, h.detail)
        for d, h in hits.items()
    ]
    findings.sort(key=order)
    return Judgement(findings, sorted(doomed - facts.revisions.keys()))


def order(f: GcFinding) -> tuple[str, int, Digest]:
    """Report order: repository, then kind as a pull meets them (manifest, config, layer), then digest."""
    return (f.repository, _KINDS.index(f.kind), f.digest)


_KINDS = list(Kind)
_Break = tuple[Digest, Digest | None, Kind, Reason, str]


def _breaks(
    target: Digest,
    usable: Mapping[Digest, manifest_mod.Manifest],
    doomed: frozenset[Digest],
    blobs: frozenset[Digest],
) -> list[_Break]:
    """What a pull of ``target`` would fail on after the collection."""
    out: list[_Break] = []
    seen = {target}
    stack: list[tuple[Digest, Digest | None]] = [(target, None)]
    while stack:
        digest, parent = stack.pop()
        parsed = usable.get(digest)
        if digest in doomed:
            reason = Reason.UNTAGGED_CHILD if parent is not None else Reason.UNTAGGED
            out.append((digest, parent, Kind.MANIFEST, reason, _unlinked(digest, parsed, blobs)))
            continue
        if digest in blobs:
            out.append((digest, parent, Kind.MANIFEST, Reason.BLOB, "its data is deleted"))
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
                out.append((descriptor.digest, digest, kind, Reason.BLOB, "its data is deleted"))
    return out


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


def _first(parents: set[Digest | None]) -> Digest | None:
    named = [p for p in parents if p is not None]
    return min(named) if named else None
