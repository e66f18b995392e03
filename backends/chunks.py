"""Decoding server JSON into small Structs, and chunks into events.

Rules:
- One ``msgspec.json.Decoder`` per type, built at import, reused for every
  chunk. The Structs hold only the fields we use; unknown fields are skipped
  by the decoder without being materialised.
- Every answer event carries its choice's ``index`` (``n > 1``; 0 when a
  server leaves it out), streamed or whole.
- Reasoning text comes from the first non-empty of ``reasoning_content``,
  ``reasoning``, ``reasoning_text`` (servers and versions differ).
- Tool calls: a streamed piece carries the call's ``index``; a whole
  message's calls carry none and are numbered by position. A legacy
  ``function_call`` is tool call 0, read only when the delta has no
  ``tool_calls``: llama-cpp-python sends both, with the same pieces.
- ``usage`` may come in a final chunk with ``choices: []`` (vLLM with
  include_usage), with the last content chunk (llama.cpp), or never (inferrs).
  Details: ``prompt_tokens_details.cached_tokens`` -> cached_tokens,
  ``completion_tokens_details.reasoning_tokens`` (or usage's own
  ``reasoning_tokens``, as SGLang sends it) -> reasoning_tokens, and
  the first of ``prompt_tokens_details.cache_write_tokens`` (llama.cpp,
  OpenRouter), ``prompt_tokens_details.cache_creation_tokens``, usage's
  ``cache_creation_input_tokens`` (Anthropic's name) -> cache_write_tokens.
  A token count must be a non-negative integer (or null, meaning not
  reported): anything else makes the chunk malformed.
- llama.cpp's top-level ``timings`` object becomes a ``Timings`` event with
  its number values as sent; other values are dropped.
- Hostile JSON never escapes as a Python error: ``DECODE_ERRORS`` is what a
  decode can raise (msgspec's errors, ``UnicodeDecodeError`` for invalid
  UTF-8 inside a string, ``RecursionError`` for nesting too deep, even in a
  skipped field), and ``decode_problem`` says what was wrong.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from pipeline.events import Event, Finish, ReasoningDelta, ServerError, TextDelta, Timings, ToolCallDelta, Usage

Count = Annotated[int, msgspec.Meta(ge=0)]
Index = Annotated[int, msgspec.Meta(ge=0)]

# What decoding server JSON can raise: msgspec.DecodeError/ValidationError and
# UnicodeDecodeError are ValueErrors; RecursionError comes from deep nesting.
DECODE_ERRORS = (ValueError, RecursionError)


class FunctionPart(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCallPart(msgspec.Struct):
    index: Index = 0
    id: str | None = None
    function: FunctionPart | None = None


class Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    reasoning_text: str | None = None
    tool_calls: list[ToolCallPart] | None = None
    function_call: FunctionPart | None = None


class Choice(msgspec.Struct):
    index: Index = 0
    delta: Delta | None = None
    message: Delta | None = None
    finish_reason: str | None = None


class PromptTokensDetails(msgspec.Struct):
    cached_tokens: Count | None = None
    cache_write_tokens: Count | None = None
    cache_creation_tokens: Count | None = None


class CompletionTokensDetails(msgspec.Struct):
    reasoning_tokens: Count | None = None


class UsageFields(msgspec.Struct):
    prompt_tokens: Count | None = None
    completion_tokens: Count | None = None
    total_tokens: Count | None = None
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None
    cache_creation_input_tokens: Count | None = None
    reasoning_tokens: Count | None = None  # SGLang: at the top level of usage


class ErrorObject(msgspec.Struct):
    message: str | None = None
    type: str | None = None
    code: int | str | None = None
    param: str | None = None


class Chunk(msgspec.Struct):
    """A streamed chat.completion.chunk, or a non-streamed chat.completion (``message`` instead of ``delta``)."""

    choices: list[Choice] | None = None
    usage: UsageFields | None = None
    timings: Any = None
    error: ErrorObject | str | None = None


CHUNK_DECODER = msgspec.json.Decoder(Chunk)


def decode_chunk(payload: bytes) -> Chunk:
    """One chunk; raises one of ``DECODE_ERRORS`` for a payload that is not one."""
    return CHUNK_DECODER.decode(payload)


def decode_problem(exc: BaseException) -> str:
    """What was wrong with a payload, from the error its decode raised.

    >>> decode_problem(RecursionError("maximum recursion depth exceeded"))
    'JSON nested too deeply'
    >>> try:
    ...     decode_chunk(b'{"usage": {"prompt_tokens": -1}}')
    ... except DECODE_ERRORS as exc:
    ...     decode_problem(exc)
    'Expected `int` >= 0 - at `$.usage.prompt_tokens`'
    """
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    if isinstance(exc, UnicodeDecodeError):
        return "invalid UTF-8 inside a JSON string"
    return str(exc)


def server_error(error: ErrorObject | str) -> ServerError:
    if isinstance(error, str):
        return ServerError(message=error)
    code = None if error.code is None else str(error.code)
    return ServerError(message=error.message or "(no message)", type=error.type, code=code, param=error.param)


def usage_event(usage: UsageFields) -> Usage:
    prompt = usage.prompt_tokens_details
    completion = usage.completion_tokens_details
    cache_write = usage.cache_creation_input_tokens
    cached = None
    if prompt is not None:
        cached = prompt.cached_tokens
        if prompt.cache_write_tokens is not None:
            cache_write = prompt.cache_write_tokens
        elif prompt.cache_creation_tokens is not None:
            cache_write = prompt.cache_creation_tokens
    return Usage(
        prompt_tokens=usage.prompt_tokens or 0,
        completion_tokens=usage.completion_tokens or 0,
        total_tokens=usage.total_tokens or 0,
        cached_tokens=cached or 0,
        reasoning_tokens=(
            completion.reasoning_tokens if completion is not None and completion.reasoning_tokens is not None else usage.reasoning_tokens
        )
        or 0,
        cache_write_tokens=cache_write or 0,
    )


def timings_event(timings: Any) -> Timings | None:
    """The number values of a ``timings`` object (booleans are not numbers), or None without any."""
    if not isinstance(timings, dict):
        return None
    values = {key: value for key, value in timings.items() if type(value) is int or type(value) is float}
    return Timings(values) if values else None


def chunk_events(chunk: Chunk, out: list[Event]) -> None:
    """Append the events one chunk carries to ``out`` (no list per chunk on the hot path)."""
    if chunk.error is not None:
        out.append(server_error(chunk.error))
    choices = chunk.choices
    if choices:
        for choice in choices:
            index = choice.index
            delta = choice.delta
            if delta is None:
                delta = choice.message
                if delta is not None:
                    _message_events(delta, index, out)
            else:  # a streamed delta: the hot path, kept inline
                reasoning = delta.reasoning_content or delta.reasoning or delta.reasoning_text
                if reasoning:
                    out.append(ReasoningDelta(reasoning, index))
                if delta.content:
                    out.append(TextDelta(delta.content, index))
                if delta.tool_calls or delta.function_call:
                    _tool_call_events(delta, index, False, out)
            if choice.finish_reason is not None:
                out.append(Finish(choice.finish_reason, index))
    if chunk.usage is not None:
        out.append(usage_event(chunk.usage))
    if chunk.timings is not None:
        timings = timings_event(chunk.timings)
        if timings is not None:
            out.append(timings)


def _message_events(message: Delta, index: int, out: list[Event]) -> None:
    reasoning = message.reasoning_content or message.reasoning or message.reasoning_text
    if reasoning:
        out.append(ReasoningDelta(reasoning, index))
    if message.content:
        out.append(TextDelta(message.content, index))
    if message.tool_calls or message.function_call:
        _tool_call_events(message, index, True, out)


def _tool_call_events(delta: Delta, choice: int, whole: bool, out: list[Event]) -> None:
    """A streamed piece carries its call's index; a whole message's calls are numbered by position."""
    if delta.tool_calls:
        for position, call in enumerate(delta.tool_calls):
            function = call.function
            out.append(
                ToolCallDelta(
                    position if whole else call.index,
                    call.id,
                    function.name if function else None,
                    (function.arguments or "") if function else "",
                    choice,
                )
            )
    if delta.function_call is not None and not delta.tool_calls:  # the legacy single call, when it is the only form
        function = delta.function_call
        out.append(ToolCallDelta(0, None, function.name, function.arguments or "", choice))


def excerpt(data: bytes | str, limit: int = 200) -> str:
    """A short, printable excerpt of a payload for error messages (control characters escaped).

    >>> excerpt(b'{"choices": [' + b"x" * 300, 20)
    '{"choices": [xxxxxxx... (313 bytes)'
    >>> excerpt(b'bad \\xff \\x1b[2J')
    'bad \\ufffd \\\\x1b[2J'
    """
    if isinstance(data, str):
        text = data[: limit + 1]
    else:  # a character is at most 4 bytes: decode no more than the excerpt needs
        text = bytes(data[: limit * 4 + 4]).decode("utf-8", "replace")[: limit + 1]
    cut = len(text) > limit
    text = text[:limit]
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return f"{text}... ({len(data)} bytes)" if cut else text
