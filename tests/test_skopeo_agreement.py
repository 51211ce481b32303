"""regprobe and a real client agree: skopeo (`copy --all`) fails on exactly the images regprobe calls
broken, for every fault the registry's storage can be put in."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .registry import Image, Registry

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed (make deps)")

Fault = Callable[[Registry, str, Image], None]


def warm_then_remove_data(reg: Registry, repo: str, img: Image) -> None:
    layer = img.children[0].layers[0]
    reg.warm(repo, layer)
    reg.remove_blob_data(layer)


def warm_then_cut_short(reg: Registry, repo: str, img: Image) -> None:
    """Data cut short on a live registry (issue 21): its first byte is still served, the rest is not."""
    layer = img.children[1].layers[0]
    reg.warm(repo, layer)
    reg.shorten_blob(layer, 1000)


def corrupt_child_manifest(reg: Registry, repo: str, img: Image) -> None:
    """Stored manifest data that is not JSON: distribution answers 500 on every try (issue 21)."""
    reg.blob_path(img.children[1].digest).write_bytes(b'{"schemaVersion": garbage')


FAULTS: dict[str, tuple[bool, Fault, str]] = {
    # name: (needs the descriptor cache, fault, blob_check)
    "healthy": (True, lambda reg, repo, img: None, "range"),
    "index-child-revision-gone": (
        True,
        lambda reg, repo, img: reg.remove_revision_link(repo, img.children[1].digest),
        "range",
    ),
    "blob-data-gone": (False, lambda reg, repo, img: reg.remove_blob_data(img.children[0].layers[1]), "range"),
    "blob-data-gone-cached": (True, warm_then_remove_data, "range"),
    "blob-cut-short-cached": (True, warm_then_cut_short, "range"),
    "blob-truncated": (False, lambda reg, repo, img: reg.truncate_blob(img.children[0].layers[0]), "range"),
    "layer-link-gone": (False, lambda reg, repo, img: reg.remove_layer_link(repo, img.children[1].layers[0]), "range"),
    "config-gone": (False, lambda reg, repo, img: reg.remove_blob_data(img.children[0].config), "range"),
    "child-manifest-corrupt": (True, corrupt_child_manifest, "range"),
    "tag-revision-gone": (True, lambda reg, repo, img: reg.remove_revision_link(repo, img.digest), "range"),
    "bit-rot": (True, lambda reg, repo, img: reg.corrupt_blob(img.children[1].layers[1]), "digest"),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_regprobe_agrees_with_skopeo(
    name: str,
    registry: Registry,
    registry_nocache: Registry,
    ns: str,
    regprobe: Any,
    probe_config: Any,
    tmp_path: Path,
) -> None:
    cached, fault, blob_check = FAULTS[name]
    reg = registry if cached else registry_nocache
    repo = f"{ns}/app"
    image = reg.push_index(repo, "v1", attestations=False)
    fault(reg, repo, image)

    skopeo = subprocess.run(
        [
            "skopeo",
            "copy",
            "--all",
            "--src-tls-verify=false",
            f"docker://{reg.host}/{repo}:v1",
            f"dir:{tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    cfg = {"name": "local", "url": reg.url, "blob_check": blob_check, "repositories": {"list": [repo]}}
    result = regprobe("run", "-c", probe_config(cfg), "--format", "json")

    pulled = skopeo.returncode == 0
    assert (result.code == 0) == pulled, f"skopeo: {skopeo.stderr[-500:]}\nregprobe: {result.out}"
    assert result.code in (0, 1)
    assert pulled == (name == "healthy")
