"""When a run stops taking tags: its time, less the margin for work in flight, and budget.requests kept by
forecast (tags in flight counted as yet to pay), the listing before it not counted."""

from __future__ import annotations

import time
from collections import Counter

from regprobe.budget import SCRUB_SHARE, Budget, drain_margin


def test_requests_are_counted_from_the_start_of_verification_and_forecast() -> None:
    counts = Counter({"ok": 500, "client_error": 20, "retried": 7})  # the listing
    budget = Budget(time.monotonic() + 3600, requests=100)
    budget.start(counts)
    assert budget.used == 0 and budget.spent(in_flight=0) is None
    counts.update({"ok": 40, "retried": 3, "server_error": 2})  # retries count once, under their outcome
    assert budget.used == 42
    for _ in range(8):
        budget.tag_done()
    # 42 requests over 8 tags done and 4 in flight (half walked): 4.2 a tag; 4 in flight + 1 more = 63.
    assert budget.spent(in_flight=4) is None
    # 40 in flight: 42 / 28 = 1.5 a tag, the 40 (counted as yet to pay) and one more: 42 + 61.5 > 100.
    assert budget.spent(in_flight=40) == "requests"
    counts["ok"] += 58
    assert budget.used == 100 and budget.spent(in_flight=0) == "requests"
    assert budget.describe("requests") == "budget.requests spent (100 of 100)"


def test_no_request_bound_without_budget_requests() -> None:
    budget = Budget(time.monotonic() + 3600)
    counts: Counter[str] = Counter()
    budget.start(counts)
    counts["ok"] = 10**9
    assert budget.spent(in_flight=1000) is None


def test_time_is_the_deadline_less_a_margin_and_the_scrub_share() -> None:
    assert drain_margin(720, 30) == 30 and drain_margin(2, 30) == 0.2
    now = time.monotonic()
    plain = Budget.of(now + 720, 720, 30)
    assert abs(plain.until - (now + 690)) < 1
    scrubbing = Budget.of(now + 720, 720, 30, scrub=True)
    assert abs(scrubbing.until - (now + 690 - SCRUB_SHARE * 690)) < 1
    assert Budget(time.monotonic() - 1).spent() == "time"
