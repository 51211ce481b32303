"""Lists a manifest's OCI 1.1 referrers (signatures, SBOMs, attestations) for the walk, the two ways the
distribution spec has: the referrers API, and on registries without it the fallback tag.

* ``GET /v2/<repo>/referrers/<digest>`` answers an OCI index of the referrers, paged by ``Link``. Whether
  the registry serves it is learned as oras-go learns it, from the first answer that says: 200 with the
  OCI index type is support; a 404 with ``NAME_UNKNOWN`` says only that the repository is unknown; any
  other 404, a 400, 405 or 406, a 200 of another type - or, here, 5xx on every try - is no support.
  distribution 2.8 and 3 answer ``404 page not found`` in plain text (verified on both). A 404 with a
  registry error code is asked again about a digest nothing has (:data:`NO_SUBJECT`): GHCR's
  ``MANIFEST_UNKNOWN`` says "no API", but Harbor answers ``NOT_FOUND`` for the whole list of an image
  when one of its referrers is broken (``src/server/registry/referrers.go``) - and the spec has a
  registry with the API answer 200 for any digest of an existing repository.
* Without the API, the tag ``<alg>-<hex>`` (the subject's digest, ``:`` made ``-``) holds an OCI index of
  the referrers, kept by the clients that push them. It is read only when the repository's tag list
  lists it: a registry without referrers costs no request for them. GitLab answers ``sha256-<hex>``
  with the subject itself (it reads the tag as the digest): a body that hashes to the subject is no
  list of referrers.

What is learned is kept for the run, for the whole registry: the endpoint is the server's, so each
repository need not pay a request to learn it again - which also lets an error answer later in the run be
told from "not supported" (Harbor answers the whole list with an error when one referrer is broken).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from . import judge, manifest
from . import mediatypes as mt
from .digest import Digest
from .errorbody import ErrorBody
from .errors import ManifestError, PaginationError, RegistryError
from .facts import Reply
from .manifest import Descriptor
from .model import Dangling, Problem

if TYPE_CHECKING:  # gc-check reads fallback tags offline: no HTTP client for it to import
    from .client import RegistryClient

log = logging.getLogger(__name__)

State = Literal["unknown", "api", "fallback"]
#: Bounds on one manifest's referrers: pages of the API, and entries in all.
MAX_PAGES = 100
MAX_ENTRIES = 1000

#: A digest no content hashes to (sha256 of nothing known): what a registry serving the API lists no
#: referrers of - 200 and an empty list, per the spec (zot: empty; Harbor: ``{}``) - and one without it
#: answers 404, whatever is broken elsewhere.
NO_SUBJECT = Digest("sha256", "0" * 64)
#: A fallback tag this walk can map back to its subject: only sha256, whose hex the tag holds whole (the
#: spec cuts the hex to 64 characters: a sha512 subject cannot be read back from its tag).
_FALLBACK_TAG = re.compile(r"sha256-([a-f0-9]{64})")


def fallback_tag(subject: Digest) -> str:
    """The spec's fallback tag of ``subject``: algorithm cut to 32 characters, hex to 64, characters a
    tag may not hold as ``-``."""
    algorithm = re.sub(r"[^a-zA-Z0-9._-]", "-", subject.algorithm[:32])
    return f"{algorithm}-{subject.encoded[:64]}"


def fallback_subject(tag: str) -> Digest | None:
    """The subject a fallback tag lists the referrers of, or None when ``tag`` is no such tag."""
    match = _FALLBACK_TAG.fullmatch(tag)
    return Digest("sha256", match[1]) if match else None


def split(tags: Iterable[str]) -> tuple[list[str], dict[Digest, str]]:
    """A tag list into the tags of images and the fallback tags by subject: a fallback tag is the list of
    its subject's referrers, read when the subject is walked and reported on the subject's tags (or,
    subject gone, as dangling) - no image of its own."""
    images: list[str] = []
    fallback: dict[Digest, str] = {}
    for tag in tags:
        subject = fallback_subject(tag)
        if subject is None:
            images.append(tag)
        else:
            fallback[subject] = tag
    return images, fallback


class Support:
    """Whether one registry serves the referrers API: learned from its first answer that says, kept for
    the run. While unknown, one listing at a time asks, so a registry without the API is asked once."""

    def __init__(self, state: State = "unknown") -> None:
        self.state: State = state
        self.lock = asyncio.Lock()

    def learn(self, reply: Reply) -> State:
        """oras-go's rules, from the first page of an answer, while the state is unknown; the state now."""
        if self.state != "unknown":
            return self.state
        lesson = _lesson(reply)
        if lesson is not None:
            self.state = lesson
            how = "serves" if lesson == "api" else f"does not serve ({reply.describe()})"
            log.info("%s: the registry %s the OCI referrers API", reply.url, how)
        return self.state


def ambiguous(reply: Reply) -> bool:
    """A 404 carrying a registry error code: "not served" (GHCR: ``MANIFEST_UNKNOWN``) - or a registry that
    serves the API failing this one list (Harbor: ``NOT_FOUND`` when one referrer's record is gone). Only
    a second question, about a manifest that cannot have referrers, tells them apart."""
    return reply.status == 404 and reply.code is not None and reply.code != "NAME_UNKNOWN"


def _lesson(reply: Reply) -> State | None:
    if reply.ok and mt.normalise(reply.content_type) == mt.OCI_INDEX:
        return "api"
    if reply.status == 404 and reply.code == "NAME_UNKNOWN":
        return None  # the repository is unknown, which says nothing about the endpoint
    return "fallback"


@dataclass(slots=True)
class Listing:
    """A manifest's referrers as the registry lists them, or why they could not be listed."""

    entries: tuple[Descriptor, ...] = ()
    problem: Problem | None = None
    status: int | None = None
    detail: str = ""
    said: ErrorBody | None = None
    #: The fallback tag's index, when the list was read from it.
    index: Digest | None = None
    #: Entries not walked: manifest types no verifier of this walk reads (OCI 1.1-rc artifact manifests).
    unwalkable: list[str] = field(default_factory=list)


class Lister:
    """Lists referrers in one repository. ``tags``: the repository's fallback tags by subject, from its tag
    list (None when the list was not read: ``check`` of named images asks for the tag itself). ``held``:
    on a pull-through cache, the tags its storage holds - the fallback index is then read by digest, and
    the API is never asked (a cache passes what it does not hold on to its upstream)."""

    def __init__(
        self,
        client: RegistryClient,
        repository: str,
        support: Support,
        max_bytes: int,
        tags: Mapping[Digest, str] | None,
        held: Mapping[str, Digest] | None = None,
    ) -> None:
        self.client = client
        self.repository = repository
        self.support = support
        self.max_bytes = max_bytes
        self.tags = tags
        self.held = held

    async def list(self, subject: Digest) -> Listing:
        if self.held is None:
            listed = await self._api(subject)
            if listed is not None:
                return listed
        return await self._fallback(subject)

    # -- the referrers API --------------------------------------------------------------------------

    async def _api(self, subject: Digest) -> Listing | None:
        """The API's list; None where the registry does not serve it."""
        support = self.support
        if support.state == "unknown":
            async with support.lock:
                if support.state == "unknown":
                    first = await self.client.referrers(self.repository, subject, self.max_bytes)
                    # A coded 404 is asked about again with a manifest that cannot have broken referrers:
                    # the answer about this one is judged once the registry is known (a finding on Harbor).
                    lesson = first
                    if ambiguous(first):
                        lesson = await self.client.referrers(self.repository, NO_SUBJECT, self.max_bytes)
                    learned = support.learn(lesson)
                    return await self._pages(subject, first) if learned == "api" else None
        if support.state == "fallback":
            return None
        return await self._pages(subject, await self.client.referrers(self.repository, subject, self.max_bytes))

    async def _pages(self, subject: Digest, reply: Reply) -> Listing:
        entries: dict[Digest, Descriptor] = {}
        seen = {reply.url}
        listing = Listing()
        for number in range(MAX_PAGES):
            failed = _api_problem(reply, subject, number)
            if failed is not None:
                return failed
            try:
                page = _api_entries(reply.body)
            except ManifestError as exc:
                return _invalid(f"the referrers list of {subject} (page {number + 1}) is unusable: {exc}", reply)
            for entry in page:
                entries.setdefault(entry.digest, entry)
            if len(entries) > MAX_ENTRIES:
                return _invalid(f"{subject} has more than {MAX_ENTRIES} referrers; not walked past the bound", reply)
            if not reply.next_link or not page:
                listing.entries = _walkable(tuple(entries.values()), listing)
                return listing
            if reply.next_link in seen:
                return _invalid(f"the referrers list of {subject} links back to a page already read", reply)
            seen.add(reply.next_link)
            try:
                reply = await self.client.referrers(self.repository, subject, self.max_bytes, after=reply)
            except PaginationError as exc:
                return _invalid(str(exc), reply)
        return _invalid(f"the referrers list of {subject} runs over {MAX_PAGES} pages; not read past the bound", reply)

    # -- the fallback tag ---------------------------------------------------------------------------

    async def _fallback(self, subject: Digest) -> Listing:
        tag = fallback_tag(subject)
        pinned: Digest | None = None
        if self.held is not None:
            pinned = self.held.get(tag)
            if pinned is None:
                return Listing()
            reply = await self.client.manifest(self.repository, str(pinned), self.max_bytes)
        elif self.tags is not None:
            if self.tags.get(subject) != tag:
                return Listing()  # not listed: no referrers, and no request to say so
            reply = await self.client.manifest(self.repository, tag, self.max_bytes)
        else:
            # No tag list read (``check``): a HEAD says whether there is one - free where a GET is a pull
            # that rate limits count (Docker Hub).
            head = await self.client.manifest_head(self.repository, tag)
            if head.status in (404, 410):
                return Listing()
            reply = await self.client.manifest(self.repository, tag, self.max_bytes)
            if reply.status in (404, 410):
                return Listing()  # deleted between the two requests
        return fallback_listing(reply, subject, tag, pinned)


def fallback_listing(reply: Reply, subject: Digest, tag: str, pinned: Digest | None = None) -> Listing:
    """Judge the fallback tag's answer: the index of ``subject``'s referrers, a broken tag, or - OCI 1.1 -
    "no referrers" when it holds something else."""
    verdict = judge.manifest_reply(reply, expected=None, pinned=pinned)
    if verdict is not None:
        problem, detail = verdict
        said = reply.said if problem is Problem.SERVER_ERROR else None
        return Listing(
            problem=problem,
            status=reply.status,
            detail=f"fallback tag {tag}, the list of {subject}'s referrers: {detail}",
            said=said,
        )
    if reply.digest == subject:
        # GitLab resolves sha256-<hex> as the digest itself: an index's children would pass for referrers.
        log.debug("%s: %s answers the subject itself, not a list of its referrers", reply.url, tag)
        return Listing()
    try:
        parsed = manifest.parse(reply.body, reply.content_type)
    except ManifestError as exc:
        log.warning("%s: fallback tag %s holds no index (%s): taken as no referrers (OCI 1.1)", reply.url, tag, exc)
        return Listing()
    if not isinstance(parsed, manifest.Index) or parsed.media_type != mt.OCI_INDEX:
        what = parsed.media_type
        log.warning("%s: fallback tag %s holds a %s, not an OCI index: taken as no referrers", reply.url, tag, what)
        return Listing()
    listing = Listing(index=reply.digest)
    unique: dict[Digest, Descriptor] = {}
    for child in parsed.children:
        unique.setdefault(child.digest, child)
    if len(unique) > MAX_ENTRIES:
        return _invalid(f"fallback tag {tag} lists more than {MAX_ENTRIES} referrers; not walked past the bound", reply)
    listing.entries = _walkable(tuple(unique.values()), listing)
    return listing


def _api_problem(reply: Reply, subject: Digest, number: int) -> Listing | None:
    """Why a page the API was asked for is no list; None when it is one."""
    if reply.status == 404 and reply.code == "NAME_UNKNOWN" and number == 0:
        return Listing()  # oras-go: the repository is unknown, so it has no referrers
    what = f"the registry's referrers list of {subject}" + (f" (page {number + 1})" if number else "")
    if reply.over_limit:
        return _invalid(f"{what} is over the size bound ({reply.content_length or reply.received} bytes read)", reply)
    if reply.ok and mt.normalise(reply.content_type) != mt.OCI_INDEX:
        answered = f"{reply.status} {reply.content_type or 'without a type'}"
        return _invalid(f"{what} answered {answered}, not an OCI index", reply)
    verdict = judge.listing_reply(reply)
    if verdict is None:
        return None
    problem, detail = verdict
    # Harbor answers the whole list with an error when one referrer is broken: clients then see none.
    return Listing(
        problem=problem,
        status=reply.status,
        detail=f"{what}: {detail}; clients cannot list its referrers",
        said=reply.said if problem is Problem.SERVER_ERROR else None,
    )


def _api_entries(body: bytes) -> list[Descriptor]:
    """The descriptors of an API page. ``{}`` is an empty list: Harbor answers so for an unknown subject."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ManifestError(f"body is not JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"body is a JSON {type(doc).__name__}, not an object")
    entries = doc.get("manifests")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ManifestError("'manifests' is not a list")
    return [Descriptor.parse(entry, f"manifests[{i}]") for i, entry in enumerate(entries)]


def _walkable(entries: tuple[Descriptor, ...], listing: Listing) -> tuple[Descriptor, ...]:
    for entry in entries:
        if entry.media_type not in mt.MANIFEST_TYPES:
            listing.unwalkable.append(f"{entry.digest} ({entry.media_type[:100] or 'no media type'})")
    return tuple(e for e in entries if e.media_type in mt.MANIFEST_TYPES)


def _invalid(detail: str, reply: Reply) -> Listing:
    return Listing(problem=Problem.INVALID, status=reply.status, detail=detail)


def mismatch(subject: Digest, listed: Descriptor, parsed: manifest.Manifest) -> str | None:
    """What a referrer's own manifest says against how it is listed, or None when they agree.

    Its ``subject`` must be the manifest it is listed under (one without any is taken at its word). The
    listed ``artifactType`` must be its own (``artifactType``, else the config's media type) - or its
    config's media type: clients that keep the fallback index from the config alone write that (cosign
    on GHCR lists its bundles as ``application/vnd.oci.empty.v1+json``)."""
    if parsed.subject is not None and parsed.subject != subject:
        return f"its subject is {parsed.subject}, but it is listed as a referrer of {subject}"
    config_type = parsed.config.media_type if isinstance(parsed, manifest.Image) else ""
    if listed.artifact_type and listed.artifact_type not in (parsed.artifact_type, config_type):
        return f"listed with artifactType {listed.artifact_type!r}, but its manifest says {parsed.artifact_type!r}"
    return None


async def dangling(
    client: RegistryClient,
    repository: str,
    fallback: Mapping[Digest, str],
    met: Mapping[Digest, bool],
    max_bytes: int,
) -> list[Dangling]:
    """The fallback tags of ``repository`` whose subject is gone, and what they list. ``met``: the subjects
    the run's walks met (True: there; False: missing). For a subject no walk met, one HEAD (there, and no
    tag reaches it: its referrers concern no tag); for one gone, one GET of the tag to name what it
    lists. Clutter, not breakage: what cannot be asked is left unsaid (logged)."""

    async def one(subject: Digest, tag: str) -> list[Dangling]:
        try:
            if subject not in met:
                head = await client.manifest_head(repository, str(subject))
                if head.status not in (404, 410):
                    return []
            elif met[subject]:
                return []
            reply = await client.manifest(repository, tag, max_bytes)
        except RegistryError as exc:
            log.warning("%s: fallback tag %s: whether its subject is gone is unknown: %s", repository, tag, exc)
            return []
        return orphaned(repository, subject, tag, reply)

    found = await asyncio.gather(*(one(subject, tag) for subject, tag in sorted(fallback.items())))
    return [d for each in found for d in each]


def orphaned(repository: str, subject: Digest, tag: str, reply: Reply) -> list[Dangling]:
    """A fallback tag whose subject is gone, and what it lists: the answer to ``GET`` of the tag."""
    listing = fallback_listing(reply, subject, tag) if reply.ok else Listing()
    own = Dangling(repository, listing.index, subject, None, "orphaned_fallback_tag", tag)
    return [own] + [
        Dangling(repository, entry.digest, subject, entry.artifact_type or None, "subject_missing", tag)
        for entry in listing.entries
    ]
