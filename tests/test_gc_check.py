"""`regprobe gc-check` against the real collection: distribution's own dry run is the plan, the real
`garbage-collect` is the judge, and regprobe's HTTP walk after it says what actually broke - on Debian's
2.8.2 and on distribution v3 (the pinned peer), whose collections differ (v3 keeps a tagged index's
children, PR #4285) and whose dry runs print different formats.

Each test gets a registry of its own (gc-check scans the whole root; a registry starts in ~0.1 s). The
registry is stopped while it is collected, as docs/gc.md tells operators to do: a running registry's
descriptor cache would hide deleted blobs from HEAD requests (REGISTRY-FACTS.md).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .peers import peer
from .registry import (
    DOCKER_CONFIG,
    DOCKER_FOREIGN,
    DOCKER_MANIFEST,
    FLAVOURS,
    Image,
    Registry,
)
from .test_deploy import ROOT, _kubernetes_validate, _show
from .test_referrers import COSIGN_SIG, NOTATION, SIMPLESIGNING, SPDX, Oras

V2 = "docker/registry/v2"


def start(workdir: Path, flavour: str) -> Registry:
    if flavour == "3":
        peer("registry")
    return Registry(workdir, flavour=flavour).start()


@pytest.fixture(params=FLAVOURS, ids=[f"registry{f}" for f in FLAVOURS])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """A registry of each flavour: every test that runs the real collection runs it on both."""
    registry = start(tmp_path / "registry", request.param)
    yield registry
    registry.stop()


@pytest.fixture
def reg2(tmp_path: Path) -> Iterator[Registry]:
    """Storage for plans written by hand: the layout is the same in both flavours."""
    registry = start(tmp_path / "registry", "2")
    yield registry
    registry.stop()


def collect(reg: Registry, *flags: str) -> str:
    """``registry garbage-collect`` on the stopped registry; its stdout (the plan)."""
    reg.stop()
    done = subprocess.run(
        [reg.binary, "garbage-collect", *flags, str(reg.config_path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return str(path)


def gc_check(regprobe: Any, reg: Registry, plan: str, *args: str) -> Any:
    return regprobe("gc-check", str(reg.root), "--plan", plan, "--format", "json", *args)


def walk(reg: Registry, regprobe: Any, probe_config: Any) -> Any:
    """regprobe's own HTTP walk of every tag, on a freshly started registry (no stale cache)."""
    reg.start()
    return regprobe("run", "-c", probe_config({"name": "gc", "url": reg.url}), "--no-push", "--format", "json")


def keyed(findings: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:
    return {(f["repository"], f["digest"]): (f["kind"], tuple(f["tags"])) for f in findings}


def push_referrer(reg: Registry, repository: str, subject: str) -> str:
    """An SBOM of ``subject`` as OCI 1.1 pushes it where the referrers API exists: by digest, no tag, no
    fallback index - so nothing but ``subject`` links it, and distribution's collection never follows
    that (EVENTS-AND-REFERRERS.md)."""
    sbom = json.dumps({"spdxVersion": "SPDX-2.3", "name": os.urandom(8).hex()}).encode()
    return reg.push_referrer(repository, subject, "application/spdx+json", sbom, fallback=False)


def push_everything(reg: Registry) -> dict[str, Any]:
    """Every shape the collection treats differently; returns what the tests aim at."""
    shared = b"shared-base-layer" * 200
    old = reg.push_image("app", "v1", layers=[shared, b"old-app" * 100])
    new = reg.push_image("app", "v1", layers=[shared, b"new-app" * 100])  # overwrites v1: old is untagged
    reg.tag("app", "stable", new.digest)
    reg.push_image("base", "1.0", layers=[shared])  # the same layer in another repository
    amd64 = b"amd64-layer" * 100
    kids = [reg.push_image("multi", None, layers=[amd64]), reg.push_image("multi", None, platform="linux/arm64")]
    multi = reg.push_index("multi", "latest", children=kids)  # OCI index, two platforms, two attestations
    # The same manifest as multi's amd64 child, tagged in another repository only: kept there.
    assert reg.push_image("pinned", "amd64", layers=[amd64]).digest == kids[0].digest
    reg.tag("multi", "v2", multi.digest)
    referrer = push_referrer(reg, "multi", multi.digest)
    docker_list = reg.push_index("list", "stable", docker=True)
    single = reg.push_image("single", "1.0")
    return {"old": old, "new": new, "multi": multi, "list": docker_list, "single": single, "referrer": referrer}


def check_digest(reg: Registry, regprobe: Any, repository: str, digest: str) -> Any:
    """regprobe's walk of one manifest by digest: what a verifier that knows a referrer meets."""
    return regprobe("check", "--plain-http", "--format", "json", f"{reg.host}/{repository}@{digest}")


def test_prediction_is_what_the_real_collection_breaks(
    reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    pushed = push_everything(reg)
    multi: Image = pushed["multi"]
    docker_list: Image = pushed["list"]
    old: Image = pushed["old"]
    referrer: str = pushed["referrer"]
    assert check_digest(reg, regprobe, "multi", referrer).code == 0

    plan = collect(reg, "--dry-run", "--delete-untagged")
    v3 = reg.flavour == "3"
    old_line = f"manifest eligible for deletion: {{app {old.digest} [stable v1]}}" if v3 else old.digest
    assert old_line in plan  # the overwritten image goes ...
    assert f"blob eligible for deletion: {old.layers[1]}" in plan
    predicted = gc_check(regprobe, reg, write(tmp_path, "plan.txt", plan))

    assert predicted.code == 1, predicted.err
    # v3 unlinks the overwritten image's own layer from app, and the referrer's SBOM and its empty
    # config `{}` (no attestation config is `{}`: each lists its statement) from multi; 2.8 removes no
    # layer links.
    assert predicted.report["plan"] == {
        "manifests": 2 if v3 else 8,
        "blobs": plan.count("blob eligible for deletion:"),
        "layer_links": 3 if v3 else 0,
    }
    # 2.8 removes every index child (children carry no tag); v3 marks a tagged index's children and
    # keeps them - including multi's amd64 child, which is tagged only in `pinned`.
    children = {("multi", c.digest) for c in multi.children} | {("list", c.digest) for c in docker_list.children}
    assert len(children) == 6  # 2 platforms + 2 attestations, 2 platforms
    expected = (set() if v3 else children) | {("multi", referrer)}
    # ... and the overwritten image is not reported: no tag needs it, though it shares a layer with
    # app:v1 and base:1.0.
    assert set(keyed(predicted.report["findings"])) == expected
    deleted = set(re.findall(r"^blob eligible for deletion: (\S+)$", plan, re.MULTILINE))
    details = set()
    for finding in predicted.report["findings"]:
        if finding["digest"] == referrer:
            assert (finding["kind"], finding["reason"]) == ("referrer", "untagged referrer")
            assert finding["parent"] == finding["subject"] == multi.digest
            assert finding["tags"] == ["latest", "v2"]
            assert (finding["artifact_type"], finding["artifact"]) == ("application/spdx+json", "SBOM (SPDX)")
            continue
        parent = multi if finding["repository"] == "multi" else docker_list
        assert finding["parent"] == parent.digest
        assert finding["reason"] == "untagged child manifest"
        assert finding["tags"] == (["latest", "v2"] if parent is multi else ["stable"])
        child = next(c for c in parent.children if c.digest == finding["digest"])
        lost = len({child.digest, child.config, *child.layers} & deleted)
        details.add(finding["detail"])
        assert finding["detail"] == (
            f"its revision link is removed, and {lost} of the blobs it needs are deleted"
            if lost
            else "its revision link is removed; the blobs it needs are kept"  # multi's amd64 child: pinned keeps them
        )
    assert v3 or len(details) > 1
    findings = predicted.report["findings"]
    # repository, then the image's own objects before its referrers, then digest
    assert findings == sorted(findings, key=lambda f: (f["repository"], f["kind"] == "referrer", f["digest"]))

    real = collect(reg, "--delete-untagged")
    broken = walk(reg, regprobe, probe_config)

    # Every tag's pull fails exactly where predicted; the referrer is found by nothing but its digest
    # (neither registry serves the referrers API, and it has no fallback tag), and that now fails.
    tagged = {k: v for k, v in keyed(predicted.report["findings"]).items() if k[1] != referrer}
    assert broken.code == (1 if tagged else 0), broken.out
    assert keyed(broken.findings()) == tagged
    assert {f["problem"] for f in broken.findings()} <= {"missing"}
    gone = check_digest(reg, regprobe, "multi", referrer)
    assert gone.code == 1
    assert [(f["repository"], f["digest"], f["problem"]) for f in gone.findings()] == [("multi", referrer, "missing")]

    # The real run prints what the dry run printed; what it names is gone now, so it is no plan.
    assert sorted(real.splitlines()) == sorted(plan.splitlines())
    reg.stop()
    after = gc_check(regprobe, reg, write(tmp_path, "real.txt", real))
    assert after.code == 2
    assert "does not match ROOT" in after.err and "real collection" in after.err


def test_delete_untagged_is_safe_on_v3_only(
    reg: Registry, regprobe: Any, probe_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tagged multi-platform image, nothing else: 2.8's --delete-untagged breaks it, v3's does not -
    and gc-check says so before, read from stdin as in the pipeline docs/gc.md shows."""
    multi = reg.push_index("multi", "latest", attestations=False)
    plan = collect(reg, "--dry-run", "--delete-untagged")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(plan.encode())))

    result = regprobe("gc-check", str(reg.root), "--plan", "-")

    if reg.flavour == "3":
        assert result.code == 0, result.out
        assert "SAFE: no tag needs what the collection deletes" in result.out.splitlines()[0]
    else:
        assert result.code == 1, result.out
        assert "UNSAFE" in result.out.splitlines()[0]
        assert all(c.digest[7:19] in result.out for c in multi.children)
    collect(reg, "--delete-untagged")
    after = walk(reg, regprobe, probe_config)
    assert after.code == result.code
    assert {f["digest"] for f in after.findings()} == (
        set() if reg.flavour == "3" else {c.digest for c in multi.children}
    )


def test_referrers_on_a_fallback_tag_go_with_2_8_delete_untagged_only(
    reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """oras attaches a signature and an SBOM: on these registries, children of the subject's fallback tag
    index. 2.8's --delete-untagged collects every index child, referrers included; v3 keeps a tagged
    index's children. gc-check names them as the referrers they are, on the tags of the image they
    belong to - and after the real collection regprobe's walk finds exactly what it predicted."""
    oras = Oras(reg, tmp_path / "oras")
    app = reg.push_image("app", "v1")
    reg.tag("app", "stable", app.digest)
    multi = reg.push_index("multi", "latest", attestations=False)
    signature = oras.attach("app:v1", COSIGN_SIG, b"signature", SIMPLESIGNING)
    sbom = oras.attach("multi:latest", SPDX, b'{"spdxVersion": "SPDX-2.3"}', SPDX)
    # Only the fallback index says whose this one is: its manifest names no subject.
    unnamed = reg.push_referrer("app", app.digest, NOTATION, b"envelope", names_subject=False)

    plan = collect(reg, "--dry-run", "--delete-untagged")
    predicted = gc_check(regprobe, reg, write(tmp_path, "plan.txt", plan))

    referrers = {
        (f["repository"], f["digest"]): (tuple(f["tags"]), f["subject"], f["artifact_type"], f["reason"])
        for f in predicted.report["findings"]
        if f["kind"] == "referrer"
    }
    if reg.flavour == "3":
        assert (predicted.code, predicted.report["findings"]) == (0, [])
    else:
        assert predicted.code == 1
        assert referrers == {
            ("app", signature): (("stable", "v1"), app.digest, COSIGN_SIG, "untagged referrer"),
            ("app", unnamed): (("stable", "v1"), app.digest, NOTATION, "untagged referrer"),
            ("multi", sbom): (("latest",), multi.digest, SPDX, "untagged referrer"),
        }
        text = regprobe("gc-check", str(reg.root), "--plan", write(tmp_path, "plan.txt", plan))
        assert f"referrer {signature[:19]} untagged referrer  signature (cosign) of {app.digest[:19]}" in text.out
    collect(reg, "--delete-untagged")
    after = walk(reg, regprobe, probe_config)
    assert keyed(after.findings()) == keyed(predicted.report["findings"])
    assert after.code == predicted.code


def test_collection_without_delete_untagged_is_safe(
    reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    pushed = push_everything(reg)
    orphan = reg.push_blob("app", b"an upload no manifest uses")

    plan = collect(reg, "--dry-run")
    predicted = gc_check(regprobe, reg, write(tmp_path, "plan.txt", plan))

    assert predicted.code == 0, predicted.out + predicted.err
    assert predicted.report["findings"] == []
    # v3 also removes app's link to the upload.
    assert predicted.report["plan"] == {"manifests": 0, "blobs": 1, "layer_links": 1 if reg.flavour == "3" else 0}
    assert f"blob eligible for deletion: {orphan}" in plan
    text = regprobe("gc-check", str(reg.root), "--plan", write(tmp_path, "plan.txt", plan))
    assert text.code == 0 and "SAFE" in text.out.splitlines()[0]

    real = collect(reg)
    healthy = walk(reg, regprobe, probe_config)
    assert healthy.code == 0, healthy.out
    assert healthy.findings() == []
    assert healthy.report["registries"][0]["images_checked"] == 8
    assert pushed["old"].digest not in healthy.out
    assert check_digest(reg, regprobe, "multi", pushed["referrer"]).code == 0

    # Its output names a blob that is gone now: the log of a collection that ran, not a plan.
    reg.stop()
    after = gc_check(regprobe, reg, write(tmp_path, "real.txt", real))
    assert after.code == 2
    assert f"blob {orphan} is not in ROOT" in after.err


def test_nothing_to_delete_is_a_plan(reg: Registry, regprobe: Any, tmp_path: Path) -> None:
    reg.push_image("single", "1.0")
    plan = collect(reg, "--dry-run", "--delete-untagged")
    assert "0 blobs and 0 manifests eligible for deletion" in plan

    result = gc_check(regprobe, reg, write(tmp_path, "plan.txt", plan))

    assert result.code == 0, result.err
    assert result.report["plan"] == {"manifests": 0, "blobs": 0, "layer_links": 0}


def test_repository_without_tags(reg: Registry, regprobe: Any, tmp_path: Path) -> None:
    """Images pushed by digest only: no tags directory. 2.8's --delete-untagged dry run fails on it (its
    stdout stops before the summary); v3 says so in a line of its own and keeps those revision links
    (deleting their data: no tag needs them)."""
    reg.push_image("untagged", None)
    reg.push_image("app", "v1")
    reg.stop()
    dry = subprocess.run(
        [reg.binary, "garbage-collect", "--dry-run", "--delete-untagged", str(reg.config_path)],
        capture_output=True,
        text=True,
        check=False,
    )

    result = gc_check(regprobe, reg, write(tmp_path, "plan.txt", dry.stdout))

    if reg.flavour == "3":
        assert "manifest tags path of repository untagged does not exist" in dry.stdout
        assert result.code == 0, result.err
        assert result.report["plan"]["manifests"] == 0
    else:
        assert dry.returncode != 0
        assert result.code == 2
        assert "the dry run failed" in result.err


def push_foreign(reg: Registry, repository: str, tag: str, foreign: str) -> str:
    """A Windows-style image whose only layer is the foreign ``foreign`` (served from its `urls`)."""
    config = b'{"os": "windows", "rootfs": {"type": "layers"}}'
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": reg.push_blob(repository, config), "size": len(config)},
            "layers": [
                {"mediaType": DOCKER_FOREIGN, "digest": foreign, "size": 64, "urls": ["https://example.invalid/l"]}
            ],
        }
    ).encode()
    return reg.push_manifest(repository, tag, body, DOCKER_MANIFEST)


def test_plan_older_than_storage(reg: Registry, regprobe: Any, tmp_path: Path) -> None:
    """Pushed between the dry run and the check, each reusing what the plan deletes: a tag on the
    overwritten image, the same image in another repository, two new images sharing its layer, one blob
    as the config of one image and a layer of another, a foreign layer. (The real collection computes
    its own plan; one run while the registry takes pushes is exactly this race, distribution #2945.)"""
    unique = b"only the old image has this layer" * 10
    old = reg.push_image("app", "v1", layers=[unique])
    reg.push_image("app", "v1")
    reg.push_image("copy", "keep")
    both = {"both": "a config that is also a layer"}  # config bytes no other image has
    config_bytes = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}, **both}, sort_keys=True
    )
    mixed = reg.push_blob("copy", config_bytes.encode())
    foreign = reg.push_blob("copy", os.urandom(64))  # uploaded, never used: the plan deletes it
    plan = collect(reg, "--dry-run", "--delete-untagged")
    for blob in (old.layers[0], old.digest, mixed, foreign):
        assert f"blob eligible for deletion: {blob}" in plan
    reg.start()
    reg.tag("app", "old", old.digest)
    reuse = [
        reg.push_image("app", t, layers=[unique], platform=p) for t, p in (("r1", "linux/arm64"), ("r2", "linux/s390x"))
    ]
    assert reg.push_image("copy", "old", layers=[unique]).digest == old.digest
    # An index whose first child has the blob as its config, its second as a layer: the walk meets the
    # layer first, the layer's image has the smaller digest, and the finding must still say config (as
    # fsck names it), under the config's image.
    as_layer = reg.push_image("copy", None, layers=[config_bytes.encode()], platform="linux/arm64")
    candidates = (reg.push_image("copy", None, config_extra=both) for _ in range(64))
    as_config = next(image for image in candidates if image.digest > as_layer.digest)
    assert as_config.config == mixed and as_layer.layers == [mixed]
    index = reg.push_index("copy", "both", children=[as_config, as_layer], attestations=False)
    push_foreign(reg, "copy", "windows", foreign)
    reg.stop()

    result = gc_check(regprobe, reg, write(tmp_path, "plan.txt", plan))

    found = {
        (f["repository"], f["kind"], f["digest"]): (f["reason"], f["tags"], f["parent"])
        for f in result.report["findings"]
    }
    assert result.code == 1
    assert found == {
        ("app", "manifest", old.digest): ("untagged manifest", ["old"], None),
        ("app", "layer", old.layers[0]): ("blob", ["r1", "r2"], min(r.digest for r in reuse)),
        ("copy", "manifest", old.digest): ("blob", ["old"], None),
        ("copy", "config", mixed): ("blob", ["both"], as_config.digest),
    }
    assert index.digest  # the index itself is new: nothing of it is in the plan


SUMMARY_0 = b"\n0 blobs marked, 0 blobs and 0 manifests eligible for deletion\n"
#: Plans checked against a registry holding app:v1 (``DIGEST`` is its manifest), each with the start of
#: the message it is refused with.
GARBAGE = {
    "empty": (b"", "empty, or no line of it is garbage-collect output"),
    "blank lines": (b"\n\n\n", "empty, or no line of it is garbage-collect output"),
    "random text": (b"hello world\nthis is not a plan\n", "line 1: 'hello world' is not a garbage-collect line"),
    "binary": (b"\xff\xfe" + os.urandom(4096), "line 1: "),
    "json": (b'{"manifests": [], "blobs": []}\n', "line 1: "),
    "real collection log": (
        b'time="2026-01-01T00:00:00Z" level=info msg="deleting blob: /docker/registry/v2/blobs/sha256/ab/abc"\n',
        "line 1: ",
    ),
    "no summary": (b"app\napp: marking manifest DIGEST \n", "no summary line"),
    "summary blob count wrong": (
        b"app\n\n1 blobs marked, 2 blobs and 0 manifests eligible for deletion\n"
        b"blob eligible for deletion: sha256:" + b"b" * 64 + b"\n",
        "the summary announces 2 blobs and 0 manifests, the plan lists 1 and 0",
    ),
    "summary manifest count wrong": (
        b"app\nmanifest eligible for deletion: DIGEST\n"
        b"\n0 blobs marked, 0 blobs and 2 manifests eligible for deletion\n",
        "the summary announces 0 blobs and 2 manifests, the plan lists 0 and 1",
    ),
    "manifest before any repository": (
        b"manifest eligible for deletion: DIGEST\n\n0 blobs marked, 0 blobs and 1 manifests eligible for deletion\n",
        "line 1: ",
    ),
    "bad digest": (
        b"app\nmanifest eligible for deletion: sha256:xyz\n"
        b"\n0 blobs marked, 0 blobs and 1 manifests eligible for deletion\n",
        "line 2: ",
    ),
    "blob line before the summary": (
        b"app\nblob eligible for deletion: sha256:" + b"d" * 64 + b"\n" + SUMMARY_0,
        "line 2: ",
    ),
    "marking line outside its repository's block": (
        b"app\nother: marking manifest DIGEST \n" + SUMMARY_0,
        "line 2: ",
    ),
    "repository line after the summary": (b"app\n" + SUMMARY_0 + b"app\n", "line 4: "),
    "3: quiet": (b"", "empty, or no line of it is garbage-collect output (3's --quiet prints nothing)"),
    "3: manifest of a repository not enumerated": (
        b"app\nmanifest eligible for deletion: {other DIGEST []}\n"
        b"\n0 blobs marked, 0 blobs and 1 manifests eligible for deletion\n",
        "line 2: 'manifest eligible for deletion: {other sha256:",
    ),
    "3: repository after the manifests": (
        b"app\nmanifest eligible for deletion: {app DIGEST [v1]}\nbase\n"
        b"\n0 blobs marked, 0 blobs and 1 manifests eligible for deletion\n",
        "line 3: 'base' comes after the manifests eligible for deletion",
    ),
    "3: manifest line not closed": (
        b"app\nmanifest eligible for deletion: {app DIGEST [v1\n"
        b"\n0 blobs marked, 0 blobs and 1 manifests eligible for deletion\n",
        "line 2: 'manifest eligible for deletion: {app sha256:",
    ),
    "2 and 3 mixed": (
        b"app\nmanifest eligible for deletion: DIGEST\nmanifest eligible for deletion: {app DIGEST [v1]}\n"
        b"\n0 blobs marked, 0 blobs and 2 manifests eligible for deletion\n",
        "line 3: 'manifest eligible for deletion: {app sha256:",
    ),
    "3: layer link before the summary": (
        b"app\napp: layer link eligible for deletion: DIGEST\n" + SUMMARY_0,
        "line 2: 'app: layer link eligible for deletion: sha256:",
    ),
    "3: blob line after the layer links": (
        b"app\n\n0 blobs marked, 1 blobs and 0 manifests eligible for deletion\n"
        b"app: layer link eligible for deletion: DIGEST\nblob eligible for deletion: DIGEST\n",
        "line 5: 'blob eligible for deletion: sha256:",
    ),
    "3: layer link of a repository not enumerated": (
        b"app\n" + SUMMARY_0 + b"other: layer link eligible for deletion: DIGEST\n",
        "line 4: 'other: layer link eligible for deletion: sha256:",
    ),
    "3: tags path line outside its block": (
        b"app\nmanifest tags path of repository other does not exist\n" + SUMMARY_0,
        "line 2: 'manifest tags path of repository other does not exist' is outside the block",
    ),
    "manifest line after the summary": (
        b"app\n\n0 blobs marked, 0 blobs and 1 manifests eligible for deletion\n"
        b"manifest eligible for deletion: DIGEST\n",
        "line 4: ",
    ),
}


@pytest.mark.parametrize(("content", "message"), GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_plans_exit_2(content: bytes, message: str, reg2: Registry, regprobe: Any, tmp_path: Path) -> None:
    app = reg2.push_image("app", "v1")
    path = write(tmp_path, "plan.txt", content.replace(b"DIGEST", app.digest.encode()))

    result = gc_check(regprobe, reg2, path)

    assert result.code == 2, result.out
    assert result.out == ""
    assert result.err.startswith(f"regprobe: plan {path}: {message}"), result.err
    assert result.err.endswith("expected the output of `registry garbage-collect --dry-run`\n")


def test_plan_of_another_registry_exits_2(reg: Registry, regprobe: Any, tmp_path: Path) -> None:
    other = start(tmp_path / "other", reg.flavour)
    try:
        other.push_index("multi", "latest")
        plan = collect(other, "--dry-run", "--delete-untagged")
    finally:
        other.stop()
    reg.push_index("multi", "latest")

    result = gc_check(regprobe, reg, write(tmp_path, "plan.txt", plan))

    assert result.code == 2
    assert "does not match ROOT" in result.err


def test_missing_plan_file_and_bad_root_exit_2(reg2: Registry, regprobe: Any, tmp_path: Path) -> None:
    reg2.push_image("app", "v1")
    missing = regprobe("gc-check", str(reg2.root), "--plan", str(tmp_path / "nope.txt"))
    assert missing.code == 2 and "cannot read" in missing.err
    not_root = regprobe("gc-check", str(tmp_path), "--plan", str(tmp_path / "nope.txt"))
    assert not_root.code == 2 and f"no {V2} under it" in not_root.err


def test_unreadable_storage_exits_3(reg: Registry, regprobe: Any, tmp_path: Path) -> None:
    # Tests run as root, so a chmod 000 would not stop a read: a link that is a symlink loop does.
    reg.push_image("app", "v1")
    reg.push_image("other", "v1")
    plan = write(tmp_path, "plan.txt", collect(reg, "--dry-run", "--delete-untagged"))
    link = reg.v2 / "repositories" / "other" / "_manifests" / "tags" / "v1" / "current" / "link"
    link.unlink()
    link.symlink_to(link)

    result = gc_check(regprobe, reg, plan)

    assert result.code == 3, result.out
    assert result.report["complete"] is False
    assert "cannot read" in result.report["errors"][0]
    text = regprobe("gc-check", str(reg.root), "--plan", plan)
    assert text.code == 3 and "UNKNOWN" in text.out


def test_findings_win_over_unreadable_storage(reg2: Registry, regprobe: Any, tmp_path: Path) -> None:
    reg2.push_index("multi", "latest", attestations=False)
    reg2.push_image("other", "v1")
    plan = write(tmp_path, "plan.txt", collect(reg2, "--dry-run", "--delete-untagged"))
    link = reg2.v2 / "repositories" / "other" / "_manifests" / "tags" / "v1" / "current" / "link"
    link.unlink()
    link.symlink_to(link)

    result = gc_check(regprobe, reg2, plan)

    assert result.code == 1, result.err
    assert result.report["complete"] is False
    assert len(result.report["findings"]) == 2


def _pushed_after(reg: Registry, old: Image, kept: str) -> str:
    reg.push_image("new", "v1")
    return "repository new is not in the plan"


def _removed_after(reg: Registry, old: Image, kept: str) -> str:
    shutil.rmtree(reg.v2 / "repositories" / "gone")
    return "repository gone is not in ROOT"


def _deleted_after(reg: Registry, old: Image, kept: str) -> str:
    # Through the API: the revision link goes, the data stays (what the plan's blob lines name is there).
    assert reg.http.delete(f"/v2/app/manifests/{old.digest}").status_code == 202
    return f"manifest {old.digest} is not in repository app"


def _kept_deleted_after(reg: Registry, old: Image, kept: str) -> str:
    assert reg.http.delete(f"/v2/gone/manifests/{kept}").status_code == 202
    return f"manifest {kept} the plan keeps is not in repository gone"


def _unlinked_after(reg: Registry, old: Image, kept: str) -> str:
    reg.remove_layer_link("app", old.layers[0])  # the plan removes it (v3): someone else did first
    return f"layer link {old.layers[0]} is not in repository app"


MISMATCHES = [
    (change, flavour)
    for change in (_pushed_after, _removed_after, _deleted_after, _kept_deleted_after)
    for flavour in FLAVOURS
]
MISMATCHES.append((_unlinked_after, "3"))  # 2.8 removes no layer links


@pytest.mark.parametrize(
    ("change", "reg"), MISMATCHES, ids=[f"{c.__name__[1:]}-registry{f}" for c, f in MISMATCHES], indirect=["reg"]
)
def test_plan_not_of_this_storage_names_the_mismatch(change: Any, reg: Registry, regprobe: Any, tmp_path: Path) -> None:
    """Storage changed after the dry run in exactly one way: the refusal names that one thing."""
    old = reg.push_image("app", "v1")
    reg.push_image("app", "v1")
    kept = reg.push_image("gone", "v1").digest
    plan = collect(reg, "--dry-run", "--delete-untagged")
    assert re.search(rf"^manifest eligible for deletion: \S*\s?{old.digest}", plan, re.MULTILINE)
    reg.start()
    mismatch = change(reg, old, kept)
    reg.stop()

    result = gc_check(regprobe, reg, write(tmp_path, "plan.txt", plan))

    assert result.code == 2, result.out
    assert f"does not match ROOT {reg.root} ({mismatch}): " in result.err, result.err


def test_kubernetes_recipe_passes_kubernetes_validate(tmp_path: Path) -> None:
    """The CronJob in docs/gc.md is copied by operators: it must be a schema-valid object."""
    docs = (ROOT / "docs" / "gc.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", docs, re.DOTALL) if "kind: CronJob" in b]
    assert len(blocks) == 1
    path = write(tmp_path, "cronjob.yaml", blocks[0])

    proc = _kubernetes_validate(path)

    assert proc.returncode == 0 and " passed for resource " in proc.stdout, _show(proc)


def test_long_line_is_refused_not_split(reg2: Registry, regprobe: Any, tmp_path: Path) -> None:
    """Issue 22 bug 4: a physical line past the bound is one line, refused, counted as one."""
    reg2.push_image("app", "v1")
    lines = collect(reg2, "--dry-run", "--delete-untagged").splitlines()
    assert lines[1].startswith("app: marking manifest ")
    lines[1] = lines[1].ljust(1129)
    path = write(tmp_path, "plan.txt", "\n".join(lines) + "\n")

    result = gc_check(regprobe, reg2, path)

    assert result.code == 2, result.out
    assert result.err == (
        f"regprobe: plan {path}: line 2: longer than 1024 bytes; "
        "expected the output of `registry garbage-collect --dry-run`\n"
    )


def test_long_tag_list_of_v3_is_one_line(reg2: Registry, regprobe: Any, tmp_path: Path) -> None:
    """v3 lists every tag of the repository on each manifest line: long lines, and still one line each
    (the error two lines later is on its physical line)."""
    app = reg2.push_image("app", "v1")
    reg2.stop()
    tags = " ".join(f"build-{n:06d}-{'x' * 100}" for n in range(20_000))  # ~2.3 MB
    plan = (
        f"app\nmanifest eligible for deletion: {{app {app.digest} [{tags}]}}\n"
        "\n0 blobs marked, 0 blobs and 1 manifests eligible for deletion\n"
    )

    result = gc_check(regprobe, reg2, write(tmp_path, "plan.txt", plan))
    assert result.code == 1, result.err  # app:v1's own manifest: tagged after the dry run
    assert [f["reason"] for f in result.report["findings"]] == ["untagged manifest"]

    path = write(tmp_path, "bad.txt", plan + "blob eligible for deletion: nope\n")
    result = gc_check(regprobe, reg2, path)
    assert result.code == 2
    assert result.err.startswith(f"regprobe: plan {path}: line 5: "), result.err
    # Past the bound of a v3 manifest line: refused whole, not read further.
    huge = f"app\nmanifest eligible for deletion: {{app {app.digest} [{tags * 4}]}}\n"
    result = gc_check(regprobe, reg2, write(tmp_path, "huge.txt", huge))
    assert result.code == 2
    assert "line 2: longer than 8388608 bytes" in result.err


def test_index_copy_damaged_elsewhere(reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path) -> None:
    """The same tagged index in three repositories: in `a` a clean-up script removed its children's
    revision links (already broken there), `m` is whole, and `z` tags the first child on its own.
    v3 marks by digest across repositories and does not descend into a child it has already marked: `a`
    marks the children without their blobs (they are not in `a`), so in `m` they are skipped - their
    links in `m` are removed, and the blobs of the child `z` does not keep are deleted. 2.8 removes the
    children from `m` outright. Either way the prediction is what the real collection breaks."""
    kids = {}
    for repository in ("a", "m"):
        kids[repository] = [
            reg.push_image(repository, None, layers=[b"first child" * 50], platform="linux/amd64"),
            reg.push_image(repository, None, layers=[b"second child" * 50], platform="linux/arm64"),
        ]
        reg.push_index(repository, "latest", children=kids[repository], attestations=False)
    first, second = kids["m"]
    assert reg.push_image("z", "first", layers=[b"first child" * 50]).digest == first.digest
    for child in kids["a"]:
        reg.remove_revision_link("a", child.digest)
    reg.stop()
    plan = collect(reg, "--dry-run", "--delete-untagged")

    predicted = gc_check(regprobe, reg, write(tmp_path, "plan.txt", plan))

    found = {(f["repository"], f["kind"], f["digest"]): f["reason"] for f in predicted.report["findings"]}
    assert predicted.code == 1, predicted.err
    if reg.flavour == "3":
        assert found == {
            ("m", "config", first.config): "layer link",
            ("m", "layer", first.layers[0]): "layer link",
            ("m", "config", second.config): "blob",
            ("m", "layer", second.layers[0]): "blob",
        }
    else:
        assert found == {
            ("m", "manifest", first.digest): "untagged child manifest",
            ("m", "manifest", second.digest): "untagged child manifest",
        }

    collect(reg, "--delete-untagged")
    broken = walk(reg, regprobe, probe_config)
    # `a` was broken before (fsck's to report); everything else broken is what gc-check named.
    elsewhere = {(f["repository"], f["kind"], f["digest"]) for f in broken.findings() if f["repository"] != "a"}
    assert elsewhere == set(found)
