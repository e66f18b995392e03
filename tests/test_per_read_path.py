"""The per-read path (issue 12): what it keeps when a streamed answer arrives one event per read.

Rules pinned here (each row names its rule):
- The SSE decoder's one-frame fast path gives the items the line rules give, at every frame
  boundary, and keeps their limit, their end marker and their state between pieces.
- The transport keeps the exchange's total deadline (the ``deadline`` request extension) in the
  one scope each wait has: past it, ``DeadlineExceeded``, never a read timeout; and it hands its
  body iterator to the send stage (``BODY``, ``DEADLINE_ENFORCED``).
- A run Genesis starts itself runs on uvloop under asyncio when uvloop is installed, never under trio.
- ``from pipeline import Genesis`` loads neither the config loader, the runner, msgspec, ``returns``
  nor logging: they load with the first Genesis.

No row times anything.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import anyio
import anyio.abc
import httpx
import pytest

from backends import eventloop
from backends.sse import DataRun, Item, SSEDecoder, SSEEvent
from backends.stream import StreamParser
from backends.transport import BODY, DEADLINE_ENFORCED, DeadlineExceeded, Http11Transport
from pipeline.events import Event


def chunk(text: str) -> bytes:
    return json.dumps({"choices": [{"index": 0, "delta": {"content": text}}]}).encode()


def items_fed(pieces: list[bytes], *, max_event_bytes: int = 1 << 20) -> list[Item]:
    decoder = SSEDecoder(pack_json_runs=True, max_event_bytes=max_event_bytes)
    out: list[Item] = []
    for piece in pieces:
        out += decoder.feed(piece)
    return out + decoder.close()


def flat(items: list[Item]) -> list[tuple[str, bytes]]:
    """Items as (event, data) pairs: a DataRun is its payloads as plain events (how many per run does not matter)."""
    out: list[tuple[str, bytes]] = []
    for item in items:
        if isinstance(item, DataRun):
            out += [("message", payload) for payload in item.payloads]
        else:
            out.append((item.event, item.data))
    return out


class FrameRow(NamedTuple):
    rule: str
    pieces: list[bytes]


FRAME_ROWS = [
    FrameRow("LF frames, one per read", [b"data: " + chunk(f"t{i}") + b"\n\n" for i in range(4)]),
    FrameRow("CRLF frames, one per read", [b"data: " + chunk(f"t{i}") + b"\r\n\r\n" for i in range(4)]),
    FrameRow("[DONE] alone in its read ends the stream", [b"data: " + chunk("a") + b"\n\n", b"data: [DONE]\n\n", b"data: late\n\n"]),
    FrameRow("a frame after a CR that ended the last read: its LF belongs to that CR", [b"data: a\r", b"\ndata: b\n\n", b"data: c\n\n"]),
    FrameRow("a frame after a pending event name is that event's data", [b"event: error\n", b'data: {"message": "x"}\n\n']),
    FrameRow("a frame after a pending data line joins it", [b"data: first\n", b"data: second\n\n"]),
    FrameRow("a frame after a partial line completes it", [b"data: fir", b"st\n\n", b"data: next\n\n"]),
    FrameRow("two lines in one read go by the line rules", [b"data: a\ndata: b\n\n"]),
    FrameRow("a comment frame is no event", [b": ping\n\n", b"data: a\n\n"]),
    FrameRow("a bare CR inside the line is a line end", [b"data: a\rdata: b\n\n"]),
    FrameRow("data without the space after the colon", [b"data:a\n\n"]),
    FrameRow("an empty payload", [b"data: \n\n", b"data: a\n\n"]),
]


@pytest.mark.parametrize("row", FRAME_ROWS, ids=[row.rule for row in FRAME_ROWS])
def test_one_frame_per_read_gives_the_items_of_the_whole_stream(row: FrameRow) -> None:
    whole = items_fed([b"".join(row.pieces)])
    assert flat(items_fed(row.pieces)) == flat(whole)
    byte_by_byte = [bytes([b]) for b in b"".join(row.pieces)]  # the line rules alone: no piece is a whole frame
    assert flat(items_fed(byte_by_byte)) == flat(whole)


def test_the_fast_path_takes_a_plain_frame_as_one_data_run() -> None:
    decoder = SSEDecoder(pack_json_runs=True)
    assert decoder.feed(b"data: {}\n\n") == [DataRun([b"{}"])]
    assert decoder.feed(b"data: [DONE]\r\n\r\n") == [SSEEvent("message", b"[DONE]")]
    assert decoder.done


class LimitRow(NamedTuple):
    rule: str
    frame: bytes
    fails: bool


LIMIT = 32
LIMIT_ROWS = [
    LimitRow("a line of exactly the limit passes", b"data: " + b"x" * (LIMIT - 6) + b"\n\n", False),
    LimitRow("a line one byte over the limit fails", b"data: " + b"x" * (LIMIT - 5) + b"\n\n", True),
    LimitRow("a CRLF line one byte over the limit fails", b"data: " + b"x" * (LIMIT - 5) + b"\r\n\r\n", True),
]


@pytest.mark.parametrize("row", LIMIT_ROWS, ids=[row.rule for row in LIMIT_ROWS])
def test_a_frame_per_read_keeps_the_line_limit(row: LimitRow) -> None:
    def fails(pieces: list[bytes]) -> bool:
        try:
            items_fed(pieces, max_event_bytes=LIMIT)
        except ValueError:
            return True
        return False

    assert fails([row.frame]) is row.fails
    assert fails([bytes([b]) for b in row.frame]) is row.fails  # as the line rules decide it


def test_parser_events_one_frame_per_feed_equal_the_whole_stream() -> None:
    frames = [b"data: " + chunk(f"t{i}") + b"\n\n" for i in range(5)]
    frames += [b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n', b"data: [DONE]\n\n"]

    def events(pieces: list[bytes]) -> list[Event]:
        parser = StreamParser()
        out = [event for piece in pieces for event in parser.feed(piece)]
        assert parser.done
        return out + parser.close()

    assert events(frames) == events([b"".join(frames)])


# ---- the transport keeps the total deadline ----

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


async def read_head(stream: anyio.abc.ByteStream) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()


Stall = Callable[[anyio.abc.ByteStream], Any]


async def stall_before_answer(stream: anyio.abc.ByteStream) -> None:
    await read_head(stream)
    await anyio.sleep(30)


async def stall_mid_body(stream: anyio.abc.ByteStream) -> None:
    await read_head(stream)
    await stream.send(HEAD + b"a\r\ndata: {}\n\n\r\n")
    await anyio.sleep(30)


class StallRow(NamedTuple):
    rule: str
    server: Stall


STALL_ROWS = [
    StallRow("past the deadline before the answer's head: DeadlineExceeded", stall_before_answer),
    StallRow("past the deadline mid-body: DeadlineExceeded", stall_mid_body),
]


@pytest.mark.anyio
@pytest.mark.parametrize("row", STALL_ROWS, ids=[row.rule for row in STALL_ROWS])
async def test_the_total_deadline_is_kept_by_each_read(row: StallRow) -> None:
    async with anyio.create_task_group() as group:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def accept(stream: anyio.abc.ByteStream) -> None:
            async with stream:
                try:
                    await row.server(stream)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass

        group.start_soon(listener.serve, accept)
        transport = Http11Transport()
        deadline = anyio.current_time() + 0.3
        timeouts = {"connect": 10.0, "read": 20.0, "write": 10.0, "pool": 10.0}  # the read timeout is far: only the deadline can end it
        request = httpx.Request("GET", f"http://127.0.0.1:{port}/", extensions={"timeout": timeouts, "deadline": deadline})
        with anyio.fail_after(10), pytest.raises(DeadlineExceeded):
            response = await transport.handle_async_request(request)
            assert response.extensions[DEADLINE_ENFORCED] is True
            body = response.extensions[BODY]
            async for _ in body:
                pass
        await transport.aclose()
        group.cancel_scope.cancel()


@pytest.mark.anyio
async def test_without_a_deadline_the_body_is_handed_over_but_not_marked_enforced() -> None:
    async def answer(stream: anyio.abc.ByteStream) -> None:
        await read_head(stream)
        await stream.send(HEAD + b"a\r\ndata: {}\n\n\r\n0\r\n\r\n")

    async with anyio.create_task_group() as group:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def accept(stream: anyio.abc.ByteStream) -> None:
            async with stream:
                await answer(stream)
                await anyio.sleep(1)

        group.start_soon(listener.serve, accept)
        async with httpx.AsyncClient(transport=Http11Transport()) as client:
            with anyio.fail_after(10):
                response = await client.get(f"http://127.0.0.1:{port}/")
        assert DEADLINE_ENFORCED not in response.extensions and BODY in response.extensions
        assert response.text == "data: {}\n\n"
        group.cancel_scope.cancel()


# ---- the event loop of a run Genesis starts ----


class LoopRow(NamedTuple):
    rule: str
    backend: str
    environ: dict[str, str]
    uvloop_installed: bool
    options: dict[str, Any]


LOOP_ROWS = [
    LoopRow("asyncio with uvloop installed runs on uvloop", "asyncio", {}, True, {"use_uvloop": True}),
    LoopRow("asyncio without uvloop runs on asyncio's own loop", "asyncio", {}, False, {}),
    LoopRow("GENESIS_UVLOOP=0 keeps asyncio's own loop", "asyncio", {"GENESIS_UVLOOP": "0"}, True, {}),
    LoopRow("trio is never touched", "trio", {}, True, {}),
]


@pytest.mark.parametrize("row", LOOP_ROWS, ids=[row.rule for row in LOOP_ROWS])
def test_backend_options(row: LoopRow, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str) -> Any:
        if name == "uvloop":
            return object() if row.uvloop_installed else None
        return real(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert eventloop.backend_options(row.backend, row.environ) == row.options


def test_a_run_on_asyncio_is_on_uvloop_when_it_is_installed() -> None:
    pytest.importorskip("uvloop")  # scripts/setup installs genesis[fast]; without it there is nothing to pin

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert eventloop.run(loop_module, environ={}).startswith("uvloop")
    assert not eventloop.run(loop_module, environ={"GENESIS_UVLOOP": "0"}).startswith("uvloop")


# ---- the facade's import ----


def test_importing_the_facade_defers_what_only_a_genesis_needs() -> None:
    deferred = ["pipeline.config", "pipeline.catalog", "pipeline.runner", "msgspec", "returns", "logging"]
    code = f"import sys; from pipeline import Genesis; print(' '.join(m for m in {deferred!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert loaded == []


@pytest.mark.anyio
async def test_a_caller_cancelling_mid_read_is_cancellation_not_a_timeout() -> None:
    """The wait's own timeout (asyncio's on asyncio) never turns a caller's cancellation into a timeout error."""
    async with anyio.create_task_group() as group:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def accept(stream: anyio.abc.ByteStream) -> None:
            async with stream:
                try:
                    await stall_mid_body(stream)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass

        group.start_soon(listener.serve, accept)
        transport = Http11Transport()
        timeouts = {"connect": 10.0, "read": 20.0, "write": 10.0, "pool": 10.0}
        request = httpx.Request("GET", f"http://127.0.0.1:{port}/", extensions={"timeout": timeouts, "deadline": anyio.current_time() + 20})
        pieces: list[bytes] = []
        with anyio.fail_after(10):
            with anyio.move_on_after(0.3) as scope:
                response = await transport.handle_async_request(request)
                async for piece in response.extensions[BODY]:
                    pieces.append(piece)
        assert scope.cancelled_caught and pieces == [b"data: {}\n\n"]
        await transport.aclose()
        group.cancel_scope.cancel()


@pytest.mark.anyio
async def test_any_transport_s_body_is_cut_at_the_total_deadline() -> None:
    """A transport that keeps no deadline (an in-memory one): the send stage's own wait ends at the total deadline."""
    from collections.abc import AsyncIterator

    from pipeline.api import Genesis
    from pipeline.errors import ProviderError

    async def body() -> AsyncIterator[bytes]:
        yield b'data: {"choices": [{"index": 0, "delta": {"content": "a"}}]}\n\n'
        await anyio.sleep(30)
        yield b"data: [DONE]\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    config = '{models: {mode: "replace", providers: {local: {baseUrl: "http://local.invalid/v1", totalTimeoutSeconds: 0.3, models: [{id: "m"}]}}}}'
    genesis = Genesis.from_config_text(config, env={}, transport=httpx.MockTransport(handler))
    with anyio.fail_after(10), pytest.raises(ProviderError) as caught:
        async with genesis:
            await genesis.run("local/m", {"messages": [{"role": "user", "content": "hi"}], "stream": True})
    assert caught.value.error_class == "timeout" and "total deadline of 0.3 s" in str(caught.value)
