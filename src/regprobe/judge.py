"""Pure functions that turn what the walk observed into problems and findings. No I/O here."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .digest import Digest
from .facts import BlobMode, Key, Node, Reply, TagRoot
from .manifest import Descriptor
from .model import KIND_ORDER, Finding, Kind, Problem, Skipped, SkipReason

Verdict = tuple[Problem, str] | None


def _status_problem(reply: Reply, method: str) -> Verdict:
    """Problems visible from the status alone; None when the exchange succeeded."""
    if reply.failed or reply.status is None:
        return Problem.UNREACHABLE, reply.describe(method)
    if reply.status in (404, 410):
        return Problem.MISSING, reply.describe(method)
    if reply.status >= 400:
        # 5xx after retries, or a 4xx that no pull could get past.
        return Problem.UNREACHABLE, reply.describe(method)
    if reply.truncated:
        return Problem.TRUNCATED, reply.describe(method)
    return None


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
    if reply.status == 416 and not reply.failed:
        # `bytes=0-0` is unsatisfiable only for an empty object (REGISTRY-QUIRKS.md D7).
        if expected.size == 0:
            return None
        if reply.range_total is None:
            # S3 answers an emptied object so, without Content-Range (verified with moto, tests/test_s3.py).
            return (
                Problem.TRUNCATED,
                f"{reply.describe(method)}: not even byte 0 exists, the stored object is empty;"
                f" the descriptor says {expected.size} bytes",
            )
        if reply.range_total != expected.size:
            return Problem.SIZE_MISMATCH, f"registry holds {reply.range_total} bytes, descriptor says {expected.size}"
    verdict = _status_problem(reply, method)
    if verdict:
        return verdict
    size = expected.size
    if method == "HEAD":
        if reply.content_length is not None and reply.content_length != size:
            return Problem.SIZE_MISMATCH, f"HEAD Content-Length {reply.content_length}, descriptor says {size}"
        return None
    if mode == "range":
        total = reply.range_total if reply.status == 206 else reply.content_length
        if total is not None and total != size:
            return Problem.SIZE_MISMATCH, f"GET {reply.status} reports {total} bytes, descriptor says {size}"
        if reply.received == 0:
            return Problem.TRUNCATED, f"GET {reply.status} with Range: bytes=0-0 delivered no body bytes"
        return None
    if reply.received != size:
        if reply.content_length is not None and reply.received < reply.content_length:
            return Problem.TRUNCATED, f"GET delivered {reply.received} of {reply.content_length} bytes"
        return Problem.SIZE_MISMATCH, f"GET delivered {reply.received} bytes, descriptor says {size}"
    if reply.digest != expected.digest:
        return Problem.DIGEST_MISMATCH, f"content hashes to {reply.digest}"
    return None


# -- from the walk's graph to findings ------------------------------------------------------------


@dataclass(slots=True)
class _Hit:
    tags: set[str] = field(default_factory=set)
    parent: Digest | None = None


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
    #: without a finding, such a tag has no fresh verdict (regprobe.tally).
    blocked: frozenset[str] = frozenset()


def judgement(repository: str, roots: Mapping[str, TagRoot], nodes: Mapping[Key, Node]) -> Judgement:
    """Judge the repository's graph in one pass over every tag's walk."""
    hits: dict[Key, _Hit] = {}
    blocked: dict[Key, set[str]] = {}
    findings: list[Finding] = []
    errors: list[str] = []
    skipped: list[Skipped] = []
    blocked_tags: set[str] = set()
    for tag in sorted(roots):
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
            findings.append(
                Finding(repository, root.hint, Kind.MANIFEST, problem, root.status, (tag,), None, root.detail)
            )
            continue
        skipped_below: tuple[Key, Node] | None = None
        for key, parent in reachable(root.key, nodes):
            node = nodes[key]
            if node.problem is not None:
                hits.setdefault(key, _Hit(parent=parent)).tags.add(tag)
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
        tags = tuple(sorted(hit.tags))
        findings.append(
            Finding(repository, key[1], node.kind, node.problem, node.status, tags, hit.parent, node.detail)
        )
    findings.sort(key=_order)
    for key in sorted(blocked, key=lambda k: (KIND_ORDER[nodes[k].kind], str(k[1]))):
        tags_text = ", ".join(sorted(blocked[key]))
        errors.append(f"{repository}: {nodes[key].kind.value} {key[1]}: {nodes[key].error} (tags: {tags_text})")
        blocked_tags.update(blocked[key])
    return Judgement(findings, errors, skipped, frozenset(blocked_tags))


def reachable(start: Key, nodes: Mapping[Key, Node]) -> Iterable[tuple[Key, Digest | None]]:
    """Depth-first, each node once, in descriptor order; yields (key, the digest it was reached from)."""
    seen = {start}
    stack: list[tuple[Key, Digest | None]] = [(start, None)]
    while stack:
        key, parent = stack.pop()
        node = nodes.get(key)
        if node is None:  # not walked (deadline): nothing to say about it
            continue
        yield key, parent
        for child in reversed(node.children):
            if child not in seen:
                seen.add(child)
                stack.append((child, key[1]))


def _order(f: Finding) -> tuple[str, int, str, str]:
    return (f.repository, KIND_ORDER[f.kind], str(f.digest or ""), ",".join(f.tags))
