"""Metrics built from results, and pushed to a real pushgateway with the semantics the alerts need."""

from __future__ import annotations

import json
import ssl
from collections import Counter
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import trustme
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from regprobe.digest import Digest
from regprobe.metrics import build
from regprobe.model import Coverage, Finding, Kind, KnownBroken, Problem, RegistryResult, Scrubbed

from .registry import Registry, free_port
from .servers import Pushgateway

JOB = "registry-integrity-probe"


def finding(repo: str, *tags: str, kind: Kind = Kind.LAYER) -> Finding:
    return Finding(repo, Digest("sha256", "a" * 64), kind, Problem.MISSING, 404, tags, None, "")


def exposition(result: RegistryResult, cap: int = 50) -> str:
    return generate_latest(build(result, cap)).decode()


def test_complete_run_metrics() -> None:
    result = RegistryResult(
        "private",
        "http://r",
        catalog_accessible=True,
        complete=True,
        images_checked=7,
        started_at=1700000000.0,
        findings=[finding("a", "v1", "v2"), finding("b", "latest", kind=Kind.MANIFEST)],
        requests=Counter({"ok": 40, "client_error": 2}),
        duration_seconds=1.5,
    )
    text = exposition(result)
    assert 'regprobe_broken_images{registry="private"} 3.0' in text
    assert 'regprobe_broken_objects{kind="layer",registry="private"} 1.0' in text
    assert 'regprobe_broken_objects{kind="config",registry="private"} 0.0' in text  # every kind has a series
    assert 'regprobe_image_broken{registry="private",repository="a",tag="v2"} 1.0' in text
    assert 'regprobe_last_success_timestamp_seconds{registry="private"} 1.7e+09' in text
    assert 'regprobe_requests{outcome="retried",registry="private"} 0.0' in text
    assert 'regprobe_images_checked{registry="private"} 7.0' in text


def test_coverage_and_the_ledgers_broken_set() -> None:
    """With a ledger the integrity metrics are its broken set - here two tags this run did not reach, and a
    run that did not complete - and coverage has its own series."""
    result = RegistryResult(
        "r",
        "http://r",
        complete=False,
        coverage=Coverage(86400.0, 200, 150, 3600.5, 40, None, "/var/lib/regprobe/r.ledger.sqlite"),
        scrub=Scrubbed(3, 100, 7200.0),
        known_broken=KnownBroken((("a", "v1"), ("b", "v2")), {Kind.LAYER: 1, Kind.MANIFEST: 1}),
    )
    text = exposition(result)
    assert 'regprobe_images_known{registry="r"} 200.0' in text
    assert 'regprobe_images_verified_within_window{registry="r"} 150.0' in text
    assert 'regprobe_oldest_verification_age_seconds{registry="r"} 3600.5' in text
    assert 'regprobe_scrub_oldest_age_seconds{registry="r"} 7200.0' in text
    assert 'regprobe_broken_images{registry="r"} 2.0' in text
    assert 'regprobe_image_broken{registry="r",repository="b",tag="v2"} 1.0' in text
    assert 'regprobe_broken_objects{kind="layer",registry="r"} 1.0' in text
    assert 'regprobe_broken_objects{kind="config",registry="r"} 0.0' in text
    # Without a ledger, an age nobody knows is not made up, and there is no scrub.
    unknown = RegistryResult("r", "http://r", coverage=Coverage(86400.0, 200, 40, None, 40, None, None))
    text = exposition(unknown)
    assert 'regprobe_images_verified_within_window{registry="r"} 40.0' in text
    assert "regprobe_oldest_verification_age_seconds" not in text and "regprobe_scrub" not in text


def test_broken_series_are_capped() -> None:
    result = RegistryResult("r", "http://r", complete=True, findings=[finding("a", *(f"t{i}" for i in range(80)))])
    text = exposition(result, cap=50)
    assert text.count("regprobe_image_broken{") == 50
    assert 'regprobe_broken_images{registry="r"} 80.0' in text  # the count is not capped


def test_the_capped_series_are_the_first_tags_in_natural_order() -> None:
    result = RegistryResult("r", "http://r", complete=True, findings=[finding("a", "v10", "v9", "v2")])
    text = exposition(result, cap=2)
    assert [line.split('tag="')[1].split('"')[0] for line in text.splitlines() if "image_broken{" in line] == [
        "v2",
        "v9",
    ]


def test_incomplete_run_without_findings_claims_nothing_about_integrity() -> None:
    text = exposition(RegistryResult("r", "http://r", catalog_accessible=False, complete=False))
    assert "regprobe_last_success_timestamp_seconds{" not in text
    assert "regprobe_broken_images{" not in text and "regprobe_image_broken{" not in text
    assert 'regprobe_catalog_accessible{registry="r"} 0.0' in text
    assert 'regprobe_run_complete{registry="r"} 0.0' in text


def test_incomplete_run_with_findings_still_reports_them() -> None:
    """A run cut short (deadline, a refused repository) that found broken images says so: what it saw
    broken is broken whatever it could not see. It claims no success."""
    result = RegistryResult(
        "r", "http://r", catalog_accessible=True, complete=False, findings=[finding("a", "v1", "v2")]
    )
    text = exposition(result)
    assert 'regprobe_broken_images{registry="r"} 2.0' in text
    assert 'regprobe_image_broken{registry="r",repository="a",tag="v1"} 1.0' in text
    assert 'regprobe_broken_objects{kind="layer",registry="r"} 1.0' in text
    assert 'regprobe_run_complete{registry="r"} 0.0' in text
    assert "regprobe_last_success_timestamp_seconds{" not in text


def test_push_lifecycle(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, pushgateway: Pushgateway
) -> None:
    name = f"reg-{ns}"
    good = registry.push_image(f"{ns}/app", "v1")
    bad = registry.push_image(f"{ns}/app", "v2")
    registry.remove_revision_link(f"{ns}/app", bad.digest)
    cfg = {"name": name, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    push = {"url": pushgateway.url}

    # 1. a broken image: series per tag, counts, success time
    assert regprobe("run", "-c", probe_config(cfg, pushgateway=push)).code == 1
    labels = {"job": JOB, "registry": name}
    assert pushgateway.value("regprobe_image_broken", repository=f"{ns}/app", tag="v2", **labels) == 1
    assert pushgateway.value("regprobe_broken_images", **labels) == 1
    assert pushgateway.value("regprobe_broken_objects", kind="manifest", **labels) == 1
    first_success = pushgateway.value("regprobe_last_success_timestamp_seconds", **labels)
    assert first_success is not None

    # 2. fixed on the next run: the tag's series disappears, success advances
    registry.tag(f"{ns}/app", "v2", good.digest)
    assert regprobe("run", "-c", probe_config(cfg, pushgateway=push)).code == 0
    assert pushgateway.value("regprobe_image_broken", tag="v2", **labels) is None
    assert pushgateway.value("regprobe_broken_images", **labels) == 0
    second_success = pushgateway.value("regprobe_last_success_timestamp_seconds", **labels)
    assert second_success is not None and second_success > first_success

    # 3. the registry goes away: catalog 0, incomplete, last success kept
    dead = {**cfg, "url": f"http://127.0.0.1:{free_port()}", "timeout": 2}
    assert regprobe("run", "-c", probe_config(dead, pushgateway=push)).code == 3
    assert pushgateway.value("regprobe_catalog_accessible", **labels) == 0
    assert pushgateway.value("regprobe_run_complete", **labels) == 0
    assert pushgateway.value("regprobe_last_success_timestamp_seconds", **labels) == second_success
    last_run = pushgateway.value("regprobe_last_run_timestamp_seconds", **labels)
    assert last_run is not None and last_run > second_success

    # 4. --no-push leaves the gateway alone
    assert regprobe("run", "-c", probe_config(cfg, pushgateway=push), "--no-push").code == 0
    assert pushgateway.value("regprobe_run_complete", **labels) == 0


def test_pushgateway_down_exits_3_and_still_reports(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    registry.push_image(f"{ns}/app", "v1")
    cfg = {"name": "local", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    gone = f"http://127.0.0.1:{free_port()}"

    path = probe_config(cfg, pushgateway={"url": gone})
    result = regprobe("run", "-c", path, "--format", "json")
    text = regprobe("run", "-c", path)

    assert result.code == 3
    entry = result.report["registries"][0]
    assert entry["images_checked"] == 1 and entry["complete"] is True
    assert f"pushgateway {gone}: push for registry local failed" in result.err
    # The report itself says the run was lost, not only stderr.
    assert entry["push"]["ok"] is False
    assert entry["push"]["error"].startswith(f"pushgateway {gone}: URLError: ")
    assert text.out.splitlines()[0] == f"local {registry.url}  OK  NOT PUSHED"
    assert f"  ! push failed: pushgateway {gone}: URLError: " in text.out


class SecuredPushgateway(Pushgateway):
    """A pushgateway behind TLS (a private CA) and Basic auth, through its own --web.config.file."""

    def __init__(self, workdir: Path, ca: Any, password: str) -> None:
        super().__init__(workdir)
        cert = ca.issue_cert("127.0.0.1")
        cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
        cert.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
        ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        web = {
            "tls_server_config": {"cert_file": str(workdir / "cert.pem"), "key_file": str(workdir / "key.pem")},
            "basic_auth_users": {"regprobe": hashed},
        }
        (workdir / "web.yml").write_text(json.dumps(web))
        self.url = f"https://127.0.0.1:{self.port}"
        self.password = password

    def command(self) -> list[str]:
        return [*super().command(), f"--web.config.file={self.workdir / 'web.yml'}"]

    def get(self, path: str) -> Any:
        trust = ssl.create_default_context(cafile=str(self.workdir / "ca.pem"))
        return httpx.get(self.url + path, timeout=5, verify=trust, auth=("regprobe", self.password))


def test_push_through_tls_and_basic_auth(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """Many pushgateways sit behind an authenticating proxy: `pushgateway.auth` and `pushgateway.tls`
    reach a real one that demands both. A wrong password is a failed push (exit 3), never a crash."""
    registry.push_image(f"{ns}/app", "v1")
    secret = tmp_path / "push-password"
    secret.write_text("s3cret-push\n")
    gateway = SecuredPushgateway(tmp_path / "gw", trustme.CA(), "s3cret-push")
    gateway.start()
    try:
        cfg = {"name": f"sec-{ns}", "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
        push = {
            "url": gateway.url,
            "auth": {"username": "regprobe", "password_file": str(secret)},
            "tls": {"ca_file": str(tmp_path / "gw" / "ca.pem")},
        }
        result = regprobe("run", "-c", probe_config(cfg, pushgateway=push))
        assert result.code == 0, result.err
        assert gateway.value("regprobe_run_complete", registry=f"sec-{ns}") == 1

        secret.write_text("wrong\n")
        result = regprobe("run", "-c", probe_config(cfg, pushgateway=push))
        assert result.code == 3 and "401" in result.err and "wrong" not in result.err + result.out
        unverified = {"url": gateway.url, "auth": push["auth"]}  # the system store does not know this CA
        secret.write_text("s3cret-push\n")
        assert regprobe("run", "-c", probe_config(cfg, pushgateway=unverified)).code == 3
    finally:
        gateway.stop()


def test_format_metrics_shows_what_would_be_pushed(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, pushgateway: Pushgateway
) -> None:
    """`run --no-push --format metrics`: the exposition a push would send, per group, and nothing sent."""
    bad = registry.push_image(f"{ns}/app", "v1")
    registry.remove_revision_link(f"{ns}/app", bad.digest)
    name = f"dbg-{ns}"
    cfg = {"name": name, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    result = regprobe(
        "run", "-c", probe_config(cfg, pushgateway={"url": pushgateway.url}), "--no-push", "--format", "metrics"
    )
    assert result.code == 1
    assert result.out.startswith(
        f'# pushgateway group {{job="{JOB}", registry="{name}"}} at /metrics/job/{JOB}/registry/{name}'
        " (PUT, replacing the group)"
    )
    samples = {
        (s.name, s.labels.get("tag")): s.value
        for family in text_string_to_metric_families(result.out)
        for s in family.samples
    }
    assert samples[("regprobe_image_broken", "v1")] == 1
    assert samples[("regprobe_run_complete", None)] == 1
    assert pushgateway.value("regprobe_run_complete", registry=name) is None  # nothing was pushed


def break_index(registry: Registry, repository: str) -> None:
    index = registry.push_index(repository, "v1")
    registry.remove_revision_link(repository, index.children[1].digest)


def test_incomplete_push_clears_only_what_it_looked_at_again(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, pushgateway: Pushgateway
) -> None:
    """regprobe.carryover through a real pushgateway: a re-checked image found fixed and a deleted tag
    are cleared, an unreached one is kept; the group keeps its last success."""
    name = f"carry-{ns}"
    fixed, unreached, deleted = f"{ns}/fixed", f"{ns}/unreached", f"{ns}/deleted"
    for repository in (fixed, unreached, deleted):
        break_index(registry, repository)
    registry.push_image(deleted, "keep")  # the repository stays, with another tag
    cfg = {"name": name, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    config = probe_config(cfg, pushgateway={"url": pushgateway.url})
    assert regprobe("run", "-c", config).code == 1
    assert pushgateway.value("regprobe_broken_images", registry=name) == 3
    success = pushgateway.value("regprobe_last_success_timestamp_seconds", registry=name)

    registry.push_index(fixed, "v1")
    registry.storage.remove_tree(f"repositories/{deleted}/_manifests/tags/v1")  # a tag clean-up script
    with registry.unlistable_tags(unreached):
        assert regprobe("run", "-c", config).code == 3
    assert pushgateway.broken_tags(name) == {(unreached, "v1")}
    assert pushgateway.value("regprobe_broken_images", registry=name) == 1
    assert pushgateway.value("regprobe_broken_objects", registry=name, kind="manifest") == 3  # see carryover
    assert pushgateway.value("regprobe_last_success_timestamp_seconds", registry=name) == success
    assert pushgateway.value("regprobe_run_complete", registry=name) == 0

    # A run that re-checks the last one and finds it fixed clears it, incomplete or not.
    registry.push_index(unreached, "v1")
    with registry.unlistable_tags(deleted):
        assert regprobe("run", "-c", config).code == 3
    assert pushgateway.broken_tags(name) == set()
    assert pushgateway.value("regprobe_broken_images", registry=name) == 0
    assert pushgateway.value("regprobe_broken_objects", registry=name, kind="manifest") == 0


def test_incomplete_push_beyond_max_broken_series_keeps_the_count(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, pushgateway: Pushgateway
) -> None:
    """The pushgateway names only max_broken_series tags; the others are kept by count."""
    name = f"cap-{ns}"
    repositories = [f"{ns}/a", f"{ns}/b", f"{ns}/c"]
    for repository in repositories:
        break_index(registry, repository)
    cfg = {"name": name, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    config = probe_config(cfg, pushgateway={"url": pushgateway.url}, max_broken_series=1)
    assert regprobe("run", "-c", config).code == 1
    assert pushgateway.broken_tags(name) == {(repositories[0], "v1")}
    assert pushgateway.value("regprobe_broken_images", registry=name) == 3

    registry.push_index(repositories[0], "v1")  # the named one is fixed; the run cannot reach the others
    with registry.unlistable_tags(repositories[1]), registry.unlistable_tags(repositories[2]):
        assert regprobe("run", "-c", config).code == 3
    assert pushgateway.broken_tags(name) == set()
    assert pushgateway.value("regprobe_broken_images", registry=name) == 2


def test_dangling_referrers_are_counted_by_complete_runs_only(
    registry: Registry, ns: str, regprobe: Any, probe_config: Any, pushgateway: Pushgateway
) -> None:
    """A signature and its fallback tag outlive the signed image: 2 dangling. A run that could not list
    the repository does not know that count and leaves it; the next complete run sets it."""
    name = f"dangling-{ns}"
    repository = f"{ns}/app"
    gone = registry.push_image(repository, "v1")
    registry.push_image(repository, "v2")
    registry.push_referrer(repository, gone.digest, "application/vnd.dev.cosign.artifact.sig.v1+json", b"sig")
    fallback = f"sha256-{gone.digest[7:]}"
    assert registry.http.delete(f"/v2/{repository}/manifests/{gone.digest}").status_code == 202
    cfg = {"name": name, "url": registry.url, "repositories": {"include": [f"{ns}/*"]}}
    config = probe_config(cfg, pushgateway={"url": pushgateway.url})

    assert regprobe("run", "-c", config).code == 0
    assert pushgateway.value("regprobe_dangling_referrers", registry=name) == 2
    with registry.unlistable_tags(repository):
        assert regprobe("run", "-c", config).code == 3
    assert pushgateway.value("regprobe_dangling_referrers", registry=name) == 2
    registry.storage.remove_tree(f"repositories/{repository}/_manifests/tags/{fallback}")
    assert regprobe("run", "-c", config).code == 0
    assert pushgateway.value("regprobe_dangling_referrers", registry=name) == 0
