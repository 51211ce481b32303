"""Stopping a run early: SIGTERM (a node drain, ``kubectl delete pod``, a Job's deadline) or SIGINT.

A stopped run is not a lost run: the probes stop starting requests, cancel those in flight, and the
command reports and pushes what was walked as an incomplete run - well inside Kubernetes' default
30 s grace period. A second signal takes the default action (SIGINT: KeyboardInterrupt, SIGTERM: exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """Set once, from a signal; probes subscribe to cut their work short."""

    def __init__(self) -> None:
        #: Why the run was stopped ("SIGTERM"), or None while it runs.
        self.reason: str | None = None
        self._callbacks: list[Callable[[], None]] = []

    def request(self, reason: str) -> None:
        if self.reason is not None:
            return
        self.reason = reason
        for callback in list(self._callbacks):
            callback()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` on the stop (at once if it already happened); returns the unsubscriber."""
        if self.reason is not None:
            callback()
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)


class Stopped(Exception):  # noqa: N818 - an outcome, as asyncio's CancelledError
    """Work cut short by a stop request; ``reason`` says which ("SIGTERM")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def unless_stopped(stop: StopRequest | None, work: Awaitable[T]) -> T:
    """``work``, cancelled by ``stop`` (at once if the stop came first), which then raises
    :class:`Stopped`: for work no deadline bounds, such as a credential helper program."""
    if stop is None:
        return await work
    try:
        async with asyncio.timeout(None) as scope:

            def cut_short() -> None:
                if not scope.expired():
                    scope.reschedule(0)  # in the past: the timeout fires at once

            unsubscribe = stop.subscribe(cut_short)
            try:
                return await work
            finally:
                unsubscribe()
    except TimeoutError:
        if scope.expired() and stop.reason is not None:
            raise Stopped(stop.reason) from None
        raise


@contextlib.contextmanager
def on_signals(stop: StopRequest, then: str = "the run is reported as incomplete") -> Iterator[None]:
    """Turn SIGTERM and SIGINT into ``stop.request`` while the block runs (inside the event loop);
    ``then`` says in the log what becomes of the work (pushed only when a pushgateway is)."""
    loop = asyncio.get_running_loop()

    def handle(signum: signal.Signals) -> None:
        log.warning("%s: stopping; %s", signum.name, then)
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
        stop.request(signum.name)

    for sig in SIGNALS:
        loop.add_signal_handler(sig, handle, sig)
    try:
        yield
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
