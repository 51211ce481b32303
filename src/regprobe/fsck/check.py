"""Judges what :mod:`regprobe.fsck.storage` found in one repository. Pure functions, no I/O.

The questions are the ones distribution asks when it serves a pull, per repository: a manifest is
served only when this repository has its revision link and its data exists; a blob only when this
repository has its layer link and its data exists. (Asking "does the data exist" alone - the first
version of such a scan did that for index children - reports nothing while every such pull fails.)
Problems are named as the HTTP walk names the same fault, so the two reports can be compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from .. import manifest as manifest_mod
from ..digest import Digest
from ..model import KIND_ORDER, Kind, Problem, object_json
from ..tagorder import sorted_tags
from .storage import Body, Data, RepositoryFacts, content_lost, data_path, emptied


@dataclass(frozen=True, slots=True)
class FsckFinding:
    repository: str
    digest: Digest | None  # None only for a tag whose link names no digest, or junk in the layout
    kind: Kind
    problem: Problem
    #: The first manifest (by digest) in this repository that references the object.
    parent: Digest | None
    #: Relative to ROOT: the link that is broken or absent, or the data file that is wrong.
    path: str
    detail: str
    #: Tags of this repository whose manifests lead to the object.
    tags: tuple[str, ...] = ()
    #: The layer link ``--repair`` would remove: set only when its blob data is missing or empty.
    repair: str | None = None
    repaired: bool = False

    @property
    def repairable(self) -> bool:
        return self.repair is not None

    def to_json(self) -> dict[str, object]:
        return {
            **object_json(self.repository, self.digest, self.kind, self.problem),
            "parent": str(self.parent) if self.parent else None,
            "path": self.path,
            "repaired": self.repaired,
            "repairable": self.repairable,
            "tags": list(self.tags),
            "detail": self.detail,
        }

    def with_repaired(self) -> FsckFinding:
        return replace(self, repaired=True)


@dataclass(frozen=True, slots=True)
class Judgement:
    findings: list[FsckFinding]
    #: Layer links no manifest of the repository uses, whose data is gone: what `registry
    #: garbage-collect` leaves after a manifest is deleted (it deletes the data, keeps the links).
    #: Harmless - the registry answers 404 for them and a push uploads the blob again - so counted,
    #: not reported.
    orphaned_links: int = 0


@dataclass(slots=True)
class _BlobUse:
    parent: Digest
    kind: Kind
    size: int


def judge(facts: RepositoryFacts, *, index_children: bool = True) -> Judgement:
    """One finding per broken object of the repository, in report order.

    ``index_children=False`` is the pull-through-cache mode (``--no-index-children``): a cache holds
    only what was pulled, so an index child without a revision link, a tag naming a revision it no
    longer holds (expired) and a blob without a layer link are not findings. Whatever the cache does
    hold - every link present - is checked as anywhere else.
    """
    usable = {d: b.parsed for d, b in facts.manifests.items() if b.parsed is not None and d in facts.revisions}
    children, blobs = _references(usable)
    reached = _tags_reaching(facts, usable)
    tag_targets: dict[Digest, list[str]] = {}
    for tag in sorted_tags(facts.tags):
        tag_link = facts.tags[tag]
        if tag_link.target is not None:
            tag_targets.setdefault(tag_link.target, []).append(tag)

    out: dict[Digest | str, FsckFinding] = {}
    orphaned = 0

    def add(
        digest: Digest | None,
        kind: Kind,
        problem: Problem,
        parent: Digest | None,
        path: str,
        detail: str,
        repair: str | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        key: Digest | str = digest if digest is not None else path
        if key not in out:
            tag_set = set(tags) | (reached.get(digest, set()) if digest is not None else set())
            finding = FsckFinding(
                facts.name, digest, kind, problem, parent, path, detail, tuple(sorted_tags(tag_set)), repair
            )
            out[key] = finding

    for junk in facts.junk:
        add(None, junk.kind, Problem.INVALID, None, junk.path, junk.detail)

    # Manifests: every revision, every index child, every tag's target.
    for digest in sorted(facts.revisions.keys() | children.keys() | tag_targets.keys()):
        use = children.get(digest)
        parent = use[0] if use else None
        link = facts.revisions.get(digest)
        if link is None:
            if use is not None and index_children:
                path = facts.revision_link_path(digest)
                add(
                    digest,
                    Kind.MANIFEST,
                    Problem.MISSING,
                    parent,
                    path,
                    "index child has no revision link in this repository",
                )
            elif digest in tag_targets and index_children:
                tags = tag_targets[digest]
                detail = f"tag {tags[0]} names a revision this repository does not have"
                add(digest, Kind.MANIFEST, Problem.MISSING, parent, facts.tags[tags[0]].path, detail)
            # else: a pull-through cache holds only the index children someone pulled, and its tags
            # outlive what they name: expiry (proxy.ttl, 7 days on 2.8) removes a manifest's revision link
            # and keeps the tag, which the cache resolves at upstream again on the next pull.
            continue
        if link.problem is not None:
            add(digest, Kind.MANIFEST, link.problem, parent, link.path, link.detail)
            continue
        body = facts.manifests.get(digest)
        if body is None:
            continue  # unreadable: recorded as an error, not judged
        verdict = _manifest_verdict(digest, body, use[1] if use else None)
        if verdict is not None:
            problem, detail, on_data = verdict
            add(digest, Kind.MANIFEST, problem, parent, data_path(digest) if on_data else link.path, detail)

    # Blobs: every layer link, and every config and layer a usable manifest names.
    for digest in sorted(facts.layers.keys() | blobs.keys()):
        blob = blobs.get(digest)
        kind, parent = (blob.kind, blob.parent) if blob else (Kind.LAYER, None)
        layer = facts.layers.get(digest)
        if layer is None:
            data = facts.blobs.get(digest)
            # What --repair leaves of an emptied blob: no link, and the 0-byte data file that distribution
            # never replaces (its blob writer takes an existing path as uploaded), so a re-push or a
            # cache's next pull links the empty file again. Named for as long as it is there.
            stale = data is not None and emptied(digest, data)
            if index_children:
                detail = "no layer link in this repository"
                if stale:
                    detail += f"; its data is empty (0 bytes): delete {data_path(digest)} before re-pushing"
                add(digest, kind, Problem.MISSING, parent, facts.layer_link_path(digest), detail)
            elif stale:
                detail = "blob data is empty (0 bytes) and not linked here: the next pull links it again"
                add(digest, kind, Problem.SIZE_MISMATCH, parent, data_path(digest), detail)
            # else: a pull-through cache links a blob only once someone pulled it (docker skips the
            # layers it already has): there, an unlinked blob is not yet fetched, not lost.
            continue
        if layer.problem is not None:
            add(digest, kind, layer.problem, parent, layer.path, layer.detail)
            continue
        data = facts.blobs.get(digest)
        if data is None:
            continue
        verdict = _blob_verdict(digest, data, blob.size if blob else None)
        if verdict is not None and blob is None and data.missing:
            orphaned += 1
            continue
        if verdict is not None:
            problem, detail, on_data = verdict
            # Removing the link is safe only where the data is gone or empty: nothing is lost.
            repair = layer.path if content_lost(digest, data) else None
            if blob is None:
                # Still a trap: HEAD answers 200 for it, so a later push skips the upload and the
                # registry accepts a manifest that needs it.
                detail += " (no manifest in this repository uses it)"
            add(digest, kind, problem, parent, data_path(digest) if on_data else layer.path, detail, repair)

    for tag, tag_link in sorted(facts.tags.items()):
        if tag_link.problem is not None:
            add(None, Kind.MANIFEST, tag_link.problem, None, tag_link.path, tag_link.detail, tags=(tag,))

    return Judgement(sorted(out.values(), key=_order), orphaned)


def _references(
    usable: Mapping[Digest, manifest_mod.Manifest],
) -> tuple[dict[Digest, tuple[Digest, manifest_mod.Descriptor]], dict[Digest, _BlobUse]]:
    """Who references what, keeping the first referrer in digest order."""
    children: dict[Digest, tuple[Digest, manifest_mod.Descriptor]] = {}
    blobs: dict[Digest, _BlobUse] = {}
    for digest in sorted(usable):
        parsed = usable[digest]
        if isinstance(parsed, manifest_mod.Index):
            for child in parsed.children:
                children.setdefault(child.digest, (digest, child))
            continue
        for descriptor, kind in [(parsed.config, Kind.CONFIG)] + [(layer, Kind.LAYER) for layer in parsed.layers]:
            if descriptor.foreign:
                continue  # served from its `urls`, never by the registry
            use = blobs.setdefault(descriptor.digest, _BlobUse(digest, kind, descriptor.size))
            if kind is Kind.CONFIG:
                use.kind = Kind.CONFIG
    return children, blobs


def _tags_reaching(facts: RepositoryFacts, usable: Mapping[Digest, manifest_mod.Manifest]) -> dict[Digest, set[str]]:
    """For each object, the tags whose manifest leads to it - as a pull of that tag would walk."""
    closures: dict[Digest, set[Digest]] = {}
    reached: dict[Digest, set[str]] = {}
    for tag, link in facts.tags.items():
        if link.target is None:
            continue
        closure = closures.get(link.target)
        if closure is None:
            closure = closures[link.target] = _closure(link.target, usable)
        for digest in closure:
            reached.setdefault(digest, set()).add(tag)
    return reached


def _closure(start: Digest, usable: Mapping[Digest, manifest_mod.Manifest]) -> set[Digest]:
    seen = {start}
    stack = [start]
    while stack:
        parsed = usable.get(stack.pop())
        if parsed is None:
            continue
        if isinstance(parsed, manifest_mod.Index):
            below = [c.digest for c in parsed.children]
        else:
            below = [d.digest for d in (parsed.config, *parsed.layers) if not d.foreign]
        for digest in below:
            if digest not in seen:  # indexes can refer back to themselves; each object once
                seen.add(digest)
                stack.append(digest)
    return seen


_Verdict = tuple[Problem, str, bool] | None  # (problem, detail, whether the data file is what is wrong)


def _manifest_verdict(digest: Digest, body: Body, expected: manifest_mod.Descriptor | None) -> _Verdict:
    data = body.data
    said = f", index descriptor says {expected.size}" if expected is not None else ""
    if data.size is None:
        return Problem.MISSING, "revision link present, manifest data gone", False
    if emptied(digest, data):
        # Named as the HTTP walk names an emptied blob; distribution answers 500 for such a manifest.
        return Problem.SIZE_MISMATCH, f"manifest data is empty (0 bytes){said}", True
    if body.error is not None and data.actual is None:
        return Problem.INVALID, body.error, True
    if data.actual != digest:
        # Unparseable as well: the registry answers 500 for it on every pull (the HTTP walk's server_error).
        unusable = f"; {body.error}" if body.error is not None else ""
        return Problem.DIGEST_MISMATCH, f"manifest data hashes to {data.actual}{unusable}", True
    if body.error is not None:
        return Problem.INVALID, body.error, True
    if expected is not None and expected.size != data.size:
        return Problem.SIZE_MISMATCH, f"manifest data is {data.size} bytes{said}", True
    return None


def _blob_verdict(digest: Digest, data: Data, expected: int | None) -> _Verdict:
    said = f", descriptor says {expected}" if expected is not None else ""
    if data.size is None:
        return Problem.MISSING, "layer link present, blob data gone", False
    if emptied(digest, data):
        # The HTTP walk sees this as 416 with a total of 0: size_mismatch. One fault, one name.
        return Problem.SIZE_MISMATCH, f"blob data is empty (0 bytes){said}", True
    if expected is not None and data.size != expected:
        return Problem.SIZE_MISMATCH, f"blob data is {data.size} bytes{said}", True
    if data.actual is not None and data.actual != digest:
        return Problem.DIGEST_MISMATCH, f"blob data hashes to {data.actual}", True
    return None


def _order(f: FsckFinding) -> tuple[int, str, str]:
    return (KIND_ORDER[f.kind], str(f.digest or ""), f.path)
