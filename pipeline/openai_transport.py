"""The OpenAI SDK drop-in: an HTTP transport that sends the SDK's chat completions through Genesis.

``openai.OpenAI(http_client=httpx2.Client(transport=OpenAITransport(genesis)))`` (or ``httpx.Client``:
the SDK takes both; ``AsyncOpenAITransport`` for ``AsyncOpenAI``; the httpx2 classes are in
``pipeline.openai_httpx2``). The SDK stays unmodified: its types, its streaming, its errors.

Rules:
- Route: ``POST .../chat/completions`` runs through Genesis; any other request is answered
  404 with a JSON error of code ``unsupported_route`` (nothing is sent): the SDK's other routes
  have no model to resolve, and Genesis decides where every byte goes.
- The body's ``model`` is a Genesis ref; the rest of the body is the request. It goes through every
  request-side stage (custom ones too), then the pipeline's own ``send`` stage, in a run of
  ``backends.session``: retries, cooldowns, failover, the audit hook.
- The SDK's headers are not forwarded: ``attach_headers`` decides what each server is sent, so the
  SDK's ``api_key`` (its ``Authorization``) never reaches a server (pass any string as the SDK's key).
- The server's answer goes back unchanged: its status, content type and body bytes, streamed as
  they come. Bytes are held until the run has an answer (the first text, reasoning or tool-call
  event; or the whole answer, when it has none), because a try that fails before then is retried or
  failed over, and what it sent must not reach the SDK. The session has the same rule, so nothing
  held is ever dropped once the SDK saw any of it. Answer-side stages run (for the trace) but do not
  rewrite the bytes the SDK reads.
- A Genesis failure before any byte went back (an unknown ref, a bad body, every candidate
  failed) is an HTTP error answer the SDK raises as its own ``APIStatusError`` subclass: the status
  by ``ERROR_STATUS``, the body ``{"error": {"message", "type": "genesis_error", "code": <class>,
  "hint"}}``, and ``x-should-retry: false`` (Genesis has retried already; an SDK retry would run the
  failover again). The typed error itself is ``exchange.error``. A failure after the answer began
  is raised from the response's byte stream as the typed ``GenesisError``.
- Of the server's headers, the content type goes back (the SDK parses by it); the send stage's record
  carries no other. A sync transport runs its requests on one private event loop of its own
  (``pipeline.blocking``), its connections reused, until ``close()``. An answer still being read when
  the transport closes is cut short: its reader gets a ``ProviderError`` of class ``aborted``
  (``exchange.error`` too), never a clean end of a truncated stream.
- A transport closes only what it made: the sync transport its private loop and that loop's HTTP
  connections; neither closes the ``Genesis`` it was given, its HTTP client, nor a transport the
  caller injected into it (``Genesis(transport=...)``). That Genesis stays the caller's to close
  (``await genesis.aclose()``, or ``async with``); the async transport's ``aclose()`` closes nothing.
- Each request's record (``Exchange``: the wire request sent, its trace, attempts, answer trace,
  completion or error) is ``transport.last_exchange`` and is passed to ``on_exchange``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import httpx
import msgspec

from pipeline.errors import ErrorClass, GenesisError, ProviderError, UserErrorKind

if TYPE_CHECKING:
    from returns.result import Result

    from backends.audit import AuditRecord
    from backends.session import AnswerChain, AnswerSide
    from pipeline.answer import ParseStream, Send, SendRecord
    from pipeline.api import Genesis
    from pipeline.blocking import PrivateLoop
    from pipeline.catalog import Catalog
    from pipeline.events import Attempt, Completion, StageNote
    from pipeline.trace import Change
    from pipeline.types import Context, WireRequest

CHAT_COMPLETIONS = "/chat/completions"

# The HTTP status the SDK sees for a Genesis failure, by its class (``ProviderError.error_class``, or a
# user error's ``kind``): the SDK picks its error type by status (400 BadRequestError, 401
# AuthenticationError, 404 NotFoundError, 429 RateLimitError, 5xx InternalServerError).
ERROR_STATUS: Mapping[str, int] = {
    ErrorClass.UNREACHABLE: 502,
    ErrorClass.TIMEOUT: 504,
    ErrorClass.AUTH: 401,
    ErrorClass.RATE_LIMIT: 429,
    ErrorClass.OVERLOADED: 503,
    ErrorClass.MODEL_NOT_FOUND: 404,
    ErrorClass.FORMAT: 400,
    ErrorClass.CONTEXT_OVERFLOW: 400,
    ErrorClass.SERVER_ERROR: 502,
    ErrorClass.PROTOCOL: 502,
    ErrorClass.ABORTED: 499,
    ErrorClass.COOLDOWN: 503,
    UserErrorKind.UNKNOWN_MODEL: 404,
    UserErrorKind.REQUEST: 400,
    UserErrorKind.UNSUPPORTED: 400,
    UserErrorKind.CONFIG: 500,
    UserErrorKind.STAGE: 500,
    UserErrorKind.ERROR: 500,
}
UNSUPPORTED_ROUTE = "unsupported_route"


@dataclass
class Exchange:
    """What one request of the SDK did: the ref it named, the wire request that answered (or the last
    one sent), its request-side ``trace``, every attempt, the answer trace, and the completion or the error."""

    ref: str | None = None
    wire: WireRequest | None = None
    attempts: tuple[Attempt, ...] = ()
    answer_trace: tuple[StageNote, ...] = ()
    completion: Completion | None = None
    error: GenesisError | None = None
    status: int | None = None  # what the SDK was answered

    @property
    def trace(self) -> tuple[Change, ...]:
        return () if self.wire is None else self.wire.trace


@dataclass(frozen=True)
class Head:
    """The answer's status and headers, the first item of an exchange (its body pieces follow)."""

    status: int
    headers: tuple[tuple[str, str], ...] = field(default=())


class _Tap:
    """The pipeline's ``send`` stage, with each try's bytes kept until the run releases them.

    A new try drops what the last one left (a failed try's bytes never reach the SDK)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.pending: list[bytes] = []
        self.record: SendRecord | None = None
        self.wire: WireRequest | None = None

    async def send(self, client: Any, wire: WireRequest, hints: Any, record: SendRecord) -> AsyncGenerator[bytes, None]:
        self.pending, self.record, self.wire = [], record, wire
        stream = cast(AsyncGenerator[bytes, None], self._send(client, wire, hints, record))
        async with aclosing(stream):
            async for piece in stream:
                self.pending.append(piece)
                yield piece

    def take(self) -> list[bytes]:
        taken, self.pending = self.pending, []
        return taken


class _TappedStages:
    """The owner's stages (``backends.session.AnswerSide``), its send through a tap."""

    def __init__(self, stages: AnswerSide, tap: _Tap) -> None:
        self._stages, self._tap = stages, tap

    @property
    def send(self) -> Send:
        return self._tap.send

    @property
    def parse_stream(self) -> ParseStream:
        return self._stages.parse_stream

    def answer_chain(self, ctx: Context) -> AnswerChain | None:
        return self._stages.answer_chain(ctx)


class _TappedHost:
    """A ``Genesis`` as a run's host (``backends.session.RunHost``): the same catalog, client, cooldowns, stages and
    hooks, the send stage tapped. Per exchange, so concurrent exchanges never share a tap."""

    def __init__(self, genesis: Genesis, tap: _Tap) -> None:
        self._genesis = genesis
        self.cooldowns = genesis.cooldowns
        self.sleep = genesis.sleep
        self.random = genesis.random
        self._stages = _TappedStages(genesis.pipeline, tap)

    @property
    def catalog(self) -> Catalog:
        return self._genesis.catalog

    @property
    def pipeline(self) -> AnswerSide:
        return self._stages

    def client(self) -> Any:
        return self._genesis.client()

    def build_result(
        self, model: str | None, request: Mapping[str, Any], *, headers: Sequence[tuple[str, str]] = ()
    ) -> Result[WireRequest, GenesisError]:
        return self._genesis.build_result(model, request, headers=headers)


def error_answer(error: GenesisError) -> tuple[Head, bytes]:
    """The HTTP answer the SDK gets for a Genesis failure before any byte of an answer.

    >>> from pipeline.errors import UnknownModelError
    >>> head, body = error_answer(UnknownModelError('no model "x/y"', hint="genesis models list"))
    >>> head.status, dict(head.headers)["x-should-retry"]
    (404, 'false')
    >>> body
    b'{"error":{"message":"no model \\\\"x/y\\\\"","type":"genesis_error","code":"unknown_model","param":null,"hint":"genesis models list"}}'
    """
    code = str(error.kind)
    return _json_error(ERROR_STATUS.get(code, 500), str(error), code, error.hint)


def _json_error(status: int, message: str, code: str, hint: str | None) -> tuple[Head, bytes]:
    body = msgspec.json.encode({"error": {"message": message, "type": "genesis_error", "code": code, "param": None, "hint": hint}})
    return Head(status, (("content-type", "application/json"), ("x-should-retry", "false"))), body


async def exchange(
    genesis: Genesis,
    method: str,
    path: str,
    body: bytes,
    record: Exchange,
    *,
    audit: Callable[[AuditRecord], None] | None = None,
    fallbacks: bool = True,
) -> AsyncGenerator[Head | bytes, None]:
    """One request of the SDK: a ``Head``, then the answer's body pieces (the module's rules)."""
    from backends.session import RunState, run_events
    from pipeline.api import _completion

    if method != "POST" or not path.rstrip("/").endswith(CHAT_COMPLETIONS):
        head, data = _json_error(
            404,
            f"{method} {path}: Genesis's OpenAI transport serves POST {CHAT_COMPLETIONS} only; nothing was sent",
            UNSUPPORTED_ROUTE,
            "call other routes with a client of their own (genesis models list shows the configured models)",
        )
        record.status = head.status
        yield head
        yield data
        return
    tap = _Tap(genesis.pipeline.send)
    state = RunState()
    answered = False
    try:
        ref, request = _chat_request(body)
        record.ref = ref
        await genesis.discover()
        events = genesis.observe_run(
            ref, request, state, run_events(_TappedHost(genesis, tap), ref, request, state, audit=audit, use_fallbacks=fallbacks)
        )
        async with aclosing(events):
            async for _ in events:
                if state.answered:
                    if not answered:
                        answered = True
                        yield _head(tap, record)
                    for piece in tap.take():
                        yield piece
    except GenesisError as error:
        record.error, record.wire, record.attempts = error, tap.wire, tuple(state.attempts)
        if answered:
            raise
        head, data = error_answer(error)
        record.status = head.status
        yield head
        yield data
        return
    if not answered:
        yield _head(tap, record)
    for piece in tap.take():
        yield piece
    record.wire, record.attempts, record.answer_trace = tap.wire, tuple(state.attempts), tuple(state.answer_trace)
    record.completion = _completion(state)


def _head(tap: _Tap, record: Exchange) -> Head:
    sent = tap.record
    status = 200 if sent is None or sent.status is None else sent.status
    content_type = "application/json" if sent is None or not sent.content_type else sent.content_type
    record.status, record.wire = status, tap.wire
    return Head(status, (("content-type", content_type),))


_BODY = msgspec.json.Decoder(dict[str, Any])


def _chat_request(body: bytes) -> tuple[str | None, dict[str, Any]]:
    """The ref (the body's ``model``) and the rest of the body: the request Genesis shapes.

    >>> _chat_request(b'{"model": "vllm/m", "messages": []}')
    ('vllm/m', {'messages': []})
    >>> _chat_request(b'[1]')
    Traceback (most recent call last):
    ...
    pipeline.errors.RequestError: the SDK's request body is not a JSON object: Expected `object`, got `array`
    >>> _chat_request(b'{"model": 7}')
    Traceback (most recent call last):
    ...
    pipeline.errors.RequestError: model must be a string (a Genesis ref such as vllm/MODEL), got int
    """
    from pipeline.errors import RequestError

    try:
        request = _BODY.decode(body)
    except msgspec.ValidationError as error:
        raise RequestError(f"the SDK's request body is not a JSON object: {error}") from None
    except msgspec.DecodeError as error:
        raise RequestError(f"the SDK's request body is not JSON: {error}") from None
    model = request.pop("model", None)
    if model is not None and not isinstance(model, str):
        raise RequestError(f"model must be a string (a Genesis ref such as vllm/MODEL), got {type(model).__name__}")
    return model, request


class _Options:
    """What every transport takes: the Genesis, the audit hook, the exchange hook, failover on or off,
    and (sync transports) the private loop's backend."""

    def __init__(
        self,
        genesis: Genesis,
        *,
        audit: Callable[[AuditRecord], None] | None = None,
        on_exchange: Callable[[Exchange], None] | None = None,
        fallbacks: bool = True,
        backend: str = "asyncio",
    ) -> None:
        self.genesis = genesis
        self.audit = audit
        self.on_exchange = on_exchange
        self.fallbacks = fallbacks
        self.backend = backend
        self.last_exchange: Exchange | None = None
        self._loop_lock = threading.Lock()
        self._loop: tuple[PrivateLoop, Genesis] | None = None
        self._stop_loop: weakref.finalize[Any, Any] | None = None

    def private_loop(self) -> tuple[PrivateLoop, Genesis]:
        """The sync transports' event loop, in a thread of its own, and the Genesis that runs on it (its HTTP client,
        so its connections, are that loop's): started by the first request, shared by all, stopped by ``close()``,
        or when the transport is garbage collected."""
        from pipeline.blocking import PrivateLoop

        with self._loop_lock:
            if self._loop is None:
                # _loop_local lends the caller's injected transport: the loop's client never closes it
                loop, local = PrivateLoop(self.backend, self.genesis._loop_options(self.backend)), self.genesis._loop_local()
                self._loop = (loop, local)
                self._stop_loop = weakref.finalize(self, _stop, loop, self.genesis, local)
            return self._loop

    def close_private_loop(self) -> None:
        with self._loop_lock:
            stop, self._loop, self._stop_loop = self._stop_loop, None, None
        if stop is not None:
            stop()

    def begin(self) -> Exchange:
        record = Exchange()
        self.last_exchange = record
        return record

    def ended(self, record: Exchange) -> None:
        if self.on_exchange is not None:
            self.on_exchange(record)


def _stop(loop: PrivateLoop, genesis: Genesis, local: Genesis) -> None:
    """Close ``local``'s HTTP client on its loop, then stop the loop and join its thread; answers still
    being read end in ``aborted`` (``pipeline.blocking`` rule 6)."""
    loop.stop(last=lambda: genesis._settle(local))


def _closed_mid_answer(record: Exchange) -> ProviderError:
    """The error the reader of an answer gets when the sync transport is closed before its end."""
    error = ProviderError(
        ErrorClass.ABORTED,
        "the OpenAI transport was closed while this answer was still being read",
        url=record.wire.url if record.wire is not None else "the sync OpenAI transport",
        ref=record.ref or "",
        hint="close the SDK client (and its transport) only after its streams are read or closed",
    )
    record.error = error
    return error


async def open_async(options: _Options, method: str, path: str, body: bytes) -> tuple[Head, AsyncBody]:
    """The head of one exchange and its body (on the caller's loop)."""
    record = options.begin()
    items = exchange(options.genesis, method, path, body, record, audit=options.audit, fallbacks=options.fallbacks)
    try:
        head = await anext(items)
    except BaseException:
        await items.aclose()
        options.ended(record)
        raise
    return cast(Head, head), AsyncBody(items, lambda: options.ended(record))


def open_sync(options: _Options, method: str, path: str, body: bytes) -> tuple[Head, SyncBody]:
    """The head of one exchange and its body, run on the transport's private loop (``pipeline.blocking``)."""
    from pipeline.blocking import BlockingIterator, refuse_inside_loop

    record = options.begin()
    refusal = ("the sync OpenAI transport", "openai.AsyncOpenAI with AsyncOpenAITransport")
    try:
        refuse_inside_loop(*refusal)
    except GenesisError as error:  # a thread that runs an event loop: answered as a run's failure would be
        record.error = error
        head, data = error_answer(error)
        record.status = head.status
        return head, SyncBody(_once(data), lambda: options.ended(record))
    loop, local = options.private_loop()
    audit, fallbacks = options.audit, options.fallbacks  # the loop's tasks must not keep the transport alive: its finalizer stops the loop
    items: BlockingIterator[Head | bytes] = BlockingIterator(
        lambda: exchange(local, method, path, body, record, audit=audit, fallbacks=fallbacks),
        backend=options.backend,
        refusal=refusal,
        loop=loop,
        aborted=lambda: _closed_mid_answer(record),
    )
    try:
        first = next(items)
    except BaseException:
        items.close()
        options.ended(record)
        raise
    return cast(Head, first), SyncBody(items, lambda: options.ended(record))


def _once(data: bytes) -> Iterator[bytes]:
    yield data


class AsyncBody:
    """An exchange's body pieces; closing it (or reading it to its end) ends the exchange, once."""

    def __init__(self, items: AsyncGenerator[Head | bytes, None], ended: Callable[[], None]) -> None:
        self._items, self._ended = items, ended
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for piece in self._items:
                yield cast(bytes, piece)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                await self._items.aclose()
            finally:
                self._ended()


class SyncBody:
    """``AsyncBody`` for the sync transports: the pieces come from the private loop."""

    def __init__(self, items: Any, ended: Callable[[], None]) -> None:
        self._items, self._ended = items, ended
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for piece in self._items:
                yield cast(bytes, piece)
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._items.close()
            finally:
                self._ended()


class AsyncOpenAITransport(_Options, httpx.AsyncBaseTransport):
    """For ``openai.AsyncOpenAI(http_client=httpx.AsyncClient(transport=AsyncOpenAITransport(genesis)))``.

    Runs on the caller's loop with the Genesis's own HTTP client; ``aclose()`` (the SDK client's) closes
    nothing: the Genesis, and its client, are the caller's to close."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        head, body = await open_async(self, request.method, request.url.path, await request.aread())
        return httpx.Response(head.status, headers=list(head.headers), stream=_HttpxAsyncStream(body), request=request)

    async def aclose(self) -> None:
        """Nothing to close: the transport made nothing of its own (the module's rules)."""


class OpenAITransport(_Options, httpx.BaseTransport):
    """For ``openai.OpenAI(http_client=httpx.Client(transport=OpenAITransport(genesis)))``.

    Requests run on a private event loop in a thread of the transport's own (``Genesis.stream_sync``'s
    rules), started by the first and stopped by ``close()`` (the SDK client's); its HTTP connections are
    reused from one request to the next. Refused in a thread that runs an event loop."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        head, body = open_sync(self, request.method, request.url.path, request.read())
        return httpx.Response(head.status, headers=list(head.headers), stream=_HttpxSyncStream(body), request=request)

    def close(self) -> None:
        self.close_private_loop()


class _HttpxAsyncStream(httpx.AsyncByteStream):
    def __init__(self, body: AsyncBody) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for piece in self._body:
            yield piece

    async def aclose(self) -> None:
        await self._body.aclose()


class _HttpxSyncStream(httpx.SyncByteStream):
    def __init__(self, body: SyncBody) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        yield from self._body

    def close(self) -> None:
        self._body.close()
