"""Sharded runs: every repository in exactly one shard, and the shards together find exactly what one
unsharded run finds."""

from __future__ import annotations

from typing import Any

import pytest

from regprobe.errors import ConfigError
from regprobe.shard import Shard, from_environment, parse

from .registry import Registry
from .servers import Pushgateway


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
