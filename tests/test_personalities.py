"""`regprobe run` against every registry people run, as faithful fakes (tests/personalities.py): a
healthy registry gives no finding and a complete run; a broken one gives each broken object with the
right kind and problem - whatever the registry's challenges, pagination and error bodies look like.

The comment above each personality in personalities.py says which facts are VERIFIED in the server's source
and which are only REPORTED (issue threads, client comments): a REPORTED fact may be wrong about the
real service, and these tests then prove only that regprobe copes with what was reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from regprobe import metrics
from regprobe.model import RegistryResult, Skipped

from .personalities import PASSWORD, PERSONALITIES, FakeRegistry, with_changes


def populate(fake: FakeRegistry, broken: bool) -> list[tuple[str, str, str, str]]:
    """Two repositories: a single image under three tags (two pages of two), and a two-platform index.
    Broken: a layer of the image and a child of the index gone. Returns the expected findings."""
    app, multi = fake.repository("app"), fake.repository("multi")
    image = fake.push_image(app, "v1")
    for tag in ("v2", "v3"):
        fake.tags[app][tag] = image.digest
    if fake.p.unservable_tag:
        fake.tags[app]["unservable"] = image.digest
    index = fake.push_index(multi, "latest")
    if not broken:
        return []
    del fake.blobs[image.layers[1]]
    del fake.manifests[index.children[1].digest]
    return [
        (app, "layer", "missing", image.layers[1]),
        (multi, "manifest", "missing", index.children[1].digest),
    ]


def config_for(
    fake: FakeRegistry, tmp_path: Path, probe_config: Any, state_dir: str | None = None, **extra: Any
) -> str:
    """A config for the fake: ``extra`` keys go into its registry entry, ``state_dir`` at the top."""
    secret = tmp_path / "password"
    secret.write_text(PASSWORD)
    entry: dict[str, Any] = {
        "name": fake.p.name,
        "url": fake.url,
        "auth": {"username": fake.p.user, "password_file": str(secret)},
        **extra,
    }
    if fake.p.needs_list:
        entry["repositories"] = {"list": [fake.repository("app"), fake.repository("multi")]}
    top: dict[str, Any] = {"state_dir": state_dir} if state_dir else {}
    return str(probe_config(entry, concurrency=4, timeout=10, **top))


@pytest.mark.parametrize("broken", [False, True], ids=["healthy", "broken"])
@pytest.mark.parametrize("name", sorted(PERSONALITIES))
def test_personality(name: str, broken: bool, serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any) -> None:
    fake = serve(PERSONALITIES[name])
    expected = populate(fake, broken)

    run = regprobe("run", "-c", config_for(fake, tmp_path, probe_config), "--format", "json")

    entry = run.report["registries"][0]
    assert entry["complete"] and entry["catalog_accessible"] and entry["errors"] == [], entry
    assert (entry["repositories"], entry["images_checked"]) == (2, 4)
    found = sorted((f["repository"], f["kind"], f["problem"], f["digest"]) for f in entry["findings"])
    assert found == sorted(expected)
    assert run.code == (1 if broken else 0), run.err
    reason = fake.p.unservable_tag
    if reason:  # Harbor's policy block, Quay's expired tag: reported as skipped, not judged
        assert [(s["tag"], s["reason"]) for s in entry["skipped"]] == [("unservable", reason)]
    else:
        assert entry["skipped"] == []


def test_harbor_policy_block_is_counted_and_shown(serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any) -> None:
    """E7 (VERIFIED in harbor's vulnerable.go): 412 PROJECTPOLICYVIOLATION is "blocked by policy" - in the
    JSON `skipped`, the text report and regprobe_images_skipped{reason="policy"}; exit 0."""
    fake = serve(PERSONALITIES["harbor"])
    populate(fake, broken=False)
    cfg = config_for(fake, tmp_path, probe_config)

    text = regprobe("run", "-c", cfg)
    assert text.code == 0
    assert "skipped proj/app:unservable (policy)" in text.out and "PROJECTPOLICYVIOLATION" in text.out

    result = RegistryResult("harbor", fake.url, complete=True)
    result.skipped = [Skipped("proj/app", "unservable", "policy", "412")]
    exposition = metrics.build(result, 50)
    assert exposition.get_sample_value("regprobe_images_skipped", {"registry": "harbor", "reason": "policy"}) == 1
    assert exposition.get_sample_value("regprobe_images_skipped", {"registry": "harbor", "reason": "expired"}) == 0


def test_harbor_policy_block_behind_the_manifest_cache(
    serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any
) -> None:
    """With cache_dir, manifests are HEADed first; Harbor's HEAD 412 has no body to name the policy, so
    a GET reads it. Twice: the second run starts from a warm cache."""
    fake = serve(PERSONALITIES["harbor"])
    populate(fake, broken=False)
    cfg = probe_config(
        {
            "name": "harbor",
            "url": fake.url,
            "auth": {"username": fake.p.user, "password_env": "REGPROBE_TEST_PASSWORD"},
        },
        cache_dir=str(tmp_path / "cache"),
    )
    for _ in range(2):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("REGPROBE_TEST_PASSWORD", PASSWORD)
            run = regprobe("run", "-c", cfg, "--format", "json")
        entry = run.report["registries"][0]
        assert run.code == 0 and entry["findings"] == [] and [s["reason"] for s in entry["skipped"]] == ["policy"]


def test_head_405_falls_back_to_get(serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any) -> None:
    """E3: a registry without manifest HEAD (405) is walked with GETs when the manifest cache is on."""
    fake = serve(with_changes("distribution-v3", head_405=True))
    expected = populate(fake, broken=True)
    cfg = config_for(fake, tmp_path, probe_config, **{})
    cfg_path = Path(cfg)
    cfg_path.write_text(cfg_path.read_text() + f"cache_dir: {tmp_path / 'cache'}\n")

    run = regprobe("run", "-c", cfg, "--format", "json")

    found = sorted((f["repository"], f["kind"], f["problem"], f["digest"]) for f in run.findings())
    assert run.code == 1 and found == sorted(expected)
    heads = [r for r in fake.requests if r[0] == "HEAD"]
    assert heads, "the cache path HEADs manifests first"


def test_artifactory_link_without_its_repository_key_is_an_incomplete_run(
    serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any
) -> None:
    """B4 (REPORTED in renovate#15080): paged, Artifactory's Link drops the repository key and leads to a
    404. The run is incomplete with that reason; the repository is not "without tags", nothing is a
    finding."""
    fake = serve(with_changes("artifactory", page=2))
    populate(fake, broken=False)

    run = regprobe("run", "-c", config_for(fake, tmp_path, probe_config), "--format", "json")

    entry = run.report["registries"][0]
    assert run.code == 3 and entry["findings"] == [] and not entry["complete"]
    assert any("from the previous page's Link: GET answered 404" in e for e in entry["errors"]), entry["errors"]


def test_quay_cursor_made_up_by_a_client_would_loop(
    serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any
) -> None:
    """A4 (VERIFIED in quay's pagination.py): a cursor Quay cannot decrypt is answered with page 1. The
    fake's Link carries such a cursor here: the repeat is detected, the run incomplete, never endless."""
    fake = serve(with_changes("quay", link=lambda path, cursor, n, base: f'<{path}?n={n}&last=made-up>; rel="next"'))
    populate(fake, broken=False)

    run = regprobe("run", "-c", config_for(fake, tmp_path, probe_config), "--format", "json")

    entry = run.report["registries"][0]
    assert run.code == 3 and entry["findings"] == []
    assert any("repeats an earlier page" in e for e in entry["errors"]), entry["errors"]


@pytest.mark.parametrize("name", ["quay", "dockerhub"])
def test_listed_repository_hidden_by_the_registry_is_not_accessible(
    name: str, serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any
) -> None:
    """B10 (Quay, VERIFIED: 401 for unknown or private) and B13/C9 (Docker Hub, REPORTED:
    insufficient_scope): a listed repository the registry will not show is an error of the run, never a
    finding, and costs one token per request, no loop."""
    fake = serve(with_changes(name, needs_list=True))
    populate(fake, broken=False)
    cfg = config_for(fake, tmp_path, probe_config)
    cfg_path = Path(cfg)
    cfg_path.write_text(cfg_path.read_text().replace(f"- {fake.repository('multi')}", f"- {fake.repository('gone')}"))

    run = regprobe("run", "-c", cfg, "--format", "json")

    entry = run.report["registries"][0]
    assert run.code == 3 and entry["findings"] == [] and not entry["complete"]
    (error,) = [e for e in entry["errors"] if "gone" in e]
    assert "not accessible with these credentials, or unknown to the registry" in error
    assert fake.token_requests[f"repository:{fake.repository('gone')}:pull"] <= 2


def test_gitlab_refused_credentials_are_offered_once(
    serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any
) -> None:
    """C4 (VERIFIED in gitlabhq: failed Basic counts toward Rack::Attack's ban): a wrong password reaches
    the token service once in the whole run; the run is incomplete, not broken."""
    fake = serve(PERSONALITIES["gitlab"])
    populate(fake, broken=False)
    cfg = config_for(fake, tmp_path, probe_config)
    (tmp_path / "password").write_text("wrong")

    run = regprobe("run", "-c", cfg, "--format", "json")

    entry = run.report["registries"][0]
    assert run.code == 3 and entry["findings"] == []
    assert fake.refused_credentials == 1
    assert "s3cret" not in run.out + run.err and "wrong" not in run.out + run.err


def test_quay_anonymous_catalog_is_not_an_empty_registry(
    serve: Any, tmp_path: Path, regprobe: Any, probe_config: Any
) -> None:
    """A5 (VERIFIED in quay's catalog.py): an anonymous catalog is 200 and empty, with no challenge. With
    credentials configured regprobe asks again with them, rather than report a registry of nothing."""
    fake = serve(PERSONALITIES["quay"])
    populate(fake, broken=False)

    run = regprobe("run", "-c", config_for(fake, tmp_path, probe_config), "--format", "json")

    entry = run.report["registries"][0]
    assert entry["repositories"] == 2
    catalog_requests = [r for r in fake.requests if r[1].startswith("/v2/_catalog")]
    assert "authorization" not in catalog_requests[0][2] and "authorization" in catalog_requests[-1][2]
