"""The retry layer: an exchange attempted again while its answer says "later", a layer of its own as
go-containerregistry's ``transport/retry.go`` is - it knows nothing of HTTP but the :class:`Reply`.

Backoff doubles from ``base_delay`` to ``max_delay`` with jitter; a ``Retry-After`` is honoured up to
``max_retry_after``; attempts are capped; every retry is counted (``regprobe_requests{outcome="retried"}``)
and logged. The last answer is the result whatever it was: a broken object is an answer, not an error.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import ParamSpec

from tenacity import AsyncRetrying, RetryCallState, retry_if_result, stop_after_attempt

from ..facts import Reply
from .settings import RetryPolicy

log = logging.getLogger(__name__)
P = ParamSpec("P")


def temporary(reply: Reply) -> bool:
    """The usual test: no answer, a body cut short, 408, 429 or 5xx (:attr:`Reply.temporary`)."""
    return reply.temporary


class Retry:
    def __init__(self, policy: RetryPolicy, requests: Counter[str], sleep: Callable[[float], Awaitable[None]]) -> None:
        """``requests`` counts the retries; ``sleep`` waits between them (tests pass one that records)."""
        self.policy = policy
        self._requests = requests
        self._sleep = sleep

    async def run(
        self, again: Callable[[Reply], bool], attempt: Callable[P, Awaitable[Reply]], *args: P.args, **kwargs: P.kwargs
    ) -> Reply:
        """``attempt(*args, **kwargs)`` until ``again(reply)`` is false or the attempts are spent; the last
        reply. ``attempt`` is a coroutine function (tenacity awaits only what it sees is one)."""
        first = await attempt(*args, **kwargs)
        if not again(first):
            return first
        # tenacity only once the first try asks for another: nearly every exchange needs one, and
        # setting tenacity up costs about 20 µs of CPU (docs/performance.md). Its first attempt is the
        # one already made, so backoff, counting and the cap run as if tenacity had made it.
        made = [first]

        async def again_attempt() -> Reply:
            return made.pop() if made else await attempt(*args, **kwargs)

        reply: Reply = await self._retrying(again)(again_attempt)
        return reply

    def _retrying(self, again: Callable[[Reply], bool]) -> AsyncRetrying:
        return AsyncRetrying(
            stop=stop_after_attempt(self.policy.attempts),
            retry=retry_if_result(again),
            wait=self.wait,
            sleep=self._sleep,
            before_sleep=self._count,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )

    def wait(self, state: RetryCallState) -> float:
        """Seconds before the next attempt: jittered exponential backoff, or what Retry-After asks if
        longer (capped)."""
        policy = self.policy
        backoff = min(policy.max_delay, policy.base_delay * 2 ** (state.attempt_number - 1))
        delay = random.uniform(backoff / 2, backoff)  # noqa: S311 - jitter, not cryptography
        reply = state.outcome.result() if state.outcome and not state.outcome.failed else None
        if reply is not None and reply.retry_after is not None:
            delay = max(delay, min(reply.retry_after, policy.max_retry_after))
        return delay

    def _count(self, state: RetryCallState) -> None:
        self._requests["retried"] += 1
        reply = state.outcome.result() if state.outcome and not state.outcome.failed else None
        if reply is not None:
            # Which registry and request, and what it answered (issue 21); reply.url carries no query, and
            # a redirect's target only as its origin (redact.py).
            wait = state.next_action.sleep if state.next_action else 0.0
            tried = f"try {state.attempt_number} of {self.policy.attempts}"
            log.debug("retrying %s %s in %.2fs: %s", reply.method, reply.url, wait, reply.describe(tried))
