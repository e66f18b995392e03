"""``backends.waits``: bounded waits on asyncio sharing one timer per exchange.

Each row names its rule; the outcomes are pinned (a result, which bound passed, a cancellation),
never how long anything took. asyncio only: trio keeps anyio's cancel scopes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import pytest

from backends.waits import WaitExpired, Waits


async def value_after(seconds: float, value: str = "data") -> str:
    await asyncio.sleep(seconds)
    return value


Scenario = Callable[[Waits, asyncio.AbstractEventLoop], Awaitable[str]]


async def within_the_timeout(waits: Waits, loop: asyncio.AbstractEventLoop) -> str:
    return await waits.wait(value_after(0), 5.0, None)


async def past_the_read_timeout(waits: Waits, loop: asyncio.AbstractEventLoop) -> str:
    try:
        await waits.wait(value_after(5), 0.05, loop.time() + 5)
    except WaitExpired as expired:
        return "deadline" if expired.deadline else "read timeout"
    return "no expiry"


async def past_the_deadline_first(waits: Waits, loop: asyncio.AbstractEventLoop) -> str:
    try:
        await waits.wait(value_after(5), 5.0, loop.time() + 0.05)
    except WaitExpired as expired:
        return "deadline" if expired.deadline else "read timeout"
    return "no expiry"


async def a_deadline_already_past(waits: Waits, loop: asyncio.AbstractEventLoop) -> str:
    try:
        await waits.wait(value_after(0), 5.0, loop.time() - 1)
    except WaitExpired as expired:
        return "deadline" if expired.deadline else "read timeout"
    return "no expiry"


async def a_timer_between_waits_cancels_nothing(waits: Waits, loop: asyncio.AbstractEventLoop) -> str:
    await waits.wait(value_after(0), 0.05, None)  # arms a timer for 0.05 s from now
    await asyncio.sleep(0.15)  # the caller's own code runs while it fires
    return await waits.wait(value_after(0), 5.0, None)


async def an_early_timer_waits_on_to_the_new_bound(waits: Waits, loop: asyncio.AbstractEventLoop) -> str:
    await waits.wait(value_after(0), 0.05, None)  # the timer is set 0.05 s ahead
    return await waits.wait(value_after(0.15), 5.0, None)  # it fires mid-wait, long before this wait's bound


async def no_bound_at_all(waits: Waits, loop: asyncio.AbstractEventLoop) -> str:
    await waits.wait(value_after(0), 0.05, None)
    return await waits.wait(value_after(0.15), None, None)  # an earlier wait's timer fires: no bound, no expiry


async def a_caller_cancellation_stays_cancellation(waits: Waits, loop: asyncio.AbstractEventLoop) -> str:
    task = asyncio.current_task()
    assert task is not None
    loop.call_later(0.05, task.cancel)
    try:
        await waits.wait(value_after(5), 5.0, None)
    except asyncio.CancelledError:
        task.uncancel()
        return "cancelled"
    return "not cancelled"


async def cancelled_as_the_timer_fires(waits: Waits, loop: asyncio.AbstractEventLoop) -> str:
    """The caller cancels in the same loop turn as the bound passes: the caller's cancellation wins."""
    task = asyncio.current_task()
    assert task is not None
    bound = loop.time() + 0.05
    loop.call_at(bound, task.cancel)
    try:
        await waits.wait(value_after(5), None, bound)
    except asyncio.CancelledError:
        task.uncancel()
        return "cancelled"
    except WaitExpired:
        return "expired"
    return "neither"


class Row(NamedTuple):
    rule: str
    scenario: Scenario
    outcome: str


ROWS = [
    Row("a wait within its bounds returns the result", within_the_timeout, "data"),
    Row("past the read timeout: expired, not on the deadline", past_the_read_timeout, "read timeout"),
    Row("the deadline before the read timeout: expired on the deadline", past_the_deadline_first, "deadline"),
    Row("a deadline already past: expired at once", a_deadline_already_past, "deadline"),
    Row("a timer firing between waits cancels nothing", a_timer_between_waits_cancels_nothing, "data"),
    Row("a timer firing before the current wait's bound waits on to it", an_early_timer_waits_on_to_the_new_bound, "data"),
    Row("a wait without bounds never expires", no_bound_at_all, "data"),
    Row("a caller's cancellation propagates as cancellation", a_caller_cancellation_stays_cancellation, "cancelled"),
    Row("a caller's cancellation in the turn the bound passes stays the caller's", cancelled_as_the_timer_fires, "cancelled"),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.rule for row in ROWS])
def test_waits(row: Row) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        waits = Waits(loop)
        try:
            return await asyncio.wait_for(row.scenario(waits, loop), 10)
        finally:
            waits.close()

    assert asyncio.run(main()) == row.outcome
