"""Media types regprobe understands, and how each is walked."""

from __future__ import annotations

from typing import Final

OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1: Final = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES: Final = frozenset({OCI_INDEX, DOCKER_LIST})
IMAGE_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_TYPES: Final = INDEX_TYPES | IMAGE_TYPES

# Every manifest type we can walk must be offered: distribution answers 404 MANIFEST_UNKNOWN for an OCI
# manifest when the OCI types are not accepted (a false "missing"), and rewrites a manifest list to a
# single platform's manifest when the list type is absent.
ACCEPT: Final = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

# Layers the registry is not expected to serve: their data lives at the descriptor's `urls`.
FOREIGN_LAYER_TYPES: Final = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


def normalise(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


#: OCI 1.1's empty descriptor (``{}``): the config of most artifacts (oras, cosign's OCI 1.1 mode).
EMPTY: Final = "application/vnd.oci.empty.v1+json"

#: What people call a referrer, from its artifact type: (a part of the media type, the name). First match
#: wins; matched on the lower-cased type, so versions and suffixes (``+json``, ``;version=0.3``) do not matter.
_ARTIFACT_NAMES: Final = (
    ("application/vnd.dev.cosign.artifact.sig", "signature (cosign)"),
    ("application/vnd.dev.cosign.simplesigning", "signature (cosign)"),
    ("application/vnd.dev.cosign.artifact.sbom", "SBOM (cosign)"),
    ("application/vnd.dev.cosign.artifact.att", "attestation (cosign)"),
    ("application/vnd.dev.sigstore.bundle", "signature (Sigstore bundle)"),
    ("application/vnd.cncf.notary.signature", "signature (Notation)"),
    ("application/vnd.in-toto", "attestation (in-toto)"),
    ("application/vnd.dsse.envelope", "attestation (DSSE)"),
    ("spdx", "SBOM (SPDX)"),
    ("cyclonedx", "SBOM (CycloneDX)"),
    ("application/vnd.syft", "SBOM (Syft)"),
)


def artifact_name(artifact_type: str | None) -> str:
    """``signature (cosign)``, ``SBOM (SPDX)``, ``attestation (in-toto)``: what a referrer is, for people;
    ``artifact`` for a type not known here."""
    lowered = (artifact_type or "").lower()
    return next((name for part, name in _ARTIFACT_NAMES if part in lowered), "artifact")
