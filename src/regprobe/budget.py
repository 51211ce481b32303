"""What one registry's run may spend on verification, and whether it is spent.

Two bounds (docs/design/continuous-verification.md): time - the run's ``deadline``, less a margin in
which the work in flight finishes, less the scrub's share when the scrub is on - and, when set,
``budget.requests``. A run takes a tag only while both allow; what it has started it finishes (the
deadline itself still cuts what is not done by then, and such a tag records nothing).

The request bound is kept by forecast: a tag costs what tags have cost so far in this run (the tags in
flight counted as half walked), the tags in flight are counted as if they had spent nothing yet, and the
run stops taking tags when one more would go over.
The listing (catalog, tag lists) is not counted: every run needs all of it, whatever its budget.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

#: Of the time before the margin, what verification leaves to the scrub when it is on (docs: a run that
#: verifies until its deadline every time would otherwise never scrub).
SCRUB_SHARE = 0.2

Spent = Literal["time", "requests"]


def drain_margin(deadline_seconds: float, timeout: float) -> float:
    """How long before the deadline a run stops taking tags: a tag's walk is a few exchanges deep, each
    bounded by ``timeout``; a tenth of the run at most, so short test deadlines still walk."""
    return min(timeout, deadline_seconds / 10)


@dataclass(slots=True)
class Budget:
    #: ``time.monotonic()`` after which no tag is taken.
    until: float
    #: 0: unbounded.
    requests: int = 0
    _counts: Counter[str] = field(default_factory=Counter)
    _baseline: int = 0
    _tags_done: int = 0

    @classmethod
    def of(
        cls, deadline: float, deadline_seconds: float, timeout: float, requests: int = 0, scrub: bool = False
    ) -> Budget:
        """For a run that must end by ``deadline`` (monotonic), ``deadline_seconds`` after it began."""
        until = deadline - drain_margin(deadline_seconds, timeout)
        if scrub:
            until -= SCRUB_SHARE * max(0.0, until - time.monotonic())
        return cls(until, requests)

    def start(self, counts: Counter[str]) -> None:
        """Verification begins: requests counted from here (``counts`` is the client's live tally)."""
        self._counts = counts
        self._baseline = _sent(counts)

    @property
    def used(self) -> int:
        return _sent(self._counts) - self._baseline

    def tag_done(self) -> None:
        self._tags_done += 1

    def spent(self, in_flight: int = 0) -> Spent | None:
        """Whether one more tag may be taken, with ``in_flight`` tags under way."""
        if time.monotonic() >= self.until:
            return "time"
        if self.requests:
            used = self.used
            # What has been sent covers the tags done and, about half, those in flight.
            walked = self._tags_done + in_flight / 2
            per_tag = used / walked if walked else 0.0
            # Those in flight may have spent little yet: counted whole, so the bound is kept, not overshot.
            if used >= self.requests or used + per_tag * (in_flight + 1) > self.requests:
                return "requests"
        return None

    def describe(self, why: Spent) -> str:
        if why == "requests":
            return f"budget.requests spent ({self.used} of {self.requests})"
        return "deadline reached (less the margin left for the tags in flight to finish)"


def _sent(counts: Counter[str]) -> int:
    # Every attempt is a request the registry answers, retries included (they are counted once more under
    # "retried" on top of their outcome).
    return sum(v for k, v in counts.items() if k != "retried")
