"""Typed stream events and the completion they add up to.

Events are small frozen Structs, tagged so they encode to JSON with an
``event`` field (``{"event": "text", "text": "..."}``). A stream yields them
in order; ``Completion`` is what an aggregator builds from them, and what a
non-streamed answer maps to as well.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec


class _Event(msgspec.Struct, frozen=True, tag_field="event"):
    """Events encode with an ``event`` field naming their kind."""


class TextDelta(_Event, frozen=True, tag="text"):
    text: str


class ReasoningDelta(_Event, frozen=True, tag="reasoning"):
    text: str


class ToolCallDelta(_Event, frozen=True, tag="tool_call", omit_defaults=True):
    """A piece of a tool call; the first piece of an ``index`` carries id and name."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Usage(_Event, frozen=True, tag="usage"):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Finish(_Event, frozen=True, tag="finish"):
    """The server's finish_reason, as sent (``stop``, ``length``, ``tool_calls``, ``error``, ...)."""

    reason: str


class ServerError(_Event, frozen=True, tag="error", omit_defaults=True):
    """An error object inside a 200 answer (``data: {"error": {...}}``)."""

    message: str
    type: str | None = None
    code: str | None = None
    param: str | None = None


class Attempt(msgspec.Struct, frozen=True, omit_defaults=True):
    provider: str
    model: str
    ok: bool
    error_class: str | None = msgspec.field(default=None, name="class")
    message: str | None = None
    status: int | None = None


class AttemptFailed(_Event, frozen=True, tag="attempt_failed"):
    """A model failed before answering and the next fallback is tried (failover)."""

    attempt: Attempt


class StreamFault(_Event, frozen=True, tag="fault"):
    """The stream broke the protocol (a malformed chunk, an oversized event); nothing after it is parsed."""

    message: str


Event: TypeAlias = TextDelta | ReasoningDelta | ToolCallDelta | Usage | Finish | ServerError | StreamFault | AttemptFailed

FinishReason = Literal["stop", "length", "tool_use"]


class ToolCall(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    name: str
    arguments: str
    parsed_arguments: Any = None
    arguments_error: str | None = None


class Completion(msgspec.Struct, frozen=True, omit_defaults=True):
    text: str
    finish_reason: FinishReason
    raw_finish_reason: str
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    provider: str = ""
    model: str = ""
    attempts: tuple[Attempt, ...] = ()
