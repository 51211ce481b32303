"""Splitting one registry's repositories across several pods (a Kubernetes Indexed Job).

A repository belongs to shard ``sha256(name) mod N``: stable across runs and processes (Python's
``hash()`` is salted per process), and every repository lands in exactly one shard.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from .errors import ConfigError

#: The shard count when --shard is not given; the shard index comes from the Indexed Job.
SHARDS_ENV = "REGPROBE_SHARDS"
INDEX_ENV = "JOB_COMPLETION_INDEX"


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def owns(self, repository: str) -> bool:
        bucket = int.from_bytes(hashlib.sha256(repository.encode()).digest()[:8], "big") % self.count
        return bucket == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse(text: str, source: str = "--shard") -> Shard:
    match = re.fullmatch(r"(\d{1,4})/(\d{1,4})", text.strip())
    if not match:
        raise ConfigError(f"{source}: {text[:40]!r} is not I/N (e.g. 0/4)")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise ConfigError(f"{source}: shard {index}/{count}: need 0 <= I < N")
    return Shard(index, count)


def from_environment() -> Shard | None:
    """``JOB_COMPLETION_INDEX`` (set by an Indexed Job) over ``REGPROBE_SHARDS``; None when unsharded."""
    count = os.environ.get(SHARDS_ENV)
    if not count:
        return None
    index = os.environ.get(INDEX_ENV)
    if index is None:
        raise ConfigError(f"{SHARDS_ENV}={count} is set but {INDEX_ENV} is not (run as an Indexed Job)")
    return parse(f"{index}/{count}", f"{INDEX_ENV}/{SHARDS_ENV}")
