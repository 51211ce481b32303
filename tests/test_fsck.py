"""`regprobe fsck` on the storage of a real registry, broken the way clean-up scripts and GC break it.

Each test gets a registry of its own (no descriptor cache: storage faults show over HTTP at once), so
fsck - which scans the whole root - sees only that test's repositories and its exit code means
something. A registry starts in about 0.1 s.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import stat
import subprocess
import threading
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from regprobe.fsck import Repair, Storage, scan
from regprobe.fsck.output import JsonOutput
from regprobe.mediatypes import ACCEPT

from .registry import BINARY, Registry
from .terminal import run_on_terminal
from .util import only, wait_for

V2 = "docker/registry/v2"


@pytest.fixture
def reg(tmp_path: Path, flavour: str) -> Iterator[Registry]:
    """Of the flavour the test asks for: the storage faults run on 2.8.2 and v3 (the same layout)."""
    registry = Registry(tmp_path / "registry", cache=False, flavour=flavour).start()
    yield registry
    registry.stop()


def fsck(regprobe: Any, reg: Registry, *args: str) -> Any:
    return regprobe("fsck", str(reg.root), "--format", "json", *args)


def found(run: Any) -> list[dict[str, Any]]:
    return run.report["findings"]  # type: ignore[no-any-return]


def hexpart(digest: str) -> str:
    return digest.split(":", 1)[1]


def layer_link(repository: str, digest: str) -> str:
    return f"{V2}/repositories/{repository}/_layers/sha256/{hexpart(digest)}/link"


def revision_link(repository: str, digest: str) -> str:
    return f"{V2}/repositories/{repository}/_manifests/revisions/sha256/{hexpart(digest)}/link"


def tag_link(repository: str, tag: str) -> str:
    return f"{V2}/repositories/{repository}/_manifests/tags/{tag}/current/link"


def data_file(digest: str) -> str:
    return f"{V2}/blobs/sha256/{hexpart(digest)[:2]}/{hexpart(digest)}/data"


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every path under ``root`` with its type, size and mtime (atime changes on reads; not compared)."""
    out: dict[str, tuple[str, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            is_dir = stat.S_ISDIR(st.st_mode)
            out[os.path.relpath(path, root)] = ("d" if is_dir else "f", 0 if is_dir else st.st_size, st.st_mtime_ns)
    return out


# -- one fault at a time ---------------------------------------------------------------------------


@pytest.mark.each_registry
def test_healthy_tree_is_clean(reg: Registry, ns: str, regprobe: Any) -> None:
    reg.push_healthy_set(ns)
    reg.push_image(f"{ns}/team", "v1")
    reg.push_image(f"{ns}/team/nested/deeper", "v1")  # a repository below another one
    reg.push_image(f"{ns}/empty-layer", "v1", layers=[b""])  # zero bytes is a valid blob

    run = fsck(regprobe, reg)

    assert run.code == 0, run.out
    assert found(run) == []
    assert run.report["root"] == os.path.abspath(reg.root)
    assert run.report["complete"] is True and run.report["errors"] == []
    assert run.report["repositories"] == 9
    text = regprobe("fsck", str(reg.root))
    assert text.code == 0
    assert text.out.splitlines()[0] == f"{reg.root}  OK"


@pytest.mark.each_registry
def test_index_child_revision_link_gone(reg: Registry, ns: str, regprobe: Any) -> None:
    index = reg.push_index(f"{ns}/app", "latest")
    reg.tag(f"{ns}/app", "v2", index.digest)
    reg.push_image(f"{ns}/app", "healthy")
    arm64 = index.children[1]
    reg.remove_revision_link(f"{ns}/app", arm64.digest)

    run = fsck(regprobe, reg)

    assert run.code == 1
    assert only(found(run)) == {
        "repository": f"{ns}/app",
        "digest": arm64.digest,
        "kind": "manifest",
        "problem": "missing",
        "parent": index.digest,
        "path": revision_link(f"{ns}/app", arm64.digest),
        "repaired": False,
        "repairable": False,
        "tags": ["latest", "v2"],
        "detail": "index child has no revision link in this repository",
    }


@pytest.mark.each_registry
def test_blob_data_gone_layer_link_kept(reg: Registry, ns: str, regprobe: Any) -> None:
    image = reg.push_image(f"{ns}/app", "v1")
    reg.remove_blob_data(image.layers[0])

    finding = only(found(fsck(regprobe, reg)))

    assert (finding["kind"], finding["problem"], finding["digest"]) == ("layer", "missing", image.layers[0])
    assert finding["parent"] == image.digest and finding["tags"] == ["v1"]
    assert finding["path"] == layer_link(f"{ns}/app", image.layers[0])


@pytest.mark.each_registry
def test_blob_truncated_to_zero_bytes(reg: Registry, ns: str, regprobe: Any) -> None:
    image = reg.push_image(f"{ns}/app", "v1")
    reg.truncate_blob(image.layers[0])

    finding = only(found(fsck(regprobe, reg)))

    # The HTTP walk's name for the same fault (the registry answers 416 with a total of 0).
    assert (finding["kind"], finding["problem"], finding["digest"]) == ("layer", "size_mismatch", image.layers[0])
    assert finding["path"] == data_file(image.layers[0])
    assert finding["detail"] == "blob data is empty (0 bytes), descriptor says 1500"


@pytest.mark.each_registry
def test_blob_shorter_than_its_descriptor(reg: Registry, ns: str, regprobe: Any) -> None:
    image = reg.push_image(f"{ns}/app", "v1")
    (reg.root / data_file(image.layers[1])).write_bytes(b"x" * 100)

    finding = only(found(fsck(regprobe, reg)))

    assert (finding["problem"], finding["detail"]) == ("size_mismatch", "blob data is 100 bytes, descriptor says 2500")


@pytest.mark.each_registry
def test_layer_link_gone_in_one_repository_only(reg: Registry, ns: str, regprobe: Any) -> None:
    base = b"common-base" * 300
    one = reg.push_image(f"{ns}/one", "v1", layers=[base])
    reg.push_image(f"{ns}/two", "v1", layers=[base])
    reg.remove_layer_link(f"{ns}/one", one.layers[0])

    finding = only(found(fsck(regprobe, reg)))

    assert (finding["repository"], finding["kind"], finding["problem"]) == (f"{ns}/one", "layer", "missing")
    assert finding["detail"] == "no layer link in this repository"


@pytest.mark.each_registry
def test_tag_pointing_at_gone_revision(reg: Registry, ns: str, regprobe: Any) -> None:
    image = reg.push_image(f"{ns}/app", "v1")
    reg.tag(f"{ns}/app", "v1-alias", image.digest)
    reg.push_image(f"{ns}/app", "v2")
    reg.remove_revision_link(f"{ns}/app", image.digest)

    finding = only(found(fsck(regprobe, reg)))

    # The HTTP walk cannot resolve the tag and reports digest null; on disk the tag link names it.
    assert (finding["kind"], finding["problem"], finding["digest"]) == ("manifest", "missing", image.digest)
    assert finding["tags"] == ["v1", "v1-alias"] and finding["parent"] is None
    assert finding["path"] == tag_link(f"{ns}/app", "v1")


@pytest.mark.each_registry
def test_revision_data_gone(reg: Registry, ns: str, regprobe: Any) -> None:
    image = reg.push_image(f"{ns}/app", "v1")
    reg.remove_blob_data(image.digest)

    finding = only(found(fsck(regprobe, reg)))

    assert (finding["kind"], finding["problem"], finding["digest"]) == ("manifest", "missing", image.digest)
    assert finding["path"] == revision_link(f"{ns}/app", image.digest)
    assert finding["detail"] == "revision link present, manifest data gone"


@pytest.mark.each_registry
def test_corrupted_blob_needs_verify_digests(reg: Registry, ns: str, regprobe: Any) -> None:
    image = reg.push_image(f"{ns}/app", "v1")
    reg.corrupt_blob(image.layers[0])

    assert fsck(regprobe, reg).code == 0  # same size: only hashing notices

    run = fsck(regprobe, reg, "--verify-digests")
    finding = only(found(run))
    assert run.code == 1
    assert (finding["kind"], finding["problem"], finding["digest"]) == ("layer", "digest_mismatch", image.layers[0])
    assert finding["path"] == data_file(image.layers[0])


@pytest.mark.each_registry
def test_corrupted_manifest_is_always_found(reg: Registry, ns: str, regprobe: Any) -> None:
    """Manifest bodies are read whole to be parsed; hashing them as well costs nothing."""
    image = reg.push_image(f"{ns}/app", "v1")
    reg.corrupt_blob(image.digest)

    finding = only(found(fsck(regprobe, reg)))

    assert (finding["kind"], finding["problem"], finding["digest"]) == ("manifest", "digest_mismatch", image.digest)


@pytest.mark.parametrize("flags", [(), ("--verify-digests",)])
def test_unparseable_manifest_data_is_named(reg: Registry, ns: str, regprobe: Any, flags: tuple[str, ...]) -> None:
    """What the HTTP walk reports as a server_error (distribution answers 500 on every try): fsck names the
    data file, and says it does not parse."""
    index = reg.push_index(f"{ns}/app", "v1", attestations=False)
    child = index.children[1].digest
    reg.blob_path(child).write_bytes(b'{"schemaVersion": 2, "mediaType": garbage}')

    run = fsck(regprobe, reg, *flags)

    assert run.code == 1
    finding = only(found(run))
    assert (finding["kind"], finding["problem"], finding["digest"]) == ("manifest", "digest_mismatch", child)
    assert finding["path"] == data_file(child) and finding["tags"] == ["v1"]
    assert finding["detail"].endswith("; manifest body is not JSON (JSONDecodeError)")


@pytest.mark.each_registry
def test_config_blob_gone(reg: Registry, ns: str, regprobe: Any) -> None:
    image = reg.push_image(f"{ns}/app", "v1")
    reg.remove_layer_link(f"{ns}/app", image.config)

    finding = only(found(fsck(regprobe, reg)))

    assert (finding["kind"], finding["problem"], finding["digest"]) == ("config", "missing", image.config)
    assert finding["parent"] == image.digest


@pytest.mark.each_registry
def test_no_index_children_is_pull_through_cache_mode(reg: Registry, ns: str, regprobe: Any) -> None:
    """A cache holds only what someone pulled: an index child without a revision link, or a blob
    without a layer link, is not yet fetched rather than lost. What the cache holds is still checked."""
    index = reg.push_index(f"{ns}/cache", "latest", attestations=False)
    amd64, arm64 = index.children
    reg.remove_revision_link(f"{ns}/cache", arm64.digest)
    reg.remove_layer_link(f"{ns}/cache", amd64.layers[0])
    reg.remove_blob_data(amd64.layers[1])

    everything = found(fsck(regprobe, reg))
    cache_mode = found(fsck(regprobe, reg, "--no-index-children"))

    assert sorted((f["kind"], f["digest"], f["problem"]) for f in everything) == sorted(
        [
            ("manifest", arm64.digest, "missing"),
            ("layer", amd64.layers[0], "missing"),
            ("layer", amd64.layers[1], "missing"),
        ]
    )
    finding = only(cache_mode)
    assert (finding["digest"], finding["problem"], finding["parent"]) == (amd64.layers[1], "missing", amd64.digest)
    assert finding["detail"] == "layer link present, blob data gone"


@pytest.mark.each_registry
def test_shared_object_reported_once_under_the_first_manifest(reg: Registry, ns: str, regprobe: Any) -> None:
    base = b"base-layer" * 500
    a = reg.push_image(f"{ns}/app", "a", layers=[base, b"a" * 100])
    b = reg.push_image(f"{ns}/app", "b", layers=[base, b"b" * 100])
    reg.push_image(f"{ns}/app", "c", layers=[b"c" * 100])
    reg.remove_blob_data(a.layers[0])

    finding = only(found(fsck(regprobe, reg)))

    assert finding["tags"] == ["a", "b"]
    assert finding["parent"] == min(a.digest, b.digest)


@pytest.mark.each_registry
def test_unused_layer_links(reg: Registry, ns: str, regprobe: Any) -> None:
    """Layer links no manifest uses: to deleted data, harmless (counted); to empty data, a trap (reported):
    HEAD answers 200 for it, so a later push skips the upload and the registry accepts the manifest."""
    reg.push_image(f"{ns}/app", "v1")
    deleted = reg.push_blob(f"{ns}/app", b"pushed, never referenced")
    reg.remove_blob_data(deleted)

    clean = fsck(regprobe, reg)
    assert (clean.code, found(clean), clean.report["orphaned_layer_links"]) == (0, [], 1)

    emptied = reg.push_blob(f"{ns}/app", b"also never referenced")
    reg.truncate_blob(emptied)
    assert reg.http.head(f"/v2/{ns}/app/blobs/{emptied}").status_code == 200

    finding = only(found(fsck(regprobe, reg)))
    assert (finding["digest"], finding["problem"], finding["parent"], finding["tags"]) == (
        emptied,
        "size_mismatch",
        None,
        [],
    )
    assert finding["detail"] == "blob data is empty (0 bytes) (no manifest in this repository uses it)"


def garbage_collect(reg: Registry, *args: str) -> None:
    reg.stop()  # GC on a running registry is distribution #2945
    done = subprocess.run([BINARY, "garbage-collect", *args, str(reg.config_path)], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


def test_routine_garbage_collection_leaves_a_clean_tree(reg: Registry, ns: str, regprobe: Any) -> None:
    """GC after a manifest delete removes the data and keeps the layer links: not breakage."""
    old = reg.push_image(f"{ns}/app", "v1")
    reg.push_image(f"{ns}/app", "v2")
    assert reg.http.delete(f"/v2/{ns}/app/manifests/{old.digest}").status_code == 202
    garbage_collect(reg)
    assert not (reg.root / data_file(old.layers[0])).exists()
    assert (reg.root / layer_link(f"{ns}/app", old.layers[0])).exists()

    run = regprobe("fsck", str(reg.root))

    assert run.code == 0, run.out
    assert "2 unused layer links to deleted data (left by garbage collection; harmless)" in run.out


def test_garbage_collect_delete_untagged_breaks_multi_arch(reg: Registry, ns: str, regprobe: Any) -> None:
    """distribution 2.8 deletes index children as "untagged" (#3004, #3178): fsck names each one."""
    index = reg.push_index(f"{ns}/multi", "latest", attestations=False)
    garbage_collect(reg, "--delete-untagged")

    run = fsck(regprobe, reg)

    assert run.code == 1
    assert sorted((f["kind"], f["problem"], f["digest"], f["parent"]) for f in found(run)) == sorted(
        ("manifest", "missing", child.digest, index.digest) for child in index.children
    )


def test_garbage_link_files_are_invalid_not_fatal(reg: Registry, ns: str, regprobe: Any) -> None:
    repo = f"{ns}/app"
    image = reg.push_image(repo, "v1")
    other = reg.push_image(repo, "v2")
    reg.tag(repo, "v3", image.digest)
    (reg.root / layer_link(repo, image.layers[0])).write_text("garbage\n")
    # A valid digest, but not the one the link is filed under: the registry would serve the wrong blob.
    (reg.root / layer_link(repo, image.layers[1])).write_text(image.config)
    (reg.root / revision_link(repo, other.digest)).write_text("sha256:../../../../../etc/passwd")
    (reg.root / tag_link(repo, "v3")).write_bytes(b"\xff\xfe")
    (reg.v2 / "repositories" / repo / "_layers" / "sha256" / "not-a-digest").mkdir()
    before = snapshot(reg.root)

    run = fsck(regprobe, reg, "--verify-digests", "--repair")

    assert run.code == 1
    got = {(f["kind"], f["digest"], f["path"]): (f["problem"], f["detail"]) for f in found(run)}
    assert got == {
        ("layer", image.layers[0], layer_link(repo, image.layers[0])): (
            "invalid",
            "link holds b'garbage\\n', not a digest",
        ),
        ("layer", image.layers[1], layer_link(repo, image.layers[1])): (
            "invalid",
            f"link names {image.config}, not the digest it is filed under",
        ),
        ("manifest", other.digest, revision_link(repo, other.digest)): (
            "invalid",
            "link holds b'sha256:../../../../../etc/passwd', not a digest",
        ),
        ("manifest", None, tag_link(repo, "v3")): ("invalid", "link holds b'\\xff\\xfe', not a digest"),
        ("layer", None, f"{V2}/repositories/{repo}/_layers/sha256/not-a-digest"): (
            "invalid",
            "'not-a-digest' under 'sha256' is not a digest",
        ),
    }
    assert snapshot(reg.root) == before  # --repair touches only layer links whose data is gone or empty


@pytest.mark.timeout(30)
def test_symlink_loop_under_repositories_is_not_followed(reg: Registry, ns: str, regprobe: Any) -> None:
    reg.push_image(f"{ns}/app", "v1")
    reg.push_image(f"{ns}/team/api", "v1")
    base = reg.v2 / "repositories" / ns
    (base / "loop").symlink_to(".")
    (base / "team" / "up").symlink_to("..")

    # Bounded: followed, these two links make the walk branch 2^40 ways deep before ELOOP stops it.
    walked = list(islice(Storage(str(reg.root)).repositories(), 10))

    assert [name for name, _ in walked] == [f"{ns}/app", f"{ns}/team/api"]
    run = fsck(regprobe, reg)
    assert (run.code, run.report["repositories"], found(run)) == (0, 2, [])


# -- agreement with the HTTP walk -------------------------------------------------------------------


@pytest.mark.each_registry
def test_agrees_with_the_http_walk(reg: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    """Both tools, on one registry broken every way REGISTRY-FACTS.md lists, name the same objects.

    Normalisation (see docs/fsck.md): an HTTP finding with digest null is a tag it could not resolve;
    it is keyed by the digest that tag's current/link names (read from the same storage), or by
    "tag:<name>" when the link names none. fsck findings with digest null are keyed "tag:<name>" the
    same way. Then (repository, object) -> (kind, problem, tags, parent) must be equal.
    """
    expected: set[tuple[str, str, str, str]] = set()

    reg.push_index(f"{ns}/healthy", "multi")
    reg.push_index(f"{ns}/healthy", "list", docker=True)
    reg.push_image(f"{ns}/healthy", "windows", foreign=True, docker=True)
    reg.push_image(f"{ns}/healthy", None)

    index = reg.push_index(f"{ns}/index", "latest")
    reg.tag(f"{ns}/index", "v2", index.digest)
    reg.remove_revision_link(f"{ns}/index", index.children[1].digest)
    expected.add((f"{ns}/index", index.children[1].digest, "manifest", "missing"))

    docker_list = reg.push_index(f"{ns}/list", "1.0", docker=True)
    reg.remove_revision_link(f"{ns}/list", docker_list.children[0].digest)
    expected.add((f"{ns}/list", docker_list.children[0].digest, "manifest", "missing"))

    attested = reg.push_index(f"{ns}/attest", "latest", platforms=("linux/amd64",))
    reg.remove_layer_link(f"{ns}/attest", attested.children[-1].layers[0])
    expected.add((f"{ns}/attest", attested.children[-1].layers[0], "layer", "missing"))

    inner = reg.push_index(f"{ns}/nested", "inner", attestations=False)
    reg.push_index(f"{ns}/nested", "outer", platforms=("linux/amd64",), children=[inner], attestations=False)
    reg.remove_blob_data(inner.children[0].layers[1])
    expected.add((f"{ns}/nested", inner.children[0].layers[1], "layer", "missing"))

    gone = reg.push_image(f"{ns}/gone", "v1")
    reg.remove_blob_data(gone.layers[0])
    expected.add((f"{ns}/gone", gone.layers[0], "layer", "missing"))

    empty = reg.push_image(f"{ns}/empty", "v1")
    reg.truncate_blob(empty.layers[1])
    expected.add((f"{ns}/empty", empty.layers[1], "layer", "size_mismatch"))

    base = b"common-base" * 300
    one = reg.push_image(f"{ns}/one", "v1", layers=[base])
    reg.push_image(f"{ns}/two", "v1", layers=[base])
    reg.remove_layer_link(f"{ns}/one", one.layers[0])
    expected.add((f"{ns}/one", one.layers[0], "layer", "missing"))

    tagged = reg.push_image(f"{ns}/tagged", "v1")
    reg.tag(f"{ns}/tagged", "v1-alias", tagged.digest)
    reg.push_image(f"{ns}/tagged", "v2")
    reg.remove_revision_link(f"{ns}/tagged", tagged.digest)
    expected.add((f"{ns}/tagged", tagged.digest, "manifest", "missing"))

    revdata = reg.push_image(f"{ns}/revdata", "v1")
    reg.remove_blob_data(revdata.digest)
    expected.add((f"{ns}/revdata", revdata.digest, "manifest", "missing"))

    reg.push_image(f"{ns}/notag", "v1")
    (reg.root / tag_link(f"{ns}/notag", "v1")).unlink()
    expected.add((f"{ns}/notag", "tag:v1", "manifest", "missing"))

    config = reg.push_image(f"{ns}/config", "v1")
    reg.remove_layer_link(f"{ns}/config", config.config)
    expected.add((f"{ns}/config", config.config, "config", "missing"))

    rot = reg.push_image(f"{ns}/rot", "v1")
    reg.corrupt_blob(rot.layers[0])
    rotten = (f"{ns}/rot", rot.layers[0], "layer", "digest_mismatch")

    def tag_target(repository: str, tag: str) -> str:
        try:
            return (reg.root / tag_link(repository, tag)).read_text()
        except FileNotFoundError:
            return f"tag:{tag}"

    def by_object(findings: list[dict[str, Any]], http: bool) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for f in findings:
            if f["digest"] is not None:
                objects = [f["digest"]]
            elif http:
                objects = [tag_target(f["repository"], t) for t in f["tags"]]
            else:
                objects = [f"tag:{t}" for t in f["tags"]]
            for obj in objects:
                entry = out.setdefault((f["repository"], obj), {"kind": f["kind"], "problem": f["problem"]})
                assert (entry["kind"], entry["problem"]) == (f["kind"], f["problem"]), f
                entry.setdefault("tags", set()).update(f["tags"])
                entry.setdefault("parents", set()).add(f["parent"])
        return out

    for blob_check, verify in (("range", ()), ("digest", ("--verify-digests",))):
        cfg = {"name": "x", "url": reg.url, "repositories": {"include": [f"{ns}/*"]}, "blob_check": blob_check}
        http = regprobe("run", "-c", probe_config(cfg), "--format", "json")
        disk = fsck(regprobe, reg, *verify)
        assert (http.code, disk.code) == (1, 1), http.err + disk.err

        walked, scanned = by_object(http.findings(), http=True), by_object(found(disk), http=False)

        assert scanned == walked
        want = expected | ({rotten} if verify else set())
        assert {(r, o, e["kind"], e["problem"]) for (r, o), e in scanned.items()} == want


# -- repair -----------------------------------------------------------------------------------------


def test_repair_removes_only_layer_links_to_missing_or_empty_data(reg: Registry, ns: str, regprobe: Any) -> None:
    repo = f"{ns}/app"
    image = reg.push_image(repo, "v1")
    reg.tag(repo, "latest", image.digest)
    index = reg.push_index(f"{ns}/multi", "latest")
    reg.remove_revision_link(f"{ns}/multi", index.children[1].digest)  # found, never repaired
    reg.remove_blob_data(image.layers[0])
    reg.truncate_blob(image.layers[1])
    links = {layer_link(repo, image.layers[0]), layer_link(repo, image.layers[1])}
    before = snapshot(reg.root)

    run = regprobe("fsck", str(reg.root), "--repair")

    assert run.code == 1  # found is found, repaired or not: the image still lacks those blobs
    removed = sorted(line.split()[-1] for line in run.out.splitlines() if line.strip().startswith("removed "))
    assert removed == sorted(os.path.dirname(link) for link in links)
    assert "3 broken objects, 2 repaired" in run.out
    after = snapshot(reg.root)
    gone = set(before) - set(after)
    assert gone == links | {os.path.dirname(link) for link in links}
    assert set(after) <= set(before)
    files = {p: v for p, v in before.items() if v[0] == "f" and p not in gone}
    assert {p: v for p, v in after.items() if v[0] == "f"} == files  # no other file touched
    for repository, tag in ((repo, "v1"), (repo, "latest"), (f"{ns}/multi", "latest")):
        assert reg.http.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": ACCEPT}).status_code == 200

    # The links are gone; the manifest still needs the blobs, whose content is really gone: the image is
    # still reported broken - now as a missing link, which --repair does not touch. The emptied blob's
    # 0-byte data file, which has to be deleted by hand before a re-push can work, is still named.
    second = fsck(regprobe, reg, "--repair")
    assert second.code == 1
    layers = {f["digest"]: f for f in found(second) if f["kind"] == "layer"}
    assert set(layers) == set(image.layers)
    lost, emptied = layers[image.layers[0]], layers[image.layers[1]]
    assert (lost["problem"], lost["detail"]) == ("missing", "no layer link in this repository")
    assert (emptied["problem"], emptied["detail"]) == (
        "missing",
        f"no layer link in this repository; its data is empty (0 bytes): delete {data_file(image.layers[1])} "
        "before re-pushing",
    )
    assert [(f["repaired"], f["repairable"]) for f in layers.values()] == [(False, False)] * 2
    assert second.report["repaired"] == 0
    assert snapshot(reg.root) == after


def test_repair_keeps_links_to_data_that_is_there_but_wrong(reg: Registry, ns: str, regprobe: Any) -> None:
    """Short or rotten data may be all anyone has of a blob: only links to lost content are offered."""
    repo = f"{ns}/app"
    image = reg.push_image(repo, "v1")
    (reg.root / data_file(image.layers[0])).write_bytes(b"x" * 100)
    reg.corrupt_blob(image.layers[1])
    reg.remove_blob_data(image.config)  # the control: lost, so offered
    config_dir = os.path.dirname(layer_link(repo, image.config))
    before = snapshot(reg.root)

    plain = fsck(regprobe, reg, "--verify-digests")
    text = regprobe("fsck", str(reg.root), "--verify-digests")
    repaired = fsck(regprobe, reg, "--verify-digests", "--repair")

    offered = {f["digest"]: (f["problem"], f["repairable"]) for f in found(plain)}
    assert offered == {
        image.layers[0]: ("size_mismatch", False),
        image.layers[1]: ("digest_mismatch", False),
        image.config: ("missing", True),
    }
    assert [line for line in text.out.splitlines() if "repairable:" in line] == [
        f"      repairable: --repair removes {config_dir}"
    ]
    assert {f["digest"]: f["repaired"] for f in found(repaired)} == {
        image.layers[0]: False,
        image.layers[1]: False,
        image.config: True,
    }
    assert set(before) - set(snapshot(reg.root)) == {config_dir, f"{config_dir}/link"}


def test_repair_dry_run_changes_nothing_and_names_what_repair_removes(reg: Registry, ns: str, regprobe: Any) -> None:
    repo = f"{ns}/app"
    image = reg.push_image(repo, "v1")
    index = reg.push_index(f"{ns}/multi", "latest")
    child = index.children[1].digest
    reg.remove_revision_link(f"{ns}/multi", child)  # found, never repairable
    reg.remove_blob_data(image.layers[0])
    reg.truncate_blob(image.layers[1])
    dirs = sorted(os.path.dirname(layer_link(repo, layer)) for layer in image.layers)
    before = snapshot(reg.root)

    alone = regprobe("fsck", str(reg.root), "--dry-run")
    text = regprobe("fsck", str(reg.root), "--repair", "--dry-run")
    doc = fsck(regprobe, reg, "--repair", "--dry-run")
    plain = fsck(regprobe, reg)

    assert snapshot(reg.root) == before
    assert (alone.code, alone.out) == (2, "")
    assert "--dry-run goes with --repair" in alone.err
    assert (text.code, doc.code, plain.code) == (1, 1, 1)
    assert sorted(line.split()[-1] for line in text.out.splitlines() if line.startswith("      would remove ")) == dirs
    assert "3 broken objects, 2 would be repaired (dry run: nothing changed); " in text.out
    assert (doc.report["dry_run"], doc.report["repairable"], doc.report["repaired"]) == (True, 2, 0)
    assert (plain.report["dry_run"], plain.report["repairable"]) == (False, 2)
    want = sorted([(image.layers[0], True, False), (image.layers[1], True, False), (child, False, False)])
    for run in (doc, plain):
        assert sorted((f["digest"], f["repairable"], f["repaired"]) for f in found(run)) == want

    done = regprobe("fsck", str(reg.root), "--repair")
    assert sorted(line.split()[-1] for line in done.out.splitlines() if line.startswith("      removed ")) == dirs


def test_repair_rechecks_each_link_right_before_removing_it(cache: tuple[Registry, Registry], regprobe: Any) -> None:
    """On a live pull-through cache a blob lost at scan time can be back by the time --repair gets to
    it (a client pulled it, the cache fetched it again): its link is good again and stays."""
    upstream, proxy = cache
    image = upstream.push_image("lib/app", "v1")
    pull(proxy, "lib/app", "v1", image.layers)
    proxy.remove_blob_data(image.layers[0])

    class PulledMeanwhile(Storage):
        def collect(self, name: str, rel: str) -> Any:
            facts = super().collect(name, rel)
            pull(proxy, "lib/app", "v1", image.layers[:1])  # after the scan, before the repair
            return facts

    out = io.StringIO()
    root = str(proxy.root)
    output = JsonOutput(root, out, Repair.ON)
    summary = scan(PulledMeanwhile(root), output, False, Repair.ON)
    output.finish(summary)

    finding = only(json.loads(out.getvalue())["findings"])
    assert (finding["digest"], finding["problem"], finding["repaired"]) == (image.layers[0], "missing", False)
    assert (summary.repairable, summary.repaired) == (1, 0)
    assert (proxy.root / layer_link("lib/app", image.layers[0])).exists()
    assert fsck(regprobe, proxy, "--no-index-children").code == 0


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[tuple[Registry, Registry]]:
    """(upstream, pull-through cache of it), neither with a descriptor cache."""
    upstream = Registry(tmp_path / "upstream", cache=False).start()
    proxy = Registry(tmp_path / "cache", cache=False, extra={"proxy": {"remoteurl": upstream.url}}).start()
    yield upstream, proxy
    proxy.stop()
    upstream.stop()


def pull(proxy: Registry, repository: str, reference: str, blobs: list[str]) -> list[tuple[int, int]]:
    """Pull a manifest and the given blobs through the cache, as a client that has the rest would."""
    assert proxy.http.get(f"/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT}).status_code == 200
    got = []
    for digest in blobs:
        response = proxy.http.get(f"/v2/{repository}/blobs/{digest}")
        got.append((response.status_code, len(response.content)))
    # The cache stores what it streamed after the response has gone out.
    wait_for(lambda: all((proxy.root / layer_link(repository, d)).exists() for d in blobs), "layer links", 5, 0.02)
    wait_for(lambda: all((proxy.root / data_file(d)).exists() for d in blobs), "blob data", 5, 0.02)
    return got


def test_cache_mode_agrees_with_the_http_walk_of_a_cache(
    cache: tuple[Registry, Registry], regprobe: Any, probe_config: Any
) -> None:
    """On a partly pulled cache, fsck --no-index-children and a walk with index_children: false agree."""
    upstream, proxy = cache
    app = upstream.push_image("lib/app", "v1")
    multi = upstream.push_index("lib/multi", "latest", attestations=False)
    empty = upstream.push_image("lib/empty", "v1")
    pull(proxy, "lib/app", "v1", app.layers)  # the config never: a client that had it
    pull(proxy, "lib/multi", "latest", [])
    pull(proxy, "lib/multi", multi.children[0].digest, multi.children[0].layers[:1])  # amd64 only
    pull(proxy, "lib/empty", "v1", empty.layers)
    proxy.truncate_blob(empty.layers[0])
    want = [("lib/empty", empty.layers[0], "layer", "size_mismatch")]

    # fsck first: the walk pulls through the cache and so fills it in.
    disk = fsck(regprobe, proxy, "--no-index-children")
    cfg = {
        "name": "cache",
        "url": proxy.url,
        "index_children": False,
        "repositories": {"list": ["lib/app", "lib/multi", "lib/empty"]},
    }
    http = regprobe("run", "-c", probe_config(cfg), "--format", "json")

    assert [(f["repository"], f["digest"], f["kind"], f["problem"]) for f in found(disk)] == want
    assert [(f["repository"], f["digest"], f["kind"], f["problem"]) for f in http.findings()] == want


def test_cache_refetches_lost_data_without_repair(cache: tuple[Registry, Registry], regprobe: Any) -> None:
    """Without a descriptor cache, a cache whose blob data is gone re-fetches it on the next pull."""
    upstream, proxy = cache
    image = upstream.push_image("lib/app", "v1")
    pull(proxy, "lib/app", "v1", image.layers)
    proxy.remove_blob_data(image.layers[0])
    assert found(fsck(regprobe, proxy, "--no-index-children"))[0]["problem"] == "missing"

    assert pull(proxy, "lib/app", "v1", image.layers[:1]) == [(200, 1500)]

    assert fsck(regprobe, proxy, "--no-index-children").code == 0


def test_repair_on_a_pull_through_cache(cache: tuple[Registry, Registry], regprobe: Any) -> None:
    """What --repair buys on a cache, measured on distribution 2.8 (docs/fsck.md).

    Data gone: after the link goes, the next pull re-fetches the blob from upstream and stores it -
    the cache is whole again. Data emptied: that pull is served from upstream too, but distribution
    never replaces an existing data file (it takes the path as already uploaded), so the link comes
    back pointing at the same empty file and the fault returns.
    """
    upstream, proxy = cache
    image = upstream.push_image("lib/app", "v1")
    pull(proxy, "lib/app", "v1", image.layers)
    assert fsck(regprobe, proxy, "--no-index-children").code == 0

    proxy.remove_blob_data(image.layers[0])
    proxy.truncate_blob(image.layers[1])
    repaired = fsck(regprobe, proxy, "--no-index-children", "--repair")
    assert sorted((f["digest"], f["problem"], f["repaired"]) for f in found(repaired)) == sorted(
        [(image.layers[0], "missing", True), (image.layers[1], "size_mismatch", True)]
    )
    # Unlinked now: normal on a cache for the lost blob, a trap for the emptied one, whose data file the
    # next pull links again.
    between = only(found(fsck(regprobe, proxy, "--no-index-children")))
    assert (between["digest"], between["problem"], between["path"], between["repairable"]) == (
        image.layers[1],
        "size_mismatch",
        data_file(image.layers[1]),
        False,
    )

    assert pull(proxy, "lib/app", "v1", image.layers) == [(200, 1500), (200, 2500)]  # both from upstream

    after = only(found(fsck(regprobe, proxy, "--no-index-children")))
    assert (after["digest"], after["problem"], after["repaired"]) == (image.layers[1], "size_mismatch", False)
    assert (proxy.root / data_file(image.layers[0])).stat().st_size == 1500
    assert (proxy.root / data_file(image.layers[1])).stat().st_size == 0


def test_emptied_blob_needs_its_data_file_removed(reg: Registry, ns: str, regprobe: Any) -> None:
    """The recovery docs/fsck.md gives for a zero-length data file, step by step on a private registry."""
    layer = os.urandom(1500)
    image = reg.push_image(f"{ns}/app", "v1", layers=[layer])
    reg.truncate_blob(image.layers[0])

    assert found(fsck(regprobe, reg, "--repair"))[0]["repaired"] is True
    reg.push_blob(f"{ns}/app", layer)  # a re-push: distribution keeps the existing (empty) data file
    still = only(found(fsck(regprobe, reg)))
    assert (still["digest"], still["problem"]) == (image.layers[0], "size_mismatch")

    reg.stop()
    (reg.root / data_file(image.layers[0])).unlink()
    reg.start()
    reg.push_blob(f"{ns}/app", layer)

    assert fsck(regprobe, reg).code == 0
    assert len(reg.http.get(f"/v2/{ns}/app/blobs/{image.layers[0]}").content) == 1500


def test_read_only_without_repair(reg: Registry, ns: str, regprobe: Any) -> None:
    image = reg.push_image(f"{ns}/app", "v1")
    index = reg.push_index(f"{ns}/multi", "latest")
    reg.remove_revision_link(f"{ns}/multi", index.children[0].digest)
    reg.remove_blob_data(image.layers[0])
    reg.truncate_blob(image.layers[1])
    reg.corrupt_blob(index.children[1].layers[0])
    before = snapshot(reg.root)

    for args in ((), ("--verify-digests",), ("--no-index-children",)):
        assert fsck(regprobe, reg, *args).code == 1
        assert regprobe("fsck", str(reg.root), *args).code == 1

    assert snapshot(reg.root) == before


# -- usage, unreadable storage, output ----------------------------------------------------------------


def test_bad_root_is_a_usage_error(tmp_path: Path, reg: Registry, regprobe: Any) -> None:
    missing = regprobe("fsck", str(tmp_path / "nowhere"))
    assert (missing.code, missing.out) == (2, "")
    assert f"ROOT {tmp_path / 'nowhere'}: no such directory" in missing.err

    not_root = regprobe("fsck", str(tmp_path))
    assert not_root.code == 2
    assert f"ROOT {tmp_path}: no docker/registry/v2 under it" in not_root.err

    reg.push_image("some/app", "v1")
    too_deep = regprobe("fsck", str(reg.v2), "--format", "json")
    assert (too_deep.code, too_deep.out) == (2, "")
    assert f"the rootdirectory is {reg.root}" in too_deep.err


def test_unreadable_directory_is_reported_and_skipped(
    reg: Registry, ns: str, regprobe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg.push_image(f"{ns}/readable", "v1")
    reg.push_image(f"{ns}/locked", "v1")
    locked = reg.v2 / "repositories" / ns / "locked"
    if os.geteuid() == 0:
        # root reads through any mode bits: make the one directory fail the way it would for a user.
        real = os.scandir

        def scandir(path: Any = ".") -> Any:
            if isinstance(path, str) and path == str(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
    locked.chmod(0)
    try:
        clean = fsck(regprobe, reg)
        reg.remove_blob_data(reg.push_image(f"{ns}/readable", "v2").layers[0])
        broken = fsck(regprobe, reg)
    finally:
        locked.chmod(0o755)

    rel = f"{V2}/repositories/{ns}/locked"
    assert clean.code == 3  # could not complete, nothing found in the rest
    assert clean.report["complete"] is False
    assert clean.report["errors"] == [f"cannot read {rel}: Permission denied"]
    assert clean.report["error_count"] == 1
    assert rel in clean.err
    assert clean.report["repositories"] == 1
    assert broken.code == 1  # findings win over incomplete
    assert only(found(broken))["repository"] == f"{ns}/readable"


def test_text_report_groups_by_repository(reg: Registry, ns: str, regprobe: Any) -> None:
    """Laid out as `run` reports a registry: the state and counts first, then each repository's findings."""
    index = reg.push_index(f"{ns}/api", "v1")
    reg.remove_revision_link(f"{ns}/api", index.children[0].digest)
    image = reg.push_image(f"{ns}/worker", "2026.11")
    reg.remove_blob_data(image.layers[0])

    run = regprobe("fsck", str(reg.root))

    assert run.code == 1
    child, layer = index.children[0].digest, image.layers[0]
    assert run.out.splitlines() == [
        f"{reg.root}  BROKEN",
        run.out.splitlines()[1],
        f"  {ns}/api  tags: v1",
        f"    manifest {child[:19]} missing  under {index.digest[:19]}",
        "      index child has no revision link in this repository",
        f"      {revision_link(f'{ns}/api', child)}",
        f"  {ns}/worker  tags: 2026.11",
        f"    layer    {layer[:19]} missing  under {image.digest[:19]}",
        "      layer link present, blob data gone",
        f"      {layer_link(f'{ns}/worker', layer)}",
        f"      repairable: --repair removes {os.path.dirname(layer_link(f'{ns}/worker', layer))}",
    ]
    # Layer links: api's 2 platforms x (config + 2 layers) and 2 attestations x (config + statement),
    # worker's config + 2 layers.
    assert run.out.splitlines()[1].startswith(
        "  2 repositories, 5 manifests, 13 layer links; 2 broken objects, 1 repairable with --repair; "
    )


def test_json_is_one_document(reg: Registry, ns: str, regprobe: Any) -> None:
    image = reg.push_image(f"{ns}/app", "v1")
    reg.remove_blob_data(image.layers[0])
    reg.remove_blob_data(image.layers[1])

    run = fsck(regprobe, reg)

    doc = json.loads(run.out)
    assert list(doc)[:2] == ["root", "complete"], "the summary first, as in the text"
    assert list(doc)[-1] == "findings" and len(doc["findings"]) == 2
    assert set(doc["findings"][0]) >= {"repository", "digest", "kind", "problem", "parent", "path", "repaired"}


def test_progress_on_a_terminal_never_runs_into_findings_or_log_lines(reg: Registry, ns: str) -> None:
    """stdout and stderr on one real terminal, as a person running fsck sees them: the progress line is
    cleared before each removal logged with -v (stderr), and before the report (stdout) is written."""
    for name in ("a", "b", "c"):
        reg.remove_blob_data(reg.push_image(f"{ns}/{name}", "v1").layers[0])
    code, _, screen = run_on_terminal(["fsck", str(reg.root), "--repair", "-v"], env={"NO_COLOR": "1"}, stdout_too=True)
    assert code == 1
    lines = screen.split("\r\n")
    starts = [line for line in lines if f"{ns}/" in line and "tags: v1" in line]
    starts += [line for line in lines if "INFO: removed" in line]
    assert len(starts) == 6, screen
    drawn = re.compile(r"\r[^\r]*: (starting|repositories)[^\r]*")
    for line in starts:
        # Whatever the progress line drew before it, the text is written after a wipe, never appended.
        assert drawn.sub("", line).lstrip("\r ").startswith((ns, "regprobe: INFO")), repr(line)
    assert "repositories 3/3, 12 objects checked, 3 findings" in screen
    before, head, report = screen.partition(f"{reg.root}  BROKEN")
    assert head and "repositories 3/" not in report, "the bar is gone before the report"
    assert not before.rsplit("\r", 1)[-1].strip(), "and wiped, not written over"


def test_the_last_progress_line_agrees_with_the_report(
    reg: Registry, ns: str, regprobe: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a terminal (a CronJob's log, CI) progress is a log line every interval, each an interval
    old by the end: the log ends with one more line of the final figures, the report's (issue 21)."""
    for name in ("a", "b"):
        reg.remove_blob_data(reg.push_image(f"{ns}/{name}", "v1").layers[0])
    reg.push_image(f"{ns}/c", "v1")
    ticked = threading.Event()

    class Tick(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            ticked.set()

    tick = Tick()
    logging.getLogger("regprobe.progress").addHandler(tick)
    monkeypatch.setenv("_REGPROBE_PROGRESS_INTERVAL", "0.3")
    collect = Storage.collect

    def after_a_tick(self: Storage, name: str, rel: str) -> Any:
        assert ticked.wait(30), "no progress line was logged"  # the log has figures from mid-scan
        return collect(self, name, rel)

    monkeypatch.setattr(Storage, "collect", after_a_tick)
    try:
        run = regprobe("fsck", str(reg.root))
    finally:
        logging.getLogger("regprobe.progress").removeHandler(tick)

    summary = re.match(
        r"  (\d+) repositories, (\d+) manifests, (\d+) layer links; (\d+) broken objects", run.out.splitlines()[1]
    )
    assert summary, run.out
    repositories, manifests, links, broken = map(int, summary.groups())
    progress = [line for line in run.err.splitlines() if f" {reg.root}: repositories " in line]
    assert progress[-1] == (
        f"regprobe: INFO: done {reg.root}: repositories {repositories}/{repositories}, "
        f"{manifests + links} objects checked, {broken} findings"
    ), run.err
