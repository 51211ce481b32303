"""Small helpers shared by the test modules."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def only(findings: list[dict[str, Any]]) -> dict[str, Any]:
    """The one finding there must be."""
    assert len(findings) == 1, findings
    return findings[0]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 45, interval: float = 0.5) -> Any:
    """Poll until ``condition`` returns something truthy, and return it; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
