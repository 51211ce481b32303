"""Sharded runs: every repository in exactly one shard, and the shards together find exactly what one
unsharded run finds."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest

from regprobe.errors import ConfigError
from regprobe.shard import Shard, from_environment, parse

from .registry import Registry
from .servers import Pushgateway, RegprobeServe
from .util import wait_for


def test_every_name_in_exactly_one_shard() -> None:
    names = [f"team{i}/app{j}" for i in range(20) for j in range(10)]
    shards = [Shard(i, 4) for i in range(4)]
    owners = [[s.index for s in shards if s.owns(n)] for n in names]
    assert all(len(o) == 1 for o in owners)
    assert {o[0] for o in owners} == {0, 1, 2, 3}  # and the split is not degenerate


@pytest.mark.parametrize(("name", "of_4", "of_7"), [("library/nginx", 0, 1), ("team/api", 3, 6), ("a", 2, 4)])
def test_ownership_is_fixed_across_processes_and_versions(name: str, of_4: int, of_7: int) -> None:
    # The pods of one Indexed Job, and old and new pods during a rollout, must agree on who owns what,
    # or a repository is walked twice or never: pinned values, not a per-process hash.
    assert [i for i in range(4) if Shard(i, 4).owns(name)] == [of_4]
    assert [i for i in range(7) if Shard(i, 7).owns(name)] == [of_7]


def test_parse_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse("2/5") == Shard(2, 5)
    for bad in ("5/5", "1", "a/b", "-1/3", "0/0"):
        with pytest.raises(ConfigError):
            parse(bad)
    monkeypatch.delenv("REGPROBE_SHARDS", raising=False)
    assert from_environment() is None
    monkeypatch.setenv("REGPROBE_SHARDS", "3")
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    assert from_environment() == Shard(1, 3)
    monkeypatch.delenv("JOB_COMPLETION_INDEX")
    with pytest.raises(ConfigError, match="JOB_COMPLETION_INDEX"):
        from_environment()


def test_shards_together_find_what_one_run_finds(
    registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    reg = registry_nocache
    for i in range(9):
        image = reg.push_image(f"{ns}/app{i}", "v1")
        reg.push_image(f"{ns}/app{i}", "v2")
        if i % 3 == 0:
            reg.remove_blob_data(image.layers[1])
        if i % 4 == 1:
            reg.remove_revision_link(f"{ns}/app{i}", image.digest)
    gateway = Pushgateway(tmp_path_factory.mktemp("shard-gateway"))
    gateway.start()
    try:
        cfg = probe_config(
            {"name": ns, "url": reg.url, "repositories": {"include": [f"{ns}/*"]}}, pushgateway={"url": gateway.url}
        )

        def key(f: dict[str, Any]) -> tuple[str, str | None, str, str, tuple[str, ...]]:
            return (f["repository"], f["digest"], f["kind"], f["problem"], tuple(f["tags"]))

        whole = regprobe("run", "-c", cfg, "--format", "json", "--no-push")
        expected = sorted(key(f) for f in whole.findings())
        assert len(expected) == 5  # 3 layers gone (app0, app3, app6), 2 tags gone (app1, app5)

        found: list[tuple[str, str | None, str, str, tuple[str, ...]]] = []
        repositories = checked = 0
        for i in range(3):
            part = regprobe("run", "-c", cfg, "--format", "json", "--shard", f"{i}/3")
            entry = part.report["registries"][0]
            assert entry["shard"] == f"{i}/3"
            found += [key(f) for f in entry["findings"]]
            repositories += entry["repositories"]
            checked += entry["images_checked"]
        assert sorted(found) == expected
        assert (repositories, checked) == (9, 18)
        # One pushgateway group per shard, so shards do not overwrite each other.
        total = sum(gateway.value("regprobe_broken_images", registry=ns, shard=str(i)) or 0 for i in range(3))
        assert total == whole.report["registries"][0]["images_checked"] - (
            18 - len({(f[0], t) for f in expected for t in f[4]})
        )
    finally:
        gateway.stop()


# --- a StatefulSet of `regprobe serve` (deploy/overlays/continuous) ------------------------------------


def statefulset_pod(ordinal: int, shards: int, hostname: str = "regprobe-{}") -> dict[str, str]:
    """The environment deploy/overlays/continuous gives replica ``ordinal``: Kubernetes makes the pod's
    name, ``<statefulset>-<ordinal>``, its hostname."""
    return {
        "REGPROBE_SHARDS": str(shards),
        "REGPROBE_SHARD_FROM_HOSTNAME": "true",
        "HOSTNAME": hostname.format(ordinal),
    }


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("regprobe-0", Shard(0, 3)),
        ("regprobe-2", Shard(2, 3)),
        ("regprobe-serve-1", Shard(1, 3)),
        # setHostnameAsFQDN: the pod's name is the first label
        ("regprobe-1.regprobe.monitoring.svc.cluster.local", Shard(1, 3)),
    ],
)
def test_statefulset_ordinal_is_the_shard(hostname: str, expected: Shard) -> None:
    environ = {"REGPROBE_SHARDS": "3", "REGPROBE_SHARD_FROM_HOSTNAME": "true", "HOSTNAME": hostname}
    assert from_environment(environ) == expected
    assert from_environment({**environ, "REGPROBE_SHARD_FROM_HOSTNAME": "True"}) == expected


def test_statefulset_ordinal_without_hostname_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "regprobe-1")
    assert from_environment({"REGPROBE_SHARDS": "2", "REGPROBE_SHARD_FROM_HOSTNAME": "true"}) == Shard(1, 2)


def test_indexed_job_index_wins_over_the_hostname() -> None:
    environ = {**statefulset_pod(1, 4), "JOB_COMPLETION_INDEX": "3"}
    assert from_environment(environ) == Shard(3, 4)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        # more replicas than shards: the extra pod refuses to start rather than walk nothing or twice
        (statefulset_pod(4, 4), r"shard 4/4: need 0 <= I < N \(the StatefulSet's replicas and REGPROBE_SHARDS"),
        # a Deployment's pod: random characters, here all digits - never read as an ordinal unasked
        ({"REGPROBE_SHARDS": "4", "HOSTNAME": "regprobe-5f6d7-24567"}, "nor REGPROBE_SHARD_FROM_HOSTNAME=true"),
        ({**statefulset_pod(0, 4), "HOSTNAME": "regprobe-serve-5f6d7-x2b9z"}, "does not end in a StatefulSet"),
        ({**statefulset_pod(0, 4), "HOSTNAME": "regprobe"}, "'regprobe' does not end in a StatefulSet pod's ordinal"),
        ({**statefulset_pod(0, 4), "REGPROBE_SHARD_FROM_HOSTNAME": "yes"}, "'yes' is not true or false"),
        ({**statefulset_pod(0, 4), "REGPROBE_SHARD_FROM_HOSTNAME": "false"}, "nor REGPROBE_SHARD_FROM_HOSTNAME=true"),
    ],
)
def test_statefulset_misconfigurations_are_named(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_environment(environ)


def test_serve_replicas_walk_their_shard_and_label_their_series(
    registry_nocache: Registry, ns: str, regprobe: Any, probe_config: Any, tmp_path: Path
) -> None:
    """Two `regprobe serve` replicas of a StatefulSet, told only what the overlay tells them: each walks
    the repositories of the shard its pod ordinal names, and its series carry `shard` - the label the
    alerts group by, as a sharded `run` gets it from the pushgateway's grouping key - so the two are
    summed as shards, never taken for one pod replacing another."""
    reg = registry_nocache
    for i in range(8):
        image = reg.push_image(f"{ns}/app{i}", "v1")
        if i % 3 == 0:
            reg.remove_blob_data(image.layers[1])
    cfg = probe_config({"name": ns, "url": reg.url, "repositories": {"include": [f"{ns}/*"]}})
    whole = regprobe("run", "-c", cfg, "--format", "json", "--no-push").report["registries"][0]
    broken = {f["repository"] for f in whole["findings"]}
    assert len(broken) == 3

    servers: list[RegprobeServe] = []
    try:
        for ordinal in range(2):
            replica = RegprobeServe(tmp_path / f"regprobe-{ordinal}", cfg)
            replica.env = statefulset_pod(ordinal, 2)
            replica.start()
            servers.append(replica)
        for replica in servers:
            wait_for(partial(replica.value, "regprobe_last_run_timestamp_seconds", registry=ns), "a run")
        checked = {i: s.value("regprobe_images_checked", registry=ns, shard=str(i)) for i, s in enumerate(servers)}
        assert all(checked.values()), checked  # each walked a non-empty share, under its own shard label
        assert sum(v or 0 for v in checked.values()) == whole["images_checked"] == 8
        found = [
            {
                labels["repository"]
                for (name, ls) in s.samples()
                if name == "regprobe_image_broken"
                for labels in [dict(ls)]
            }
            for s in servers
        ]
        assert found[0] | found[1] == broken and not found[0] & found[1]
        for i, replica in enumerate(servers):
            contract = [ls for (name, ls) in replica.samples() if not name.startswith("regprobe_serve_")]
            assert {dict(ls).get("shard") for ls in contract} == {str(i)}, "every series carries its shard"
    finally:
        for replica in servers:
            replica.stop()
