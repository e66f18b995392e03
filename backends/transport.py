"""An HTTP/1.1 transport for httpx with O(1) connection reuse; responses parsed by llhttp (httptools).

httpcore's pool re-scans every connection for every queued request; with
hundreds of concurrent streams that scan cost more CPU than the streams
themselves (measured: about 80% of client CPU at 100 streams). This
transport keeps idle connections in a list per origin: taking one and giving
one back are O(1), and nothing is scanned per request.

The request is serialized by h11 (its checks refuse what HTTP/1.1 cannot
carry); the response is parsed by llhttp through httptools, a C parser: a
streamed answer arrives one HTTP chunk per token, and h11's Python chunked
reader was a fifth of the Python run per read (bench/per_read_cost.py).

Rules:
- One request per connection at a time. A connection goes back to the idle
  list only after a complete exchange: either the body was read to its end,
  or the caller stopped early and the rest of the body, up to and including
  its end (the chunked terminator), had already arrived. A connection with
  unread body bytes, whose response said ``Connection: close`` or ended with
  the connection, that received anything after its response, or closed on
  any error or cancellation, is never reused.
- A body with neither Content-Length nor chunked framing ends when the
  server closes the connection; any other body cut short by the close is a
  ``RemoteProtocolError``.
- At most ``MAX_BYTES_WITHOUT_BODY`` bytes in a row may arrive that carry no
  body byte (a response head, 1xx heads, chunk framing, trailers): more is a
  ``ProtocolLimitError``, so a head or a chunk header that never ends is
  bounded in memory and time by bytes, not only by the deadline.
- An idle connection is reused only if it has not expired (5 s) and its
  socket is not readable (a readable idle socket means the server closed it
  or sent garbage); the check is ``poll``, which works for any fd number
  (``select`` stops at 1024). A request that fails on a reused connection
  before any response byte arrived is retried once on a new connection.
- At most ``MAX_INFORMATIONAL_RESPONSES`` 1xx responses are read before the
  real one; more is a ``ProtocolLimitError``.
- A request h11 refuses to send (a header value with CR, LF or NUL, a bad
  name) is an ``httpx.LocalProtocolError`` that names the header, never its
  value: the value may be a key.
- Failures leave as httpx's own exceptions (ConnectError, ConnectTimeout,
  ReadTimeout, WriteError, ReadError, RemoteProtocolError,
  LocalProtocolError), with the OS error as the cause, so callers classify
  them as for any httpx transport (``backends.http.transport_error``).
- Timeouts come from the request's ``timeout`` extension (connect, read,
  write), as httpx sets them. A ``deadline`` extension (anyio's clock) is
  the exchange's total deadline: every read waits until the read timeout or
  the deadline, whichever is first, in one cancel scope (a read per event
  pays for one scope, not two), and the deadline passing is
  ``DeadlineExceeded``. The response then carries ``DEADLINE_ENFORCED`` and
  its body iterator as ``BODY`` in its extensions, so a caller can read the
  body without httpx's layers and without a scope of its own.
- On asyncio's own event loop a connection is the loop's (``create_connection``,
  happy eyeballs as anyio's ``connect_tcp``, TLS by the loop), and so it is on
  uvloop to an IP address (uvloop's ``create_connection`` has no happy
  eyeballs, which a host name with several addresses needs), read through a
  protocol that keeps reading on (``_LoopStream``): a read waits on one future,
  where anyio's socket stream pauses and resumes reading around every receive
  (a selector change each, most of the Python a read ran on asyncio); what
  arrived while the reader was busy goes up in one piece (up to the read
  size), as one recv would give it. What was received and not yet read is bounded (``READ_BUFFER_HIGH``: past it the
  loop stops reading the socket until the reader is down to
  ``READ_BUFFER_LOW``). The calls and exceptions are anyio's stream's, so every
  rule here holds the same; an idle connection whose protocol already has news
  (bytes, the end, a failure) is not reused. On trio, and on uvloop to a host
  name, connections are anyio's streams.
- TLS: the request's ``ssl_context`` extension if present (per provider,
  see ``backends.http.tls_context``), else the transport's context, else
  the default one. Idle connections are kept per
  origin and per TLS context, so a connection made without verification is
  never lent to a request that wants it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import select
import socket
import ssl
import time
from collections import deque
from typing import Any

import anyio
import anyio.abc
import h11
import httptools
import httpx

from backends.waits import WaitExpired, Waits, running_asyncio_loop, wait_bound
from pipeline.policy import MAX_INFORMATIONAL_RESPONSES

IDLE_EXPIRY_SECONDS = 5.0
READ_SIZE = 64 * 1024
# asyncio's own loop: how much a connection may hold that was received and not yet read before the loop
# stops reading its socket (and under which it reads again).
READ_BUFFER_HIGH = 256 * 1024
READ_BUFFER_LOW = 64 * 1024
HAPPY_EYEBALLS_DELAY = 0.25  # seconds, as anyio.connect_tcp
MAX_BYTES_WITHOUT_BODY = 64 * 1024
_FORBIDDEN_IN_VALUES = (b"\r", b"\n", b"\x00")

Origin = tuple[str, str, int, ssl.SSLContext | None]


class ProtocolLimitError(httpx.RemoteProtocolError):
    """The server went past a bound this transport keeps (its message names the bound)."""


class DeadlineExceeded(httpx.TimeoutException):
    """The exchange's total deadline (the request's ``deadline`` extension) passed while waiting for data."""


DEADLINE_ENFORCED = "genesis.deadline_enforced"
BODY = "genesis.body"


class RefusedRequestError(httpx.LocalProtocolError):
    """A request h11 would not send; the message names the header, never its value."""


def socket_is_readable(sock: Any) -> bool:
    """True if ``sock`` has data or an EOF waiting (poll: no fd-number limit, unlike select)."""
    poll = getattr(select, "poll", None)
    if poll is None:  # Windows: select has no 1024 limit there
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    poller = poll()
    poller.register(sock, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


class _Response:
    """One response as llhttp parses it (httptools calls the ``on_*`` methods from C): its head, the body
    pieces not yet read, and how it ended."""

    __slots__ = (
        "body",
        "body_bytes",
        "complete",
        "extra",
        "framing",
        "headers",
        "in_informational",
        "informational",
        "keep_alive",
        "parser",
        "reason",
        "started",
        "status",
        "without_body",
    )

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.started = False  # a byte of a response came
        self.status: int | None = None  # the final (non-1xx) response's, once its head is complete
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.informational = 0
        self.in_informational = False
        self.body: deque[bytes] = deque()  # pieces parsed and not yet taken by the reader
        self.body_bytes = 0
        self.complete = False  # the final response ended (its framing said so)
        self.extra = False  # something came after it: the connection cannot be reused
        self.keep_alive = False
        self.framing = "close"  # "length", "chunked", or "close" (the body ends with the connection)
        self.without_body = 0  # bytes in a row that carried no body byte

    def feed(self, data: bytes) -> None:
        """Parse one read; a malformed response is a RemoteProtocolError, past a bound a ProtocolLimitError."""
        self.started = True
        before = self.body_bytes
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if not self.complete:
                raise httpx.RemoteProtocolError("the server switched protocols (101) instead of answering") from None
            self.extra = True
        except httptools.HttpParserError as error:
            if not self.complete:
                raise httpx.RemoteProtocolError(f"malformed HTTP response: {error}") from None
            self.extra = True  # garbage after a complete response: the response stands, the connection goes
        if self.body_bytes != before or self.complete:
            self.without_body = 0
            return
        self.without_body += len(data)
        if self.without_body > MAX_BYTES_WITHOUT_BODY:
            raise ProtocolLimitError(f"the server sent more than {MAX_BYTES_WITHOUT_BODY} bytes of HTTP framing without a body byte")

    def eof(self) -> None:
        """The server closed the connection: the end of a body framed by the close, else a cut-short response."""
        if self.complete:
            return
        if self.status is not None and self.framing == "close":
            self.complete, self.keep_alive = True, False
            return
        raise httpx.RemoteProtocolError("the server closed the connection before the end of the response")

    # -- httptools' callbacks --

    # Rule: once the final response is complete, nothing after it (a second response to one request,
    # in the same read) touches its head: it only marks the connection as not reusable.
    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True  # a second response to one request
            return
        self.headers = []
        self.reason = b""

    def on_status(self, status: bytes) -> None:
        if not self.complete:
            self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self.informational += 1
            self.in_informational = True
            return
        self.status = status
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"transfer-encoding" and b"chunked" in value.lower():
                self.framing = "chunked"
            elif lowered == b"content-length" and self.framing == "close":
                self.framing = "length"
        if status in (204, 304):
            self.framing = "length"

    def on_body(self, body: bytes) -> None:
        if body and not self.complete and not self.in_informational:
            self.body.append(body)
            self.body_bytes += len(body)

    def on_message_complete(self) -> None:
        if self.in_informational:
            self.in_informational = False
            return
        if not self.complete:
            self.complete = True
            self.keep_alive = self.parser.should_keep_alive()


class _ReadingProtocol(asyncio.Protocol):
    """The loop's side of a ``_LoopStream``: what arrives is queued and wakes the one waiting reader.

    Reading stays on between reads: no ``pause_reading``/``resume_reading`` (a selector change each)
    per read, as anyio's socket stream makes. Past ``READ_BUFFER_HIGH`` bytes queued and not yet read,
    reading pauses until the reader has taken the queue under ``READ_BUFFER_LOW``.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.queue: deque[bytes] = deque()
        self.queued = 0
        self.paused = False  # reading paused: the queue is full
        self.eof = False
        self.lost = False
        self.error: BaseException | None = None
        self.reader: asyncio.Future[None] | None = None
        self.writer: asyncio.Future[None] | None = None
        self.write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.queue.append(data)
        self.queued += len(data)
        if self.queued > READ_BUFFER_HIGH and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        # True: the connection is closed by its owner, as anyio's stream leaves it. A TLS transport closes
        # itself at the end whatever this says, and logs a warning when it is True, so it is False there.
        return self.transport is None or self.transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost, self.error = True, exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        reader = self.reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    def _wake_writer(self) -> None:
        writer = self.writer
        if writer is not None and not writer.done():
            writer.set_result(None)


class _LoopStream:
    """A connection on asyncio's own loop, read through a protocol that keeps reading on (``_ReadingProtocol``).

    The ``anyio.abc.ByteStream`` calls this transport makes (``receive``, ``send``, ``aclose``, ``extra``),
    with anyio's exceptions: ``EndOfStream`` at the server's end, ``BrokenResourceError`` (from the OS's
    error) when the connection broke, ``ClosedResourceError`` once closed here. A cancelled wait leaves
    the stream as it was: what arrives meanwhile stays queued.
    """

    __slots__ = ("_closed", "_loop", "_on_deadline", "_protocol", "_timer", "_transport", "_until")

    def __init__(self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, protocol: _ReadingProtocol) -> None:
        self._loop, self._transport, self._protocol = loop, transport, protocol
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None  # one timer for the bounded waits, as backends.waits keeps it
        self._until = math.inf  # the current wait's bound (loop time)
        self._on_deadline = False  # that bound is the exchange's deadline
        # send() returns once the kernel has the bytes, as anyio's does: writing pauses while any byte is buffered.
        # Not limits of 0: asyncio's TLS transport pauses at "buffered >= high", so high=0 would pause (and resume)
        # it on every read with nothing buffered, and a request's write would wait for the next response.
        transport.set_write_buffer_limits(high=1, low=0)

    async def receive(self, max_bytes: int = READ_SIZE) -> bytes:
        return await self.receive_within(max_bytes, None, None)

    async def receive_within(self, max_bytes: int, timeout: float | None, deadline: float | None) -> bytes:
        """``receive``, waiting at most ``timeout`` seconds and not past ``deadline`` (loop time), whichever is first:
        past it, ``WaitExpired`` (its ``deadline`` says which bound it was).

        ``backends.waits``'s rules with no task cancelled: the one timer fails the waiting future itself,
        and a timer that fires before the current wait's bound re-arms for it.
        """
        protocol = self._protocol
        queue = protocol.queue
        if not queue and not (protocol.eof or protocol.lost or self._closed):
            loop = self._loop
            if timeout is not None or deadline is not None:
                now = loop.time()
                until, on_deadline = wait_bound(now, timeout, deadline)
                if until <= now:
                    raise WaitExpired(on_deadline)
                self._until, self._on_deadline = until, on_deadline
                timer = self._timer
                if timer is None or timer.when() > until:
                    if timer is not None:
                        timer.cancel()
                    self._timer = loop.call_at(until, self._expire)
            else:
                self._until = math.inf
            reader = protocol.reader = loop.create_future()
            try:
                await reader
            finally:
                protocol.reader = None
        if queue:
            data = queue.popleft()
            if len(data) > max_bytes:
                data, rest = data[:max_bytes], data[max_bytes:]
                queue.appendleft(rest)
            elif queue and len(data) + len(queue[0]) <= max_bytes:
                # More came while the reader was busy: it goes up in one piece, as one recv of the socket would
                # give it (a reader behind the server then parses several events per read, not one).
                parts, size = [data], len(data)
                while queue and size + len(queue[0]) <= max_bytes:
                    piece = queue.popleft()
                    parts.append(piece)
                    size += len(piece)
                data = b"".join(parts)
            protocol.queued -= len(data)
            if protocol.paused and protocol.queued <= READ_BUFFER_LOW and not self._closed:
                protocol.paused = False
                self._transport.resume_reading()
            return data
        if self._closed:
            raise anyio.ClosedResourceError
        if protocol.error is not None:
            raise anyio.BrokenResourceError from protocol.error
        raise anyio.EndOfStream

    async def send(self, item: bytes) -> None:
        if not self.write(item):
            await self.drained()

    def write(self, item: bytes) -> bool:
        """Hand ``item`` to the loop's transport: True when the kernel took it all (nothing to wait for)."""
        protocol = self._protocol
        if self._closed:
            raise anyio.ClosedResourceError
        if protocol.lost or self._transport.is_closing():
            raise anyio.BrokenResourceError from protocol.error
        self._transport.write(item)
        return not protocol.write_paused

    async def drained(self) -> None:
        """Wait until the loop's transport has handed everything written to the kernel."""
        protocol = self._protocol
        while protocol.write_paused and not protocol.lost:
            writer = protocol.writer = self._loop.create_future()
            try:
                await writer
            finally:
                protocol.writer = None
        if protocol.lost and protocol.error is not None:
            raise anyio.BrokenResourceError from protocol.error

    def _expire(self) -> None:
        self._timer = None
        reader = self._protocol.reader
        if reader is None or reader.done() or self._until == math.inf:  # no bounded wait now: the next one arms its own
            return
        if self._loop.time() < self._until:  # the wait began after this timer was set: wait on to its bound
            self._timer = self._loop.call_at(self._until, self._expire)
            return
        reader.set_exception(WaitExpired(self._on_deadline))

    def stop_timer(self) -> None:
        """No wait is bounded now (an idle or closed connection): the timer goes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def extra(self, attribute: Any, default: Any = None) -> Any:
        if attribute is anyio.abc.SocketAttribute.raw_socket:
            return self._transport.get_extra_info("socket", default)
        return default

    def has_news(self) -> bool:
        """Something came (bytes, the end, a failure) that nobody read: an idle connection with news is not reused."""
        protocol = self._protocol
        return bool(protocol.queue) or protocol.eof or protocol.lost

    async def aclose(self) -> None:
        self.stop_timer()
        if not self._closed:
            self._closed = True
            self._transport.abort()  # nothing of this connection is wanted any more: no flush, no wait
            self._protocol._wake_reader()
            await asyncio.sleep(0)  # one turn of the loop: the socket closes in it (abort schedules it), not at exit or GC


def _is_ip_literal(host: str) -> bool:
    """
    >>> _is_ip_literal("127.0.0.1"), _is_ip_literal("::1"), _is_ip_literal("localhost")
    (True, True, False)
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _open_loop_stream(loop: asyncio.AbstractEventLoop, host: str, port: int, context: ssl.SSLContext | None) -> _LoopStream:
    """A connection made by the running loop, TLS by the loop when ``context``: on asyncio's own loop with happy
    eyeballs as anyio's ``connect_tcp``; on another loop (uvloop, which has none) only to an IP address."""
    hostname = host if context is not None else None
    if isinstance(loop, asyncio.BaseEventLoop):
        connected = await loop.create_connection(
            _ReadingProtocol, host, port, ssl=context, server_hostname=hostname, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY
        )
    else:
        connected = await loop.create_connection(_ReadingProtocol, host, port, ssl=context, server_hostname=hostname)
    transport, protocol = connected
    return _LoopStream(loop, transport, protocol)


class _Connection:
    __slots__ = ("idle_since", "loop", "loop_stream", "origin", "response", "stream", "waits")

    def __init__(self, stream: anyio.abc.ByteStream | _LoopStream, origin: Origin) -> None:
        self.stream = stream
        self.response = _Response()
        self.origin = origin
        self.idle_since = 0.0
        self.loop = running_asyncio_loop()  # a connection is bound to the asyncio loop it was made on (None: trio)
        # On asyncio the waits share one timer per connection (backends.waits), which anyio's cancel scopes
        # on asyncio tell apart from their own (Task.uncancel); trio and anything else keep anyio's scope.
        # A connection on asyncio's own loop bounds its waits itself (_LoopStream.receive_within).
        self.loop_stream = stream if isinstance(stream, _LoopStream) else None
        self.waits: Waits | None = None if self.loop is None or self.loop_stream is not None else Waits(self.loop)

    def is_reusable(self, now: float) -> bool:
        if now - self.idle_since > IDLE_EXPIRY_SECONDS:
            return False
        stream = self.stream
        if isinstance(stream, _LoopStream) and stream.has_news():  # the loop read it already: the socket would not show it
            return False
        sock = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if sock is None:
            return False
        try:
            return not socket_is_readable(sock)
        except (OSError, ValueError):
            return False

    async def aclose(self) -> None:
        if self.waits is not None:
            self.waits.close()
        with anyio.CancelScope(shield=True):
            try:
                await self.stream.aclose()
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass

    def abandon(self) -> None:
        """End a connection of another event loop (which may be closed: its transport cannot run there) without
        that loop: the socket is shut down here, and closed when its objects are collected."""
        if self.waits is not None:
            self.waits.close()
        sock = self.stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                sock.shutdown(socket.SHUT_RDWR)


class Http11Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over anyio streams (asyncio or trio), TLS for https."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, max_idle_per_origin: int = 1024) -> None:
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl_context = ssl_context
        self._max_idle = max_idle_per_origin

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        deadline: float | None = request.extensions.get("deadline")
        url = request.url
        context: ssl.SSLContext | None = None
        if url.scheme == "https":
            context = request.extensions.get("ssl_context") or self._ssl_context or _default_context()
        origin: Origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80), context)
        head = _request_head(request)
        body = await request.aread()
        reused = await self._checkout(origin)
        if reused is not None:
            try:
                return await self._exchange(reused, head, body, timeouts, deadline)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as error:
                if not getattr(error, "before_response", False):
                    raise  # a response had begun: never send the request twice
        connection = await self._connect(origin, timeouts.get("connect"))
        return await self._exchange(connection, head, body, timeouts, deadline)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        loop = running_asyncio_loop()
        for connections in idle.values():
            for connection in connections:
                if connection.loop is loop:
                    await connection.aclose()
                else:
                    connection.abandon()

    async def _checkout(self, origin: Origin) -> _Connection | None:
        """An idle connection to ``origin`` that can carry a request, made on the running loop: one made on another
        (a sync call's private loop, since stopped, when the transport is lent to several) cannot."""
        connections = self._idle.get(origin)
        now = time.monotonic()
        loop = running_asyncio_loop()
        while connections:
            connection = connections.pop()
            if connection.loop is not loop:
                connection.abandon()
            elif connection.is_reusable(now):
                return connection
            else:
                await connection.aclose()
        return None

    async def _release(self, connection: _Connection) -> None:
        if connection.waits is not None:
            connection.waits.close()  # no timer waits with an idle connection
        if connection.loop_stream is not None:
            connection.loop_stream.stop_timer()
        connections = self._idle.setdefault(connection.origin, [])
        if len(connections) >= self._max_idle:
            await connection.aclose()
            return
        connection.idle_since = time.monotonic()
        connections.append(connection)

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        _scheme, host, port, context = origin
        loop = running_asyncio_loop()
        try:
            with anyio.fail_after(timeout):
                if isinstance(loop, asyncio.BaseEventLoop) or (loop is not None and _is_ip_literal(host)):  # read through a protocol
                    stream: anyio.abc.ByteStream | _LoopStream = await _open_loop_stream(loop, host, port, context)
                elif context is not None:
                    stream = await anyio.connect_tcp(host, port, tls=True, ssl_context=context, tls_hostname=host)
                else:
                    stream = await anyio.connect_tcp(host, port)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} within {timeout} s") from None
        except (OSError, ssl.SSLError) as error:
            raise httpx.ConnectError(str(error) or type(error).__name__) from error
        return _Connection(stream, origin)

    async def _exchange(
        self, connection: _Connection, head: h11.Request, body: bytes, timeouts: dict[str, float | None], deadline: float | None
    ) -> httpx.Response:
        read_timeout = timeouts.get("read")
        refused: RefusedRequestError | None = None
        response = connection.response = _Response()
        try:
            writer = h11.Connection(h11.CLIENT)  # h11 serializes the request, with its checks
            outgoing = writer.send(head)
            if body:
                outgoing += writer.send(h11.Data(data=body))
            outgoing += writer.send(h11.EndOfMessage())
            await _write(connection, outgoing, timeouts.get("write"))
            while response.status is None:
                data = await _receive(connection, read_timeout, deadline, before_response=not response.started)
                if not data:
                    if not response.started:
                        raise _marked(httpx.RemoteProtocolError("the server closed the connection without a response"), True)
                    raise httpx.RemoteProtocolError("the server closed the connection in the middle of the response head")
                response.feed(data)
                if response.informational > MAX_INFORMATIONAL_RESPONSES:
                    raise ProtocolLimitError(
                        f"the server sent more than {MAX_INFORMATIONAL_RESPONSES} informational (1xx) responses before its answer"
                    )
        except h11.LocalProtocolError:
            await connection.aclose()
            refused = RefusedRequestError("h11 refused to send the request (a header name or value is not valid HTTP/1.1)")
        except BaseException:
            await connection.aclose()
            raise
        if refused is not None:  # raised outside the handler: h11's message (which quotes the value) is not chained
            raise refused
        stream = _ResponseBody(self, connection, read_timeout, deadline)
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1", "reason_phrase": response.reason, BODY: stream}
        if deadline is not None:
            extensions[DEADLINE_ENFORCED] = True
        status = response.status
        assert status is not None  # the loop above ends only with the final response's head
        return httpx.Response(status, headers=response.headers, stream=stream, extensions=extensions)


def _request_head(request: httpx.Request) -> h11.Request:
    """The h11 request head; a header h11 would refuse is named here, without its value."""
    headers = list(request.headers.raw)
    for name, value in headers:
        if any(bad in value for bad in _FORBIDDEN_IN_VALUES):
            shown = name.decode("ascii", "replace")
            raise RefusedRequestError(f"the request header {shown!r} has a value with CR, LF or NUL in it; it was not sent")
    try:
        return h11.Request(method=request.method, target=request.url.raw_path, headers=headers)
    except h11.LocalProtocolError:
        pass
    raise RefusedRequestError("h11 refused to send the request (a header name or value is not valid HTTP/1.1)")


class ProxyTransport(httpx.AsyncBaseTransport):
    """Requests through an HTTP(S) proxy, by httpx's own transport: one per TLS context the requests ask for."""

    def __init__(self, proxy: httpx.Proxy) -> None:
        self._proxy = proxy
        self._by_context: dict[ssl.SSLContext, httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        context = request.extensions.get("ssl_context") or _default_context()
        transport = self._by_context.get(context)
        if transport is None:
            transport = self._by_context[context] = httpx.AsyncHTTPTransport(proxy=self._proxy, verify=context, trust_env=False)
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        transports, self._by_context = list(self._by_context.values()), {}
        for transport in transports:
            await transport.aclose()


_DEFAULT_CONTEXT: list[ssl.SSLContext] = []


def _default_context() -> ssl.SSLContext:
    if not _DEFAULT_CONTEXT:
        _DEFAULT_CONTEXT.append(ssl.create_default_context())
    return _DEFAULT_CONTEXT[0]


class _ResponseBody(httpx.AsyncByteStream):
    """The body as an async iterator (a class, not a generator: nothing is left for a finalizer)."""

    __slots__ = ("_connection", "_deadline", "_read_timeout", "_transport")

    def __init__(self, transport: Http11Transport, connection: _Connection, read_timeout: float | None, deadline: float | None) -> None:
        self._transport = transport
        self._connection: _Connection | None = connection
        self._read_timeout = read_timeout
        self._deadline = deadline

    def __aiter__(self) -> _ResponseBody:
        return self

    async def __anext__(self) -> bytes:
        connection = self._connection
        if connection is None:
            raise StopAsyncIteration
        response = connection.response
        while True:
            body = response.body
            if body:  # one piece per HTTP chunk, as the server framed it
                return body.popleft()
            if response.complete:
                self._connection = None
                await self._finish(connection)
                raise StopAsyncIteration
            try:
                data = await _receive(connection, self._read_timeout, self._deadline, before_response=False)
                if data:
                    response.feed(data)
                else:
                    response.eof()
            except BaseException:
                self._connection = None
                await connection.aclose()
                raise

    async def aclose(self) -> None:
        """Closed before the end was read: reuse only if the end has already arrived and nothing of the body is left unread."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        response = connection.response
        if response.complete and not response.body:
            await self._finish(connection)
        else:  # unread body bytes, or the end not yet received: the connection cannot be reused
            await connection.aclose()

    async def _finish(self, connection: _Connection) -> None:
        response = connection.response
        if response.complete and response.keep_alive and not response.extra:
            await self._transport._release(connection)
        else:
            await connection.aclose()


async def _write(connection: _Connection, data: bytes, timeout: float | None) -> None:
    loop_stream = connection.loop_stream
    try:
        if loop_stream is not None and loop_stream.write(data):  # the kernel took it all: no wait, no timer
            return
        with anyio.fail_after(timeout):
            if loop_stream is not None:
                await loop_stream.drained()
            else:
                await connection.stream.send(data)
    except TimeoutError:
        raise httpx.WriteTimeout(f"could not send the request within {timeout} s") from None
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as error:
        raise _marked(httpx.WriteError(str(error) or type(error).__name__), True) from error


async def _receive(connection: _Connection, timeout: float | None, deadline: float | None, *, before_response: bool) -> bytes:
    """The next bytes from the server (b"" when it closed), waiting until the read timeout or the total deadline,
    whichever comes first, in one cancel scope."""
    loop_stream = connection.loop_stream
    if loop_stream is not None:  # asyncio's own loop: the stream keeps the bounds (anyio's clock is the loop's)
        try:
            return await loop_stream.receive_within(READ_SIZE, timeout, deadline)
        except WaitExpired as passed:
            if passed.deadline:
                raise DeadlineExceeded("the exchange's total deadline passed while waiting for data") from None
            raise httpx.ReadTimeout(f"no data from the server for {timeout} s") from None
        except anyio.EndOfStream:
            return b""
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as error:
            raise _marked(httpx.ReadError(str(error) or type(error).__name__), before_response) from error
    waits = connection.waits
    on_deadline = expired = False
    try:
        if waits is not None:  # asyncio: anyio's clock is the loop's, the deadline is in it
            try:
                data = await waits.wait(connection.stream.receive(READ_SIZE), timeout, deadline)
            except WaitExpired as passed:
                expired, on_deadline = True, passed.deadline
        else:
            until = math.inf if timeout is None else anyio.current_time() + timeout
            if deadline is not None and deadline <= until:
                until, on_deadline = deadline, True
            with anyio.CancelScope(deadline=until) as scope:
                data = await connection.stream.receive(READ_SIZE)
            expired = scope.cancelled_caught
    except anyio.EndOfStream:
        return b""
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as error:
        raise _marked(httpx.ReadError(str(error) or type(error).__name__), before_response) from error
    if expired:
        if on_deadline:
            raise DeadlineExceeded("the exchange's total deadline passed while waiting for data")
        raise httpx.ReadTimeout(f"no data from the server for {timeout} s")
    return data


def _marked(error: httpx.HTTPError, before_response: bool) -> httpx.HTTPError:
    error.before_response = before_response  # type: ignore[attr-defined]
    return error
