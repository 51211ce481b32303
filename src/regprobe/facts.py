"""What the walk observed, before anyone judges it: one exchange's :class:`Reply`, and the graph of a
repository's objects (:class:`Node`, :class:`TagRoot`).

The client fills replies, the walk builds the graph, :mod:`regprobe.judge` turns both into verdicts and
findings. Plain data, no I/O, no HTTP library: everything downstream of the network imports this, not
the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from .digest import Digest
from .errorbody import ErrorBody
from .model import Kind, Problem, SkipReason

BlobMode = Literal["head", "range", "digest"]
#: Statuses worth another try: the registry or a proxy in front of it is overloaded or flapping.
TEMPORARY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(slots=True)
class Reply:
    """Facts about one exchange (after retries)."""

    url: str
    method: str = "GET"
    status: int | None = None  # None: no HTTP answer at all
    code: str | None = None  # registry error code (MANIFEST_UNKNOWN, BLOB_UNKNOWN, ...)
    #: An error answer's body as received (bounded), for what :attr:`code` alone does not say.
    error_body: bytes = b""
    #: What an error body said (code, message, detail), bounded and sanitised.
    said: ErrorBody | None = None
    content_type: str | None = None
    content_length: int | None = None
    #: The complete length from `Content-Range: bytes a-b/TOTAL` (206 or 416).
    range_total: int | None = None
    body: bytes = b""
    received: int = 0
    #: Hash of every byte received when the whole body was read.
    digest: Digest | None = None
    over_limit: bool = False
    #: The connection ended before the promised body arrived.
    truncated: bool = False
    timeout: bool = False
    error: str | None = None
    #: Seconds the server asked us to wait (Retry-After), when it said.
    retry_after: float | None = None
    header_digest: str | None = None
    next_link: str | None = None
    #: ``scheme://host[:port]`` of the host that gave the answer, when a redirect led away from the
    #: registry (object storage, a CDN); never more of the URL, which is signed.
    answered_by: str | None = None
    #: Docker Hub's ``ratelimit-remaining: N;w=SECONDS`` and ``ratelimit-limit``, when sent.
    rate_remaining: int | None = None
    rate_limit: int | None = None
    rate_window: int | None = None

    @property
    def failed(self) -> bool:
        """No complete answer: nothing came back, or it stopped coming (timeout mid-body)."""
        return self.status is None or self.timeout or self.error is not None

    @property
    def ok(self) -> bool:
        """A complete 2xx answer."""
        return not self.failed and not self.truncated and self.status is not None and self.status < 300

    @property
    def temporary(self) -> bool:
        """Worth another try: no answer, a body cut short, or a status that says "later"."""
        if self.failed:
            return True
        return self.status in TEMPORARY_STATUSES or self.truncated

    def describe(self, method: str | None = None) -> str:
        method = method or self.method
        at = f" (at {self.answered_by}, where the registry redirected)" if self.answered_by else ""
        if self.status is None:
            return f"{method} {'timed out' if self.timeout else 'failed'}{at}: {self.error}"
        if self.failed:
            what = "timed out" if self.timeout else "failed"
            return f"{method} answered {self.status}{at}, then {what}: {self.error}"
        text = f"{method} answered {self.status}"
        if self.code:
            text += f" {self.code}"
        text += at
        if self.truncated:
            text += (
                f", then the connection closed after {self.received} of {self.content_length} body bytes"
                " (pulls fail with 'unexpected EOF')"
            )
        return text


# -- a repository's graph -------------------------------------------------------------------------

#: ("manifest" | "blob", digest): one object in one repository; ("referrers", digest): the list of that
#: manifest's referrers (OCI 1.1: the referrers API's answer, or the fallback tag's index).
Key = tuple[str, Digest]


@dataclass(slots=True)
class Node:
    """One object of the repository and what its check found."""

    kind: Kind
    problem: Problem | None = None
    status: int | None = None
    detail: str = ""
    children: tuple[Key, ...] = ()
    #: An index's children's platforms (``linux/arm64``), in the order of ``children``: what a finding
    #: under a child is named with. Empty for an image.
    platforms: tuple[str | None, ...] = ()
    #: An index child a pull-through cache has not fetched: expected, not a finding.
    absent: bool = False
    #: Why the object could not be judged (credentials refused, token service down): an access
    #: problem of the run, never a finding.
    error: str | None = None
    #: Which structural bound the object broke, when ``problem`` is ``invalid`` for that reason.
    bound: Bound | None = None
    #: What the registry said in its error answer (a ``server_error``'s code, message and detail).
    said: ErrorBody | None = None
    #: Why the registry would not let it be judged on purpose (a pull policy): neither a finding nor
    #: an error; the tags reaching it are reported as skipped.
    skipped: SkipReason | None = None
    #: A blob's size as its descriptor gives it (the ledger's scrub reads blobs by size); None for manifests.
    size: int | None = None
    #: A blob whose whole content was read and hashed (``blob_check: digest``, or one the scrub suspects).
    hashed: bool = False
    #: A manifest's artifact type (``artifactType``, else its config's media type): what a referrer is.
    artifact_type: str = ""
    #: A referrers list: the artifact type its entries state, in the order of ``children``.
    artifact_types: tuple[str, ...] = ()
    #: A referrers list read from the fallback tag: that index's digest (what a finding about it names).
    index: Digest | None = None


Bound = Literal["depth", "loop"]


@dataclass(slots=True)
class TagRoot:
    """Where a tag's walk starts, or why it could not."""

    key: Key | None
    problem: Problem | None = None
    status: int | None = None
    detail: str = ""
    #: Docker-Content-Digest of an unresolvable tag, when the registry sent a valid one.
    hint: Digest | None = None
    #: The tag could not be looked at (see :attr:`Node.error`).
    error: str | None = None
    #: The tag was not judged on purpose (see :attr:`Node.skipped`); ``detail`` says why.
    skipped: SkipReason | None = None
    #: What the registry said in its error answer (see :attr:`Node.said`).
    said: ErrorBody | None = None
