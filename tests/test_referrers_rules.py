"""The rules regprobe.referrers applies, one table each: the spec's fallback tag, oras-go's lessons from
an answer of the referrers API, what a referrer's manifest may say against its list, and the names
people read. The walks they drive run against real registries and fakes (tests/test_referrers*.py)."""

from __future__ import annotations

import json

import pytest

from regprobe import manifest
from regprobe.digest import Digest
from regprobe.facts import Reply
from regprobe.manifest import Descriptor
from regprobe.mediatypes import EMPTY, OCI_INDEX, OCI_MANIFEST, artifact_name
from regprobe.model import Problem
from regprobe.referrers import Support, ambiguous, fallback_listing, fallback_subject, fallback_tag, mismatch

SUBJECT = Digest("sha256", "a" * 64)
OTHER = Digest("sha256", "b" * 64)


def test_fallback_tag_is_the_spec_s() -> None:
    assert fallback_tag(SUBJECT) == "sha256-" + "a" * 64
    # sha512: the hex is cut to 64 characters, so such a tag cannot be mapped back to its subject.
    assert fallback_tag(Digest("sha512", "c" * 128)) == "sha512-" + "c" * 64
    assert fallback_subject("sha256-" + "a" * 64) == SUBJECT
    for tag in ("sha512-" + "c" * 64, "sha256-" + "a" * 63, "sha256-" + "A" * 64, "sha256-" + "a" * 64 + ".sig", "v1"):
        assert fallback_subject(tag) is None, tag


@pytest.mark.parametrize(
    ("status", "code", "content_type", "learned"),
    [
        (200, None, OCI_INDEX, "api"),
        (200, None, f"{OCI_INDEX}; charset=utf-8", "api"),
        (404, "NAME_UNKNOWN", "application/json", "unknown"),  # the repository, not the endpoint
        (404, None, "text/plain; charset=utf-8", "fallback"),  # distribution 2.8 and 3
        (404, "MANIFEST_UNKNOWN", "application/json", "fallback"),  # GHCR
        (200, None, "application/json", "fallback"),  # another type: not the API
        (400, "DIGEST_INVALID", "application/json", "fallback"),
        (405, None, None, "fallback"),
        (406, None, None, "fallback"),
        (500, "UNKNOWN", "application/json", "fallback"),  # on every try
        (200, None, "text/html; charset=utf-8", "fallback"),  # a catch-all page
    ],
)
def test_what_an_answer_teaches(status: int, code: str | None, content_type: str | None, learned: str) -> None:
    support = Support()
    answer = Reply("http://r/v2/a/referrers/x", status=status, code=code, content_type=content_type)
    assert support.learn(answer) == support.state == learned
    if learned == "fallback":  # learned for the run: a later answer teaches nothing more
        assert support.learn(Reply("http://r", status=200, content_type=OCI_INDEX)) == "fallback"


@pytest.mark.parametrize(
    ("status", "code", "asks_again"),
    [
        (404, "MANIFEST_UNKNOWN", True),  # GHCR: no API - or is it?
        (404, "NOT_FOUND", True),  # Harbor: the API, failing one image's whole list
        (404, None, False),  # distribution's plain text: no API
        (404, "NAME_UNKNOWN", False),  # the repository
        (200, None, False),
        (500, "UNKNOWN", False),
    ],
)
def test_which_answers_are_asked_again(status: int, code: str | None, asks_again: bool) -> None:
    assert ambiguous(Reply("http://r", status=status, code=code)) is asks_again


def _referrer(artifact_type: str | None, config_type: str, subject: Digest | None) -> manifest.Manifest:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": str(OTHER), "size": 2},
        "layers": [],
    }
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    if subject is not None:
        doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": str(subject), "size": 10}
    return manifest.parse(json.dumps(doc).encode(), OCI_MANIFEST)


def _listed(artifact_type: str) -> Descriptor:
    return Descriptor(OCI_MANIFEST, OTHER, 100, artifact_type=artifact_type)


SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@pytest.mark.parametrize(
    ("listed", "own_type", "config_type", "subject", "wrong"),
    [
        (SIG, SIG, EMPTY, SUBJECT, None),
        ("", SIG, EMPTY, SUBJECT, None),  # the list did not say
        (SIG, None, SIG, SUBJECT, None),  # no artifactType: the config's media type is the type
        (EMPTY, BUNDLE, EMPTY, SUBJECT, None),  # cosign's bundles on GHCR, listed by their config
        (SIG, SIG, EMPTY, None, None),  # no subject: taken at its word
        ("application/spdx+json", SIG, EMPTY, SUBJECT, "listed with artifactType 'application/spdx+json'"),
        (SIG, SIG, EMPTY, OTHER, f"its subject is {OTHER}, but it is listed as a referrer of {SUBJECT}"),
    ],
)
def test_a_referrer_is_what_its_list_says(
    listed: str, own_type: str | None, config_type: str, subject: Digest | None, wrong: str | None
) -> None:
    said = mismatch(SUBJECT, _listed(listed), _referrer(own_type, config_type, subject))
    assert (said or "").startswith(wrong or "") and (said is None) == (wrong is None)


def _fallback_reply(body: bytes, status: int = 200, content_type: str = OCI_INDEX) -> Reply:
    return Reply("http://r/v2/a/manifests/sha256-x", status=status, content_type=content_type, body=body,
                 received=len(body), digest=Digest.of(body))  # fmt: skip


def test_a_fallback_tag_that_is_no_list_of_referrers() -> None:
    entry = {"mediaType": OCI_MANIFEST, "digest": str(OTHER), "size": 10, "artifactType": SIG}
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry, entry]}).encode()
    listed = fallback_listing(_fallback_reply(index), SUBJECT, "t")
    assert ([e.digest for e in listed.entries], listed.index, listed.problem) == ([OTHER], Digest.of(index), None)
    # The subject itself (GitLab), an image, a Docker list, no JSON: no referrers (OCI 1.1), no finding.
    assert fallback_listing(_fallback_reply(index), Digest.of(index), "t").entries == ()
    image = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": entry, "layers": []}).encode()
    assert fallback_listing(_fallback_reply(image, content_type=OCI_MANIFEST), SUBJECT, "t").entries == ()
    docker = index.replace(OCI_INDEX.encode(), b"application/vnd.docker.distribution.manifest.list.v2+json")
    assert fallback_listing(_fallback_reply(docker), SUBJECT, "t").entries == ()
    assert fallback_listing(_fallback_reply(b"<html>"), SUBJECT, "t").entries == ()
    # A listed tag that does not resolve: the image's referrers cannot be listed.
    gone = fallback_listing(_fallback_reply(b"", status=404), SUBJECT, "sha256-x")
    assert (gone.problem, gone.entries) == (Problem.MISSING, ())
    assert gone.detail.startswith(f"fallback tag sha256-x, the list of {SUBJECT}'s referrers: GET answered 404")


@pytest.mark.parametrize(
    ("artifact_type", "name"),
    [
        (SIG, "signature (cosign)"),
        (BUNDLE, "signature (Sigstore bundle)"),
        ("application/vnd.cncf.notary.signature", "signature (Notation)"),
        ("application/vnd.in-toto+json", "attestation (in-toto)"),
        ("application/spdx+json", "SBOM (SPDX)"),
        ("text/spdx", "SBOM (SPDX)"),
        ("application/vnd.cyclonedx+json", "SBOM (CycloneDX)"),
        ("application/vnd.example.thing", "artifact"),
        (None, "artifact"),
    ],
)
def test_what_people_call_a_referrer(artifact_type: str | None, name: str) -> None:
    assert artifact_name(artifact_type) == name
