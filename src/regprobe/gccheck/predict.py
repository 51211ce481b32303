"""Judges one repository's storage facts against a garbage-collection plan. Pure functions, no I/O.

A pull walks tag -> manifest -> index children -> config and layers, per repository; a verifier goes on
from each manifest to its referrers (signatures, SBOMs, attestations: OCI 1.1 ``subject``, and the
entries of the manifest's fallback tag ``sha256-<hex>``, which is a list of referrers, not an image - as
the HTTP walk takes it). The collection breaks that walk where it removes a revision link the walk
passes through (``manifest eligible for deletion``: on 2.8 with ``--delete-untagged``, every child of
every index, since children carry no tag - the referrers a fallback tag lists among them; on 2.8 and 3,
every referrer no tag keeps, since distribution never follows ``subject``), deletes blob data the walk
reads (``blob eligible for deletion``: configs, layers, and manifests' own content, shared by all
repositories), or removes the repository's layer link to a blob (3's ``layer link eligible for
deletion``). The walk stops at the first such object, as a client's pull, the HTTP walk and fsck do, so
the findings are the objects a pull after the collection fails on. What is under a referrer is reported
as kind ``referrer``, with its artifact type and subject, on the tags of the image it refers to.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from .. import manifest as manifest_mod
from ..digest import Digest
from ..fsck.storage import RepositoryFacts
from ..mediatypes import artifact_name
from ..model import KIND_ORDER, Kind
from ..referrers import fallback_subject
from ..tagorder import sorted_tags
from .plan import Plan


class Reason(StrEnum):
    """Why a pull fails after the collection; in order of precedence when one object has several."""

    UNTAGGED = "untagged manifest"  # a tag's own manifest: tagged after the dry run ran
    UNTAGGED_CHILD = "untagged child manifest"  # an index child: --delete-untagged removes its revision link
    UNTAGGED_REFERRER = "untagged referrer"  # of something a tag needs: --delete-untagged removes it
    BLOB = "blob"  # its data is deleted
    LAYER_LINK = "layer link"  # 3: the repository's link to it is removed (the data may stay)


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
    #: A ``referrer`` finding's artifact type and subject (the manifest it refers to), as in run's report.
    artifact_type: str | None = None
    subject: Digest | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "repository": self.repository,
            "digest": str(self.digest),
            "kind": self.kind.value,
            "tags": list(self.tags),
            "parent": str(self.parent) if self.parent else None,
            "reason": self.reason.value,
            "detail": self.detail,
        }
        if self.kind is Kind.REFERRER:
            out["artifact_type"] = self.artifact_type
            out["artifact"] = artifact_name(self.artifact_type)
            out["subject"] = str(self.subject) if self.subject else None
        return out


@dataclass(frozen=True, slots=True)
class _Via:
    """The referrer a walk went through: its artifact type, and the manifest it refers to."""

    artifact_type: str | None
    subject: Digest


@dataclass(frozen=True, slots=True)
class _Sighting:
    """One way a tag's pull meets a doomed object; kind, reason, detail and parent belong together."""

    digest: Digest
    parent: Digest | None
    kind: Kind
    reason: Reason
    detail: str
    via: _Via | None = None

    @classmethod
    def of(
        cls, digest: Digest, parent: Digest | None, kind: Kind, reason: Reason, detail: str, via: _Via | None
    ) -> _Sighting:
        """Under a referrer, the object is reported as the referrer's (run's walk does the same)."""
        if via is None:
            return cls(digest, parent, kind, reason, detail)
        shown = detail if kind is Kind.MANIFEST else f"its {kind.value}: {detail}"
        return cls(digest, parent, Kind.REFERRER, reason, shown, via)

    def rank(self) -> tuple[int, int, bool, str]:
        # The finding shows one sighting whole: config before layer (as fsck names a blob that is both),
        # the most direct reason, then the smallest parent - named before none (a tag's own manifest).
        return (KIND_ORDER[self.kind], _REASONS.index(self.reason), self.parent is None, str(self.parent or ""))


def judge(facts: RepositoryFacts, plan: Plan) -> list[GcFinding]:
    """What every tag of the repository would fail on after the collection, sorted by :func:`order`."""
    # Only bodies read through a revision link are here (Storage.collect): a manifest without one is
    # already unpullable, fsck's to report, not the collection's doing.
    usable = {d: b.parsed for d, b in facts.manifests.items() if b.parsed is not None}
    deletes = _Deletes(
        plan.manifests.get(facts.name, frozenset()), plan.blobs, plan.layer_links.get(facts.name, frozenset())
    )
    referrers: dict[Digest, dict[Digest, str]] = {}
    for digest, parsed in sorted(usable.items()):
        if parsed.subject is not None:
            referrers.setdefault(parsed.subject, {})[digest] = parsed.artifact_type
    by_target: dict[Digest, list[str]] = {}
    for tag in sorted_tags(facts.tags):
        link = facts.tags[tag]
        if link.target is None:
            continue
        subject = fallback_subject(tag)
        if subject is None:
            by_target.setdefault(link.target, []).append(tag)
            continue
        # A fallback tag lists its subject's referrers: they are the subject's, the tag is no image.
        listed = usable.get(link.target)
        if isinstance(listed, manifest_mod.Index):
            for child in listed.children:
                referrers.setdefault(subject, {}).setdefault(child.digest, child.artifact_type)

    sightings: dict[Digest, list[_Sighting]] = {}
    tags: dict[Digest, set[str]] = {}
    for target, target_tags in sorted(by_target.items()):
        for sighting in _breaks(target, usable, referrers, deletes):
            sightings.setdefault(sighting.digest, []).append(sighting)
            tags.setdefault(sighting.digest, set()).update(target_tags)

    findings = []
    for digest, seen in sightings.items():
        shown = min(seen, key=_Sighting.rank)
        findings.append(
            GcFinding(
                facts.name,
                digest,
                shown.kind,
                tuple(sorted_tags(tags[digest])),
                shown.parent,
                shown.reason,
                shown.detail,
                shown.via.artifact_type if shown.via else None,
                shown.via.subject if shown.via else None,
            )
        )
    findings.sort(key=order)
    return findings


def order(f: GcFinding) -> tuple[str, int, Digest]:
    """Report order: repository, then kind as a pull meets them (manifest, config, layer, then the
    referrers), then digest."""
    return (f.repository, KIND_ORDER[f.kind], f.digest)


@dataclass(frozen=True, slots=True)
class _Deletes:
    """What the plan deletes that one repository's pulls can meet."""

    manifests: frozenset[Digest]  # revision links in this repository
    blobs: frozenset[Digest]  # data, in every repository
    layer_links: frozenset[Digest]  # layer links in this repository (3)


def _breaks(
    target: Digest,
    usable: Mapping[Digest, manifest_mod.Manifest],
    referrers: Mapping[Digest, Mapping[Digest, str]],
    deletes: _Deletes,
) -> Iterator[_Sighting]:
    """What a pull of ``target`` (and a verification of its referrers) would fail on after the collection."""
    seen = {target}
    # Each manifest with the reason its revision link would be gone (how the walk reached it), and the
    # referrer it is or is under.
    stack: list[tuple[Digest, Digest | None, Reason, _Via | None]] = [(target, None, Reason.UNTAGGED, None)]
    while stack:
        digest, parent, if_unlinked, via = stack.pop()
        parsed = usable.get(digest)
        if digest in deletes.manifests:
            yield _Sighting.of(digest, parent, Kind.MANIFEST, if_unlinked, _unlinked(digest, parsed, deletes), via)
            continue
        if digest in deletes.blobs:
            yield _Sighting.of(digest, parent, Kind.MANIFEST, Reason.BLOB, "its data is deleted", via)
            continue
        if parsed is None:
            continue  # already broken or unreadable: fsck's to report, not the collection's doing
        children = parsed.children if isinstance(parsed, manifest_mod.Index) else ()
        below = [(c.digest, Reason.UNTAGGED_CHILD, via) for c in children]
        for referrer, listed_type in referrers.get(digest, {}).items():
            own = usable.get(referrer)
            below.append(
                (
                    referrer,
                    Reason.UNTAGGED_REFERRER,
                    _Via((own.artifact_type if own else "") or listed_type or None, digest),
                )
            )
        for next_digest, reason, under in below:
            if next_digest not in seen:  # an index may list a child twice, or itself
                seen.add(next_digest)
                stack.append((next_digest, digest, reason, under))
        if isinstance(parsed, manifest_mod.Image):
            for descriptor, kind in _blobs_of(parsed):
                if descriptor.digest in deletes.blobs:
                    yield _Sighting.of(descriptor.digest, digest, kind, Reason.BLOB, "its data is deleted", via)
                elif descriptor.digest in deletes.layer_links:
                    detail = "its layer link in this repository is removed; the data is kept"
                    yield _Sighting.of(descriptor.digest, digest, kind, Reason.LAYER_LINK, detail, via)


def _blobs_of(image: manifest_mod.Image) -> list[tuple[manifest_mod.Descriptor, Kind]]:
    # Foreign layers are served from their `urls`, never by the registry: nothing to lose here.
    pairs = [(image.config, Kind.CONFIG)] + [(layer, Kind.LAYER) for layer in image.layers]
    return [(d, k) for d, k in pairs if not d.foreign]


def _unlinked(digest: Digest, parsed: manifest_mod.Manifest | None, deletes: _Deletes) -> str:
    """Whether putting the revision link back would be enough, or the content goes too."""
    if parsed is None:
        below: list[Digest] = []
    elif isinstance(parsed, manifest_mod.Index):
        below = [c.digest for c in parsed.children]
    else:
        below = [d.digest for d, _ in _blobs_of(parsed)]
    lost = len({d for d in [digest, *below] if d in deletes.blobs})
    cut = len({d for d in below if d not in deletes.blobs and d in deletes.layer_links})
    if not lost and not cut:
        return "its revision link is removed; the blobs it needs are kept"
    unlinked = f" ({cut} of them only unlinked from this repository)" if cut else ""
    return f"its revision link is removed, and {lost + cut} of the blobs it needs are deleted{unlinked}"
