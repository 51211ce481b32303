"""registry:2 on S3, for real: the Debian docker-registry's s3 driver against moto's S3 server.

Blob GETs and HEADs answer 307 to a presigned URL on the S3 endpoint, so what regprobe judges is S3's
answer (REGISTRY-FACTS.md, "registry:2 on S3"). Every fact asserted here is VERIFIED: it is what these
two real servers do on this machine. One moto server and one registry (behind htpasswd, so there are
credentials that must not leak to the storage host) serve the whole module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from .registry import Registry
from .s3 import MotoS3

PASSWORD = "s3-registry-password"
USER_AGENT = "regprobe/"

pytestmark = pytest.mark.each_registry


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    server = MotoS3(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3_registry(tmp_path_factory: pytest.TempPathFactory, moto: MotoS3, flavour: str) -> Iterator[Registry]:
    work = tmp_path_factory.mktemp("s3-registry")
    htpasswd = work / "htpasswd"
    htpasswd.write_text("ci:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode() + "\n")
    reg = Registry(
        work,
        storage=moto.bucket(f"registry{flavour}"),
        extra={"auth": {"htpasswd": {"realm": "s3-test", "path": str(htpasswd)}}},
        flavour=flavour,
    )
    reg.http.auth = ("ci", PASSWORD)
    reg.start()
    yield reg
    reg.stop()


@pytest.fixture
def s3_config(s3_registry: Registry, probe_config: Any, tmp_path: Path) -> Any:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)

    def write(ns: str, **entry: Any) -> str:
        return str(
            probe_config(
                {
                    "name": "s3",
                    "url": s3_registry.url,
                    "auth": {"username": "ci", "password_file": str(secret)},
                    "repositories": {"include": [f"{ns}/*"]},
                    **entry,
                }
            )
        )

    return write


def _regprobe_at_storage(moto: MotoS3, since: int) -> list[dict[str, Any]]:
    """What regprobe's requests looked like when they reached S3 (moto's own recording)."""
    return [r for r in moto.requests()[since:] if r["headers"].get("User-Agent", "").startswith(USER_AGENT)]


def _assert_no_presigned_query(text: str, moto: MotoS3) -> None:
    assert "X-Amz-" not in text and "amz-" not in text.lower()
    for request in _regprobe_at_storage(moto, 0):
        signature = request["url"].split("X-Amz-Signature=", 1)[1].split("&", 1)[0]
        assert signature not in text


@pytest.mark.parametrize(("mode", "method"), [("range", "GET"), ("head", "HEAD")])
def test_healthy_images_are_read_from_s3_without_the_registry_credentials(
    s3_registry: Registry, moto: MotoS3, ns: str, regprobe: Any, s3_config: Any, mode: str, method: str
) -> None:
    images = [s3_registry.push_image(f"{ns}/app", "v1"), *s3_registry.push_index(f"{ns}/multi", "latest").children]
    blobs = {(i.repository, d) for i in images for d in (i.config, *i.layers)}
    before = len(moto.requests())

    run = regprobe("run", "-c", s3_config(ns, blob_check=mode), "--no-push", "--format", "json", "-vv")

    assert run.code == 0, run.out + run.err
    assert run.findings() == []
    at_storage = _regprobe_at_storage(moto, before)
    # Every blob was checked once, through a presigned URL.
    assert len(at_storage) == len(blobs)
    last_bytes = {f"bytes={size - 1}-{size - 1}" for size in (s3_registry.blob_size(d) for _, d in blobs)}
    for request in at_storage:
        assert "X-Amz-Signature=" in request["url"]
        assert "Authorization" not in request["headers"], "the registry's credentials reached S3"
        # The method survives the 307 (the registry presigns HEAD for HEAD), and Range travels with it.
        assert request["method"] == method
        assert request["headers"].get("Range") in (last_bytes if method == "GET" else {None})
    if method == "GET":
        assert {r["headers"]["Range"] for r in at_storage} == last_bytes
    _assert_no_presigned_query(run.out + run.err, moto)


def test_broken_storage_is_judged_from_what_s3_answers(
    s3_registry: Registry, moto: MotoS3, ns: str, regprobe: Any, s3_config: Any
) -> None:
    layers = [b"gone" * 500, b"emptied" * 500, b"shortened" * 500, b"intact" * 500]
    image = s3_registry.push_image(f"{ns}/app", "v1", layers=layers)
    index = s3_registry.push_index(f"{ns}/multi", "latest", attestations=False)
    gone, emptied, shortened, _ = image.layers
    s3_registry.remove_revision_link(f"{ns}/multi", index.children[1].digest)  # the registry's own 404
    s3_registry.evict_revisions()  # before the warm-up below, which a restart would undo
    # GC deleted the data while the registry ran: its descriptor cache still knows the blob, so it still
    # redirects, and S3 answers 404 NoSuchKey (XML).
    s3_registry.warm(f"{ns}/app", gone)
    s3_registry.remove_blob_data(gone)
    # S3 answers a Range beyond an object's end with 416 and no Content-Range: the last byte of an emptied
    # or a shortened object (a first-byte check saw the shortened one as 206 with its short total).
    s3_registry.truncate_blob(emptied)
    s3_registry.shorten_blob(shortened, 10)

    run = regprobe("run", "-c", s3_config(ns), "--no-push", "--format", "json", "-vv")

    assert run.code == 1, run.out + run.err
    found = {(f["repository"], f["kind"], f["digest"]): (f["problem"], f["status"]) for f in run.findings()}
    assert found == {
        (f"{ns}/app", "layer", gone): ("missing", 404),
        (f"{ns}/app", "layer", emptied): ("truncated", 416),
        (f"{ns}/app", "layer", shortened): ("truncated", 416),
        (f"{ns}/multi", "manifest", index.children[1].digest): ("missing", 404),
    }
    details = {f["digest"]: f["detail"] for f in run.findings()}
    assert details[gone].startswith(f"GET answered 404 NoSuchKey (at {moto.url}, where the registry redirected)")
    for blob, size in ((emptied, len(layers[1])), (shortened, len(layers[2]))):
        assert details[blob] == (
            f"GET answered 416 InvalidRange (at {moto.url}, where the registry redirected): byte {size - 1} does"
            f" not exist, the stored object is shorter than the descriptor's {size} bytes"
        )
    assert details[index.children[1].digest] == "GET answered 404 MANIFEST_UNKNOWN"
    text = regprobe("run", "-c", s3_config(ns), "--no-push", "-vv")
    _assert_no_presigned_query(run.out + run.err + text.out + text.err, moto)
    assert json.loads(run.out)["registries"][0]["complete"] is True
