"""Stop requests (stop.py): subscribers told once, late ones at once, and work that no deadline bounds
cut short by a stop."""

from __future__ import annotations

import asyncio

import pytest

from regprobe.stop import Stopped, StopRequest, unless_stopped


def test_subscribers_are_told_once_and_late_ones_at_once() -> None:
    stop = StopRequest()
    told: list[str] = []
    unsubscribe = stop.subscribe(lambda: told.append("early"))
    stop.subscribe(lambda: told.append("gone"))()  # unsubscribed before the stop: never told
    stop.request("SIGTERM")
    stop.request("SIGINT")  # the first reason stands, nobody is told twice
    stop.subscribe(lambda: told.append("late"))
    unsubscribe()
    assert (told, stop.reason) == (["early", "late"], "SIGTERM")


def test_unless_stopped_cuts_work_short() -> None:
    async def scenario() -> tuple[str, str]:
        stop = StopRequest()
        forever = asyncio.Event()
        assert await unless_stopped(stop, asyncio.sleep(0, "done")) == "done"
        asyncio.get_running_loop().call_later(0.01, stop.request, "SIGTERM")
        async with asyncio.timeout(30):  # the work never ends by itself: only the stop can end it
            with pytest.raises(Stopped) as during:
                await unless_stopped(stop, forever.wait())
            with pytest.raises(Stopped) as before:
                await unless_stopped(stop, forever.wait())
        return during.value.reason, before.value.reason

    assert asyncio.run(scenario()) == ("SIGTERM", "SIGTERM")


def test_unless_stopped_leaves_the_works_own_timeout_alone() -> None:
    async def times_out() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.Event().wait()

    with pytest.raises(TimeoutError):
        asyncio.run(unless_stopped(StopRequest(), times_out()))
