"""Sending a WireRequest with httpx and turning the answer into events.

Rules:
- The request goes out exactly as built: ``httpx.Request`` from the wire's
  method, URL, headers and body bytes, sent with ``client.send`` (so no
  client default headers are merged in; httpx adds only Host and
  Content-Length, as ``genesis wire`` shows).
- Timeouts: the provider's ``timeoutSeconds`` for connect and read, else
  10 s to connect and 300 s between reads (a CPU server can be slow).
- A streamed request whose server answers plain JSON is parsed as a
  non-streamed answer; the events are the same.
- Every failure leaves as a classified ``ProviderError``; cancellation
  propagates untouched, and the response is closed (shielded) either way.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import httpx

from backends.classify import HintContext, http_error, hint_for
from backends.events import Event
from backends.stream import StreamParser, response_events
from pipeline.errors import ProviderError
from pipeline.types import WireRequest

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 300.0
ERROR_BODY_LIMIT = 64 * 1024


def timeout_for(seconds: float | None) -> httpx.Timeout:
    if seconds is not None:
        return httpx.Timeout(seconds)
    return httpx.Timeout(DEFAULT_READ_TIMEOUT, connect=DEFAULT_CONNECT_TIMEOUT)


def make_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """One client per Genesis; by default over ``Http11Transport`` (O(1) connection reuse, no cap)."""
    from backends.transport import Http11Transport

    return httpx.AsyncClient(transport=transport or Http11Transport(), timeout=None, trust_env=False)


class Timing:
    """When the request went out, when the first body bytes came, when it ended (perf_counter seconds)."""

    __slots__ = ("start", "first_byte", "end", "status")

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first_byte: float | None = None
        self.end: float | None = None
        self.status: int | None = None

    def as_ms(self) -> dict[str, float | None]:
        def since(mark: float | None) -> float | None:
            return None if mark is None else round((mark - self.start) * 1000, 2)

        return {"first_byte_ms": since(self.first_byte), "total_ms": since(self.end)}


async def send_events(
    client: httpx.AsyncClient,
    wire: WireRequest,
    hints: HintContext,
    timing: Timing,
) -> AsyncIterator[list[Event]]:
    """Send ``wire`` and yield the answer's events, one list per network read; raise ProviderError for every failure."""
    timeout = timeout_for(wire.timeout_seconds)
    request = httpx.Request(
        wire.method, wire.url, headers=list(wire.headers), content=wire.body, extensions={"timeout": timeout.as_dict()}
    )
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise transport_error(exc, wire, hints, timeout) from None
    timing.status = response.status_code
    try:
        if response.status_code >= 400:
            body = await _read_capped(response, ERROR_BODY_LIMIT)
            raise http_error(response.status_code, body, url=wire.url, ref=wire.ref, context=hints)
        is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
        if not is_sse:
            body = await response.aread()
            timing.first_byte = time.perf_counter()
            yield response_events(body)
            return
        parser = StreamParser()
        async for piece in response.aiter_raw():
            if timing.first_byte is None:
                timing.first_byte = time.perf_counter()
            events = parser.feed(piece)
            if events:
                yield events
        yield parser.close()
    except httpx.HTTPError as exc:
        raise transport_error(exc, wire, hints, timeout) from None
    finally:
        timing.end = time.perf_counter()
        with anyio.CancelScope(shield=True):
            await response.aclose()


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    data = bytearray()
    async for piece in response.aiter_raw():
        data += piece
        if len(data) >= limit:
            break
    return bytes(data[:limit])


def os_reason(exc: BaseException) -> str:
    """The operating system's words for a network failure (``connection refused``), else the exception's.

    httpx and anyio wrap the OSError that says what happened; the innermost one with an errno wins.
    """
    found, seen = None, 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, OSError) and current.errno is not None:
            found = current
        current, seen = current.__cause__ or current.__context__, seen + 1
    if found is not None:
        import os

        return os.strerror(found.errno).lower() if found.errno else str(found)
    return str(exc) or type(exc).__name__


def transport_error(exc: httpx.HTTPError, wire: WireRequest, hints: HintContext, timeout: httpx.Timeout) -> ProviderError:
    """A failure below HTTP: no connection, no answer in time, or a connection that broke mid-answer."""
    detail = os_reason(exc) if isinstance(exc, httpx.NetworkError) else (str(exc) or type(exc).__name__)
    if isinstance(exc, httpx.ConnectTimeout):
        error_class, message = "timeout", f"no connection within {timeout.connect:g} s"
    elif isinstance(exc, httpx.TimeoutException):
        error_class, message = "timeout", f"no data from the server for {timeout.read:g} s ({type(exc).__name__})"
    elif isinstance(exc, httpx.ConnectError):
        error_class, message = "unreachable", f"cannot connect: {detail}"
    elif isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        error_class, message = "protocol", f"the connection broke mid-answer: {detail}"
    elif isinstance(exc, httpx.NetworkError):
        error_class, message = "unreachable", f"network error: {detail}"
    else:
        error_class, message = "protocol", f"{type(exc).__name__}: {detail}"
    return ProviderError(error_class, message, url=wire.url, ref=wire.ref, hint=hint_for(error_class, message, hints), secrets=hints.secrets)
