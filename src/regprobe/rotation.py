"""The order of work of a run without a ledger (no ``state_dir``): a ring that turns with the clock.

Every tag has a fixed place on a ring (the first 8 bytes of ``sha256(repository:tag)``), and a run
starts where the clock points, ``(now mod window) / window`` of the way round, walking on in ring order
(wrapping) until its budget is spent. Successive runs that are each cut short start at successive points,
so N tags at P tags per run are covered in about N / P runs - where a fixed order would verify the same
head of the catalog every time and never the tail. Deterministic: two runs started at the same time plan
alike, and nothing needs to be remembered between runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

RING = 1 << 64


def position(repository: str, tag: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{repository}:{tag}".encode()).digest()[:8], "big")


def start(now: float, window: float) -> int:
    """Where a run started at unix time ``now`` begins on the ring."""
    return int((now % window) / window * RING) % RING


def rotated(tags: Iterable[tuple[str, str]], now: float, window: float) -> list[tuple[str, str]]:
    """``tags`` in the order a run started at ``now`` walks them."""
    origin = start(now, window)
    return sorted(tags, key=lambda t: ((position(*t) - origin) % RING, t))
