"""The OCI 1.1 referrers API, which no registry that runs here serves: fakes that follow the spec and the
registries' documented answers (tests/personalities.py) - zot (the spec, an empty list for a subject it
does not hold), Harbor (one broken referrer makes the whole answer an error) - and GitLab, whose fallback
tag ``sha256-<hex>`` answers the subject itself. The fallback tag on real registries, made by real
clients: tests/test_referrers.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from regprobe.auth import RegistryAuth
from regprobe.client import ClientSettings, RegistryClient
from regprobe.digest import Digest
from regprobe.referrers import NO_SUBJECT, split
from regprobe.walk import RepositoryWalk, WalkPolicy

from .personalities import PASSWORD, PERSONALITIES, USER, FakeRegistry, with_changes
from .registry import OCI_INDEX, OCI_MANIFEST, sha256
from .test_personalities import config_for
from .util import only

SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SPDX = "application/spdx+json"
NOTATION = "application/vnd.cncf.notary.signature"
EMPTY = "application/vnd.oci.empty.v1+json"


def push_referrer(fake: FakeRegistry, repository: str, subject: str, artifact_type: str, content: bytes) -> str:
    """An artifact manifest naming ``subject``, pushed by digest as clients push to a registry with the API;
    the registry indexes it under its subject."""
    media_type, subject_body = fake.manifests[subject]
    layer = {"mediaType": artifact_type, "digest": fake.push_blob(repository, content), "size": len(content)}
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY, "digest": fake.push_blob(repository, b"{}"), "size": 2},
            "layers": [layer],
            "subject": {"mediaType": media_type, "digest": subject, "size": len(subject_body)},
        }
    ).encode()
    return fake.push_manifest(repository, sha256(body), body, OCI_MANIFEST)


def referrer_requests(fake: FakeRegistry) -> list[str]:
    return [path for method, path, _ in fake.requests if "/referrers/" in path]


def run(regprobe: Any, fake: FakeRegistry, tmp_path: Path, probe_config: Any, **extra: Any) -> Any:
    return regprobe("run", "-c", config_for(fake, tmp_path, probe_config, **extra), "--no-push", "--format", "json")


def test_the_api_costs_one_request_per_manifest(serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any) -> None:
    """zot: each manifest's referrers asked for once - the image, the index and its children, and each
    referrer (a signature of an SBOM is walked too); nothing else is asked about them."""
    fake = serve(with_changes("zot", page=None))
    app, multi = fake.repository("app"), fake.repository("multi")
    image = fake.push_image(app, "v1")
    signature = push_referrer(fake, app, image.digest, SIGNATURE, b"signature")
    index = fake.push_index(multi, "latest")
    sbom = push_referrer(fake, multi, index.digest, SPDX, b'{"spdxVersion": "SPDX-2.3"}')
    push_referrer(fake, multi, sbom, NOTATION, b"envelope")

    result = run(regprobe, fake, tmp_path, probe_config)

    assert result.code == 0, result.out
    entry = result.report["registries"][0]
    assert (entry["findings"], entry["dangling"], entry["images_checked"]) == ([], [], 2)
    asked = referrer_requests(fake)
    # app:v1 and its signature; the index, its 2 children, the SBOM and its signature
    assert len(asked) == len(set(asked)) == 7
    assert f"/v2/{app}/referrers/{signature}" in asked
    assert not any("sha256-" in path for _, path, _ in fake.requests)  # no fallback tag asked for


def test_a_broken_referrer_on_the_second_page_is_found(
    serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any
) -> None:
    """zot pages by two here: the third referrer is on the second page, found through `Link`. A referrer
    the registry still lists but whose manifest is gone is named with the type the list gives it."""
    fake = serve(PERSONALITIES["zot"])
    app = fake.repository("app")
    image = fake.push_image(app, "v1")
    referrers = [push_referrer(fake, app, image.digest, SIGNATURE, f"signature {i}".encode()) for i in range(3)]
    gone = referrers[-1]  # listed in the order pushed: the last is on page 2
    del fake.manifests[gone]

    result = run(regprobe, fake, tmp_path, probe_config)

    finding = only(result.findings())
    assert (result.code, finding["digest"], finding["kind"], finding["problem"]) == (1, gone, "referrer", "missing")
    assert (finding["artifact_type"], finding["subject"], finding["tags"]) == (SIGNATURE, image.digest, ["v1"])
    assert len(referrer_requests(fake)) == 1 + 1 + 2  # the image's two pages, one per live referrer


def test_harbor_fails_the_whole_list_for_one_broken_referrer(
    serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any
) -> None:
    """Harbor answers 404 NOT_FOUND for the whole list when one referrer is gone: clients see no signature
    at all. The first image asked about is that one; a 404 with a code is asked again about a digest
    nothing has ({}: the API is served), so it is the image's finding - not "no API"."""
    fake = serve(PERSONALITIES["harbor"])
    app = fake.repository("app")
    broken = fake.push_image(app, "b")
    gone = push_referrer(fake, app, broken.digest, SIGNATURE, b"signature b")
    del fake.manifests[gone]

    result = run(regprobe, fake, tmp_path, probe_config)

    finding = only(result.findings())
    assert (result.code, finding["kind"], finding["problem"], finding["tags"]) == (1, "referrer", "missing", ["b"])
    assert (finding["digest"], finding["subject"], finding["artifact_type"]) == (None, broken.digest, None)
    assert "404 NOT_FOUND" in finding["detail"] and "clients cannot list its referrers" in finding["detail"]
    assert referrer_requests(fake) == [f"/v2/{app}/referrers/{broken.digest}", f"/v2/{app}/referrers/{NO_SUBJECT}"]


def test_ghcr_404_with_a_code_is_asked_again_once(serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any) -> None:
    """GHCR answers 404 MANIFEST_UNKNOWN: asked again about a digest nothing has (404 again: no API), then
    never more this run; the images are walked, nothing is found."""
    fake = serve(PERSONALITIES["ghcr"])
    fake.push_image(fake.repository("app"), "v1")
    fake.push_index(fake.repository("multi"), "latest")

    result = run(regprobe, fake, tmp_path, probe_config)

    assert (result.code, result.findings()) == (0, [])
    asked = referrer_requests(fake)
    assert len(asked) == 2 and asked[1].endswith(f"/referrers/{NO_SUBJECT}")


def test_a_page_where_the_api_would_be_is_no_api(serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any) -> None:
    """A catch-all route answering 200 with an HTML page: the registry does not serve the API - asked
    once, then no more; neither a finding nor an error of the run."""
    fake = serve(with_changes("distribution-v3", referrers_api="page"))
    fake.push_image(fake.repository("app"), "v1")
    fake.push_index(fake.repository("multi"), "latest")

    result = run(regprobe, fake, tmp_path, probe_config)

    entry = result.report["registries"][0]
    assert (result.code, entry["complete"], entry["errors"], entry["findings"]) == (0, True, [], [])
    assert len(referrer_requests(fake)) == 1


def test_a_dangling_referrer_is_invisible_through_the_api(
    serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any
) -> None:
    """zot lists no referrers for a subject it does not hold, and nothing lists manifests: a referrer whose
    subject is gone is neither a finding nor seen (on Harbor, deleting a subject deletes its referrers)."""
    fake = serve(PERSONALITIES["zot"])
    app = fake.repository("app")
    fake.push_image(app, "v1")
    gone = fake.push_image(app, "v2")
    push_referrer(fake, app, gone.digest, SIGNATURE, b"signature")
    del fake.manifests[gone.digest], fake.tags[app]["v2"]

    result = run(regprobe, fake, tmp_path, probe_config)

    entry = result.report["registries"][0]
    assert (result.code, entry["findings"], entry["dangling"]) == (0, [], [])


def test_gitlab_fallback_tag_answering_the_subject_is_no_list_of_referrers(serve: Any) -> None:
    """GitLab reads the fallback tag sha256-<hex> as the digest: an index's own children would pass for its
    referrers. A body that hashes to the subject is no list - the client's index under that tag (which
    names a referrer that is gone) is never reached, and nothing is reported."""
    fake = serve(PERSONALITIES["gitlab"])
    multi = fake.repository("multi")
    index = fake.push_index(multi, "latest")
    listed = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha256(b"gone"), "size": 4, "artifactType": SIGNATURE}
    ]}).encode()  # fmt: skip
    fallback = f"sha256-{index.digest[7:]}"
    fake.push_manifest(multi, fallback, listed, OCI_INDEX)
    assert fake.tags[multi][fallback] == sha256(listed)

    images, fallbacks = split(fake.tags[multi])
    assert (images, fallbacks) == (["latest"], {Digest.parse(index.digest): fallback})

    async def walk() -> RepositoryWalk:
        settings = ClientSettings(fake.url, auth=RegistryAuth(USER, PASSWORD))
        async with RegistryClient(settings) as client:
            walked = RepositoryWalk(client, multi, WalkPolicy(), fallback_tags=fallbacks)
            for tag in images:
                await walked.walk_tag(tag)
            await walked.settle()
            return walked

    walked = asyncio.run(walk())

    assert walked.nodes[("referrers", Digest.parse(index.digest))].children == ()
    assert walked.findings() == []
