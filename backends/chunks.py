"""Decoding server JSON into small Structs, and chunks into events.

Rules:
- One ``msgspec.json.Decoder`` per type, built at import, reused for every
  chunk. The Structs hold only the fields we use; unknown fields are skipped
  by the decoder without being materialised.
- Reasoning text comes from the first non-empty of ``reasoning_content``,
  ``reasoning``, ``reasoning_text`` (servers and versions differ).
- ``usage`` may come in a final chunk with ``choices: []`` (vLLM with
  include_usage), with the last content chunk (llama.cpp), or never (inferrs).
"""

from __future__ import annotations

import msgspec

from backends.events import Event, Finish, ReasoningDelta, ServerError, TextDelta, ToolCallDelta, Usage


class FunctionPart(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCallPart(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: FunctionPart | None = None


class Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    reasoning_text: str | None = None
    tool_calls: list[ToolCallPart] | None = None


class Choice(msgspec.Struct):
    delta: Delta | None = None
    message: Delta | None = None
    finish_reason: str | None = None


class ErrorObject(msgspec.Struct):
    message: str | None = None
    type: str | None = None
    code: int | str | None = None
    param: str | None = None


class Chunk(msgspec.Struct):
    """A streamed chat.completion.chunk, or a non-streamed chat.completion (``message`` instead of ``delta``)."""

    choices: list[Choice] | None = None
    usage: Usage | None = None
    error: ErrorObject | str | None = None


CHUNK_DECODER = msgspec.json.Decoder(Chunk)
CHUNKS_DECODER = msgspec.json.Decoder(list[Chunk])


def server_error(error: ErrorObject | str) -> ServerError:
    if isinstance(error, str):
        return ServerError(message=error)
    code = None if error.code is None else str(error.code)
    return ServerError(message=error.message or "(no message)", type=error.type, code=code, param=error.param)


def chunk_events(chunk: Chunk, out: list[Event]) -> None:
    """Append the events one chunk carries to ``out`` (no list per chunk on the hot path)."""
    if chunk.error is not None:
        out.append(server_error(chunk.error))
    if chunk.choices:
        for choice in chunk.choices:
            delta = choice.delta or choice.message
            numbered = choice.delta is None  # a full message's tool_calls carry no index: use their order
            if delta is not None:
                reasoning = delta.reasoning_content or delta.reasoning or delta.reasoning_text
                if reasoning:
                    out.append(ReasoningDelta(reasoning))
                if delta.content:
                    out.append(TextDelta(delta.content))
                if delta.tool_calls:
                    for position, call in enumerate(delta.tool_calls):
                        function = call.function
                        out.append(
                            ToolCallDelta(
                                position if numbered else call.index,
                                call.id,
                                function.name if function else None,
                                (function.arguments or "") if function else "",
                            )
                        )
            if choice.finish_reason is not None:
                out.append(Finish(choice.finish_reason))
    if chunk.usage is not None:
        out.append(chunk.usage)


def decode_chunk(payload: bytes) -> Chunk:
    """One chunk; a ``msgspec.DecodeError``/``ValidationError`` for bad payloads."""
    return CHUNK_DECODER.decode(payload)


def excerpt(data: bytes | str, limit: int = 200) -> str:
    """A short, printable excerpt of a payload for error messages.

    >>> excerpt(b'{"choices": [' + b"x" * 300, 20)
    '{"choices": [xxxxxxx... (313 bytes)'
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(data)} bytes)"

