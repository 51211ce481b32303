"""Rate limits: stop before the registry's pull budget runs out, and stop at the first 429 that
outlasts the retries - rather than earn a storm of them (REGISTRY-QUIRKS.md 5b, fixtures E5, E6).

Docker Hub's headers and its 429 message are VERIFIED from its documentation (docker/docs pulls.md);
the 429's JSON shape is INFERRED from client output. Retry-After in seconds and as an HTTP date, capped,
is pinned in tests/test_client.py; HEAD for tags whose body is cached, in tests/test_cache.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .hostile import HostileRegistry


@pytest.fixture
def hub() -> Iterator[HostileRegistry]:
    reg = HostileRegistry().start()
    reg.tags = [f"t{i}" for i in range(30)]
    yield reg
    reg.stop()


def _manifest_gets(reg: HostileRegistry) -> int:
    return sum(1 for method, path, _ in reg.requests if method == "GET" and "/manifests/" in path)


def test_run_stops_before_the_pull_budget_runs_out(hub: HostileRegistry, regprobe: Any, probe_config: Any) -> None:
    """Docker Hub announces ``ratelimit-remaining: N;w=21600`` on every answer (E5). With 15 pulls left
    and 30 tags, the walk stops while a reserve remains for everyone else pulling from this address:
    a tenth of the limit (10 of 100), at least the requests in flight. Incomplete (exit 3), with the
    reason; not a single 429 earned."""
    hub.mode, hub.pulls_left = "hub", 15
    config = probe_config({"name": "hub", "url": hub.url}, concurrency=2)

    run = regprobe("run", "-c", config, "--no-push", "--format", "json")

    assert run.code == 3, run.out + run.err
    report = run.report["registries"][0]
    assert report["findings"] == [] and report["complete"] is False
    assert hub.refused_pulls == 0
    # Spent down to the reserve, and at most the requests in flight beyond it.
    assert 10 - 2 <= hub.pulls_left <= 10
    assert _manifest_gets(hub) == 15 - hub.pulls_left
    assert report["images_checked"] == 15 - hub.pulls_left
    reason = "rate limit nearly spent: the registry has 10 pulls left of 100 per 21600 s (ratelimit-remaining)"
    assert any(reason in error for error in report["errors"]), report["errors"]
    assert report["errors"][-1].endswith(
        f"not walked: {30 - report['images_checked'] - 1} tags, 0 repositories not listed"
    )


def test_429_that_outlasts_the_retries_stops_the_run(hub: HostileRegistry, regprobe: Any, probe_config: Any) -> None:
    """Docker Hub's abuse limit: a plain ``429 Too Many Requests`` (E6), here without Retry-After (its
    Retry-After behaviour is unknown). After the retries the run stops: an incomplete run naming the
    429 (exit 3), never an ``unreachable`` finding for an image nobody has shown to be broken."""
    hub.mode = "abuse-429"
    config = probe_config({"name": "hub", "url": hub.url}, concurrency=2)

    run = regprobe("run", "-c", config, "--no-push", "--format", "json")

    assert run.code == 3, run.out + run.err
    report = run.report["registries"][0]
    assert report["findings"] == [] and report["images_checked"] == 0
    assert any("rate limit reached: GET answered 429 after 4 tries" in error for error in report["errors"])
    # The tags in flight when the first exchange gave up, four tries each; the other tags: no request.
    assert _manifest_gets(hub) <= 4 * 4
