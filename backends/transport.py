"""An HTTP/1.1 transport for httpx with O(1) connection reuse.

httpcore's pool re-scans every connection for every queued request; with
hundreds of concurrent streams that scan cost more CPU than the streams
themselves (measured: about 80% of client CPU at 100 streams). This
transport keeps idle connections in a list per origin: taking one and giving
one back are O(1), and nothing is scanned per request.

Rules:
- One request per connection at a time. A connection goes back to the idle
  list only after a complete exchange (h11 ``start_next_cycle``): either the
  body was read to its end, or the caller stopped early and the rest of the
  body, up to and including its end (the chunked terminator), was already
  buffered. A connection with unread body bytes, or closed on any error or
  cancellation, is never reused.
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
- TLS: the request's ``ssl_context`` extension if present (per provider,
  see ``backends.http.tls_context``), else the transport's context, else
  the default one. Idle connections are kept per
  origin and per TLS context, so a connection made without verification is
  never lent to a request that wants it.
"""

from __future__ import annotations

import math
import select
import ssl
import time
from typing import Any

import anyio
import anyio.abc
import h11
import httpx

from pipeline.policy import MAX_INFORMATIONAL_RESPONSES

IDLE_EXPIRY_SECONDS = 5.0
READ_SIZE = 64 * 1024
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


class _Connection:
    __slots__ = ("idle_since", "origin", "protocol", "stream")

    def __init__(self, stream: anyio.abc.ByteStream, origin: Origin) -> None:
        self.stream = stream
        self.protocol = h11.Connection(h11.CLIENT)
        self.origin = origin
        self.idle_since = 0.0

    def is_reusable(self, now: float) -> bool:
        if now - self.idle_since > IDLE_EXPIRY_SECONDS:
            return False
        sock = self.stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if sock is None:
            return False
        try:
            return not socket_is_readable(sock)
        except (OSError, ValueError):
            return False

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            try:
                await self.stream.aclose()
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass


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
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()

    async def _checkout(self, origin: Origin) -> _Connection | None:
        connections = self._idle.get(origin)
        now = time.monotonic()
        while connections:
            connection = connections.pop()
            if connection.is_reusable(now):
                return connection
            await connection.aclose()
        return None

    async def _release(self, connection: _Connection) -> None:
        connections = self._idle.setdefault(connection.origin, [])
        if len(connections) >= self._max_idle:
            await connection.aclose()
            return
        connection.idle_since = time.monotonic()
        connections.append(connection)

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        _scheme, host, port, context = origin
        try:
            with anyio.fail_after(timeout):
                if context is not None:
                    stream: anyio.abc.ByteStream = await anyio.connect_tcp(host, port, tls=True, ssl_context=context, tls_hostname=host)
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
        protocol = connection.protocol
        read_timeout = timeouts.get("read")
        refused: RefusedRequestError | None = None
        try:
            outgoing = protocol.send(head)
            if body:
                outgoing += protocol.send(h11.Data(data=body))
            outgoing += protocol.send(h11.EndOfMessage())
            await _write(connection, outgoing, timeouts.get("write"))
            response = await _next_event(connection, read_timeout, deadline, before_response=True)
            informational = 0
            while isinstance(response, h11.InformationalResponse):
                informational += 1
                if informational > MAX_INFORMATIONAL_RESPONSES:
                    raise ProtocolLimitError(
                        f"the server sent more than {MAX_INFORMATIONAL_RESPONSES} informational (1xx) responses before its answer"
                    )
                response = await _next_event(connection, read_timeout, deadline, before_response=True)
        except h11.LocalProtocolError:
            await connection.aclose()
            refused = RefusedRequestError("h11 refused to send the request (a header name or value is not valid HTTP/1.1)")
        except BaseException:
            await connection.aclose()
            raise
        if refused is not None:  # raised outside the handler: h11's message (which quotes the value) is not chained
            raise refused
        if not isinstance(response, h11.Response):
            await connection.aclose()
            raise httpx.RemoteProtocolError(f"expected a response, got {type(response).__name__}")
        stream = _ResponseBody(self, connection, read_timeout, deadline)
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1", "reason_phrase": response.reason, BODY: stream}
        if deadline is not None:
            extensions[DEADLINE_ENFORCED] = True
        return httpx.Response(response.status_code, headers=response.headers.raw_items(), stream=stream, extensions=extensions)


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
        while True:
            try:
                event = await _next_event(connection, self._read_timeout, self._deadline, before_response=False)
            except BaseException:
                self._connection = None
                await connection.aclose()
                raise
            if isinstance(event, h11.Data):
                if event.data:
                    return bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._connection = None
                await self._finish(connection)
                raise StopAsyncIteration

    async def aclose(self) -> None:
        """Closed before the end was read: reuse only if the rest, up to the end, is already buffered and empty."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        protocol = connection.protocol
        try:
            while True:
                event = protocol.next_event()
                if isinstance(event, h11.Data) and not event.data:
                    continue
                break
        except h11.RemoteProtocolError:
            event = None
        if isinstance(event, h11.EndOfMessage):
            await self._finish(connection)
        else:  # unread body bytes, or the end not yet received: the connection cannot be reused
            await connection.aclose()

    async def _finish(self, connection: _Connection) -> None:
        protocol = connection.protocol
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            await self._transport._release(connection)
        else:
            await connection.aclose()


async def _write(connection: _Connection, data: bytes, timeout: float | None) -> None:
    try:
        with anyio.fail_after(timeout):
            await connection.stream.send(data)
    except TimeoutError:
        raise httpx.WriteTimeout(f"could not send the request within {timeout} s") from None
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as error:
        raise _marked(httpx.WriteError(str(error) or type(error).__name__), True) from error


async def _next_event(connection: _Connection, timeout: float | None, deadline: float | None, *, before_response: bool) -> Any:
    protocol = connection.protocol
    while True:
        try:
            event = protocol.next_event()
        except h11.RemoteProtocolError as error:
            raise httpx.RemoteProtocolError(str(error)) from error
        if event is not h11.NEED_DATA:
            if event is h11.PAUSED:
                raise httpx.RemoteProtocolError("the server sent more than one response")
            return event
        # One scope per wait, until the read timeout or the total deadline, whichever comes first.
        until = math.inf if timeout is None else anyio.current_time() + timeout
        if deadline is not None and deadline < until:
            until = deadline
        try:
            with anyio.CancelScope(deadline=until) as scope:
                data = await connection.stream.receive(READ_SIZE)
        except anyio.EndOfStream:
            data = b""
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as error:
            raise _marked(httpx.ReadError(str(error) or type(error).__name__), before_response) from error
        if scope.cancelled_caught:
            if until == deadline:
                raise DeadlineExceeded("the exchange's total deadline passed while waiting for data")
            raise httpx.ReadTimeout(f"no data from the server for {timeout} s")
        if not data and before_response and protocol.their_state is h11.SEND_RESPONSE:
            raise _marked(httpx.RemoteProtocolError("the server closed the connection without a response"), True)
        protocol.receive_data(data)


def _marked(error: httpx.HTTPError, before_response: bool) -> httpx.HTTPError:
    error.before_response = before_response  # type: ignore[attr-defined]
    return error
