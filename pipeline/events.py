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


# Every answer event names the choice it belongs to (``n > 1`` answers several
# choices in one stream); ``choice`` 0 is omitted when encoded.


class TextDelta(_Event, frozen=True, tag="text", omit_defaults=True):
    text: str
    choice: int = 0


class ReasoningDelta(_Event, frozen=True, tag="reasoning", omit_defaults=True):
    text: str
    choice: int = 0


class ToolCallDelta(_Event, frozen=True, tag="tool_call", omit_defaults=True):
    """A piece of a tool call; the first piece of a call carries id and name.

    ``index`` is the call's position as the server numbers it; a new ``id`` on an
    index already in use starts a new call (Ollama numbers parallel calls all 0).
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    choice: int = 0


class Usage(_Event, frozen=True, tag="usage"):
    """Token counts for the whole answer (all choices).

    ``cached_tokens`` (from ``prompt_tokens_details``) are part of ``prompt_tokens``;
    ``reasoning_tokens`` (from ``completion_tokens_details``) part of
    ``completion_tokens``; ``cache_write_tokens`` where a server reports them.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0


class Timings(_Event, frozen=True, tag="timings"):
    """A server's own timing figures as sent (llama.cpp's ``timings``: prompt_ms, predicted_per_second, ...)."""

    values: dict[str, float]


class Finish(_Event, frozen=True, tag="finish", omit_defaults=True):
    """The server's finish_reason, as sent (``stop``, ``length``, ``tool_calls``, ``error``, ...)."""

    reason: str
    choice: int = 0


class ServerError(_Event, frozen=True, tag="error", omit_defaults=True):
    """An error object inside a 200 answer (``data: {"error": {...}}``)."""

    message: str
    type: str | None = None
    code: str | None = None
    param: str | None = None


class Attempt(msgspec.Struct, frozen=True, omit_defaults=True):
    """One try of one model in a run (``backends.session``).

    ``retry`` is 0 for a model's first try in the run, n for its n-th retry;
    ``delay_ms`` is set on a failed try the same model is retried after: the
    wait before that retry. A model skipped while it cools down is an attempt
    of class ``cooldown`` that sent nothing.
    """

    provider: str
    model: str
    ok: bool
    error_class: str | None = msgspec.field(default=None, name="class")
    message: str | None = None
    status: int | None = None
    retry: int = 0
    delay_ms: int | None = None


class AttemptFailed(_Event, frozen=True, tag="attempt_failed"):
    """A try failed or was skipped before answering, and the run did not end there (a
    failure that ends it is raised instead, carrying every attempt). ``attempt.delay_ms``
    set: the same model is tried again after that wait."""

    attempt: Attempt


class StreamFault(_Event, frozen=True, tag="fault"):
    """The stream broke the protocol (a malformed chunk, an oversized event); nothing after it is parsed."""

    message: str


Event: TypeAlias = TextDelta | ReasoningDelta | ToolCallDelta | Usage | Timings | Finish | ServerError | StreamFault | AttemptFailed

FinishReason = Literal["stop", "length", "tool_use"]


class StageNote(msgspec.Struct, frozen=True):
    """One line of what a stage did on the answer side: ``send`` (each try: status, timings),
    ``parse_stream`` (how the stream ended, what was left out), an answer-side stage (its notes())."""

    stage: str
    note: str


class ToolCall(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    name: str
    arguments: str
    parsed_arguments: Any = None
    arguments_error: str | None = None


class Output(msgspec.Struct, frozen=True, omit_defaults=True):
    """One choice of an answer."""

    index: int
    text: str
    finish_reason: FinishReason
    raw_finish_reason: str
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


class Completion(msgspec.Struct, frozen=True, omit_defaults=True):
    """A whole answer. The top-level text, reasoning, tool calls and finish reason are
    choice 0's; ``outputs`` holds every choice, in index order (one for ``n`` = 1).
    ``cost`` is in USD, from the model's ``cost`` config (None when it has none).
    ``answer_trace``: what ``send`` did on each try, and what ``parse_stream`` and each answer-side
    stage did on the try that answered (``--explain`` prints it)."""

    text: str
    finish_reason: FinishReason
    raw_finish_reason: str
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    provider: str = ""
    model: str = ""
    attempts: tuple[Attempt, ...] = ()
    outputs: tuple[Output, ...] = ()
    timings: dict[str, float] | None = None
    cost: float | None = None
    answer_trace: tuple[StageNote, ...] = ()
