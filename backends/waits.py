"""Bounded waits on asyncio with one timer per exchange, not one per read.

A streamed answer is read one event at a time, and every read waits under two bounds: the read
timeout (no data for that long) and the exchange's total deadline. A timeout per wait (anyio's
cancel scope, or ``asyncio.timeout``) arms and cancels a timer on every read; ``Waits`` keeps one
timer per exchange instead and moves only a number per read.

Rules:
- ``wait(awaitable, timeout, deadline)`` returns the awaitable's result, or raises ``WaitExpired``
  (its ``deadline`` attribute says whether the total deadline was the bound that passed) once the
  read timeout from the start of this wait, or the deadline, passes first, whichever is earlier.
- The timer only ever cancels a task that is inside ``wait``: between two waits (the caller's code
  running) nothing is cancelled; a timer that fires then does nothing, and the next wait arms
  its own. A timer that fires before the current wait's bound re-arms itself for that bound.
- A cancellation that is not this timer's (the caller's, an anyio scope's) propagates as it is:
  the task's cancel count tells them apart, as ``asyncio.timeout`` does.
- asyncio only (the running task and loop); trio keeps anyio's cancel scopes.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


def running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop this code runs on, or None (trio, or no loop)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def wait_bound(now: float, timeout: float | None, deadline: float | None) -> tuple[float, bool]:
    """When a wait starting at ``now`` ends (loop time): after ``timeout`` or at ``deadline``, whichever is first
    (never, ``math.inf``, with neither); and whether that bound is the deadline.

    >>> wait_bound(10.0, 5.0, 12.0), wait_bound(10.0, 1.0, 12.0), wait_bound(10.0, None, None)
    ((12.0, True), (11.0, False), (inf, False))
    """
    until = math.inf if timeout is None else now + timeout
    if deadline is not None and deadline <= until:
        return deadline, True
    return until, False


class WaitExpired(Exception):
    """A wait passed its bound; ``deadline`` is True when that bound was the total deadline."""

    def __init__(self, deadline: bool) -> None:
        super().__init__("the total deadline passed" if deadline else "the read timeout passed")
        self.deadline = deadline


class Waits:
    """One exchange's waits on one asyncio loop, sharing one timer."""

    __slots__ = ("_fired", "_handle", "_loop", "_task", "_until")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None  # the task inside wait(), if any
        self._until = math.inf  # the current wait's bound (loop time)
        self._fired = False  # this timer cancelled the waiting task

    async def wait(self, awaitable: Awaitable[T], timeout: float | None, deadline: float | None) -> T:
        loop = self._loop
        now = loop.time()
        until, on_deadline = wait_bound(now, timeout, deadline)
        if until <= now:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # never awaited: say so to the interpreter, not as a warning
            raise WaitExpired(on_deadline)
        task = asyncio.current_task()
        assert task is not None
        handle = self._handle
        if until != math.inf and (handle is None or handle.when() > until):
            if handle is not None:
                handle.cancel()
            self._handle = loop.call_at(until, self._fire)
        # else the timer fires no later than this bound; firing early, it re-arms for it (_fire)
        self._until = until
        self._task = task
        self._fired = False
        cancelling = task.cancelling()
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._fired and task.uncancel() <= cancelling:
                raise WaitExpired(on_deadline) from None
            raise
        finally:
            self._task = None

    def _fire(self) -> None:
        self._handle = None
        task = self._task
        if task is None:  # between waits: nothing to cancel
            return
        if self._until == math.inf:  # this wait has no bound
            return
        if self._loop.time() < self._until:  # the wait began after this timer was set: wait on to its bound
            self._handle = self._loop.call_at(self._until, self._fire)
            return
        self._fired = True
        task.cancel()

    def close(self) -> None:
        """The exchange ended: its timer goes."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
