"""Async code for callers without an event loop: each call runs on a private loop in its own thread.

Rules:

1. Never inside a running event loop. A blocking call made from a loop's thread stalls every
   other task of that loop (and waits forever if what it waits for needs that loop), so it is
   refused with ``SyncInsideLoopError``, whose hint names the async method to use instead.
2. The loop is private to the call: a call runs a fresh loop in the caller's thread; an iterator,
   which must stay suspended between two ``next()``, runs one in a daemon thread of its own,
   driven through anyio's ``BlockingPortal``. The caller may be any thread, including one next to
   threads that run loops of their own; nothing created on the private loop (the HTTP client, its
   connections) is shared with another loop.
3. An iterator that ends, for whatever reason (exhausted, a typed error, ``break``, ``close()``,
   leaving its ``with`` block, garbage collection, an interrupt while it waits), closes its async
   generator inside the loop (so an HTTP response in flight is closed), runs its cleanup (closes
   the private client), then stops the loop and joins its thread. No thread or connection outlives it.
4. Errors cross unchanged: the caller gets the very exception the async code raised (a
   ``ProviderError`` stays a ``ProviderError`` with its class and hint).

The thread is a daemon so that an iterator left open at interpreter exit cannot hang the exit.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pipeline.errors import GenesisError, UserErrorKind

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

T = TypeVar("T")


class SyncInsideLoopError(GenesisError):
    """A blocking method was called from a thread that runs an event loop."""

    kind = UserErrorKind.ERROR


def running_loop_library() -> str | None:
    """``"asyncio"`` or ``"trio"`` when this thread runs that event loop, else None.

    >>> running_loop_library() is None
    True
    """
    if "asyncio" in sys.modules:
        import asyncio

        try:
            asyncio.get_running_loop()  # also true in a plain callback, where there is no current task
            return "asyncio"
        except RuntimeError:
            pass
    if "trio" in sys.modules:
        import trio

        try:
            trio.lowlevel.current_trio_token()
            return "trio"
        except RuntimeError:
            pass
    return None


def refuse_inside_loop(method: str, instead: str) -> None:
    """Raise ``SyncInsideLoopError`` if this thread runs an event loop (rule 1)."""
    library = running_loop_library()
    if library is not None:
        raise SyncInsideLoopError(
            f"{method}() blocks, and this thread runs an event loop ({library}): it would stall that loop",
            hint=f"in async code use `{instead}` instead; {method}() is for code without an event loop",
        )


class PrivateLoop:
    """An anyio event loop in a daemon thread, driven through a ``BlockingPortal``; ``stop()`` joins it."""

    def __init__(self, backend: str) -> None:
        import anyio
        from anyio.from_thread import BlockingPortal

        ready: Future[BlockingPortal] = Future()

        async def serve() -> None:
            async with BlockingPortal() as portal:
                ready.set_result(portal)
                await portal.sleep_until_stopped()

        def main() -> None:
            try:
                anyio.run(serve, backend=backend)
            except BaseException as error:  # a backend that is not installed: reported to the caller
                if not ready.done():
                    ready.set_exception(error)

        self._thread = threading.Thread(target=main, name="genesis-sync", daemon=True)
        self._thread.start()
        try:
            self.portal: BlockingPortal = ready.result()
        except BaseException:  # interrupted while the loop starts: let it start, then stop it (rule 3)
            if ready.exception() is None:
                self.portal = ready.result()
                self.stop()
            raise

    def stop(self) -> None:
        try:
            self.portal.call(self.portal.stop, True)
        finally:
            self._thread.join()


def call_blocking(function: Callable[[], Awaitable[T]], *, backend: str = "asyncio") -> T:
    """Run ``function()`` to completion on a fresh loop in this thread (rules 1, 2 and 4).

    A call needs no thread of its own: nothing is suspended between calls, so ``anyio.run`` here
    is enough, and the caller's thread keeps what is per thread (a profiler, an interrupt).
    """
    import anyio

    async def main() -> T:
        return await function()

    return anyio.run(main, backend=backend)


def _wait(future: Future[T]) -> T:
    """The future's result; an interrupt while waiting cancels the task and waits for it to unwind."""
    try:
        return future.result()
    except BaseException:
        if not future.done():
            future.cancel()  # the portal cancels the task's scope in the loop
        raise


class BlockingIterator(Generic[T]):
    """Iterates an async generator from code without an event loop (rules 2 to 4).

    ``events()`` makes the generator; it is called in the private loop at the first ``next()``, so
    an iterator that is never iterated starts no thread. ``cleanup()`` runs in the loop after the
    generator is closed (for example, closing the HTTP client the generator used). Use it in a
    ``with`` block, or ``break``/``close()``: every way out closes it.
    """

    def __init__(
        self,
        events: Callable[[], AsyncGenerator[T, None]],
        *,
        cleanup: Callable[[], Awaitable[None]] | None = None,
        backend: str = "asyncio",
        refusal: tuple[str, str] = ("iteration", "async for"),
    ) -> None:
        self._make_events = events
        self._refusal = refusal  # (this method, the async one to use instead): rule 1 at the first next()
        self._cleanup = cleanup
        self._backend = backend
        self._loop: PrivateLoop | None = None
        self._events: AsyncGenerator[T, None] | None = None
        self._stepping: Any = None  # an anyio.Event, set when the read in flight has ended
        self._closed = False

    def __iter__(self) -> BlockingIterator[T]:
        return self

    def __enter__(self) -> BlockingIterator[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        if self._loop is None:
            refuse_inside_loop(*self._refusal)
            self._loop = PrivateLoop(self._backend)
        future = self._loop.portal.start_task_soon(self._step)
        try:
            return _wait(future)
        except StopAsyncIteration:
            self.close()
            raise StopIteration from None
        except BaseException:
            self.close()
            raise

    async def _step(self) -> T:
        import anyio

        self._stepping = anyio.Event()
        try:
            if self._events is None:
                self._events = self._make_events()
            return await self._events.__anext__()
        finally:
            self._stepping.set()

    async def _finish(self) -> None:
        try:
            if self._stepping is not None:
                await self._stepping.wait()  # a read cancelled by an interrupt unwinds first
            if self._events is not None:
                await self._events.aclose()
        finally:
            if self._cleanup is not None:
                await self._cleanup()

    def close(self) -> None:
        """Close the generator and its connections, stop the loop and join its thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        loop, self._loop = self._loop, None
        if loop is None:
            return  # never iterated: no thread, no generator
        try:
            loop.portal.call(self._finish)
        finally:
            loop.stop()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # a finalizer must not raise; the thread is a daemon either way
            pass
