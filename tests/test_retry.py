"""The retry layer alone, as go-containerregistry tests transport/retry.go: scripted replies in, attempts,
waits and counts out - no HTTP. Through the client and a request table: tests/test_client.py."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from regprobe.client.retry import Retry, temporary
from regprobe.client.settings import RetryPolicy
from regprobe.facts import Reply

POLICY = RetryPolicy(attempts=4, base_delay=0.2, max_delay=0.3, max_retry_after=5.0)


def retried(*statuses: int, retry_after: float | None = None) -> tuple[Reply, list[int], list[float], Counter[str]]:
    """Run the layer over replies with these statuses (the last repeats): (result, statuses attempted,
    waits, counts)."""
    attempted: list[int] = []
    waits: list[float] = []
    counts: Counter[str] = Counter()

    async def attempt(url: str) -> Reply:
        status = statuses[min(len(attempted), len(statuses) - 1)]
        attempted.append(status)
        return Reply(url, status=status, retry_after=retry_after)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    result = asyncio.run(Retry(POLICY, counts, sleep).run(temporary, attempt, "https://r.test/v2/"))
    return result, attempted, waits, counts


def test_a_first_answer_that_is_not_temporary_is_the_result_at_once() -> None:
    result, attempted, waits, counts = retried(404)
    assert (result.status, attempted, waits, counts) == (404, [404], [], Counter())


@pytest.mark.parametrize(("jitter", "expected"), [("low", [0.1, 0.15, 0.15]), ("high", [0.2, 0.3, 0.3])])
def test_temporary_answers_are_tried_again_with_growing_jittered_waits_and_counted(
    monkeypatch: pytest.MonkeyPatch, jitter: str, expected: list[float]
) -> None:
    """Waits between half and all of the backoff: base_delay, doubled each time up to max_delay."""
    monkeypatch.setattr(random, "uniform", (lambda a, b: a) if jitter == "low" else (lambda a, b: b))
    result, attempted, waits, counts = retried(503, 502, 500, 200)
    assert (result.status, attempted, counts) == (200, [503, 502, 500, 200], Counter(retried=3))
    assert waits == pytest.approx(expected)


def test_the_last_answer_is_the_result_when_the_attempts_are_spent() -> None:
    result, attempted, waits, counts = retried(503)
    assert (result.status, len(attempted), len(waits), counts["retried"]) == (503, 4, 3, 3)


@pytest.mark.parametrize(("retry_after", "waited"), [(2.0, 2.0), (60.0, 5.0)])
def test_retry_after_is_honoured_up_to_the_cap(retry_after: float, waited: float) -> None:
    _, _, waits, _ = retried(429, 200, retry_after=retry_after)
    assert waits == [waited]
