"""From response bytes to typed events, and from events to one Completion. No I/O.

``StreamParser`` feeds bytes through the SSE decoder and decodes each
``data:`` payload into events; a run of simple frames is decoded with a
single msgspec call over the whole run (see ``backends.sse``). Rules:
- ``data: [DONE]`` ends the stream; anything after it is ignored.
- A payload that is not a chunk (bad JSON, wrong shape) or an event over the
  size limit yields a ``StreamFault`` and parsing stops there; the events
  before it are kept.
- ``Aggregator`` assembles tool calls by ``index`` (the first piece carries
  id and name, later pieces append arguments) and maps the finish reason:
  ``stop`` -> stop, ``length`` -> length, ``tool_calls``/``function_call``
  -> tool_use. Anything else is not a completion (see ``backends.classify``).
"""

from __future__ import annotations

import msgspec

from backends.chunks import CHUNKS_DECODER, Chunk, ErrorObject, chunk_events, decode_chunk, excerpt, server_error
from backends.events import Completion, Event, Finish, FinishReason, ReasoningDelta, StreamFault, TextDelta, ToolCall, ToolCallDelta, Usage
from backends.sse import DEFAULT_MAX_EVENT_BYTES, JsonRun, SSEDecoder, SSEError, SSEEvent

FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "tool_calls": "tool_use", "function_call": "tool_use"}

_ERROR_DECODER = msgspec.json.Decoder(ErrorObject | str)


class StreamParser:
    """Incremental: ``feed(bytes) -> list[Event]`` as data arrives, then ``close()``.

    >>> p = StreamParser()
    >>> p.feed(b'data: {"choices": [{"delta": {"content": "Hi"}}]}\\n\\ndata: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\\n\\n')
    [TextDelta(text='Hi', choice=0), Finish(reason='stop', choice=0)]
    >>> p.feed(b"data: [DONE]\\n\\n"), p.done
    ([], True)
    """

    __slots__ = ("_sse", "done", "failed")

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._sse = SSEDecoder(max_event_bytes=max_event_bytes, pack_json_runs=True)
        self.done = False
        self.failed = False

    def feed(self, data: bytes) -> list[Event]:
        out: list[Event] = []
        if self.done or self.failed:
            return out
        try:
            items = self._sse.feed(data)
        except SSEError as exc:
            self.failed = True
            return [StreamFault(str(exc))]
        for item in items:
            self._handle(item, out)
        return out

    def close(self) -> list[Event]:
        out: list[Event] = []
        if self.done or self.failed:
            return out
        for item in self._sse.close():
            self._handle(item, out)
        return out

    def _handle(self, item: SSEEvent | JsonRun, out: list[Event]) -> None:
        if self.done or self.failed:
            return
        if isinstance(item, JsonRun):
            try:
                chunks = CHUNKS_DECODER.decode(item.array)
            except (msgspec.DecodeError, msgspec.ValidationError):
                for payload in item.payloads():  # find the bad one; keep the good ones before it
                    self._handle_payload("message", payload, out)
                return
            for chunk in chunks:
                chunk_events(chunk, out)
            return
        self._handle_payload(item.event, item.data, out)

    def _handle_payload(self, event: str, payload: bytes, out: list[Event]) -> None:
        if self.done or self.failed:
            return
        if payload == b"[DONE]":
            self.done = True
            return
        if event == "error":
            try:
                out.append(server_error(_ERROR_DECODER.decode(payload)))
            except (msgspec.DecodeError, msgspec.ValidationError):
                out.append(server_error(payload.decode("utf-8", "replace")))
            return
        try:
            chunk = decode_chunk(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.failed = True
            out.append(StreamFault(f"malformed chunk ({exc}): {excerpt(payload)}"))
            return
        chunk_events(chunk, out)


def response_events(body: bytes) -> list[Event]:
    """The events of a non-streamed ``chat.completion`` body (same events, same Completion)."""
    try:
        chunk: Chunk = decode_chunk(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return [StreamFault(f"malformed response ({exc}): {excerpt(body)}")]
    out: list[Event] = []
    chunk_events(chunk, out)
    return out


class _ToolCallParts:
    __slots__ = ("id", "name", "arguments")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class Aggregator:
    """Adds events up into a Completion.

    >>> a = Aggregator()
    >>> for e in [TextDelta("4"), ToolCallDelta(0, "c1", "f", '{"x"'), ToolCallDelta(0, arguments=": 1}"), Finish("tool_calls")]:
    ...     a.add(e)
    >>> c = a.completion()
    >>> c.text, c.finish_reason, c.tool_calls[0].parsed_arguments
    ('4', 'tool_use', {'x': 1})
    """

    __slots__ = ("_text", "_reasoning", "_calls", "usage", "finish")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._calls: dict[int, _ToolCallParts] = {}
        self.usage: Usage | None = None
        self.finish: str | None = None

    def add(self, event: Event) -> None:
        kind = type(event)
        if kind is TextDelta:
            self._text.append(event.text)  # type: ignore[union-attr]
        elif kind is ReasoningDelta:
            self._reasoning.append(event.text)  # type: ignore[union-attr]
        elif kind is ToolCallDelta:
            assert isinstance(event, ToolCallDelta)
            parts = self._calls.get(event.index)
            if parts is None:
                parts = self._calls[event.index] = _ToolCallParts()
            if event.id and not parts.id:
                parts.id = event.id
            if event.name and not parts.name:
                parts.name = event.name
            if event.arguments:
                parts.arguments.append(event.arguments)
        elif kind is Usage:
            assert isinstance(event, Usage)
            self.usage = event
        elif kind is Finish:
            assert isinstance(event, Finish)
            self.finish = event.reason

    @property
    def text(self) -> str:
        return "".join(self._text)

    def completion(self, *, provider: str = "", model: str = "") -> Completion:
        """The completion so far; its finish reason must be one of ``FINISH_REASONS``."""
        raw = self.finish or ""
        reason = FINISH_REASONS.get(raw)
        if reason is None:
            raise ValueError(f"finish_reason {raw!r} is not a completion")
        return Completion(
            text=self.text,
            finish_reason=reason,
            raw_finish_reason=raw,
            reasoning="".join(self._reasoning),
            tool_calls=tuple(_tool_call(index, parts) for index, parts in sorted(self._calls.items())),
            usage=self.usage,
            provider=provider,
            model=model,
        )


def _tool_call(index: int, parts: _ToolCallParts) -> ToolCall:
    arguments = "".join(parts.arguments)
    try:
        parsed = msgspec.json.decode(arguments) if arguments.strip() else {}
        return ToolCall(parts.id or f"call_{index}", parts.name, arguments, parsed)
    except msgspec.DecodeError as exc:
        return ToolCall(parts.id or f"call_{index}", parts.name, arguments, None, f"arguments are not valid JSON: {exc}")
