"""Async code for callers without an event loop: each call, each iterator, runs a private event loop.

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
   ``ProviderError`` stays a ``ProviderError`` with its class and hint), after every item
   produced before it.
5. An iterator's loop reads ahead of the caller by at most ``READ_AHEAD`` items, handed over on a
   thread-safe queue; the caller gives room back once per half of that, not once per item: a hop
   through the loop costs far more than an item. A caller slower than the server stops the
   reading once the producer is that far ahead, as ``async for`` would.
6. A stream cut short is never a clean end: when the loop an unfinished iterator runs on is
   stopped under it (a shared loop's owner closes it: ``pipeline.openai_transport``'s
   ``close()``), or its ``close()`` comes from another thread while a reader waits in
   ``next()``, the reader gets a ``ProviderError`` of class ``aborted`` (after the items already
   produced), never ``StopIteration``. Only the reader's own ``close()`` (``break``, ``with``)
   leaves it quietly exhausted, as a generator's ``close()`` does.

The thread is a daemon so that an iterator left open at interpreter exit cannot hang the exit.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from concurrent.futures import CancelledError, Future
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pipeline.errors import ErrorClass, GenesisError, ProviderError, UserErrorKind

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

T = TypeVar("T")

# How many items the loop may read ahead of the caller: enough that the caller gives room back
# rarely (a hop through the loop costs far more than an item), few enough that a slow caller
# slows the reading.
READ_AHEAD = 64


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
    """An anyio event loop in a daemon thread, driven through a ``BlockingPortal``; ``stop()`` joins it.

    ``stopping`` is set from the moment ``stop()`` is called: what still runs on the loop then is
    being cut short (rule 6)."""

    def __init__(self, backend: str, backend_options: Mapping[str, Any] | None = None) -> None:
        import anyio
        from anyio.from_thread import BlockingPortal

        self.stopping = threading.Event()
        ready: Future[BlockingPortal] = Future()

        async def serve() -> None:
            async with BlockingPortal() as portal:
                ready.set_result(portal)
                await portal.sleep_until_stopped()

        def main() -> None:
            try:
                anyio.run(serve, backend=backend, backend_options=dict(backend_options or {}))
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

    def stop(self, last: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run ``last`` in the loop (to close what lives on it), then stop the loop, cancelling every
        task still running, and join its thread. Iterators still being read end in ``aborted`` (rule 6)."""
        self.stopping.set()
        try:
            if last is not None:
                self.portal.call(last)
        finally:
            try:
                self.portal.call(self.portal.stop, True)
            finally:
                self._thread.join()

    def call_unless_stopped(self, function: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """``portal.call(function, *args)``, a no-op once the loop is stopping: its stop cancels what it
        runs (an iterator's producer closes its generator there), and a stopped portal takes no calls."""
        if self.stopping.is_set():
            return
        try:
            self.portal.call(function, *args)
        except (RuntimeError, CancelledError):  # the portal stopped (or cancelled the call) between the check and the call
            if not self.stopping.is_set():
                raise


def call_blocking(function: Callable[[], Awaitable[T]], *, backend: str = "asyncio", backend_options: Mapping[str, Any] | None = None) -> T:
    """Run ``function()`` to completion on a fresh loop in this thread (rules 1, 2 and 4).

    A call needs no thread of its own: nothing is suspended between calls, so ``anyio.run`` here
    is enough, and the caller's thread keeps what is per thread (a profiler, an interrupt).
    """
    import anyio

    async def main() -> T:
        return await function()

    return anyio.run(main, backend=backend, backend_options=dict(backend_options or {}))


class BlockingIterator(Generic[T]):
    """Iterates an async generator from code without an event loop (rules 2 to 6).

    ``events()`` makes the generator; it is called in the private loop at the first ``next()``, so
    an iterator that is never iterated starts no thread. ``cleanup()`` runs in the loop after the
    generator is closed (for example, closing the HTTP client the generator used). Use it in a
    ``with`` block, or ``break``/``close()``: every way out closes it.

    Rule: nothing in the loop refers to the iterator (the loop's tasks hold its ``_Feed``), so
    the caller's thread drops the last reference, and garbage collection closes it from there.
    """

    def __init__(
        self,
        events: Callable[[], AsyncGenerator[T, None]],
        *,
        cleanup: Callable[[], Awaitable[None]] | None = None,
        backend: str = "asyncio",
        backend_options: Mapping[str, Any] | None = None,
        refusal: tuple[str, str] = ("iteration", "async for"),
        read_ahead: int = READ_AHEAD,
        loop: PrivateLoop | None = None,
        aborted: Callable[[], BaseException] | None = None,
    ) -> None:
        """``loop``: a private loop shared by many iterators (``pipeline.openai_transport``), which this one
        runs on but neither starts nor stops; None: a loop of its own. ``aborted``: the error a reader gets
        when the stream is cut short (rule 6); by default a ``ProviderError`` of class ``aborted``."""
        self._feed: _Feed[T] = _Feed(events, cleanup, read_ahead, aborted or (lambda: cut_short(refusal[0])))
        self._shared = loop
        self._refusal = refusal  # (this method, the async one to use instead): rule 1 at the first next()
        self._backend = backend
        self._backend_options = backend_options  # anyio's, for the private loop (the facade chooses uvloop)
        self._loop: PrivateLoop | None = None
        self._taken = 0  # items taken since room was last given back to the producer
        self._closed = False
        self._reader: int | None = None  # the thread that last called next()
        self._cut: BaseException | None = None  # what the reader gets next, after a close() from another thread

    def __iter__(self) -> BlockingIterator[T]:
        return self

    def __enter__(self) -> BlockingIterator[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __next__(self) -> T:
        if self._closed:
            cut, self._cut = self._cut, None
            if cut is not None:
                raise cut  # closed by another thread before this reader had the end (rule 6)
            raise StopIteration
        self._reader = threading.get_ident()
        feed = self._feed
        try:
            loop = self._loop  # a local: close() from another thread may clear the attribute meanwhile
            if loop is None:
                refuse_inside_loop(*self._refusal)
                loop = self._loop = self._shared or PrivateLoop(self._backend, self._backend_options)
                feed.stopping = loop.stopping
                loop.portal.call(feed.open)
                feed.producer = loop.portal.start_task_soon(feed.produce)
            item = feed.items.get()  # a plain thread wait: no hop through the loop per item
            if item is _END:
                failure, feed.failure = feed.failure, None
                self._cut = None  # the end is here: what it says is all the reader gets
                self.close()
                if failure is not None:
                    raise failure  # what the generator raised, after every item before it (rule 4)
                raise StopIteration
            self._taken += 1
            if self._taken >= feed.read_ahead // 2:  # one hop gives the producer room for many items
                loop.call_unless_stopped(feed.make_room, self._taken)
                self._taken = 0
        except BaseException:
            self.close()
            raise
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the generator and its connections, stop the loop and join its thread; idempotent.

        Items read ahead and not yet taken are dropped."""
        if self._closed:
            return
        if self._reader is not None and self._reader != threading.get_ident():
            self._cut = self._feed.aborted()  # under a reader in another thread: its next next() says so (rule 6)
        self._closed = True
        loop, self._loop = self._loop, None
        if loop is None:
            return  # never iterated (or refused): no thread, no generator
        try:
            loop.call_unless_stopped(self._feed.finish)  # a stopping loop closes the generator itself (rule 6)
        finally:
            if loop is not self._shared:
                loop.stop()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # a finalizer must not raise; the thread is a daemon either way
            pass


_END = object()  # the producer's last item: the generator ended (``_Feed.failure`` says how)


def cut_short(where: str) -> ProviderError:
    """What the reader of a stream cut short gets (rule 6).

    >>> str(cut_short("stream_sync"))
    'aborted: the stream was closed before its end: its iterator was closed, or the event loop it ran on was stopped (stream_sync)'
    """
    return ProviderError(
        ErrorClass.ABORTED,
        "the stream was closed before its end: its iterator was closed, or the event loop it ran on was stopped",
        url=where,
        hint="close a stream only after its reader has stopped reading it",
    )


class _Feed(Generic[T]):
    """The loop's side of a BlockingIterator: the generator, run by one producer task that puts
    its items on a thread-safe queue, and may run at most ``read_ahead`` items ahead (rule 5)."""

    def __init__(
        self,
        events: Callable[[], AsyncGenerator[T, None]],
        cleanup: Callable[[], Awaitable[None]] | None,
        read_ahead: int,
        aborted: Callable[[], BaseException],
    ) -> None:
        self.make_events = events
        self.cleanup = cleanup
        self.aborted = aborted
        self.stopping: threading.Event | None = None  # the loop's (``PrivateLoop.stopping``)
        self.read_ahead = max(read_ahead, 2)
        self.items: SimpleQueue[Any] = SimpleQueue()
        self.room: Any = None  # an anyio.Semaphore: one unit per item the producer may put
        self.produced: Any = None  # an anyio.Event, set once the producer has closed the generator
        self.producer: Future[None] | None = None
        self.failure: BaseException | None = None  # what the generator raised

    async def open(self) -> None:
        import anyio

        self.produced = anyio.Event()
        self.room = anyio.Semaphore(self.read_ahead)

    async def produce(self) -> None:
        import anyio

        try:
            events = self.make_events()
            try:
                async for item in events:
                    try:
                        self.room.acquire_nowait()  # no checkpoint while there is room: the reading sets the pace
                    except anyio.WouldBlock:
                        await self.room.acquire()
                    self.items.put(item)
            finally:
                with anyio.CancelScope(shield=True):
                    await events.aclose()
        except BaseException as error:
            # Cancelled (by close() or the loop's stop), or failed while the loop stops (its client closed
            # under it): the stream was cut short, which its reader must not take for its end (rule 6).
            cancelled = not isinstance(error, Exception)
            if cancelled or (self.stopping is not None and self.stopping.is_set()):
                self.failure = self.aborted()
                self.failure.__cause__ = None if cancelled else error
            else:
                self.failure = error
            if cancelled:
                raise
        finally:
            self.items.put(_END)
            self.produced.set()

    async def make_room(self, count: int) -> None:
        for _ in range(count):
            self.room.release()

    async def finish(self) -> None:
        try:
            if self.producer is not None:
                if not self.producer.done():
                    self.producer.cancel()  # the portal cancels the producer's scope; the generator is closed there
                await self.produced.wait()
        finally:
            if self.cleanup is not None:
                await self.cleanup()
