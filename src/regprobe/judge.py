"""Pure functions that turn what the walk observed into problems and findings. No I/O here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from .digest import Digest
from .facts import BlobMode, Key, Node, Reply, TagRoot
from .manifest import Descriptor
from .model import KIND_ORDER, Finding, Kind, Problem, Skipped, SkipReason
from .tagorder import sorted_tags

Verdict = tuple[Problem, str] | None


def _status_problem(reply: Reply, method: str) -> Verdict:
    """Problems visible from the status alone; None when the exchange succeeded."""
    if reply.failed or reply.status is None:
        return Problem.UNREACHABLE, reply.describe(method)
    if reply.status in (404, 410):
        return Problem.MISSING, reply.describe(method)
    if reply.status >= 500:
        # On every try (5xx is retried): the registry fails on this object. A finding only once the
        # registry is seen answering the rest (see judgement's ``unavailable``; issue 21).
        return Problem.SERVER_ERROR, reply.describe(method)
    if reply.status >= 400:
        # A 4xx that no pull could get past.
        return Problem.UNREACHABLE, reply.describe(method)
    if reply.truncated:
        return Problem.TRUNCATED, reply.describe(method)
    return None


def listing_reply(reply: Reply) -> Verdict:
    """Judge the status of a list the registry was asked for (a manifest's referrers): what no client
    gets past."""
    return _status_problem(reply, reply.method)


def skip_reason(reply: Reply, by_tag: bool) -> tuple[SkipReason, str] | None:
    """Answers that say "not yours to judge" rather than "broken": Harbor's pull policy (412
    PROJECTPOLICYVIOLATION, on HEAD and GET alike) and, for a tag, Quay's TAG_EXPIRED (404: the tag was
    deleted or expired since the listing - there is nothing left to pull by that name)."""
    if reply.status == 412 and reply.code == "PROJECTPOLICYVIOLATION":
        return "policy", f"{reply.describe()}: the registry refuses the pull by policy"
    if by_tag and reply.status == 404 and reply.code == "TAG_EXPIRED":
        return "expired", f"{reply.describe()}: the tag was deleted or expired after it was listed"
    return None


def manifest_reply(reply: Reply, expected: Descriptor | None, pinned: Digest | None) -> Verdict:
    """Judge a manifest GET. ``pinned`` is the digest it was fetched by (None for a tag)."""
    verdict = _status_problem(reply, reply.method)
    if verdict:
        return verdict
    if reply.over_limit:
        return (
            Problem.INVALID,
            f"manifest body over the size bound ({reply.content_length or reply.received} bytes read)",
        )
    if pinned is not None:
        actual = reply.digest if pinned.algorithm == "sha256" else Digest.of(reply.body, pinned.algorithm)
        if actual != pinned:
            return Problem.DIGEST_MISMATCH, f"body of {len(reply.body)} bytes hashes to {actual}"
    if expected is not None and expected.size != len(reply.body):
        return Problem.SIZE_MISMATCH, f"body is {len(reply.body)} bytes, descriptor says {expected.size}"
    return None


def blob_reply(reply: Reply, expected: Descriptor, mode: BlobMode) -> Verdict:
    method = "HEAD" if mode == "head" or (mode == "range" and expected.size == 0) else "GET"
    size = expected.size
    if reply.status == 416 and not reply.failed:
        # The last byte (`bytes=N-1-N-1`) is unsatisfiable only when the object holds fewer bytes: an empty
        # descriptor's is never asked for, and is served (REGISTRY-QUIRKS.md D7).
        if size == 0:
            return None
        if reply.range_total is None:
            # S3 answers so without Content-Range (verified with moto, tests/test_s3.py).
            return (
                Problem.TRUNCATED,
                f"{reply.describe(method)}: byte {size - 1} does not exist, the stored object is shorter than"
                f" the descriptor's {size} bytes",
            )
        if reply.range_total != size:
            return Problem.SIZE_MISMATCH, f"registry holds {reply.range_total} bytes, descriptor says {size}"
    verdict = _status_problem(reply, method)
    if verdict:
        if verdict[0] is Problem.TRUNCATED and mode == "range":
            # Headers from the descriptor cache, then nothing: the data is cut short or gone (REGISTRY-FACTS.md).
            return Problem.TRUNCATED, f"{verdict[1]}; the last byte ({size - 1}) is not there"
        return verdict
    if method == "HEAD":
        if reply.content_length is not None and reply.content_length != size:
            return Problem.SIZE_MISMATCH, f"HEAD Content-Length {reply.content_length}, descriptor says {size}"
        return None
    if mode == "range":
        # 206: the total in Content-Range; 200 (Range ignored, the whole blob coming): its length.
        total = reply.range_total if reply.status == 206 else reply.content_length
        if total is not None and total != size:
            return Problem.SIZE_MISMATCH, f"GET {reply.status} reports {total} bytes, descriptor says {size}"
        if reply.received == 0:
            last = size - 1
            return Problem.TRUNCATED, f"GET {reply.status} to Range: bytes={last}-{last} delivered no body bytes"
        return None
    if reply.received != size:
        if reply.content_length is not None and reply.received < reply.content_length:
            return Problem.TRUNCATED, f"GET delivered {reply.received} of {reply.content_length} bytes"
        return Problem.SIZE_MISMATCH, f"GET delivered {reply.received} bytes, descriptor says {size}"
    if reply.digest != expected.digest:
        return Problem.DIGEST_MISMATCH, f"content hashes to {reply.digest}"
    return None


# -- from the walk's graph to findings ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Via:
    """The referrer a walk went through to reach an object: what it is, and what it refers to."""

    artifact_type: str | None
    subject: Digest


@dataclass(slots=True)
class _Hit:
    tags: set[str] = field(default_factory=set)
    parent: Digest | None = None
    platforms: set[str] = field(default_factory=set)
    #: Reached as part of an image itself, not only through one of its referrers.
    direct: bool = False
    via: Via | None = None


@dataclass(frozen=True, slots=True)
class Judgement:
    """What one repository's walk comes to."""

    #: One per broken object, naming every tag whose walk reaches it and its first parent.
    findings: list[Finding]
    #: One line per object (or tag) that could not be looked at, naming the tags that reach it.
    errors: list[str]
    #: One per tag not judged on purpose: skipped itself, or reaching a skipped object.
    skipped: list[Skipped]
    #: Tags whose walk met something it could not look at (its own manifest, or an object it reaches):
    #: without a finding, such a tag has no fresh verdict (regprobe.carryover, regprobe.tally).
    blocked: frozenset[str] = frozenset()


def judgement(
    repository: str, roots: Mapping[str, TagRoot], nodes: Mapping[Key, Node], unavailable: str | None = None
) -> Judgement:
    """Judge the repository's graph in one pass over every tag's walk.

    ``unavailable``: why the registry is not known to answer the rest of this repository (it failed the
    check made after a ``server_error``, or was never asked). A ``server_error`` is then an error of the
    run, not a finding: a registry that fails everything is an availability problem (exit 3), never a
    storm of broken images (issue 21).
    """
    hits: dict[Key, _Hit] = {}
    blocked: dict[Key, set[str]] = {}
    findings: list[Finding] = []
    errors: list[str] = []
    skipped: list[Skipped] = []
    blocked_tags: set[str] = set()
    for tag in sorted_tags(roots):
        root = roots[tag]
        if root.error is not None:  # not looked at (refused, rate limited): an error of the run, never a finding
            errors.append(f"{repository}: tag {tag}: {root.error}")
            blocked_tags.add(tag)
            continue
        if root.skipped is not None:
            skipped.append(Skipped(repository, tag, root.skipped, root.detail))
            continue
        if root.key is None:
            problem = root.problem or Problem.UNREACHABLE
            if problem is Problem.SERVER_ERROR and unavailable is not None:
                errors.append(f"{repository}: {root.detail}; {unavailable}")
                blocked_tags.add(tag)
                continue
            said = root.said if problem is Problem.SERVER_ERROR else None
            findings.append(
                Finding(
                    repository, root.hint, Kind.MANIFEST, problem, root.status, (tag,), None, root.detail, None, said
                )
            )
            continue
        skipped_below: tuple[Key, Node] | None = None
        for key, parent, platform, via in reachable(root.key, nodes):
            node = nodes[key]
            if node.problem is not None:
                hit = hits.setdefault(key, _Hit(parent=parent))
                hit.tags.add(tag)
                if platform is not None:
                    hit.platforms.add(platform)
                if via is None:
                    hit.direct = True
                elif hit.via is None:
                    hit.via = via
            if node.error is not None:
                blocked.setdefault(key, set()).add(tag)
            if node.skipped is not None and skipped_below is None:
                skipped_below = (key, node)
        if skipped_below is not None:
            key, node = skipped_below
            assert node.skipped is not None
            skipped.append(Skipped(repository, tag, node.skipped, f"{node.kind.value} {key[1]}: {node.detail}"))
    for key, hit in hits.items():
        node = nodes[key]
        assert node.problem is not None
        tags = tuple(sorted_tags(hit.tags))
        if node.problem is Problem.SERVER_ERROR and unavailable is not None:
            errors.append(
                f"{repository}: {node.kind.value} {key[1]}: {node.detail}; {unavailable} (tags: {', '.join(tags)})"
            )
            blocked_tags.update(tags)  # not judged: no fresh verdict either way
            continue
        platform = ", ".join(sorted(hit.platforms)) or None
        said = node.said if node.problem is Problem.SERVER_ERROR else None
        finding = Finding(
            repository, key[1], node.kind, node.problem, node.status, tags, hit.parent, node.detail, platform, said
        )
        findings.append(_as_referrer(finding, key, node, hit))
    findings.sort(key=_order)
    for key in sorted(blocked, key=lambda k: (KIND_ORDER[nodes[k].kind], str(k[1]))):
        tags_text = ", ".join(sorted_tags(blocked[key]))
        errors.append(f"{repository}: {_what(key, nodes[key])}: {nodes[key].error} (tags: {tags_text})")
        blocked_tags.update(blocked[key])
    return Judgement(findings, errors, skipped, frozenset(blocked_tags))


def _as_referrer(finding: Finding, key: Key, node: Node, hit: _Hit) -> Finding:
    """A finding about a referrer is reported on its subject's tags as one (docs/design/referrers.md): the
    list of referrers that could not be read, a referrer, or a blob of one - unless the object is part of
    an image itself too (the empty config ``{}`` may be an attestation's as well as a signature's)."""
    if key[0] == "referrers":
        # No referrer to name: the fallback index when the list was read from one, else nothing.
        return replace(finding, digest=node.index, kind=Kind.REFERRER, subject=key[1])
    if hit.direct or hit.via is None:
        return finding
    detail = finding.detail if node.kind is Kind.MANIFEST else f"its {node.kind.value}: {finding.detail}"
    return replace(
        finding, kind=Kind.REFERRER, detail=detail, artifact_type=hit.via.artifact_type, subject=hit.via.subject
    )


def _what(key: Key, node: Node) -> str:
    """How an error of the run names the object it is about."""
    if key[0] == "referrers":
        return f"the referrers of {key[1]}"
    return f"{node.kind.value} {key[1]}"


def reachable(start: Key, nodes: Mapping[Key, Node]) -> Iterable[tuple[Key, Digest | None, str | None, Via | None]]:
    """Depth-first in descriptor order; yields (key, the digest it was reached from, the platform of the
    index child it is or is under, the referrer it is or is under). Each node once per platform and
    referrer it is reached under: a layer shared by the amd64 and arm64 children is under both."""
    seen: set[tuple[Key, str | None, Via | None]] = {(start, None, None)}
    stack: list[tuple[Key, Digest | None, str | None, Via | None]] = [(start, None, None, None)]
    while stack:
        key, parent, platform, via = stack.pop()
        node = nodes.get(key)
        if node is None:  # not walked (deadline): nothing to say about it
            continue
        yield key, parent, platform, via
        listing = key[0] == "referrers"
        for i in reversed(range(len(node.children))):
            child = node.children[i]
            # The innermost index's descriptor names the platform (a nested index may name none).
            below = (node.platforms[i] if i < len(node.platforms) else None) or platform
            under = _referrer(node, i, key[1], nodes) if listing else via
            if (child, below, under) not in seen:
                seen.add((child, below, under))
                # A referrer's parent is its subject, not the list it is on.
                stack.append((child, key[1], below, under))


def _referrer(listing: Node, i: int, subject: Digest, nodes: Mapping[Key, Node]) -> Via:
    """The referrer at ``listing.children[i]``: its own artifact type once read, else the list's word."""
    child = nodes.get(listing.children[i])
    listed = listing.artifact_types[i] if i < len(listing.artifact_types) else ""
    own = child.artifact_type if child is not None else ""
    return Via(own or listed or None, subject)


def _order(f: Finding) -> tuple[str, int, str, str]:
    return (f.repository, KIND_ORDER[f.kind], str(f.digest or ""), ",".join(f.tags))
