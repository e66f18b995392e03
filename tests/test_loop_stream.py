"""The transport's connections on asyncio's own loop (``backends.transport._LoopStream``), issue 12.

Rules pinned here (each row names its rule):
- On asyncio's own loop a connection is read through a protocol that keeps reading on: a streamed
  answer of many reads does not take the socket out of the selector and put it back per read
  (``remove_reader``/``add_reader``, as anyio's socket stream does). On trio (and uvloop) the
  connection stays anyio's stream.
- What was received and not yet read is bounded: past ``READ_BUFFER_HIGH`` bytes queued the loop
  stops reading the socket, and starts again once the reader has taken the queue to
  ``READ_BUFFER_LOW`` or under.
- A receive is anyio's: bytes in the order they came, at most ``max_bytes`` at a time (the rest
  kept; what arrived before it comes in one piece, as one recv of the socket gives it), ``EndOfStream`` at the server's end, ``BrokenResourceError`` (from the OS's error) when the
  connection broke, ``ClosedResourceError`` once closed here.
- A cancelled receive loses nothing: what arrives after it is read by the next receive.
- A bounded wait (``receive_within``) keeps ``backends.waits``'s rules: past the read timeout or the
  deadline, whichever is first, ``WaitExpired`` naming which; a timer that fires before the current
  wait's bound waits on; a caller's cancellation stays a cancellation.
- An idle connection with news (bytes, the end or a failure the loop already took off the socket)
  is never reused: the socket itself would not show it any more.

No row times anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NamedTuple

import anyio
import anyio.abc
import httpx
import pytest

from backends import transport as transport_module
from backends.transport import READ_BUFFER_HIGH, READ_BUFFER_LOW, Http11Transport, _Connection, _LoopStream, _ReadingProtocol
from backends.waits import WaitExpired


class FakeTransport(asyncio.Transport):
    """An asyncio transport that records what the stream asks of it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []
        self.written = b""
        self.closing = False

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.calls.append(f"limits {high}")

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True
        self.calls.append("abort")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def loop_stream() -> tuple[_LoopStream, _ReadingProtocol, FakeTransport]:
    fake = FakeTransport()
    protocol = _ReadingProtocol()
    protocol.connection_made(fake)
    return _LoopStream(asyncio.get_running_loop(), fake, protocol), protocol, fake


# ---- receive, as anyio's ----

Step = Callable[[_ReadingProtocol], object]


class ReceiveRow(NamedTuple):
    rule: str
    arrived: list[Step]  # what the loop did before the reads
    reads: int
    max_bytes: int
    got: list[bytes | type[BaseException]]


def data(chunk: bytes) -> Step:
    return lambda protocol: protocol.data_received(chunk)


EOF: Step = lambda protocol: protocol.eof_received()  # noqa: E731
RESET: Step = lambda protocol: protocol.connection_lost(ConnectionResetError(104, "Connection reset by peer"))  # noqa: E731
LOST_CLEANLY: Step = lambda protocol: protocol.connection_lost(None)  # noqa: E731

RECEIVE_ROWS = [
    ReceiveRow("what arrived before a receive comes in one piece, in order", [data(b"ab"), data(b"cd")], 1, 100, [b"abcd"]),
    ReceiveRow("at most max_bytes at a time, the rest kept for the next receive", [data(b"abcdef")], 3, 4, [b"abcd", b"ef", EOFError]),
    ReceiveRow(
        "pieces are joined up to max_bytes, never split to fill it",
        [data(b"ab"), data(b"cd"), data(b"ef")],
        3,
        5,
        [b"abcd", b"ef", EOFError],
    ),
    ReceiveRow("the server's end after the bytes: EndOfStream", [data(b"ab"), EOF], 3, 100, [b"ab", anyio.EndOfStream, anyio.EndOfStream]),
    ReceiveRow(
        "a broken connection after the bytes: the bytes, then BrokenResourceError",
        [data(b"ab"), RESET],
        2,
        100,
        [b"ab", anyio.BrokenResourceError],
    ),
    ReceiveRow("a connection lost without an error: EndOfStream", [LOST_CLEANLY], 1, 100, [anyio.EndOfStream]),
]


@pytest.mark.parametrize("row", RECEIVE_ROWS, ids=[row.rule for row in RECEIVE_ROWS])
def test_a_receive_is_anyios(row: ReceiveRow) -> None:
    async def main() -> list[bytes | type[BaseException]]:
        stream, protocol, _ = loop_stream()
        for step in row.arrived:
            step(protocol)
        if EOFError in row.got:  # the row ends with the end: say so after its bytes
            protocol.eof_received()
        got: list[bytes | type[BaseException]] = []
        for _ in range(row.reads):
            try:
                got.append(await stream.receive(row.max_bytes))
            except BaseException as error:
                got.append(type(error))
        return got

    expected = [anyio.EndOfStream if item is EOFError else item for item in row.got]
    assert asyncio.run(main()) == expected


def test_a_broken_connection_names_the_oss_error() -> None:
    async def main() -> BaseException | None:
        stream, protocol, _ = loop_stream()
        RESET(protocol)
        with pytest.raises(anyio.BrokenResourceError) as caught:
            await stream.receive()
        return caught.value.__cause__

    cause = asyncio.run(main())
    assert isinstance(cause, ConnectionResetError)


def test_a_stream_closed_here_is_closed() -> None:
    async def main() -> tuple[type[BaseException], type[BaseException], list[str]]:
        stream, _, fake = loop_stream()
        await stream.aclose()
        with pytest.raises(anyio.ClosedResourceError) as on_receive:
            await stream.receive()
        with pytest.raises(anyio.ClosedResourceError) as on_send:
            await stream.send(b"x")
        return type(on_receive.value), type(on_send.value), fake.calls

    _, _, calls = asyncio.run(main())
    assert calls.count("abort") == 1


def test_a_waiting_receive_wakes_when_bytes_come() -> None:
    async def main() -> bytes:
        stream, protocol, _ = loop_stream()
        asyncio.get_running_loop().call_soon(protocol.data_received, b"late")
        return await stream.receive()

    assert asyncio.run(main()) == b"late"


def test_a_cancelled_receive_loses_nothing() -> None:
    async def main() -> bytes:
        stream, protocol, _ = loop_stream()
        waiting = asyncio.ensure_future(stream.receive())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        protocol.data_received(b"after")
        return await stream.receive()

    assert asyncio.run(main()) == b"after"


# ---- the bound on what is queued ----


class BoundRow(NamedTuple):
    rule: str
    arrive: list[int]  # sizes received
    take: int  # receives made after
    calls: list[str]  # pause/resume calls, in order


PIECE = 32 * 1024
ABOVE_HIGH = READ_BUFFER_HIGH // PIECE + 1  # pieces that take the queue past READ_BUFFER_HIGH
TO_LOW = ABOVE_HIGH - READ_BUFFER_LOW // PIECE  # receives that take it to READ_BUFFER_LOW

BOUND_ROWS = [
    BoundRow("up to READ_BUFFER_HIGH queued, reading stays on", [PIECE] * (READ_BUFFER_HIGH // PIECE), 0, []),
    BoundRow("past READ_BUFFER_HIGH, reading pauses, once", [PIECE] * (ABOVE_HIGH + 2), 0, ["pause"]),
    BoundRow("paused, reading stays paused while more than READ_BUFFER_LOW is queued", [PIECE] * ABOVE_HIGH, TO_LOW - 1, ["pause"]),
    BoundRow("paused, reading resumes once the queue is down to READ_BUFFER_LOW", [PIECE] * ABOVE_HIGH, TO_LOW, ["pause", "resume"]),
    BoundRow("reads of a queue never past the bound touch nothing", [PIECE] * 3, 3, []),
]


@pytest.mark.parametrize("row", BOUND_ROWS, ids=[row.rule for row in BOUND_ROWS])
def test_what_is_queued_and_not_read_is_bounded(row: BoundRow) -> None:
    async def main() -> list[str]:
        stream, protocol, fake = loop_stream()
        for size in row.arrive:
            protocol.data_received(b"x" * size)
        for _ in range(row.take):
            await stream.receive(PIECE)
        return [call for call in fake.calls if call in ("pause", "resume")]

    assert asyncio.run(main()) == row.calls


# ---- idle connections with news ----


class NewsRow(NamedTuple):
    rule: str
    news: Step | None
    reusable: bool


NEWS_ROWS = [
    NewsRow("an idle connection with bytes the loop took off the socket is not reused", data(b"garbage"), False),
    NewsRow("an idle connection whose server closed it is not reused", EOF, False),
    NewsRow("an idle connection that broke is not reused", RESET, False),
    NewsRow("an idle connection with no news is reused", None, True),
]


@pytest.mark.parametrize("row", NEWS_ROWS, ids=[row.rule for row in NEWS_ROWS])
def test_an_idle_connection_with_news_is_not_reused(row: NewsRow, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_module, "socket_is_readable", lambda sock: False)  # the socket shows nothing

    async def main() -> bool:
        stream, protocol, fake = loop_stream()
        fake.get_extra_info = lambda name, default=None: object()  # type: ignore[method-assign]
        connection = _Connection(stream, ("http", "h", 80, None))
        if row.news is not None:
            row.news(protocol)
        connection.idle_since = 100.0
        return connection.is_reusable(100.0)

    assert asyncio.run(main()) is row.reusable


# ---- the selector is not touched per read ----

EVENTS = 40


async def _serve_events(stream: anyio.abc.ByteStream) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        request += await stream.receive()
    await stream.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    for index in range(EVENTS):
        event = b'data: {"n": %d}\n\n' % index
        await stream.send(b"%x\r\n%s\r\n" % (len(event), event))
        await anyio.sleep(0.001)  # one event per read
    await stream.send(b"0\r\n\r\n")


async def _pieces_read(port: int) -> list[bytes]:
    async with httpx.AsyncClient(transport=Http11Transport()) as client, client.stream("GET", f"http://127.0.0.1:{port}/") as response:
        return [piece async for piece in response.aiter_raw()]


@pytest.mark.anyio
async def test_a_streamed_answer_does_not_take_the_socket_out_of_the_selector_per_read(anyio_backend: str) -> None:
    removed: list[int] = []
    loop = None
    if anyio_backend == "asyncio":
        loop = asyncio.get_running_loop()
        remove_reader = getattr(loop, "_remove_reader", None)
        if remove_reader is None or not isinstance(loop, asyncio.BaseEventLoop):
            pytest.skip("not asyncio's own selector loop")

        def counted(fd: Any) -> bool:
            removed.append(1)
            return bool(remove_reader(fd))

        loop._remove_reader = counted  # type: ignore[attr-defined]
    try:
        async with anyio.create_task_group() as group:
            listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
            port = listener.extra(anyio.abc.SocketAttribute.local_port)

            async def accept(stream: anyio.abc.SocketStream) -> None:
                async with stream:
                    await _serve_events(stream)

            group.start_soon(listener.serve, accept)
            pieces = await _pieces_read(port)
            group.cancel_scope.cancel()
    finally:
        if loop is not None:
            del loop._remove_reader  # type: ignore[attr-defined]
    assert b"".join(pieces) == b"".join(b'data: {"n": %d}\n\n' % index for index in range(EVENTS))
    if anyio_backend == "asyncio":
        # The server's side (anyio's stream) pauses once per receive of the request; the client's, never per read.
        assert len(removed) < EVENTS // 2


# ---- the bounded waits (backends.waits's rules, the waiting future failed instead of the task cancelled) ----


def test_a_wait_past_its_deadline_fails_with_the_deadline_named() -> None:
    async def main() -> bool:
        stream, _, _ = loop_stream()
        with pytest.raises(WaitExpired) as caught:
            await stream.receive_within(100, 30.0, asyncio.get_running_loop().time() + 0.01)
        return caught.value.deadline

    assert asyncio.run(main()) is True


def test_a_wait_past_its_read_timeout_fails_with_the_timeout_named() -> None:
    async def main() -> bool:
        stream, _, _ = loop_stream()
        with pytest.raises(WaitExpired) as caught:
            await stream.receive_within(100, 0.01, asyncio.get_running_loop().time() + 30.0)
        return caught.value.deadline

    assert asyncio.run(main()) is False


def test_a_wait_whose_bound_has_passed_fails_at_once_and_takes_queued_bytes_first() -> None:
    async def main() -> tuple[bool, bytes]:
        stream, protocol, _ = loop_stream()
        past = asyncio.get_running_loop().time() - 1.0
        with pytest.raises(WaitExpired) as caught:
            await stream.receive_within(100, None, past)
        protocol.data_received(b"ready")
        return caught.value.deadline, await stream.receive_within(100, None, past)  # nothing to wait for: no bound applies

    assert asyncio.run(main()) == (True, b"ready")


def test_a_timer_that_fires_before_the_current_waits_bound_waits_on() -> None:
    async def main() -> bytes:
        stream, protocol, _ = loop_stream()
        waiting = asyncio.ensure_future(stream.receive_within(100, 60.0, None))
        await asyncio.sleep(0)
        stream._expire()  # an earlier wait's timer, firing now: this wait's bound is a minute away
        await asyncio.sleep(0)
        assert not waiting.done()
        protocol.data_received(b"in time")
        result = await waiting
        stream.stop_timer()
        return result

    assert asyncio.run(main()) == b"in time"


def test_a_caller_cancellation_stays_a_cancellation() -> None:
    async def main() -> None:
        stream, _, _ = loop_stream()
        waiting = asyncio.ensure_future(stream.receive_within(100, 60.0, None))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        stream.stop_timer()

    asyncio.run(main())


# ---- on uvloop: the protocol to an IP address, anyio's stream to a host name ----


class UvloopRow(NamedTuple):
    rule: str
    host: str
    protocol: bool  # the connection is read through the protocol (_LoopStream)


UVLOOP_ROWS = [
    UvloopRow("on uvloop, a connection to an IP address is read through the protocol", "127.0.0.1", True),
    UvloopRow("on uvloop, a connection to a host name stays anyio's stream (happy eyeballs)", "localhost", False),
]


def _on_uvloop(main: Callable[[], Any]) -> Any:
    uvloop = pytest.importorskip("uvloop")  # scripts/setup installs genesis[fast]
    return uvloop.run(main())


async def _serve_on_loopback(handler: Callable[[anyio.abc.SocketStream], Any], body: Callable[[int], Any]) -> Any:
    async with anyio.create_task_group() as group:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def accept(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                try:
                    await handler(stream)
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass

        group.start_soon(listener.serve, accept)
        try:
            return await body(port)
        finally:
            group.cancel_scope.cancel()


@pytest.mark.parametrize("row", UVLOOP_ROWS, ids=[row.rule for row in UVLOOP_ROWS])
def test_on_uvloop_the_protocol_is_used_for_ip_addresses_only(row: UvloopRow) -> None:
    async def body(port: int) -> tuple[list[bytes], bool]:
        transport = Http11Transport()
        async with httpx.AsyncClient(transport=transport) as client:
            async with client.stream("GET", f"http://{row.host}:{port}/") as response:
                pieces = [piece async for piece in response.aiter_raw()]
            [[connection]] = transport._idle.values()
            return pieces, connection.loop_stream is not None

    async def main() -> tuple[list[bytes], bool]:
        return await _serve_on_loopback(_serve_events, body)  # type: ignore[no-any-return]

    pieces, protocol = _on_uvloop(main)
    assert b"".join(pieces) == b"".join(b'data: {"n": %d}\n\n' % index for index in range(EVENTS))
    assert protocol is row.protocol


def test_on_uvloop_a_silent_server_is_a_read_timeout_through_the_protocol() -> None:
    async def silent(stream: anyio.abc.SocketStream) -> None:
        await stream.receive()
        await anyio.sleep(30)

    async def body(port: int) -> str:
        async with httpx.AsyncClient(transport=Http11Transport(), timeout=httpx.Timeout(5.0, read=0.05)) as client:
            with pytest.raises(httpx.ReadTimeout) as caught:
                await client.get(f"http://127.0.0.1:{port}/")
            return str(caught.value)

    async def main() -> str:
        return await _serve_on_loopback(silent, body)  # type: ignore[no-any-return]

    assert "no data from the server" in _on_uvloop(main)


def test_on_uvloop_tls_to_an_ip_address_goes_through_the_loop(tmp_path: Any) -> None:
    import ssl

    from tests.tls_certs import self_signed

    key, cert = self_signed(tmp_path, "IP:127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    untrusting = ssl.create_default_context()  # the system's CAs only: this certificate is not trusted

    async def main() -> tuple[str, str]:
        from anyio.streams.tls import TLSListener

        async with anyio.create_task_group() as group:
            listener = TLSListener(await anyio.create_tcp_listener(local_host="127.0.0.1"), server_context, standard_compatible=False)
            port = listener.listener.extra(anyio.abc.SocketAttribute.local_port)

            async def accept(stream: anyio.abc.ByteStream) -> None:
                async with stream:
                    try:
                        request = b""
                        while b"\r\n\r\n" not in request:
                            request += await stream.receive()
                        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError, OSError):
                        pass

            group.start_soon(listener.serve, accept)
            async with httpx.AsyncClient(transport=Http11Transport(ssl_context=ssl.create_default_context(cafile=str(cert)))) as client:
                text = (await client.get(f"https://127.0.0.1:{port}/")).text
            async with httpx.AsyncClient(transport=Http11Transport(ssl_context=untrusting)) as client:
                with pytest.raises(httpx.ConnectError) as caught:
                    await client.get(f"https://127.0.0.1:{port}/")
            group.cancel_scope.cancel()
        return text, repr(caught.value.__cause__)

    text, cause = _on_uvloop(main)
    assert text == "ok"
    assert "CERTIFICATE_VERIFY_FAILED" in cause or "certificate verify failed" in cause
