"""OCI 1.1 referrers on the real registries - Debian's 2.8.2 and distribution v3, neither of which serves
the referrers API, so clients keep the fallback tag ``sha256-<hex>`` - made by a real client (oras
``attach``, and ``manifest push`` of a manifest with a ``subject``), broken in storage the way GC and
clean-up scripts break them. Every request regprobe makes is counted in the registry's access log.

The referrers API itself is exercised against fakes that follow the spec (tests/test_referrers_api.py).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .peers import peer
from .registry import FLAVOURS, OCI_INDEX, OCI_MANIFEST, Image, Registry, sha256
from .test_cache import requests
from .util import only

COSIGN_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SPDX = "application/spdx+json"
IN_TOTO = "application/vnd.in-toto+json"
NOTATION = "application/vnd.cncf.notary.signature"
EMPTY = "application/vnd.oci.empty.v1+json"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


@pytest.fixture(params=FLAVOURS, ids=[f"registry{f}" for f in FLAVOURS])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """A registry of each flavour writing its access log; no descriptor cache, so deleted data is
    missing (404) rather than cut short behind a cached descriptor."""
    if request.param == "3":
        peer("registry")
    log = {"level": "error", "accesslog": {"disabled": False}}
    registry = Registry(tmp_path / "registry", cache=False, flavour=request.param, extra={"log": log}).start()
    yield registry
    registry.stop()


class Oras:
    """The oras CLI against one registry, in a directory of its own (oras refuses absolute file paths)."""

    def __init__(self, reg: Registry, workdir: Path) -> None:
        self.binary = peer("oras")
        self.reg = reg
        self.workdir = workdir
        workdir.mkdir(exist_ok=True)

    def run(self, *args: str, output: tuple[str, ...] = ("--format", "json")) -> dict[str, Any]:
        done = subprocess.run(
            [self.binary, *args, "--plain-http", *output],
            cwd=self.workdir,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    def attach(self, subject: str, artifact_type: str, content: bytes, media_type: str) -> str:
        """``oras attach``: a referrer of ``subject`` (``repo:tag`` or ``repo@digest``) holding one file.
        On these registries oras adds it to the fallback tag's index (and deletes the index it replaces)."""
        name = f"{sha256(content)[7:19]}.bin"
        (self.workdir / name).write_bytes(content)
        ref = f"{self.reg.host}/{subject}"
        return str(self.run("attach", "--artifact-type", artifact_type, ref, f"{name}:{media_type}")["digest"])

    def push_with_subject(self, repository: str, subject: str, artifact_type: str, content: bytes) -> str:
        """``oras manifest push`` of an artifact manifest naming ``subject``: oras-go, seeing no
        ``OCI-Subject`` in the answer, keeps the fallback tag's index itself."""
        subject_body = self.reg.http.get(
            f"/v2/{repository}/manifests/{subject}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
        )
        config = self.reg.push_blob(repository, b"{}")
        layer = self.reg.push_blob(repository, content)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": EMPTY, "digest": config, "size": 2},
            "layers": [{"mediaType": artifact_type, "digest": layer, "size": len(content)}],
            "subject": {
                "mediaType": subject_body.headers["content-type"],
                "digest": subject,
                "size": len(subject_body.content),
            },
        }
        body = json.dumps(manifest).encode()
        (self.workdir / "manifest.json").write_bytes(body)
        pushed = self.run(
            "manifest", "push", f"{self.reg.host}/{repository}", "manifest.json", output=("--descriptor",)
        )
        assert pushed["digest"] == sha256(body)
        return sha256(body)


def manifest_of(reg: Registry, repository: str, digest: str) -> dict[str, Any]:
    got = reg.http.get(f"/v2/{repository}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
    assert got.status_code == 200, got.text
    return got.json()  # type: ignore[no-any-return]


def signed_set(reg: Registry, oras: Oras) -> dict[str, Any]:
    """A signed image, an index with an SBOM (itself signed) and an attested child, and an image without
    referrers; returns what the tests aim at."""
    app = reg.push_image("app", "v1")
    multi = reg.push_index("multi", "latest")  # 2 platforms + 2 BuildKit attestations
    reg.push_image("plain", "v1")
    signature = oras.attach("app:v1", COSIGN_SIG, b"cosign signature payload", SIMPLESIGNING)
    sbom = oras.attach("multi:latest", SPDX, b'{"spdxVersion": "SPDX-2.3"}', SPDX)
    sbom_signature = oras.attach(f"multi@{sbom}", NOTATION, b"notation envelope", "application/jose+json")
    arm64 = multi.children[1]
    attestation = oras.push_with_subject(
        "multi", arm64.digest, IN_TOTO, b'{"_type": "https://in-toto.io/Statement/v1"}'
    )
    return {
        "app": app,
        "multi": multi,
        "arm64": arm64,
        "signature": signature,
        "sbom": sbom,
        "sbom_signature": sbom_signature,
        "attestation": attestation,
    }


def run(regprobe: Any, probe_config: Any, reg: Registry, *, referrers: bool = True) -> Any:
    return regprobe(
        "run",
        "-c",
        probe_config({"name": "r", "url": reg.url, "referrers": referrers}),
        "--no-push",
        "--format",
        "json",
    )


def test_a_signed_image_is_healthy_and_costs_one_request_more(
    reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """Every referrer, its blobs and its referrers are walked; the fallback tags are lists, not images.
    The whole cost over walking those tags as images (which reads the same objects): one request for
    the run, asking whether the registry serves the referrers API."""
    pushed = signed_set(reg, Oras(reg, tmp_path / "oras"))
    tags = reg.http.get("/v2/multi/tags/list").json()["tags"]
    assert f"sha256-{pushed['multi'].digest[7:]}" in tags  # oras kept the fallback tag

    _, mark = requests(reg, 0)
    walked = run(regprobe, probe_config, reg)
    on, mark = requests(reg, mark, walked)
    as_images = run(regprobe, probe_config, reg, referrers=False)
    off, mark = requests(reg, mark, as_images)

    assert walked.code == 0, walked.out
    entry = walked.report["registries"][0]
    assert (entry["findings"], entry["dangling"], entry["errors"]) == ([], [], [])
    assert entry["images_checked"] == 3  # app:v1, multi:latest, plain:v1
    assert as_images.code == 0 and as_images.report["registries"][0]["images_checked"] == 3 + 4
    # Manifests: 3 tags, multi's 4 children, 4 fallback indexes (app, multi, its arm64 child, the SBOM),
    # 4 referrers - each once.
    assert on[("GET", "manifest")] == 15
    assert on - off == Counter({("GET", "referrers"): 1})
    assert off[("GET", "referrers")] == 0


def test_broken_referrers_are_named_on_the_subjects_tags(
    reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """A signature whose blob was deleted and an SBOM whose manifest was deleted: each a `referrer`
    finding on the tags of the image it belongs to, naming what it is and what it refers to."""
    oras = Oras(reg, tmp_path / "oras")
    pushed = signed_set(reg, oras)
    multi: Image = pushed["multi"]
    reg.tag("multi", "stable", multi.digest)
    signature_layer = manifest_of(reg, "app", pushed["signature"])["layers"][0]["digest"]
    reg.remove_blob_data(signature_layer)
    reg.remove_revision_link("multi", pushed["sbom"])

    result = run(regprobe, probe_config, reg)

    assert result.code == 1, result.out
    found = {f["digest"]: f for f in result.findings()}
    assert set(found) == {signature_layer, pushed["sbom"]}
    blob = found[signature_layer]
    assert (blob["repository"], blob["kind"], blob["problem"], blob["tags"]) == ("app", "referrer", "missing", ["v1"])
    assert (blob["artifact_type"], blob["artifact"]) == (COSIGN_SIG, "signature (cosign)")
    assert (blob["subject"], blob["parent"]) == (pushed["app"].digest, pushed["signature"])
    assert blob["detail"].startswith("its layer: ")
    sbom = found[pushed["sbom"]]
    assert (sbom["repository"], sbom["kind"], sbom["problem"]) == ("multi", "referrer", "missing")
    assert sbom["tags"] == ["latest", "stable"]
    assert (sbom["artifact_type"], sbom["artifact"], sbom["subject"]) == (SPDX, "SBOM (SPDX)", multi.digest)
    # The SBOM's own signature lost its subject: clutter, listed apart, never a finding.
    entry = result.report["registries"][0]
    tag = f"sha256-{pushed['sbom'][7:]}"
    assert sorted((d["reason"], d["digest"] == pushed["sbom_signature"], d["tag"]) for d in entry["dangling"]) == [
        ("orphaned_fallback_tag", False, tag),
        ("subject_missing", True, tag),
    ]

    text = regprobe("run", "-c", probe_config({"name": "r", "url": reg.url}), "--no-push")
    assert f"referrer {signature_layer[:19]} missing  signature (cosign) of {pushed['app'].digest[:19]}" in text.out
    assert "2 dangling referrers (subject gone: clutter, not broken images)" in text.out


def test_dangling_referrers_page_no_one(reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path) -> None:
    """The signed image is deleted, its signature and fallback tag stay (a registry must accept a
    referrer without its subject): listed under `dangling` and counted, no finding, exit 0."""
    oras = Oras(reg, tmp_path / "oras")
    app = reg.push_image("app", "v1")
    reg.push_image("app", "v2")
    signature = oras.attach("app:v1", COSIGN_SIG, b"signature", SIMPLESIGNING)
    assert reg.http.delete(f"/v2/app/manifests/{app.digest}").status_code == 202  # the tag goes with it

    result = run(regprobe, probe_config, reg)
    metrics = regprobe("run", "-c", probe_config({"name": "r", "url": reg.url}), "--no-push", "--format", "metrics")

    assert result.code == 0, result.out
    entry = result.report["registries"][0]
    assert entry["findings"] == [] and entry["images_checked"] == 1
    tag = f"sha256-{app.digest[7:]}"
    assert sorted((d["reason"], d["digest"], d["subject"], d["artifact_type"]) for d in entry["dangling"]) == sorted(
        [
            ("orphaned_fallback_tag", _index_digest(reg, tag), app.digest, None),
            ("subject_missing", signature, app.digest, COSIGN_SIG),
        ]
    )
    assert 'regprobe_dangling_referrers{registry="r"} 2.0' in metrics.out
    assert 'regprobe_broken_images{registry="r"} 0.0' in metrics.out
    assert 'regprobe_broken_objects{kind="referrer",registry="r"} 0.0' in metrics.out


def _index_digest(reg: Registry, tag: str) -> str:
    got = reg.http.get(f"/v2/app/manifests/{tag}", headers={"Accept": OCI_INDEX})
    assert got.status_code == 200
    return sha256(got.content)


def test_check_walks_referrers_unless_told_not_to(
    reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """``check`` reads no tag list: it asks for the fallback tag of each manifest (a HEAD, free where GETs
    are pulls), and ``--no-referrers`` asks nothing about referrers at all."""
    oras = Oras(reg, tmp_path / "oras")
    app = reg.push_image("app", "v1")
    signature = oras.attach("app:v1", COSIGN_SIG, b"signature", SIMPLESIGNING)
    reg.remove_blob_data(manifest_of(reg, "app", signature)["config"]["digest"])  # the empty config {}

    _, mark = requests(reg, 0)
    checked = regprobe("check", "--plain-http", "--format", "json", f"{reg.host}/app:v1")
    seen, mark = requests(reg, mark, checked)
    unchecked = regprobe("check", "--plain-http", "--no-referrers", "--format", "json", f"{reg.host}/app:v1")
    not_seen, mark = requests(reg, mark, unchecked)

    finding = only(checked.findings())
    assert (checked.code, finding["kind"], finding["subject"], finding["parent"]) == (
        1,
        "referrer",
        app.digest,
        signature,
    )
    assert finding["detail"].startswith("its config: ")
    # the API (404), the fallback tag: a HEAD, then its GET; the signature's own fallback tag: a HEAD (404)
    assert (seen[("GET", "referrers")], seen[("HEAD", "manifest")]) == (1, 2)
    assert unchecked.code == 0 and unchecked.findings() == []
    assert checked.report["registries"][0]["dangling"] is None  # check reads no tag list: nothing to say
    assert not_seen[("GET", "referrers")] == 0 and not_seen[("HEAD", "manifest")] == 0


def test_cosign_and_regprobe_agree_on_a_signature(
    reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """cosign signs with a local key as an OCI 1.1 referrer (no transparency log): healthy, ``cosign
    verify`` passes and regprobe finds nothing; with the signature's payload deleted, cosign verify
    fails and regprobe names the signature on the image's tag."""
    binary = peer("cosign")
    env = {**os.environ, "COSIGN_PASSWORD": "", "COSIGN_EXPERIMENTAL": "1", "TUF_ROOT": str(tmp_path / "tuf")}

    def cosign(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=120
        )

    assert cosign("generate-key-pair").returncode == 0
    app = reg.push_image("app", "v1")
    image = f"{reg.host}/app@{app.digest}"
    signed = cosign(
        "sign", "--key", "cosign.key", "--tlog-upload=false", "--registry-referrers-mode=oci-1-1",
        "--allow-http-registry", "-y", image,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr

    def verify() -> int:
        flags = ("--insecure-ignore-tlog=true", "--experimental-oci11", "--allow-http-registry")
        return cosign("verify", "--key", "cosign.pub", *flags, image).returncode

    assert verify() == 0
    healthy = run(regprobe, probe_config, reg)
    assert healthy.code == 0 and healthy.findings() == [], healthy.out

    index = reg.http.get(f"/v2/app/manifests/sha256-{app.digest[7:]}", headers={"Accept": OCI_INDEX}).json()
    signature = only(index["manifests"])["digest"]
    payload = manifest_of(reg, "app", signature)["layers"][0]["digest"]
    reg.remove_blob_data(payload)

    assert verify() != 0
    broken = run(regprobe, probe_config, reg)
    finding = only(broken.findings())
    assert (broken.code, finding["kind"], finding["tags"], finding["digest"]) == (1, "referrer", ["v1"], payload)
    assert (finding["artifact"], finding["subject"], finding["parent"]) == ("signature (cosign)", app.digest, signature)


def test_a_fallback_tag_that_no_longer_resolves_is_the_image_s_finding(
    reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """The tag list lists the fallback tag, and it answers 404 (its index's revision link is gone): clients
    find no signature at all. A `referrer` finding on the image, naming no referrer (none can be read)."""
    app = reg.push_image("app", "v1")
    Oras(reg, tmp_path / "oras").attach("app:v1", COSIGN_SIG, b"signature", SIMPLESIGNING)
    tag = f"sha256-{app.digest[7:]}"
    reg.remove_revision_link("app", _index_digest(reg, tag))

    result = run(regprobe, probe_config, reg)

    finding = only(result.findings())
    assert (result.code, finding["kind"], finding["problem"], finding["tags"]) == (1, "referrer", "missing", ["v1"])
    assert (finding["digest"], finding["subject"], finding["parent"], finding["artifact_type"]) == (
        None,
        app.digest,
        app.digest,
        None,
    )
    assert finding["detail"].startswith(f"fallback tag {tag}, the list of {app.digest}'s referrers: GET answered 404")
    assert result.report["registries"][0]["dangling"] == []


def test_a_run_that_spends_its_budget_still_counts_the_dangling(
    reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """With a ledger a run may verify only part of the registry (continuous verification): the dangling
    are still counted whole - a HEAD for each fallback tag whose subject no walk met this run."""
    oras = Oras(reg, tmp_path / "oras")
    gone = reg.push_image("gone", "v1")
    reg.push_image("gone", "v2")
    oras.attach("gone:v1", COSIGN_SIG, b"signature", SIMPLESIGNING)
    assert reg.http.delete(f"/v2/gone/manifests/{gone.digest}").status_code == 202
    for name in ("a", "b", "c"):
        reg.push_image(name, "v1")
        oras.attach(f"{name}:v1", COSIGN_SIG, name.encode(), SIMPLESIGNING)
    config = probe_config(
        {"name": "r", "url": reg.url, "concurrency": 1}, state_dir=str(tmp_path / "state"), budget={"requests": 3}
    )

    result = regprobe("run", "-c", config, "--no-push", "--format", "json")
    metrics = regprobe("run", "-c", config, "--no-push", "--format", "metrics")

    entry = result.report["registries"][0]
    assert (result.code, entry["complete"], entry["stopped"]) == (0, True, "budget")
    assert entry["images_checked"] < 4  # not every tag: the budget
    assert sorted(d["reason"] for d in entry["dangling"]) == ["orphaned_fallback_tag", "subject_missing"]
    assert 'regprobe_dangling_referrers{registry="r"} 2.0' in metrics.out
