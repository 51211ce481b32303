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

from regprobe.client import Reply, StopReason
from regprobe.client.ratelimit import RateLimitGate
from regprobe.errors import RateLimitError

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
    assert not any("rate limit reached" in error for error in report["errors"]), report["errors"]
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
    assert not any("nearly spent" in error for error in report["errors"]), report["errors"]
    # The tags in flight when the first exchange gave up, four tries each; the other tags: no request.
    assert _manifest_gets(hub) <= 4 * 4


# -- the gate alone: two named reasons to stop -----------------------------------------------------


def _hub_reply(remaining: int, status: int = 200) -> Reply:
    return Reply("https://hub.test/v2/app/manifests/v1", status=status, rate_remaining=remaining, rate_limit=100)


def test_gate_stops_for_the_reserve_while_the_registry_still_answers() -> None:
    """``ratelimit-remaining`` at the reserve: stopped by choice (RESERVE), nothing refused."""
    gate = RateLimitGate("https://hub.test", concurrency=2, reserve=None)
    gate.note(_hub_reply(11))
    with gate.pull():  # 11 left, 1 of them under way: above the reserve of 10
        pass
    gate.note(_hub_reply(10))
    with pytest.raises(RateLimitError, match=r"^rate limit nearly spent: the registry has 10 pulls left of 100"):
        gate.check()
    assert gate.stopped is not None and gate.stopped.reason is StopReason.RESERVE


def test_gate_stops_for_a_429_and_a_refusal_is_never_reported_as_a_reserve() -> None:
    """A 429 that outlasted the retries: REFUSED. Pulls announced low afterwards do not turn it into a
    reserve stop; a refusal does replace a reserve stop (the registry refusing is what must be heard)."""
    gate = RateLimitGate("https://hub.test", concurrency=2, reserve=None)
    error = gate.limited("GET", _hub_reply(0, status=429), attempts=4)
    assert str(error) == "GET https://hub.test/v2/app/manifests/v1: rate limit reached: GET answered 429 after 4 tries"
    assert gate.stopped is not None and gate.stopped.reason is StopReason.REFUSED
    gate.note(_hub_reply(1))
    with pytest.raises(RateLimitError, match=r"^rate limit reached: GET answered 429"):
        gate.check()
    assert gate.stopped.reason is StopReason.REFUSED

    reserve_first = RateLimitGate("https://hub.test", concurrency=2, reserve=5)
    reserve_first.note(_hub_reply(5))
    with pytest.raises(RateLimitError):
        reserve_first.check()
    reserve_first.limited("GET", _hub_reply(0, status=429), attempts=4)
    assert reserve_first.stopped is not None and reserve_first.stopped.reason is StopReason.REFUSED
