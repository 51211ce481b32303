"""Descriptors and manifest bodies, parsed into the few facts the walk needs.

Anything a registry can send is either parsed or rejected with :class:`ManifestError`; nothing else
escapes, so a hostile body becomes an ``invalid`` finding rather than a crash.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import mediatypes as mt
from .digest import Digest
from .errors import DigestError, ManifestError


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    #: ``os/architecture[/variant]`` of an index child (``linux/arm/v7``), when its descriptor says.
    platform: str | None = None
    #: A referrers list's entry: the referrer's ``artifactType`` as the list states it ("" when absent).
    artifact_type: str = ""

    @property
    def foreign(self) -> bool:
        """Non-distributable layers are served from ``urls``, not by the registry: never fetched here."""
        return bool(self.urls) or self.media_type in mt.FOREIGN_LAYER_TYPES

    @classmethod
    def parse(cls, raw: object, where: str) -> Descriptor:
        if not isinstance(raw, Mapping):
            raise ManifestError(f"{where} is not an object")
        media_type = raw.get("mediaType", "")
        if not isinstance(media_type, str):
            raise ManifestError(f"{where}.mediaType is not a string")
        try:
            digest = Digest.parse(raw.get("digest"))
        except DigestError as exc:
            raise ManifestError(f"{where}.digest: {exc}") from None
        size = raw.get("size")
        # bool is an int in Python; a JSON `true` is not a size.
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where}.size is not a non-negative integer")
        urls = raw.get("urls") or ()
        if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
            raise ManifestError(f"{where}.urls is not a list of strings")
        return cls(media_type, digest, size, tuple(urls), _platform(raw.get("platform")), _artifact_type(raw, ""))


#: One part of a platform as it is shown: a hostile index must not put arbitrary text into reports.
_PLATFORM_PART = re.compile(r"[A-Za-z0-9_.+-]{1,32}")


def _platform(raw: object) -> str | None:
    """``os/architecture[/variant]`` from a descriptor's ``platform``; None when it has none or an odd one
    (no reason to refuse a manifest that clients pull by digest all the same)."""
    if not isinstance(raw, Mapping):
        return None
    parts = [raw.get("os"), raw.get("architecture")]
    if raw.get("variant"):
        parts.append(raw.get("variant"))
    if not all(isinstance(part, str) and _PLATFORM_PART.fullmatch(part) for part in parts):
        return None
    return "/".join(str(part) for part in parts)


@dataclass(frozen=True, slots=True)
class Index:
    """An OCI image index or Docker manifest list: its children are manifests (maybe indexes)."""

    media_type: str
    children: tuple[Descriptor, ...]
    #: OCI 1.1 ``subject``: the manifest this one is a referrer of (see :func:`_subject`).
    subject: Digest | None = None
    artifact_type: str = ""


@dataclass(frozen=True, slots=True)
class Image:
    """A single-platform image (or an attestation/artifact manifest): a config and layers."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    #: OCI 1.1 ``subject``: the manifest this one is a referrer of (a signature's or an SBOM's image).
    subject: Digest | None = None
    #: ``artifactType``, else the config's media type (as the referrers API reports it); "" for an index.
    artifact_type: str = ""


Manifest = Index | Image


def parse(body: bytes, content_type: str | None) -> Manifest:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ManifestError(f"body is not JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"body is a JSON {type(doc).__name__}, not an object")
    if doc.get("schemaVersion") == 1:
        raise ManifestError("schema1 manifest: unsupported (deprecated by Docker, refused by containerd 2)")
    media_type = _media_type(doc, content_type)
    if media_type in mt.INDEX_TYPES:
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise ManifestError("index has no 'manifests' list")
        return Index(
            media_type,
            tuple(Descriptor.parse(c, f"manifests[{i}]") for i, c in enumerate(children)),
            _subject(doc),
            _artifact_type(doc, ""),
        )
    if media_type in mt.IMAGE_TYPES:
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ManifestError("manifest has no 'layers' list")
        config = Descriptor.parse(doc.get("config"), "config")
        return Image(
            media_type,
            config,
            tuple(Descriptor.parse(layer, f"layers[{i}]") for i, layer in enumerate(layers)),
            _subject(doc),
            _artifact_type(doc, config.media_type),
        )
    raise ManifestError(f"unsupported manifest media type {media_type[:100]!r}")


def _subject(doc: Mapping[str, Any]) -> Digest | None:
    # Read leniently: a manifest is pullable whatever its `subject` says, and one no client could
    # follow makes it nobody's referrer - never a reason to call the manifest invalid.
    subject = doc.get("subject")
    if not isinstance(subject, Mapping):
        return None
    try:
        return Digest.parse(subject.get("digest"))
    except DigestError:
        return None


def _artifact_type(doc: Mapping[str, Any], config_type: str) -> str:
    declared = doc.get("artifactType")
    return declared[:200] if isinstance(declared, str) and declared else config_type


def _media_type(doc: Mapping[str, Any], content_type: str | None) -> str:
    # The body's own mediaType is authoritative (OCI requires it to match the descriptor); the header is
    # only a fallback because proxies and some registries rewrite it.
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    header = mt.normalise(content_type)
    if header in mt.MANIFEST_TYPES:
        return header
    # OCI made mediaType optional in early versions: fall back to the shape.
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc and "layers" in doc:
        return mt.OCI_MANIFEST
    return declared if isinstance(declared, str) else header or "(none)"
