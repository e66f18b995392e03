"""From response bytes to typed events, and from events to one Completion. No I/O.

``StreamParser`` feeds bytes through the SSE decoder and decodes each
``data:`` payload into events; a run of plain frames comes as one list of
payloads (see ``backends.sse``), each decoded exactly as a lone frame would
be. Rules:
- ``data: [DONE]`` ends the stream: ``done`` is set as soon as that frame is
  complete, and anything after it is ignored.
- A payload that is not a chunk (bad JSON, wrong shape, a negative token
  count, invalid UTF-8 in a string, nesting too deep) or a line or event
  over the size limit yields one ``StreamFault`` naming the problem with an
  excerpt, and parsing stops there; the events before it are kept. Nothing
  else ever leaves the parser.
- An ``error`` event (llama.cpp's ``error:`` frame) is a ``ServerError``: its
  JSON error object, or its text when it is not JSON.
- ``Aggregator`` keeps each choice apart (``n > 1``): its text, reasoning,
  tool calls and finish. Tool calls are assembled by ``index`` within a
  choice: a new ``id`` on an index in use starts a new call (Ollama numbers
  parallel calls all 0), the same id repeated stays one call (llama-cpp-python
  repeats it on every piece), and a piece without id extends the latest call
  of its index. Finish reasons map ``stop`` -> stop, ``length`` -> length,
  ``tool_calls``/``function_call`` -> tool_use; anything else is not a
  completion (see ``backends.classify``).
"""

from __future__ import annotations

import msgspec

from backends.chunks import CHUNK_DECODER, DECODE_ERRORS, ErrorObject, chunk_events, decode_chunk, decode_problem, excerpt, server_error
from backends.sse import DEFAULT_MAX_EVENT_BYTES, DONE, DataRun, Item, SSEDecoder, SSEError
from pipeline.events import (
    Completion,
    Event,
    Finish,
    FinishReason,
    Output,
    ReasoningDelta,
    StreamFault,
    TextDelta,
    Timings,
    ToolCall,
    ToolCallDelta,
    Usage,
)

FINISH_REASONS: dict[str, FinishReason] = {"stop": "stop", "length": "length", "tool_calls": "tool_use", "function_call": "tool_use"}

_ERROR_DECODER = msgspec.json.Decoder(ErrorObject | str)


class StreamParser:
    """Incremental: ``feed(bytes) -> list[Event]`` as data arrives, then ``close()``.

    >>> p = StreamParser()
    >>> p.feed(b'data: {"choices": [{"delta": {"content": "Hi"}}]}\\n\\ndata: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\\n\\n')
    [TextDelta(text='Hi', choice=0), Finish(reason='stop', choice=0)]
    >>> p.feed(b"data: [DONE]\\n\\n"), p.done
    ([], True)
    >>> StreamParser().feed(b'data: {"choices": [{"delta": {"content": "\\xff"}}]}\\n\\n')
    [StreamFault(message='malformed chunk (invalid UTF-8 inside a JSON string): {"choices": [{"delta": {"content": "\\ufffd"}}]}')]
    """

    __slots__ = ("_ignored", "_sse", "done", "failed")

    def __init__(self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._sse = SSEDecoder(max_event_bytes=max_event_bytes, pack_json_runs=True)
        self.done = False
        self.failed = False
        self._ignored = 0  # bytes fed after [DONE] or a fault (counted off the hot path)

    def feed(self, data: bytes) -> list[Event]:
        if self.done or self.failed:
            self._ignored += len(data)
            return []
        try:
            items = self._sse.feed(data)
        except SSEError as exc:
            return self._fault_after(exc)
        return self._events(items)

    def close(self) -> list[Event]:
        if self.done or self.failed:
            return []
        try:
            items = self._sse.close()
        except SSEError as exc:
            return self._fault_after(exc)
        return self._events(items)

    def notes(self) -> tuple[str, ...]:
        """How the stream ended and what was left unparsed, and why.

        >>> p = StreamParser(); _ = p.feed(b"data: [DONE]\\n\\n"); _ = p.feed(b"tail"); p.notes()
        ('ended at data: [DONE]', '4 bytes after the end were ignored')
        """
        if self.done:
            ending = "ended at data: [DONE]"
        elif self.failed:
            ending = "stopped at a malformed frame (a fault event says which); the rest was not parsed"
        else:
            ending = "the body ended without data: [DONE]"
        ignored = (f"{self._ignored} bytes after the end were ignored",) if self._ignored else ()
        return (ending, *ignored)

    def _fault_after(self, exc: SSEError) -> list[Event]:
        out = self._events(exc.events)
        if not (self.done or self.failed):
            self.failed = True
            out.append(StreamFault(str(exc)))
        return out

    def _events(self, items: list[Item]) -> list[Event]:
        out: list[Event] = []
        for item in items:
            # Every payload is decoded by _payloads at the same stack depth, run or lone frame:
            # how deep JSON may nest before it is a fault must not depend on how bytes arrived.
            if type(item) is DataRun:
                self._payloads(item.payloads, out)
            elif item.data == DONE:  # type: ignore[union-attr]
                self.done = True
            elif item.event == "error":  # type: ignore[union-attr]
                out.append(self._error_frame(item.data))  # type: ignore[union-attr]
            else:
                self._payloads([item.data], out)  # type: ignore[union-attr]
            if self.failed or self.done:
                break
        return out

    def _payloads(self, payloads: list[bytes], out: list[Event]) -> None:
        try:
            chunks = list(map(CHUNK_DECODER.decode, payloads))  # the loop in C; payload by payload only on a failure
        except DECODE_ERRORS:
            chunks = []
            for payload in payloads:
                try:
                    chunks.append(CHUNK_DECODER.decode(payload))
                except DECODE_ERRORS as exc:
                    for chunk in chunks:
                        chunk_events(chunk, out)
                    self._malformed(exc, payload, out)
                    return
        for chunk in chunks:
            chunk_events(chunk, out)

    def _error_frame(self, payload: bytes) -> Event:
        try:
            return server_error(_ERROR_DECODER.decode(payload))
        except (RecursionError, UnicodeDecodeError) as exc:  # hostile JSON, not an error message
            self.failed = True
            return StreamFault(f"malformed error frame ({decode_problem(exc)}): {excerpt(payload)}")
        except DECODE_ERRORS:  # not JSON: the text is the message
            return server_error(payload.decode("utf-8", "replace"))

    def _malformed(self, exc: BaseException, payload: bytes, out: list[Event]) -> None:
        self.failed = True
        out.append(StreamFault(f"malformed chunk ({decode_problem(exc)}): {excerpt(payload)}"))


def response_events(body: bytes) -> list[Event]:
    """The events of a non-streamed ``chat.completion`` body (same events, same Completion).

    >>> response_events(b'{"choices": [{"index": 1, "message": {"content": "b"}, "finish_reason": "stop"}]}')
    [TextDelta(text='b', choice=1), Finish(reason='stop', choice=1)]
    """
    try:
        chunk = decode_chunk(body)
    except DECODE_ERRORS as exc:
        return [StreamFault(f"malformed response ({decode_problem(exc)}): {excerpt(body)}")]
    out: list[Event] = []
    chunk_events(chunk, out)
    return out


class WholeResponse:
    """The parser for an answer that is not an event stream: a whole ``chat.completion`` JSON body.

    The body's pieces are kept until it ends, then decoded at once (``response_events``), so a
    non-streamed answer gives the same events, whatever pieces it came in.
    """

    __slots__ = ("_pieces", "_size")

    done = False  # a whole body has no end marker: it ends when the body does

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> list[Event]:
        self._pieces.append(data)
        self._size += len(data)
        return []

    def close(self) -> list[Event]:
        body, self._pieces = b"".join(self._pieces), []
        return response_events(body)

    def notes(self) -> tuple[str, ...]:
        return (f"a whole JSON answer, not a stream ({self._size} bytes)",)


def parse_stream(content_type: str) -> StreamParser | WholeResponse:
    """The ``parse_stream`` stage: a fresh parser for one answer, by its Content-Type.

    ``text/event-stream`` is a stream of chunks; anything else is one JSON answer (a server that
    ignores ``"stream": true`` answers that way, and its events are the same).

    >>> type(parse_stream("text/event-stream; charset=utf-8")).__name__, type(parse_stream("application/json")).__name__
    ('StreamParser', 'WholeResponse')
    """
    if content_type.startswith("text/event-stream"):
        return StreamParser()
    return WholeResponse()


class _ToolCallParts:
    __slots__ = ("arguments", "id", "index", "name")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class _ChoiceParts:
    __slots__ = ("calls", "finish", "latest_call", "reasoning", "text")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[_ToolCallParts] = []  # in the order they started
        self.latest_call: dict[int, _ToolCallParts] = {}  # by the server's index
        self.finish: str | None = None

    def seen(self) -> bool:
        return bool(self.text or self.reasoning or self.calls or self.finish is not None)


def per_choice_sum(before: Usage, more: Usage) -> Usage:
    """Usage of an answer with several choices from a server that reports each choice apart
    (llama.cpp sends one usage chunk per choice when ``n > 1``): the answers' tokens add up,
    the prompt, read once for all of them, counts once.

    >>> per_choice_sum(Usage(9, 2, 11, cached_tokens=4), Usage(9, 3, 12, cached_tokens=4))
    Usage(prompt_tokens=9, completion_tokens=5, total_tokens=14, cached_tokens=4, reasoning_tokens=0, cache_write_tokens=0)
    """
    prompt = max(before.prompt_tokens, more.prompt_tokens)
    completion = before.completion_tokens + more.completion_tokens
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cached_tokens=max(before.cached_tokens, more.cached_tokens),
        reasoning_tokens=before.reasoning_tokens + more.reasoning_tokens,
        cache_write_tokens=max(before.cache_write_tokens, more.cache_write_tokens),
    )


class Aggregator:
    """Adds events up into a Completion, each choice apart.

    Usage: in an answer with one choice the last usage event wins (a server may
    repeat a running total); with several choices, several usage events are one
    per choice and add up (``per_choice_sum``).

    >>> a = Aggregator()
    >>> for e in [TextDelta("4"), ToolCallDelta(0, "c1", "f", '{"x"'), ToolCallDelta(0, arguments=": 1}"), Finish("tool_calls")]:
    ...     a.add(e)
    >>> c = a.completion()
    >>> c.text, c.finish_reason, c.tool_calls[0].parsed_arguments
    ('4', 'tool_use', {'x': 1})
    >>> b = Aggregator()
    >>> for e in [TextDelta("A"), TextDelta("a", 1), TextDelta("B"), TextDelta("b", 1), Finish("stop", 1)]:
    ...     b.add(e)
    >>> b.finish is None  # choice 1 has finished, choice 0 not yet
    True
    >>> b.add(Finish("length"))
    >>> c = b.completion()
    >>> c.text, c.finish_reason, [(o.index, o.text, o.finish_reason) for o in c.outputs]
    ('AB', 'length', [(0, 'AB', 'length'), (1, 'ab', 'stop')])
    """

    __slots__ = ("_choices", "_first", "timings", "usage")

    def __init__(self) -> None:
        self._first = _ChoiceParts()  # choice 0, at hand for the common case
        self._choices: dict[int, _ChoiceParts] = {0: self._first}
        self.usage: Usage | None = None
        self.timings: dict[str, float] | None = None

    def add(self, event: Event) -> None:
        kind = type(event)
        # The hot kinds go without an isinstance check: ``kind is`` already says what event is.
        if kind is TextDelta:
            (self._first if event.choice == 0 else self._choice(event.choice)).text.append(event.text)  # type: ignore[union-attr]
        elif kind is ReasoningDelta:
            (self._first if event.choice == 0 else self._choice(event.choice)).reasoning.append(event.text)  # type: ignore[union-attr]
        elif kind is ToolCallDelta:
            assert isinstance(event, ToolCallDelta)
            parts = self._first if event.choice == 0 else self._choice(event.choice)
            call = parts.latest_call.get(event.index)
            if call is None or (event.id and call.id and event.id != call.id):  # a new id: a new call
                call = parts.latest_call[event.index] = _ToolCallParts(event.index)
                parts.calls.append(call)
            if event.id and not call.id:
                call.id = event.id
            if event.name and not call.name:
                call.name = event.name
            if event.arguments:
                call.arguments.append(event.arguments)
        elif kind is Finish:
            assert isinstance(event, Finish)
            (self._first if event.choice == 0 else self._choice(event.choice)).finish = event.reason
        elif kind is Usage:
            assert isinstance(event, Usage)
            self.usage = event if self.usage is None or len(self._choices) == 1 else per_choice_sum(self.usage, event)
        elif kind is Timings:
            assert isinstance(event, Timings)
            self.timings = event.values

    def _choice(self, index: int) -> _ChoiceParts:
        parts = self._choices.get(index)
        if parts is None:
            parts = self._choices[index] = _ChoiceParts()
        return parts

    def _seen(self) -> list[tuple[int, _ChoiceParts]]:
        """The choices that had an event, in index order."""
        return sorted((index, parts) for index, parts in self._choices.items() if parts.seen())

    @property
    def finish(self) -> str | None:
        """Choice 0's finish reason (the lowest index seen); None while any choice seen has none."""
        seen = self._seen()
        if not seen or any(parts.finish is None for _, parts in seen):
            return None
        return seen[0][1].finish

    @property
    def text(self) -> str:
        """Choice 0's text (the lowest index seen)."""
        seen = self._seen()
        return "".join(seen[0][1].text) if seen else ""

    def completion(self, *, provider: str = "", model: str = "") -> Completion:
        """The completion so far; every choice's finish reason must be one of ``FINISH_REASONS``."""
        seen = self._seen()
        if not seen:
            raise ValueError("finish_reason None is not a completion: the answer has no choice")
        outputs = tuple(_output(index, parts) for index, parts in seen)
        first = outputs[0]
        return Completion(
            text=first.text,
            finish_reason=first.finish_reason,
            raw_finish_reason=first.raw_finish_reason,
            reasoning=first.reasoning,
            tool_calls=first.tool_calls,
            usage=self.usage,
            provider=provider,
            model=model,
            outputs=outputs,
            timings=self.timings,
        )


def _output(index: int, parts: _ChoiceParts) -> Output:
    raw = parts.finish
    reason = FINISH_REASONS.get(raw) if raw is not None else None
    if raw is None or reason is None:
        where = f" (choice {index})" if index else ""
        raise ValueError(f"finish_reason {raw!r} is not a completion{where}")
    calls = sorted(parts.calls, key=lambda call: call.index)  # stable: calls sharing an index keep their order
    return Output(
        index=index,
        text="".join(parts.text),
        finish_reason=reason,
        raw_finish_reason=raw,
        reasoning="".join(parts.reasoning),
        tool_calls=tuple(_tool_call(call) for call in calls),
    )


def _tool_call(parts: _ToolCallParts) -> ToolCall:
    call_id = parts.id or f"call_{parts.index}"
    arguments = "".join(parts.arguments)
    try:
        parsed = msgspec.json.decode(arguments) if arguments.strip() else {}
    except DECODE_ERRORS as exc:
        return ToolCall(call_id, parts.name, arguments, None, f"arguments are not valid JSON: {decode_problem(exc)}")
    return ToolCall(call_id, parts.name, arguments, parsed)
