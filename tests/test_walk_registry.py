"""The walk against the real registry, broken in storage the way each row of REGISTRY-FACTS.md says."""

from __future__ import annotations

import os
from typing import Any

import pytest

from .registry import OCI_MANIFEST, Registry
from .util import only

# The walk's faults, on 2.8.2 and on v3.
pytestmark = pytest.mark.each_registry


def config_for(reg: Registry, ns: str, **extra: Any) -> dict[str, Any]:
    return {"name": "local", "url": reg.url, "repositories": {"include": [f"{ns}/*"]}, **extra}


def run_json(regprobe: Any, probe_config: Any, reg: Registry, ns: str, **extra: Any) -> Any:
    result = regprobe("run", "-c", probe_config(config_for(reg, ns, **extra)), "--format", "json")
    assert result.code in (0, 1), result.err
    return result


def test_healthy_registry_has_no_findings(registry: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    registry.push_healthy_set(ns)

    result = run_json(regprobe, probe_config, registry, ns)

    entry = result.report["registries"][0]
    assert result.code == 0
    assert entry["findings"] == []
    assert entry["catalog_accessible"] is True and entry["complete"] is True
    assert entry["repositories"] == 6
    assert entry["images_checked"] == 7


def test_index_child_revision_link_gone(registry: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    index = registry.push_index(f"{ns}/app", "latest")
    registry.tag(f"{ns}/app", "v2", index.digest)
    registry.push_image(f"{ns}/app", "healthy")
    arm64 = index.children[1]
    registry.remove_revision_link(f"{ns}/app", arm64.digest)
    registry.evict_revisions()

    result = run_json(regprobe, probe_config, registry, ns)

    assert result.code == 1
    finding = only(result.findings())
    assert finding == {
        "repository": f"{ns}/app",
        "digest": arm64.digest,
        "kind": "manifest",
        "problem": "missing",
        "status": 404,
        "tags": ["latest", "v2"],
        "parent": index.digest,
        "detail": "GET answered 404 MANIFEST_UNKNOWN",
        "platform": "linux/arm64",
    }


def test_revision_link_removed_while_the_registry_runs(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, flavour: str
) -> None:
    """A clean-up script removes an index child's revision link while the registry serves. 2.8.2 reads the
    link on every request: 404 at once. v3 looks revisions up through its descriptor cache, so it keeps
    serving the child (its data is still there: pulls work, and it is not reported) until the cache
    forgets it - after a restart, the image is broken."""
    index = registry.push_index(f"{ns}/app", "latest", attestations=False)
    registry.remove_revision_link(f"{ns}/app", index.children[1].digest)

    served = registry.http.head(f"/v2/{ns}/app/manifests/{index.children[1].digest}", headers={"Accept": OCI_MANIFEST})
    assert served.status_code == (200 if flavour == "3" else 404)
    assert run_json(regprobe, probe_config, registry, ns).code == (0 if flavour == "3" else 1)
    registry.evict_revisions()
    finding = only(run_json(regprobe, probe_config, registry, ns).findings())
    assert (finding["digest"], finding["problem"]) == (index.children[1].digest, "missing")


def test_docker_manifest_list_child_gone(registry: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    index = registry.push_index(f"{ns}/list", "1.0", docker=True)
    registry.remove_revision_link(f"{ns}/list", index.children[0].digest)
    registry.evict_revisions()

    finding = only(run_json(regprobe, probe_config, registry, ns).findings())

    assert (finding["kind"], finding["problem"], finding["digest"]) == ("manifest", "missing", index.children[0].digest)


# Removing a layer link is only visible once the registry's descriptor cache no longer holds the blob
# (with `cache: inmemory`, the repository-scoped entry keeps serving it until a restart; so do clients).
def test_attestation_manifests_are_walked(
    registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    index = registry_nocache.push_index(f"{ns}/app", "latest", platforms=("linux/amd64",))
    attestation = index.children[-1]
    registry_nocache.remove_layer_link(f"{ns}/app", attestation.layers[0])

    finding = only(run_json(regprobe, probe_config, registry_nocache, ns).findings())

    assert (finding["kind"], finding["problem"], finding["digest"]) == ("layer", "missing", attestation.layers[0])
    assert finding["parent"] == attestation.digest


def test_blob_data_gone_without_descriptor_cache(
    registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    image = registry_nocache.push_image(f"{ns}/app", "v1")
    registry_nocache.remove_blob_data(image.layers[0])

    finding = only(run_json(regprobe, probe_config, registry_nocache, ns).findings())

    assert (finding["kind"], finding["problem"], finding["status"]) == ("layer", "missing", 404)
    assert finding["digest"] == image.layers[0] and finding["parent"] == image.digest
    assert "BLOB_UNKNOWN" in finding["detail"]


@pytest.mark.parametrize("blob_check", ["range", "digest"])
def test_blob_data_gone_with_descriptor_cache(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, blob_check: str
) -> None:
    """GC while the registry runs: HEAD still says 200, a GET delivers no body (distribution #2945)."""
    image = registry.push_image(f"{ns}/app", "v1")
    registry.warm(f"{ns}/app", image.layers[1])
    registry.remove_blob_data(image.layers[1])
    head = registry.http.head(f"/v2/{ns}/app/blobs/{image.layers[1]}")
    assert head.status_code == 200  # the registry still claims the blob: a HEAD-only probe is blind

    finding = only(run_json(regprobe, probe_config, registry, ns, blob_check=blob_check).findings())

    assert (finding["kind"], finding["problem"], finding["digest"]) == ("layer", "truncated", image.layers[1])
    assert finding["tags"] == ["v1"]


def test_blob_truncated_to_zero_bytes(registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    image = registry_nocache.push_image(f"{ns}/app", "v1")
    registry_nocache.truncate_blob(image.layers[0])

    finding = only(run_json(regprobe, probe_config, registry_nocache, ns).findings())

    assert (finding["kind"], finding["problem"], finding["digest"]) == ("layer", "size_mismatch", image.layers[0])


def test_blob_truncated_head_mode(registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    image = registry_nocache.push_image(f"{ns}/app", "v1")
    registry_nocache.truncate_blob(image.layers[0])

    finding = only(run_json(regprobe, probe_config, registry_nocache, ns, blob_check="head").findings())

    assert (finding["problem"], finding["detail"]) == ("size_mismatch", "HEAD Content-Length 0, descriptor says 1500")


def test_layer_link_gone_in_one_repository_only(
    registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    base = b"common-base" * 300
    one = registry_nocache.push_image(f"{ns}/one", "v1", layers=[base])
    registry_nocache.push_image(f"{ns}/two", "v1", layers=[base])
    registry_nocache.remove_layer_link(f"{ns}/one", one.layers[0])

    finding = only(run_json(regprobe, probe_config, registry_nocache, ns).findings())

    assert (finding["repository"], finding["kind"], finding["problem"]) == (f"{ns}/one", "layer", "missing")


def test_tag_pointing_at_gone_revision(registry: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    image = registry.push_image(f"{ns}/app", "v1")
    registry.push_image(f"{ns}/app", "v2")
    registry.remove_revision_link(f"{ns}/app", image.digest)
    registry.evict_revisions()

    result = run_json(regprobe, probe_config, registry, ns)

    finding = only(result.findings())
    assert finding["digest"] is None
    assert (finding["kind"], finding["problem"], finding["status"], finding["tags"]) == (
        "manifest",
        "missing",
        404,
        ["v1"],
    )
    assert result.report["registries"][0]["images_checked"] == 2


def test_corrupted_blob_same_size_needs_digest_mode(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    image = registry.push_image(f"{ns}/app", "v1")
    registry.corrupt_blob(image.layers[0])

    finding = only(run_json(regprobe, probe_config, registry, ns, blob_check="digest").findings())

    assert (finding["kind"], finding["problem"], finding["digest"]) == ("layer", "digest_mismatch", image.layers[0])


def test_config_blob_gone(registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    image = registry_nocache.push_image(f"{ns}/app", "v1")
    registry_nocache.remove_layer_link(f"{ns}/app", image.config)

    finding = only(run_json(regprobe, probe_config, registry_nocache, ns).findings())

    assert (finding["kind"], finding["problem"], finding["digest"]) == ("config", "missing", image.config)


def test_shared_object_reported_once_with_every_tag(
    registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    base = b"base-layer" * 500
    registry_nocache.push_image(f"{ns}/app", "a", layers=[base, b"a" * 100])
    registry_nocache.push_image(f"{ns}/app", "b", layers=[base, b"b" * 100])
    c = registry_nocache.push_image(f"{ns}/app", "c", layers=[b"c" * 100])
    registry_nocache.tag(f"{ns}/app", "c-alias", c.digest)
    registry_nocache.remove_blob_data(registry_nocache.push_blob(f"{ns}/app", base))

    result = run_json(regprobe, probe_config, registry_nocache, ns)

    finding = only(result.findings())
    assert finding["tags"] == ["a", "b"]
    requests = result.report["registries"][0]["requests"]
    # catalog + tags list + 4 tag GETs + 1 config (the three images share it) + 4 distinct layers
    # (base checked once though two tags use it) = 11, and one referrers API request: 2.8.2 answers it 404,
    # so no other manifest's referrers are asked for (nor read from a fallback tag: none is listed)
    assert requests == {"ok": 10, "client_error": 2, "server_error": 0, "timeout": 0, "network_error": 0, "retried": 0}


def test_index_children_false_tolerates_missing_child(
    registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    """A pull-through cache holds only the platforms someone pulled; what it holds is still walked."""
    index = registry_nocache.push_index(f"{ns}/cache", "latest", attestations=False)
    registry_nocache.remove_revision_link(f"{ns}/cache", index.children[1].digest)

    clean = run_json(regprobe, probe_config, registry_nocache, ns, index_children=False)
    assert clean.code == 0 and clean.findings() == []

    registry_nocache.remove_layer_link(f"{ns}/cache", index.children[0].layers[0])
    broken = run_json(regprobe, probe_config, registry_nocache, ns, index_children=False)
    finding = only(broken.findings())
    assert (finding["kind"], finding["problem"], finding["parent"]) == ("layer", "missing", index.children[0].digest)


def test_repository_selection(registry: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    for name in ("team-a/app", "team-a/tool", "team-b/app"):
        registry.push_image(f"{ns}/{name}", "v1")
    broken = registry.push_image(f"{ns}/team-b/app", "v2")
    registry.remove_revision_link(f"{ns}/team-b/app", broken.digest)
    registry.evict_revisions()

    def run(repositories: dict[str, Any]) -> Any:
        cfg = {"name": "local", "url": registry.url, "repositories": repositories}
        return regprobe("run", "-c", probe_config(cfg), "--format", "json")

    included = run({"include": [f"{ns}/team-a/*"]})
    assert included.code == 0 and included.report["registries"][0]["repositories"] == 2
    excluded = run({"include": [f"{ns}/*"], "exclude": [f"{ns}/team-b/*"]})
    assert excluded.code == 0 and excluded.report["registries"][0]["repositories"] == 2
    listed = run({"list": [f"{ns}/team-b/app"]})
    assert listed.code == 1 and listed.report["registries"][0]["repositories"] == 1
    assert [f["tags"] for f in listed.findings()] == [["v2"]]


def test_docker_schema2_and_oci_are_both_accepted(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    """Without the OCI types in Accept, distribution answers 404 for an OCI manifest: a false 'missing'."""
    registry.push_image(f"{ns}/oci", "v1")
    registry.push_image(f"{ns}/docker", "v1", docker=True)

    result = run_json(regprobe, probe_config, registry, ns)

    assert result.code == 0 and result.report["registries"][0]["images_checked"] == 2


def test_catalog_pages_smaller_than_asked(tmp_path: Any, regprobe: Any, probe_config: Any, flavour: str) -> None:
    """Asking for more than `catalog.maxentries` gives 400 PAGINATION_NUMBER_INVALID; every page is followed."""
    small = Registry(tmp_path / "small", extra={"catalog": {"maxentries": 3}}, flavour=flavour).start()
    try:
        for i in range(8):
            small.push_image(f"paged/repo{i}", "v1")
        assert small.http.get("/v2/_catalog?n=1000").status_code == 400
        result = regprobe("run", "-c", probe_config({"name": "small", "url": small.url}), "--format", "json")
        entry = result.report["registries"][0]
        assert result.code == 0 and (entry["repositories"], entry["images_checked"]) == (8, 8)
    finally:
        small.stop()


def test_nested_index(registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    """An index whose child is itself an index: walked to the bottom."""
    repo = f"{ns}/nested"
    inner = registry_nocache.push_index(repo, "inner", attestations=False)
    registry_nocache.push_index(repo, "outer", platforms=("linux/amd64",), children=[inner], attestations=False)
    registry_nocache.remove_layer_link(repo, inner.children[0].layers[0])

    result = run_json(regprobe, probe_config, registry_nocache, ns)

    finding = only(result.findings())
    assert (finding["kind"], finding["problem"], finding["parent"]) == ("layer", "missing", inner.children[0].digest)
    assert finding["tags"] == ["inner", "outer"]
    # Reached from both tags, everything under the inner index is requested once: catalog, tag list, the
    # two tags' manifests, the inner index's two children, each distinct blob, and the referrers API once
    # (the registry answers 404: no more is asked about referrers). One more GET is allowed: when the
    # outer tag's walk reaches the inner index before the inner tag's own GET has answered, it fetches it
    # by digest (a tag's digest is unknown until its GET answers).
    blobs = {digest for child in inner.children for digest in (child.config, *child.layers)}
    requests = result.report["registries"][0]["requests"]
    minimal = 1 + 1 + 2 + 2 + len(blobs) + 1
    assert minimal <= sum(n for outcome, n in requests.items() if outcome != "retried") <= minimal + 1, requests


def test_truncated_exchanges_are_counted_as_network_errors(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    """Headers, then no body (the descriptor-cache mode): not an `ok` request, whatever the status."""
    image = registry.push_image(f"{ns}/app", "v1")
    registry.warm(f"{ns}/app", image.layers[0])
    registry.remove_blob_data(image.layers[0])

    result = run_json(regprobe, probe_config, registry, ns)

    assert only(result.findings())["problem"] == "truncated"
    requests = result.report["registries"][0]["requests"]
    # catalog, tag list, the manifest, the config, the other layer: ok. The truncated layer: four tries.
    assert (requests["ok"], requests["network_error"], requests["retried"]) == (5, 4, 3), requests


def test_empty_blob_is_checked_with_head(registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any) -> None:
    """A zero-byte layer has no last byte to ask for: registry:2 answers any Range on it with
    416. It is checked with HEAD, and is healthy."""
    registry_nocache.push_image(f"{ns}/app", "v1", layers=[b"", b"data" * 10])
    result = run_json(regprobe, probe_config, registry_nocache, ns)
    assert result.code == 0 and result.findings() == []


def test_first_parent_is_the_first_in_descriptor_order(
    registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    """A broken layer shared by both platforms of an index: `parent` is the first child that needs it,
    in the index's own order - the same answer every run, whichever answered first."""
    repo = f"{ns}/multi"
    shared = b"shared" * 300
    arm64 = registry_nocache.push_image(repo, None, layers=[shared, b"arm64" * 10], platform="linux/arm64")
    amd64 = registry_nocache.push_image(repo, None, layers=[shared, b"amd64" * 10], platform="linux/amd64")
    registry_nocache.push_index(
        repo, "latest", platforms=("linux/arm64", "linux/amd64"), children=[arm64, amd64], attestations=False
    )
    registry_nocache.remove_layer_link(repo, arm64.layers[0])

    finding = only(run_json(regprobe, probe_config, registry_nocache, ns).findings())

    assert (finding["digest"], finding["parent"]) == (arm64.layers[0], arm64.digest)


def test_index_depth_bound(registry_nocache: Registry, ns: str) -> None:
    """Indexes may nest `max_depth` levels; one more is an `invalid` index, bound "depth"."""
    import asyncio

    from regprobe.client import ClientSettings, RegistryClient
    from regprobe.walk import RepositoryWalk, WalkPolicy

    repo = f"{ns}/deep"
    image = registry_nocache.push_image(repo, None)
    level1 = registry_nocache.push_index(repo, "two", platforms=("linux/amd64",), children=[image], attestations=False)
    level2 = registry_nocache.push_index(
        repo, "three", platforms=("linux/amd64",), children=[level1], attestations=False
    )

    async def walk(tag: str) -> RepositoryWalk:
        async with RegistryClient(ClientSettings(url=registry_nocache.url)) as client:
            w = RepositoryWalk(client, repo, WalkPolicy(max_depth=2))
            await w.walk_tag(tag)
            return w

    assert asyncio.run(walk("two")).findings() == []  # index -> image
    assert asyncio.run(walk("three")).findings() == []  # index -> index -> image: two levels, allowed
    registry_nocache.push_index(repo, "four", platforms=("linux/amd64",), children=[level2], attestations=False)
    over = asyncio.run(walk("four"))  # three levels of index: the third is over the bound
    (finding,) = over.findings()
    assert (finding.problem.value, str(finding.digest)) == ("invalid", level1.digest)
    assert finding.digest is not None and over.nodes[("manifest", finding.digest)].bound == "depth"


def test_digest_mode_says_how_many_bytes_arrived(registry: Registry, ns: str, regprobe: Any) -> None:
    image = registry.push_image(f"{ns}/app", "v1", layers=[os.urandom(740)])
    registry.warm(f"{ns}/app", image.layers[0])
    registry.shorten_blob(image.layers[0], 440)

    result = regprobe(
        "check", "--plain-http", "--blob-check", "digest", "--format", "json", f"{registry.host}/{ns}/app:v1"
    )

    finding = only(result.findings())
    assert (finding["problem"], finding["status"]) == ("truncated", 200)
    assert "then the connection closed after 300 of 740 body bytes" in finding["detail"]


@pytest.mark.parametrize("cached", [True, False])
def test_blob_cut_short_while_the_registry_runs(
    registry: Registry, registry_nocache: Registry, ns: str, regprobe: Any, cached: bool
) -> None:
    """Issue 21: a 740-byte layer cut to 300 bytes on a live registry. Behind the descriptor cache the first
    byte still arrives (206, `bytes 0-0/740`) - pulls fail with 'unexpected EOF' all the same; the last byte
    is never sent. Without the cache the registry knows the short length and refuses the last byte (416)."""
    reg = registry if cached else registry_nocache
    image = reg.push_image(f"{ns}/app", "v1", layers=[os.urandom(740)])
    layer = image.layers[0]
    reg.warm(f"{ns}/app", layer)
    reg.shorten_blob(layer, 440)
    first = reg.http.get(f"/v2/{ns}/app/blobs/{layer}", headers={"Range": "bytes=0-0"})
    assert (first.status_code, len(first.content)) == (206, 1)  # a first-byte check passes

    result = regprobe("check", "--plain-http", "--format", "json", f"{reg.host}/{ns}/app:v1")

    assert result.code == 1, result.out
    finding = only(result.findings())
    assert (finding["kind"], finding["digest"], finding["parent"]) == ("layer", layer, image.digest)
    if cached:
        assert finding["problem"] == "truncated"
        assert finding["detail"].endswith("; the last byte (739) is not there"), finding["detail"]
    else:
        assert (finding["problem"], finding["status"]) == ("size_mismatch", 416)
        assert finding["detail"] == "registry holds 300 bytes, descriptor says 740"


def test_findings_under_an_index_child_name_its_platform(
    registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    """Issue 21: the platform is the most actionable fact about a broken child - which pulls fail."""
    reg = registry_nocache
    shared = os.urandom(900)
    platforms = ("linux/amd64", "linux/arm64", "linux/arm/v7")
    kids = [reg.push_image(f"{ns}/app", None, platform=p, layers=[shared, os.urandom(600)]) for p in platforms]
    index = reg.push_index(f"{ns}/app", "v1", platforms=platforms, children=kids, attestations=False)
    single = reg.push_image(f"{ns}/app", "single", layers=[shared])
    reg.remove_revision_link(f"{ns}/app", kids[2].digest)  # the arm/v7 child
    reg.remove_blob_data(kids[1].layers[1])  # a layer of the arm64 child only
    reg.remove_blob_data(kids[0].layers[0])  # the shared layer: every child's, and the single image's

    result = regprobe("run", "-c", probe_config(config_for(reg, ns)), "--format", "json")
    text = regprobe("run", "-c", probe_config(config_for(reg, ns)))

    platform = {f["digest"]: f.get("platform") for f in result.findings()}
    assert platform == {
        kids[2].digest: "linux/arm/v7",
        kids[1].layers[1]: "linux/arm64",
        # Under the amd64 and arm64 children (the arm/v7 one is gone), and under an image of no index.
        kids[0].layers[0]: "linux/amd64, linux/arm64",
    }
    assert {f["digest"]: f["tags"] for f in result.findings()}[kids[0].layers[0]] == ["single", "v1"]
    assert f"manifest {kids[2].digest[:19]} missing  linux/arm/v7  under {index.digest[:19]}" in text.out
    assert single.digest not in platform


def test_corrupt_manifest_is_a_server_error_with_what_the_registry_said(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any
) -> None:
    """Issue 21: stored manifest data that is not JSON. distribution answers 500 UNKNOWN with its JSON
    decoder's offset, on every try, while it answers everything else: the stored data is corrupt - a
    finding, not an outage."""
    index = registry.push_index(f"{ns}/app", "v1", attestations=False)
    child = index.children[1]
    registry.blob_path(child.digest).write_bytes(b'{"schemaVersion": 2, "mediaType": garbage that is not json}')
    single = registry.push_image(f"{ns}/single", "v1")
    registry.blob_path(single.digest).write_bytes(b"\x00garbage")
    cfg = probe_config(config_for(registry, ns))

    result = regprobe("run", "-c", cfg, "--format", "json")
    text = regprobe("run", "-c", cfg)
    metrics = regprobe("run", "-c", cfg, "--format", "metrics")

    assert result.code == 1, result.out
    entry = result.report["registries"][0]
    assert (entry["complete"], entry["errors"]) == (True, [])
    said = {"code": "UNKNOWN", "message": "unknown error"}
    # What the JSON decoder said: 2.8.2 sends Go's error value (the offset), v3 its text.
    child_detail, single_detail = (
        ('{"Offset":35}', '{"Offset":1}')
        if registry.flavour == "2"
        else (
            "invalid character 'g' looking for beginning of value",
            "invalid character '\\x00' looking for beginning of value",
        )
    )
    assert result.findings() == [
        {
            "repository": f"{ns}/app",
            "digest": child.digest,
            "kind": "manifest",
            "problem": "server_error",
            "status": 500,
            "tags": ["v1"],
            "parent": index.digest,
            "detail": "GET answered 500 UNKNOWN",
            "platform": "linux/arm64",
            "registry_error": {**said, "detail": child_detail},
        },
        {
            "repository": f"{ns}/single",
            "digest": None,
            "kind": "manifest",
            "problem": "server_error",
            "status": 500,
            "tags": ["v1"],
            "parent": None,
            "detail": "tag v1: GET answered 500 UNKNOWN",
            "registry_error": {**said, "detail": single_detail},
        },
    ]
    assert f"the registry says: UNKNOWN: unknown error (detail: {child_detail})" in text.out
    assert 'regprobe_broken_objects{kind="manifest",registry="local"} 2.0' in metrics.out
