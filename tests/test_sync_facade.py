"""The sync facade (``Genesis.stream_sync``, ``run_sync``; ``pipeline.blocking``): rules, one row each.

- same events: ``stream_sync`` yields exactly what ``stream`` yields for the same recorded answer
  (tests/replay.py), and ``run_sync`` returns what ``run`` returns;
- every way out of the iterator (exhausted, ``break``, an exception in the loop body, ``close()``,
  a ``with`` block, garbage collection, a typed error) leaves no thread and no open connection
  behind, counted against the fault server (threads of this process, its TCP connections);
- errors are the async path's typed ``ProviderError``;
- from a thread that runs an event loop (asyncio or trio) both refuse with ``SyncInsideLoopError``
  and a hint naming the async method, instead of stalling that loop;
- from a worker thread while another thread runs a loop, both work.
"""

from __future__ import annotations

import gc
import signal
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from pipeline.api import Genesis
from pipeline.blocking import BlockingIterator, SyncInsideLoopError
from pipeline.errors import ErrorClass, ProviderError
from pipeline.events import Event, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from tests.replay import Recording, Replay, sse_of
from tests.test_conformance import TRANSCRIPTS, Transcript

HI = {"messages": [{"role": "user", "content": "hi"}]}
CONFIG = '{models: {providers: {vllm: {baseUrl: "http://127.0.0.1:9/v1", apiKey: "k", maxRetries: 0, models: [{id: "m"}]}}}}'
USAGE = Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)


def fault_genesis(fault_server: Any) -> Genesis:
    text = f'{{models: {{providers: {{fault: {{baseUrl: "{fault_server.base_url}", apiKey: "fault-secret", maxRetries: 0, models: [{{id: "ok"}}]}}}}}}}}'
    return Genesis.from_config_text(text, env={})


def replaying(*recordings: Recording) -> Genesis:
    genesis = Genesis.from_config_text(CONFIG, env={})
    genesis.pipeline = genesis.pipeline.replace("send", Replay(*recordings))
    return genesis


# ---- same events as the async path, on recorded answers ----

RECORDED: list[tuple[str, Recording, dict[str, Any]]] = [
    ("text", Recording.sse(sse_of([TextDelta("Hel"), TextDelta("lo"), Finish("stop"), USAGE], done=True)), HI),
    ("text cut into 7-byte reads", Recording.sse(sse_of([TextDelta("Hello"), Finish("stop")], done=True), piece_size=7), HI),
    ("reasoning then text", Recording.sse(sse_of([ReasoningDelta("think"), TextDelta("ok"), Finish("stop")], done=True)), HI),
    (
        "tool call",
        Recording.sse(
            sse_of(
                [
                    ToolCallDelta(0, id="c1", name="weather", arguments='{"city"'),
                    ToolCallDelta(0, arguments=': "Oslo"}'),
                    Finish("tool_calls"),
                ]
            )
        ),
        HI,
    ),
    (
        "not streamed",
        Recording.whole(b'{"choices":[{"index":0,"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}]}'),
        {**HI, "stream": False},
    ),
    ("server error mid-stream", Recording.sse(sse_of([TextDelta("a")]) + b'data: {"error":{"message":"boom"}}\n\n'), HI),
]


async def async_events(recording: Recording, request: dict[str, Any]) -> list[Event] | str:
    genesis = replaying(recording)
    events: list[Event] = []
    try:
        async for event in genesis.stream("vllm/m", request):
            events.append(event)
    except ProviderError as error:
        return f"{type(error).__name__}: {error}"
    return events


def sync_events(recording: Recording, request: dict[str, Any]) -> list[Event] | str:
    genesis = replaying(recording)
    try:
        return list(genesis.stream_sync("vllm/m", request))
    except ProviderError as error:
        return f"{type(error).__name__}: {error}"


@pytest.mark.parametrize(("recording", "request_body"), [row[1:] for row in RECORDED], ids=[row[0] for row in RECORDED])
def test_stream_sync_yields_what_stream_yields(recording: Recording, request_body: dict[str, Any]) -> None:
    expected = anyio.run(async_events, recording, request_body)
    assert sync_events(recording, request_body) == expected
    assert expected  # the row says something: events or an error


@pytest.mark.parametrize("transcript", TRANSCRIPTS, ids=[transcript.id for transcript in TRANSCRIPTS])
def test_stream_sync_matches_stream_on_every_conformance_transcript(transcript: Transcript) -> None:
    """The 96 recorded answers of 7 servers (tests/conformance): the same events, or the same error."""
    recording = Recording(transcript.status, transcript.content_type, (transcript.body,))
    request = {**HI, "stream": transcript.is_sse}
    assert sync_events(recording, request) == anyio.run(async_events, recording, request)


def test_run_sync_returns_what_run_returns() -> None:
    recording = Recording.sse(sse_of([TextDelta("Hi"), Finish("stop"), USAGE], done=True))

    async def run_async() -> Any:
        return await replaying(recording).run("vllm/m", HI)

    expected = anyio.run(run_async)
    got = replaying(recording).run_sync("vllm/m", HI)
    assert (got.text, got.finish_reason, got.usage, len(got.attempts)) == (
        expected.text,
        expected.finish_reason,
        expected.usage,
        len(expected.attempts),
    )
    assert got.text == "Hi"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_stream_sync_runs_on_either_backend(backend: str) -> None:
    recording = Recording.sse(sse_of([TextDelta("x"), Finish("stop")], done=True))
    assert list(replaying(recording).stream_sync("vllm/m", HI, backend=backend)) == [TextDelta("x"), Finish("stop")]


# ---- every way out leaves no thread and no connection ----


def client_connections(port: int) -> int:
    """This process's established TCP connections to ``port`` (the client side: remote port == port)."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


def genesis_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "genesis-sync")


class Boom(Exception):
    pass


def exhaust(events: BlockingIterator[Event]) -> None:
    assert [type(event) for event in events][:2] == [TextDelta, TextDelta]


def break_early(events: BlockingIterator[Event]) -> None:
    for event in events:
        assert isinstance(event, TextDelta)
        assert genesis_threads() == 1  # the loop runs while the caller iterates
        break


def raise_in_body(events: BlockingIterator[Event]) -> None:
    with pytest.raises(Boom):
        for _ in events:
            raise Boom


def close_explicitly(events: BlockingIterator[Event]) -> None:
    next(events)
    events.close()
    assert list(events) == []  # a closed iterator is exhausted


def leave_with_block(events: BlockingIterator[Event]) -> None:
    with events:
        next(events)


def drop_reference(events: BlockingIterator[Event]) -> None:
    next(events)
    del events
    gc.collect()


def never_iterated(events: BlockingIterator[Event]) -> None:
    assert genesis_threads() == 0  # nothing starts before the first next()


WAYS_OUT: list[tuple[str, str, Callable[[BlockingIterator[Event]], None]]] = [
    ("exhausted", "ok", exhaust),
    ("break after the first event", "ok", break_early),
    ("exception in the loop body", "ok", raise_in_body),
    ("close()", "ok", close_explicitly),
    ("with block", "ok", leave_with_block),
    ("garbage collected", "ok", drop_reference),
    ("never iterated", "ok", never_iterated),
]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="counts connections through /proc (Linux)")
@pytest.mark.parametrize(("scenario", "way_out"), [row[1:] for row in WAYS_OUT], ids=[row[0] for row in WAYS_OUT])
def test_every_way_out_closes_the_connection_and_the_loop(
    fault_server: Any, scenario: str, way_out: Callable[[BlockingIterator[Event]], None]
) -> None:
    port = fault_server.port
    assert (genesis_threads(), client_connections(port)) == (0, 0)
    genesis = fault_genesis(fault_server)
    way_out(genesis.stream_sync(f"fault/{scenario}", HI))
    assert (genesis_threads(), client_connections(port)) == (0, 0)


def test_connection_is_open_while_iterating(fault_server: Any) -> None:
    """The counter sees a live connection (so the rows above can fail)."""
    genesis = fault_genesis(fault_server)
    events = genesis.stream_sync("fault/ok", HI)
    next(events)
    try:
        assert client_connections(fault_server.port) == 1
    finally:
        events.close()


# ---- errors are the async path's typed errors ----

ERRORS: list[tuple[str, str, ErrorClass]] = [
    ("401", "unauthorized", ErrorClass.AUTH),
    ("503", "overloaded", ErrorClass.OVERLOADED),
    ("dropped mid-stream", "drop-mid-stream", ErrorClass.PROTOCOL),
]


@pytest.mark.parametrize(("scenario", "error_class"), [row[1:] for row in ERRORS], ids=[row[0] for row in ERRORS])
def test_errors_are_typed_and_leave_nothing_behind(fault_server: Any, scenario: str, error_class: ErrorClass) -> None:
    async def async_error() -> ProviderError:
        with pytest.raises(ProviderError) as caught:
            async with fault_genesis(fault_server) as genesis:
                async for _ in genesis.stream(f"fault/{scenario}", HI):
                    pass
        return caught.value

    expected = anyio.run(async_error)
    with pytest.raises(ProviderError) as caught:
        list(fault_genesis(fault_server).stream_sync(f"fault/{scenario}", HI))
    assert (caught.value.error_class, caught.value.hint) == (expected.error_class, expected.hint) == (error_class, expected.hint)
    with pytest.raises(ProviderError) as ran:
        fault_genesis(fault_server).run_sync(f"fault/{scenario}", HI)
    assert ran.value.error_class == error_class
    assert (genesis_threads(), client_connections(fault_server.port)) == (0, 0)


# ---- inside a running loop: a typed refusal, not a stalled loop ----


@pytest.mark.anyio
async def test_stream_sync_inside_a_loop_is_refused(anyio_backend: str) -> None:
    genesis = replaying(Recording.sse(sse_of([TextDelta("x")])))
    with pytest.raises(SyncInsideLoopError) as caught:
        genesis.stream_sync("vllm/m", HI)
    assert anyio_backend in str(caught.value)
    assert caught.value.hint is not None and "Genesis.stream" in caught.value.hint


@pytest.mark.anyio
async def test_run_sync_inside_a_loop_is_refused(anyio_backend: str) -> None:
    genesis = replaying(Recording.sse(sse_of([TextDelta("x")])))
    with pytest.raises(SyncInsideLoopError) as caught:
        genesis.run_sync("vllm/m", HI)
    assert caught.value.hint is not None and "Genesis.run" in caught.value.hint


@pytest.mark.anyio
async def test_iterating_inside_a_loop_is_refused(anyio_backend: str) -> None:
    """An iterator made outside a loop, then first iterated inside one."""
    events = await anyio.to_thread.run_sync(lambda: replaying(Recording.sse(sse_of([TextDelta("x")]))).stream_sync("vllm/m", HI))
    with pytest.raises(SyncInsideLoopError):
        next(events)
    assert genesis_threads() == 0


@pytest.mark.anyio
async def test_works_from_a_worker_thread_while_a_loop_runs(anyio_backend: str) -> None:
    recording = Recording.sse(sse_of([TextDelta("x"), Finish("stop")], done=True))

    def in_worker() -> tuple[list[Event], str]:
        events = list(replaying(recording).stream_sync("vllm/m", HI))
        return events, replaying(recording).run_sync("vllm/m", HI).text

    assert await anyio.to_thread.run_sync(in_worker) == ([TextDelta("x"), Finish("stop")], "x")


@pytest.mark.anyio
async def test_one_genesis_serves_a_loop_and_a_worker_thread_at_once(fault_server: Any, anyio_backend: str) -> None:
    """The loop streams over the shared client while a worker thread runs run_sync and stream_sync on
    the same Genesis: each sync call has a client of its own, and closing it leaves the shared one open."""
    genesis = fault_genesis(fault_server)
    texts: list[str] = []

    def worker() -> None:
        texts.append(genesis.run_sync("fault/ok", HI).text)
        texts.append("".join(event.text for event in genesis.stream_sync("fault/ok", HI) if isinstance(event, TextDelta)))

    async with genesis:
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, worker)
            for _ in range(3):
                texts.append((await genesis.run("fault/ok", HI)).text)
        assert not genesis.client().is_closed
    assert texts == ["Hello world"] * 5


def test_sync_calls_keep_the_shared_async_client() -> None:
    """run_sync/stream_sync make a client of their own on their loop; the async client stays as it was."""
    genesis = replaying(*(Recording.sse(sse_of([TextDelta(text), Finish("stop")])) for text in "xy"))
    shared = genesis.client()
    assert genesis.run_sync("vllm/m", HI).text == "x"
    assert list(genesis.stream_sync("vllm/m", HI)) == [TextDelta("y"), Finish("stop")]
    assert genesis.client() is shared and not shared.is_closed


# ---- a real server ----


@pytest.mark.vllm
def test_stream_sync_against_vllm(vllm_url: str) -> None:
    text = f'{{models: {{providers: {{vllm: {{baseUrl: "{vllm_url}", apiKey: "test-key", models: [{{id: "tiny-model"}}]}}}}}}}}'
    genesis = Genesis.from_config_text(text, env={})
    events: Iterator[Event] = genesis.stream_sync("vllm/tiny-model", {**HI, "max_tokens": 8})
    seen = list(events)
    assert any(isinstance(event, TextDelta) for event in seen)
    assert isinstance([event for event in seen if isinstance(event, Finish)][-1], Finish)
    assert any(isinstance(event, Usage) and event.completion_tokens <= 8 for event in seen)
    assert genesis_threads() == 0


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="counts connections through /proc (Linux)")
def test_an_interrupt_while_waiting_cancels_the_read(fault_server: Any) -> None:
    """Ctrl-C while next() waits for a server that has not answered (``slow``): the read is cancelled,
    the connection closed, the loop stopped; the KeyboardInterrupt reaches the caller."""
    genesis = fault_genesis(fault_server)
    events = genesis.stream_sync("fault/slow", HI)
    # A real SIGINT to the main thread, as Ctrl-C sends (``_thread.interrupt_main`` would not wake a blocked wait).
    # Python's own handler is installed for the test: a process started in the background by a shell
    # without job control (a CI runner, ``cmd &``) inherits SIGINT ignored, and Python then installs none.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.0, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            next(events)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert (genesis_threads(), client_connections(fault_server.port)) == (0, 0)


# ---- the read-ahead bound (pipeline.blocking rule 5) ----


class Counting:
    """An endless async generator that counts what it produced; ``reached`` is set at item ``mark``."""

    def __init__(self, mark: int = 0) -> None:
        self.produced = 0
        self.mark = mark
        self.reached = threading.Event()

    async def events(self) -> AsyncGenerator[int, None]:
        while True:
            self.produced += 1
            if self.produced == self.mark:
                self.reached.set()
            yield self.produced
            await anyio.sleep(0)


def test_the_loop_reads_at_most_read_ahead_items_ahead() -> None:
    """With room for 8, the producer puts 8 items, makes the 9th and waits for room; it is still
    waiting when close() cancels it (unbounded, it would have made hundreds more by then)."""
    source = Counting(mark=9)
    items = BlockingIterator(source.events, read_ahead=8)
    assert next(items) == 1
    assert source.reached.wait(30)  # a guard against a hang, not a timing assertion
    items.close()
    assert source.produced == 9


def test_room_is_given_back_as_the_caller_takes() -> None:
    source = Counting()
    with BlockingIterator(source.events, read_ahead=4) as items:
        assert [next(items) for _ in range(100)] == list(range(1, 101))
    assert genesis_threads() == 0
