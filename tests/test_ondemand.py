"""`/probe`'s choice of the configured entry whose credentials walk a target: the same selection `run`
uses (probe.Selection.configured), so a Docker Hub short name and a `repositories.list` entry mean the
same thing in both."""

from __future__ import annotations

from typing import Any

import pytest

from regprobe import config
from regprobe.probe import Selection
from regprobe.serve.ondemand import TargetError, resolve

HUB = "https://registry-1.docker.io"


def load(*registries: dict[str, Any]) -> config.Config:
    return config.parse({"registries": list(registries)}, "test.yaml")


def test_docker_hub_short_name_picks_the_entry_listing_it() -> None:
    """`repositories.list: [nginx]` on Docker Hub is `library/nginx`, for /probe as for `run`."""
    cfg = load(
        {"name": "hub-alpine", "url": HUB, "repositories": {"list": ["alpine"]}},
        {"name": "hub-nginx", "url": HUB, "repositories": {"list": ["nginx", "bitnami/redis"]}},
    )
    registry, ref, _ = resolve(cfg, "nginx:1.27", None)
    assert (registry.name, ref.repository) == ("hub-nginx", "library/nginx")
    assert resolve(cfg, "docker.io/library/alpine:3", None)[0].name == "hub-alpine"
    assert resolve(cfg, "bitnami/redis:7", None)[0].name == "hub-nginx"
    assert Selection.configured(cfg.registries[1]).names == ("library/nginx", "bitnami/redis")


def test_entries_sharing_a_host_are_told_apart_by_their_selection() -> None:
    cfg = load(
        {"name": "team-a", "url": "http://127.0.0.1:5000", "repositories": {"include": ["a/*"]}},
        {"name": "team-b", "url": "http://127.0.0.1:5000", "repositories": {"include": ["b/*"], "exclude": ["b/x"]}},
    )
    assert resolve(cfg, "127.0.0.1:5000/a/app:v1", None)[0].name == "team-a"
    assert resolve(cfg, "127.0.0.1:5000/b/app:v1", None)[0].name == "team-b"
    # Selected by none: the host is still a configured one, walked with its first entry.
    assert resolve(cfg, "127.0.0.1:5000/b/x:v1", None)[0].name == "team-a"


def test_a_list_entry_claims_only_the_repositories_it_lists() -> None:
    cfg = load(
        {"name": "listed", "url": "http://127.0.0.1:5000", "repositories": {"list": ["one"]}},
        {"name": "rest", "url": "http://127.0.0.1:5000"},
    )
    assert resolve(cfg, "127.0.0.1:5000/one:v1", None)[0].name == "listed"
    assert resolve(cfg, "127.0.0.1:5000/two:v1", None)[0].name == "rest"


def test_list_names_still_pass_include_and_exclude() -> None:
    selection = Selection(include=("team/*",), exclude=("team/old",), names=("team/app", "team/old", "other"))
    assert [n for n in ("team/app", "team/old", "other", "team/new") if selection.wants(n)] == ["team/app"]


def test_other_hosts_are_refused() -> None:
    cfg = load({"name": "hub", "url": HUB, "repositories": {"list": ["nginx"]}})
    with pytest.raises(TargetError, match="is not one of the configured registries"):
        resolve(cfg, "quay.io/nginx/nginx:1", None)
