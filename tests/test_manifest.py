from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regprobe import mediatypes as mt
from regprobe.errors import ManifestError
from regprobe.manifest import Image, Index, parse

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def body(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_oci_image_with_foreign_layer() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 10},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D2, "size": 20},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": D3, "size": 5, "urls": ["https://x"]},
        ],
    }
    manifest = parse(body(doc), None)
    assert isinstance(manifest, Image)
    assert str(manifest.config.digest) == D1
    assert [layer.foreign for layer in manifest.layers] == [False, True]


def test_docker_list_from_content_type_when_body_has_no_media_type() -> None:
    doc = {"schemaVersion": 2, "manifests": [{"mediaType": mt.DOCKER_MANIFEST, "digest": D1, "size": 3}]}
    manifest = parse(body(doc), mt.DOCKER_LIST + "; charset=utf-8")
    assert isinstance(manifest, Index) and manifest.media_type == mt.DOCKER_LIST


def test_index_children_carry_their_platform_and_odd_platforms_are_dropped() -> None:
    """A platform is shown in reports: only plain identifiers; anything else is no platform, never a reason
    to refuse the index (clients pull its children by digest all the same)."""
    odd = [
        {"os": "linux", "architecture": "amd64\u001b[31m"},
        {"os": "linux"},
        {"os": "linux", "architecture": "x" * 100},
        {"os": 7, "architecture": "arm64"},
        "linux/arm64",
    ]
    platforms = [{"os": "linux", "architecture": "arm64"}, {"os": "linux", "architecture": "arm", "variant": "v7"}]
    doc = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": D1, "size": 3, "platform": p} for p in platforms + odd]
        + [{"mediaType": mt.OCI_MANIFEST, "digest": D2, "size": 3}],
    }
    manifest = parse(body(doc), None)
    assert isinstance(manifest, Index)
    assert [c.platform for c in manifest.children] == ["linux/arm64", "linux/arm/v7"] + [None] * (len(odd) + 1)


def test_shape_fallback_without_any_media_type() -> None:
    doc = {"schemaVersion": 2, "manifests": []}
    assert isinstance(parse(body(doc), "application/json"), Index)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not an object"),
        (b'{"schemaVersion": 1, "fsLayers": []}', "schema1"),
        (body({"mediaType": "application/vnd.oci.artifact.manifest.v1+json"}), "unsupported manifest media type"),
        (body({"mediaType": mt.OCI_INDEX, "manifests": {}}), "no 'manifests' list"),
        (body({"mediaType": mt.OCI_MANIFEST, "config": {}, "layers": []}), "config.digest"),
        (
            body({"mediaType": mt.OCI_MANIFEST, "config": {"digest": D1, "size": True}, "layers": []}),
            "config.size",
        ),
        (
            body({"mediaType": mt.OCI_MANIFEST, "config": {"digest": D1, "size": 1}, "layers": [{"digest": "x"}]}),
            r"layers\[0\].digest",
        ),
        (body({"mediaType": mt.OCI_INDEX, "manifests": [{"digest": D1, "size": -1}]}), r"manifests\[0\].size"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100_000, "not JSON"),
    ],
)
def test_rejects(raw: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse(raw, None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@given(
    st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()), st.sampled_from([None, mt.OCI_INDEX])
)
def test_arbitrary_bodies_raise_only_manifest_error(raw: bytes, content_type: str | None) -> None:
    with contextlib.suppress(ManifestError):
        parse(raw, content_type)


@given(
    st.fixed_dictionaries(
        {"mediaType": st.sampled_from(sorted(mt.MANIFEST_TYPES))},
        optional={"manifests": json_values, "config": json_values, "layers": json_values},
    )
)
def test_arbitrary_manifest_shapes_raise_only_manifest_error(doc: dict[str, object]) -> None:
    with contextlib.suppress(ManifestError):
        parse(body(doc), None)
