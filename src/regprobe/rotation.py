"""The order of work of a run without a ledger (no ``state_dir``): a ring that turns with the clock.

Every tag has a fixed place on a ring: repositories in the order of a hash of their name, each one's tags
together (in the order of a hash of repository and tag). A run starts ``(now mod window) / window`` of
the way round - counted in tags, so every start is as likely as any other whatever the repositories'
sizes - and walks on in ring order (wrapping) until its budget is spent. Successive runs that are each cut
short start at successive points, so N tags at P tags per run are covered in about N / P runs - where a
fixed order would verify the same head of the catalog every time and never the tail. A repository's tags
sit together, so a run walks whole repositories (all but the two at the ends of its arc) and checks what
their tags share once. Deterministic: two runs started at the same time over the same listing plan
alike, and nothing needs to be remembered between runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

RING = 1 << 64


def position(repository: str, tag: str) -> int:
    """A tag's place among its repository's tags."""
    return _hash(f"{repository}:{tag}")


def repository_position(repository: str) -> int:
    # Salted: the shard of a repository is sha256(name) mod N, and the ring must not line up with it.
    return _hash(f"ring/{repository}")


def start(now: float, window: float, tags: int) -> int:
    """Where on a ring of ``tags`` tags a run started at unix time ``now`` begins."""
    return int((now % window) / window * tags) % tags if tags else 0


def rotated(tags: Iterable[tuple[str, str]], now: float, window: float) -> list[tuple[str, str]]:
    """``tags`` in the order a run started at ``now`` walks them."""
    ring = sorted(tags, key=lambda t: (repository_position(t[0]), t[0], position(*t), t[1]))
    origin = start(now, window, len(ring))
    return ring[origin:] + ring[:origin]


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
