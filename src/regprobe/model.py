"""Result objects. The JSON report, the text report and the metrics all render these; nothing parses
strings back out of output."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
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


#: Why a run stopped walking: ``done`` it took every tag it planned; ``budget`` ``budget.requests`` was
#: spent; ``deadline`` its time was (it stops taking tags a margin before the deadline, for the work in
#: flight to finish; what the deadline still cuts records nothing); ``signal`` SIGTERM/SIGINT; ``error``
#: something made it stop early (a rate limit spent, the ledger failing, the registry not probed).
Stopped = Literal["done", "budget", "deadline", "signal", "error"]

Image = tuple[str, str]

#: Tags named in a report's ``coverage.verified_tags`` at most; beyond, ``regprobe ledger`` lists them.
MAX_NAMED_VERIFIED = 100


@dataclass(frozen=True, slots=True)
class Coverage:
    """How far continuous verification has got, after this run (docs/design/continuous-verification.md)."""

    window_seconds: float
    #: Selected tags: with a ledger every tag it knows, without one those this run listed.
    known: int
    #: Of those, tags verified within the window (without a ledger: by this run).
    verified_within_window: int
    #: Age of the least recently verified known tag (never verified: since first seen); None when unknown
    #: (no ledger, and not every tag verified by this run).
    oldest_age_seconds: float | None
    #: Tags this run gave a fresh verdict (ok, broken, skipped).
    verified: int
    #: Those tags by name, when at most MAX_NAMED_VERIFIED; else None.
    verified_tags: tuple[Image, ...] | None
    #: The ledger file; None without state_dir.
    ledger: str | None

    def to_json(self) -> dict[str, object]:
        named = self.verified_tags
        return {
            "ledger": self.ledger,
            "window_seconds": self.window_seconds,
            "known": self.known,
            "verified_within_window": self.verified_within_window,
            "oldest_age_seconds": None if self.oldest_age_seconds is None else round(self.oldest_age_seconds, 3),
            "verified": self.verified,
            "verified_tags": None if named is None else [{"repository": r, "tag": t} for r, t in named],
        }


@dataclass(frozen=True, slots=True)
class Scrubbed:
    """What this run's digest scrub read, and how far behind the least recently scrubbed blob is."""

    blobs: int
    bytes: int
    #: None while the ledger knows no blob.
    oldest_age_seconds: float | None

    def to_json(self) -> dict[str, object]:
        age = self.oldest_age_seconds
        return {"blobs": self.blobs, "bytes": self.bytes, "oldest_age_seconds": None if age is None else round(age, 3)}


@dataclass(frozen=True, slots=True)
class KnownBroken:
    """The ledger's broken set after this run: every tag whose last verdict is broken, whether this run
    reached it or not - what the integrity metrics publish when there is a ledger."""

    images: tuple[Image, ...]
    objects: Mapping[Kind, int]


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
    #: Referrers and fallback tags whose subject is gone: clutter, neither findings nor errors. None when
    #: the run did not look (``check``, referrers off, a pull-through cache, a run stopped before it could).
    dangling: list[Dangling] | None = None
    stopped: Stopped = "done"
    #: None when the run knows nothing it could say about coverage (``check``; a listing that failed
    #: without a ledger).
    coverage: Coverage | None = None
    #: None when the scrub is off.
    scrub: Scrubbed | None = None
    #: The ledger's broken set; None without a ledger (then the metrics publish this run's findings).
    known_broken: KnownBroken | None = None
    #: Repositories whose tags this run listed, each with the listed tags that got no fresh verdict (walk
    #: cut off, an object not looked at, skipped). What an incomplete run may clear (regprobe.carryover).
    reached: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def broken(self) -> bool:
        """Integrity findings: this run's, or with a ledger tags broken at the last look it did not reach."""
        return bool(self.findings) or (self.known_broken is not None and bool(self.known_broken.images))

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
            "dangling": _dangling_json(self.dangling),
            "stopped": self.stopped,
            "coverage": self.coverage.to_json() if self.coverage else None,
            "scrub": self.scrub.to_json() if self.scrub else None,
        }


def _dangling_json(dangling: list[Dangling] | None) -> list[dict[str, object]] | None:
    return None if dangling is None else [d.to_json() for d in sorted(dangling, key=Dangling.order)]
