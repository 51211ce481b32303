"""`regprobe gc-check` against the real collection: distribution's own dry run is the plan, the real
`garbage-collect` is the judge, and regprobe's HTTP walk after it says what actually broke.

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

from .registry import BINARY, DOCKER_CONFIG, DOCKER_FOREIGN, DOCKER_MANIFEST, Image, Registry
from .test_deploy import ROOT, _kubernetes_validate, _show

V2 = "docker/registry/v2"


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry(tmp_path / "registry").start()
    yield registry
    registry.stop()


def collect(reg: Registry, *flags: str) -> str:
    """``registry garbage-collect`` on the stopped registry; its stdout (the plan)."""
    reg.stop()
    done = subprocess.run(
        [BINARY, "garbage-collect", *flags, str(reg.config_path)], capture_output=True, text=True, check=False
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
    # The same manifest as multi's amd64 child, tagged in another repository: kept there.
    assert reg.push_image("pinned", "amd64", layers=[amd64]).digest == kids[0].digest
    reg.tag("multi", "v2", multi.digest)
    docker_list = reg.push_index("list", "stable", docker=True)
    single = reg.push_image("single", "1.0")
    return {"old": old, "new": new, "multi": multi, "list": docker_list, "single": single}


def test_prediction_is_what_the_real_collection_breaks(
    reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    pushed = push_everything(reg)
    multi: Image = pushed["multi"]
    docker_list: Image = pushed["list"]
    old: Image = pushed["old"]

    plan = collect(reg, "--dry-run", "--delete-untagged")
    assert f"manifest eligible for deletion: {old.digest}" in plan  # the overwritten image goes ...
    assert f"blob eligible for deletion: {old.layers[1]}" in plan
    predicted = gc_check(regprobe, reg, write(tmp_path, "plan.txt", plan))

    assert predicted.code == 1, predicted.err
    assert predicted.report["plan"] == {"manifests": 7, "blobs": plan.count("blob eligible for deletion:")}
    children = {("multi", c.digest) for c in multi.children} | {("list", c.digest) for c in docker_list.children}
    assert len(children) == 6  # 2 platforms + 2 attestations, 2 platforms
    # ... and is not reported: no tag needs it, though it shares a layer with app:v1 and base:1.0.
    assert set(keyed(predicted.report["findings"])) == children
    deleted = set(re.findall(r"^blob eligible for deletion: (\S+)$", plan, re.MULTILINE))
    details = set()
    for finding in predicted.report["findings"]:
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
    assert len(details) > 1
    findings = predicted.report["findings"]
    assert findings == sorted(findings, key=lambda f: (f["repository"], f["digest"]))

    real = collect(reg, "--delete-untagged")
    broken = walk(reg, regprobe, probe_config)

    assert broken.code == 1
    assert keyed(broken.findings()) == keyed(predicted.report["findings"])
    assert {f["problem"] for f in broken.findings()} == {"missing"}

    # The real run prints what the dry run printed; what it names is gone now, so it is no plan.
    assert sorted(real.splitlines()) == sorted(plan.splitlines())
    reg.stop()
    after = gc_check(regprobe, reg, write(tmp_path, "real.txt", real))
    assert after.code == 2
    assert "does not match ROOT" in after.err and "real collection" in after.err


def test_collection_without_delete_untagged_is_safe(
    reg: Registry, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    pushed = push_everything(reg)
    orphan = reg.push_blob("app", b"an upload no manifest uses")

    plan = collect(reg, "--dry-run")
    predicted = gc_check(regprobe, reg, write(tmp_path, "plan.txt", plan))

    assert predicted.code == 0, predicted.out + predicted.err
    assert predicted.report["findings"] == []
    assert predicted.report["plan"] == {"manifests": 0, "blobs": 1}
    assert f"blob eligible for deletion: {orphan}" in plan
    text = regprobe("gc-check", str(reg.root), "--plan", write(tmp_path, "plan.txt", plan))
    assert text.code == 0 and "SAFE" in text.out.splitlines()[0]

    real = collect(reg)
    healthy = walk(reg, regprobe, probe_config)
    assert healthy.code == 0, healthy.out
    assert healthy.findings() == []
    assert healthy.report["registries"][0]["images_checked"] == 8
    assert pushed["old"].digest not in healthy.out

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
    assert result.report["plan"] == {"manifests": 0, "blobs": 0}


def test_plan_from_stdin(reg: Registry, regprobe: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    reg.push_index("multi", "latest", attestations=False)
    plan = collect(reg, "--dry-run", "--delete-untagged")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(plan.encode())))

    result = gc_check(regprobe, reg, "-")

    assert result.code == 1
    assert len(result.report["findings"]) == 2


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
    # layer first, and the finding must still say config (as fsck names it).
    as_config = reg.push_image("copy", None, config_extra=both)
    as_layer = reg.push_image("copy", None, layers=[config_bytes.encode()], platform="linux/arm64")
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
    "manifest line after the summary": (
        b"app\n\n0 blobs marked, 0 blobs and 1 manifests eligible for deletion\n"
        b"manifest eligible for deletion: DIGEST\n",
        "line 4: ",
    ),
}


@pytest.mark.parametrize(("content", "message"), GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_plans_exit_2(content: bytes, message: str, reg: Registry, regprobe: Any, tmp_path: Path) -> None:
    app = reg.push_image("app", "v1")
    path = write(tmp_path, "plan.txt", content.replace(b"DIGEST", app.digest.encode()))

    result = gc_check(regprobe, reg, path)

    assert result.code == 2, result.out
    assert result.out == ""
    assert result.err.startswith(f"regprobe: plan {path}: {message}"), result.err
    assert result.err.endswith("expected the output of `registry garbage-collect --dry-run`\n")


def test_plan_of_another_registry_exits_2(reg: Registry, regprobe: Any, tmp_path: Path) -> None:
    other = Registry(tmp_path / "other").start()
    try:
        other.push_index("multi", "latest")
        plan = collect(other, "--dry-run", "--delete-untagged")
    finally:
        other.stop()
    reg.push_index("multi", "latest")

    result = gc_check(regprobe, reg, write(tmp_path, "plan.txt", plan))

    assert result.code == 2
    assert "does not match ROOT" in result.err


def test_missing_plan_file_and_bad_root_exit_2(reg: Registry, regprobe: Any, tmp_path: Path) -> None:
    reg.push_image("app", "v1")
    missing = regprobe("gc-check", str(reg.root), "--plan", str(tmp_path / "nope.txt"))
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


def test_findings_win_over_unreadable_storage(reg: Registry, regprobe: Any, tmp_path: Path) -> None:
    reg.push_index("multi", "latest", attestations=False)
    reg.push_image("other", "v1")
    plan = write(tmp_path, "plan.txt", collect(reg, "--dry-run", "--delete-untagged"))
    link = reg.v2 / "repositories" / "other" / "_manifests" / "tags" / "v1" / "current" / "link"
    link.unlink()
    link.symlink_to(link)

    result = gc_check(regprobe, reg, plan)

    assert result.code == 1, result.err
    assert result.report["complete"] is False
    assert len(result.report["findings"]) == 2


def _pushed_after(reg: Registry, overwritten: str) -> str:
    reg.push_image("new", "v1")
    return "repository new is not in the plan"


def _removed_after(reg: Registry, overwritten: str) -> str:
    shutil.rmtree(reg.v2 / "repositories" / "gone")
    return "repository gone is not in ROOT"


def _deleted_after(reg: Registry, overwritten: str) -> str:
    # Through the API: the revision link goes, the data stays (what the plan's blob lines name is there).
    assert reg.http.delete(f"/v2/app/manifests/{overwritten}").status_code == 202
    return f"manifest {overwritten} is not in repository app"


@pytest.mark.parametrize("change", [_pushed_after, _removed_after, _deleted_after], ids=lambda f: f.__name__[1:])
def test_plan_not_of_this_storage_names_the_mismatch(change: Any, reg: Registry, regprobe: Any, tmp_path: Path) -> None:
    """Storage changed after the dry run in exactly one way: the refusal names that one thing."""
    overwritten = reg.push_image("app", "v1").digest
    reg.push_image("app", "v1")
    reg.push_image("gone", "v1")
    plan = collect(reg, "--dry-run", "--delete-untagged")
    assert f"manifest eligible for deletion: {overwritten}" in plan
    reg.start()
    mismatch = change(reg, overwritten)
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


def test_long_line_is_refused_not_split(reg: Registry, regprobe: Any, tmp_path: Path) -> None:
    """Issue 22 bug 4: a physical line past the bound is one line, refused, counted as one."""
    reg.push_image("app", "v1")
    lines = collect(reg, "--dry-run", "--delete-untagged").splitlines()
    assert lines[1].startswith("app: marking manifest ")
    lines[1] = lines[1].ljust(1129)
    path = write(tmp_path, "plan.txt", "\n".join(lines) + "\n")

    result = gc_check(regprobe, reg, path)

    assert result.code == 2, result.out
    assert result.err == (
        f"regprobe: plan {path}: line 2: longer than 1024 bytes; "
        "expected the output of `registry garbage-collect --dry-run`\n"
    )
