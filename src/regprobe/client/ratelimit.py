"""The rate-limit gate: a run stops before it spends the pulls a registry has left for everyone behind
the same address or account (Docker Hub's ``ratelimit-remaining``), and at the first 429 that outlasts
the retries - rather than earn a storm of them (REGISTRY-QUIRKS.md 5b)."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import RateLimitError
from ..facts import Reply


class StopReason(enum.Enum):
    """Why the gate stopped the run. Either way the run is incomplete and the rest of it makes no request."""

    #: The registry answered 429 on every try, after waiting as it asked: it refuses us for now.
    REFUSED = "refused"
    #: The registry announces (``ratelimit-remaining``) no more pulls left than the reserve: stopped before
    #: spending what others pulling from the same address or account need. Nothing was refused.
    RESERVE = "reserve"


@dataclass(frozen=True, slots=True)
class RateLimitStop:
    reason: StopReason
    #: What the registry said: the 429 answer, or the pulls it has left and the reserve kept.
    detail: str

    def describe(self) -> str:
        headline = "rate limit reached" if self.reason is StopReason.REFUSED else "rate limit nearly spent"
        return f"{headline}: {self.detail}"


class RateLimitGate:
    def __init__(self, where: str, concurrency: int, reserve: int | None) -> None:
        """``where``: the registry, for errors; ``reserve``: pulls to leave unspent (None: a tenth of the
        announced limit, at least ``concurrency``)."""
        self._where = where
        self._concurrency = concurrency
        self._reserve = reserve
        #: Why the run must stop; None while it may go on. A refusal replaces a reserve stop (the registry
        #: refusing is what the operator must hear of), never the other way round.
        self.stopped: RateLimitStop | None = None
        self._pulls_in_flight = 0
        self._rate: tuple[int, int | None, int | None] | None = None  # remaining, limit, window

    @contextmanager
    def pull(self) -> Iterator[None]:
        """Around a request the limit counts (a manifest GET: Docker Hub's pull; HEAD is free): raises
        :class:`RateLimitError` instead when the run must stop."""
        self.check()
        # Pulls already under way will spend from what the registry last said is left.
        self._pulls_in_flight += 1
        try:
            yield
        finally:
            self._pulls_in_flight -= 1

    def check(self) -> None:
        if self.stopped is None and self._rate is not None:
            remaining, limit, window = self._rate
            reserve = self._reserve
            if reserve is None:
                reserve = max(self._concurrency, math.ceil((limit or 0) / 10))
            remaining -= self._pulls_in_flight  # what is left once the pulls under way have counted
            if remaining <= reserve:
                per = f" per {window} s" if window else ""
                of = f" of {limit}{per}" if limit is not None else per
                self.stopped = RateLimitStop(
                    StopReason.RESERVE,
                    f"the registry has {remaining} pulls left{of} (ratelimit-remaining);"
                    f" stopped to leave {reserve} for other pulls",
                )
        if self.stopped is not None:
            raise RateLimitError(self.stopped.describe(), url=self._where)

    def note(self, reply: Reply) -> None:
        """What the registry says is left, from any answer that says it."""
        if reply.rate_remaining is not None:
            self._rate = (reply.rate_remaining, reply.rate_limit, reply.rate_window)

    def limited(self, method: str, reply: Reply, attempts: int) -> RateLimitError:
        """A 429 that outlasted ``attempts`` tries: still limited after waiting as asked, every further
        request would earn another 429. The run stops."""
        self.stopped = RateLimitStop(StopReason.REFUSED, f"{reply.describe(method)} after {attempts} tries")
        return RateLimitError(
            f"{method} {reply.url}: {self.stopped.describe()}", url=reply.url, status=429, code=reply.code
        )
