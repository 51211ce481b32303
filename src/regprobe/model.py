"""Result objects. The JSON report, the text report and the metrics all render these; nothing parses
strings back out of output."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from .digest import Digest
from .errorbody import ErrorBody
from .mediatypes import artifact_name
from .tagorder import NaturalKey, natural_key


class Kind(StrEnum):
    MANIFEST = "manifest"  # a tag's manifest or an index child
    CONFIG = "config"
    LAYER = "layer"
    #: A signature, SBOM or attestation of the image (an OCI 1.1 referrer), one of its blobs, or the list
    #: of them; reported on the tags of the image it refers to (docs/design/referrers.md).
    REFERRER = "referrer"


#: Report order of findings within a repository: the manifest before what it references, the image
#: before what refers to it.
KIND_ORDER = {Kind.MANIFEST: 0, Kind.CONFIG: 1, Kind.LAYER: 2, Kind.REFERRER: 3}


class Problem(StrEnum):
    MISSING = "missing"  # 404 / 410
    TRUNCATED = "truncated"  # fewer bytes than promised (200 with an empty body)
    SIZE_MISMATCH = "size_mismatch"  # length differs from the descriptor
    DIGEST_MISMATCH = "digest_mismatch"  # content hashes to another digest
    INVALID = "invalid"  # unparseable, unsupported, over a bound
    #: 5xx on every try for this object while the registry answers the rest: stored data likely corrupt.
    SERVER_ERROR = "server_error"
    UNREACHABLE = "unreachable"  # timeouts and connection failures that outlast the retries; other 4xx


@dataclass(frozen=True, slots=True)
class Finding:
    repository: str
    digest: Digest | None  # None only when a tag itself cannot be resolved
    kind: Kind
    problem: Problem
    status: int | None
    tags: tuple[str, ...]
    parent: Digest | None
    detail: str
    #: The platform of the index child it is (or is under), from the index's descriptor: ``linux/arm64``;
    #: several, comma-separated, for a blob shared by children of several platforms. None when it is
    #: under no index child.
    platform: str | None = None
    #: What the registry said about a ``server_error`` (code, message, detail), bounded and sanitised.
    registry_error: ErrorBody | None = None
    #: A ``referrer`` finding's artifact type (the referrer manifest's ``artifactType``, else its config's
    #: media type; the listing's word when the manifest could not be read). None when the referrer list
    #: itself could not be read.
    artifact_type: str | None = None
    #: A ``referrer`` finding's subject: the manifest the referrer refers to (signs, describes).
    subject: Digest | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            **object_json(self.repository, self.digest, self.kind, self.problem),
            "status": self.status,
            "tags": list(self.tags),
            "parent": str(self.parent) if self.parent else None,
            "detail": self.detail,
        }
        if self.platform is not None:
            out["platform"] = self.platform
        if self.registry_error is not None:
            out["registry_error"] = self.registry_error.to_json()
        if self.kind is Kind.REFERRER:
            out["artifact_type"] = self.artifact_type
            out["artifact"] = artifact_name(self.artifact_type)
            out["subject"] = str(self.subject) if self.subject else None
        return out

    @property
    def sort_key(self) -> tuple[str, int, str, tuple[str, ...]]:
        """Report order (repository, kind, digest): two reports of the same state diff clean."""
        return (self.repository, KIND_ORDER[self.kind], str(self.digest or ""), self.tags)


def object_json(repository: str, digest: Digest | None, kind: Kind, problem: Problem) -> dict[str, object]:
    """The leading JSON fields of every finding, the HTTP walk's and fsck's: what is broken, and how."""
    return {
        "repository": repository,
        "digest": str(digest) if digest else None,
        "kind": kind.value,
        "problem": problem.value,
    }


#: ``policy``: the registry refuses the pull by policy (Harbor's 412 PROJECTPOLICYVIOLATION);
#: ``expired``: the tag was deleted or expired between listing and walking (Quay's TAG_EXPIRED).
SkipReason = Literal["policy", "expired"]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A tag not judged on purpose: the registry refused it by policy, or it no longer exists."""

    repository: str
    tag: str
    reason: SkipReason
    detail: str

    def to_json(self) -> dict[str, object]:
        return {"repository": self.repository, "tag": self.tag, "reason": self.reason, "detail": self.detail}

    def order(self) -> tuple[str, NaturalKey]:
        """Report order: by repository, then tag (naturally)."""
        return self.repository, natural_key(self.tag)


#: `regprobe_images_skipped{reason}`: each has a series, 0 when nothing was skipped for it.
SKIP_REASONS: tuple[SkipReason, ...] = ("policy", "expired")


#: ``subject_missing``: a referrer whose subject manifest is gone; ``orphaned_fallback_tag``: a
#: ``sha256-<hex>`` tag (the OCI 1.1 fallback list of referrers) whose subject manifest is gone.
DanglingReason = Literal["subject_missing", "orphaned_fallback_tag"]


@dataclass(frozen=True, slots=True)
class Dangling:
    """Clutter, not breakage: a referrer, or a fallback tag, whose subject is gone. A registry must accept
    such a referrer (OCI 1.1), and nothing pulls it by tag: it pages no one."""

    repository: str
    #: The referrer; for an orphaned fallback tag, its index (None when the tag could not be read).
    digest: Digest | None
    subject: Digest
    artifact_type: str | None
    reason: DanglingReason
    #: The fallback tag that lists it (or is it).
    tag: str

    def to_json(self) -> dict[str, object]:
        return {
            "repository": self.repository,
            "digest": str(self.digest) if self.digest else None,
            "subject": str(self.subject),
            "artifact_type": self.artifact_type,
            "reason": self.reason,
            "tag": self.tag,
        }

    def order(self) -> tuple[str, str, str, str]:
        return self.repository, str(self.subject), self.reason, str(self.digest or "")


#: Request outcomes counted per registry (`regprobe_requests{outcome}`). `network_error` (no usable
#: answer: refused, reset, body cut short) is ours, beside the contract's five.
OUTCOMES = ("ok", "client_error", "server_error", "timeout", "network_error", "retried")


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """What became of this registry's push to the pushgateway."""

    ok: bool
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "error": self.error}


@dataclass(slots=True)
class RegistryResult:
    name: str
    url: str
    catalog_accessible: bool = False
    complete: bool = False
    repositories: int = 0
    images_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    #: Why the run is incomplete or what was skipped, for people; never a finding.
    errors: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    started_at: float = 0.0
    #: "I/N" when this process probed one shard of the registry's repositories.
    shard: str | None = None
    #: Tags not judged on purpose (neither findings nor errors: the run stays complete).
    skipped: list[Skipped] = field(default_factory=list)
    #: None when nothing was pushed (no pushgateway configured, or --no-push).
    push: PushOutcome | None = None
    #: Referrers and fallback tags whose subject is gone: clutter, neither findings nor errors.
    dangling: list[Dangling] = field(default_factory=list)
    #: Repositories whose tags this run listed, each with the listed tags that got no fresh verdict (walk
    #: cut off, an object not looked at, skipped). What an incomplete run may clear (regprobe.carryover).
    reached: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def broken_images(self) -> list[tuple[str, str]]:
        """(repository, tag) pairs with at least one finding, sorted."""
        pairs = {(f.repository, tag) for f in self.findings for tag in f.tags}
        return sorted(pairs, key=lambda pair: (pair[0], natural_key(pair[1])))

    def broken_objects(self) -> Counter[Kind]:
        counts: Counter[Kind] = Counter({kind: 0 for kind in Kind})
        counts.update(f.kind for f in self.findings)
        return counts

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "url": self.url,
            "catalog_accessible": self.catalog_accessible,
            "complete": self.complete,
            "repositories": self.repositories,
            "images_checked": self.images_checked,
            "findings": [f.to_json() for f in self.findings],
            "errors": list(self.errors),
            "duration_seconds": round(self.duration_seconds, 3),
            "requests": {outcome: self.requests.get(outcome, 0) for outcome in OUTCOMES},
            "shard": self.shard,
            "skipped": [s.to_json() for s in sorted(self.skipped, key=Skipped.order)],
            "push": self.push.to_json() if self.push else None,
            "dangling": [d.to_json() for d in sorted(self.dangling, key=Dangling.order)],
        }
