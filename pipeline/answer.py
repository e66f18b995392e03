"""The answer-side stage contract: stages that transform the typed event stream.

After ``parse_stream`` turns the server's bytes into typed events
(pipeline/events.py), answer-side stages transform that event stream, in the
order the pipeline lists them. Each is called once per attempt with the built
request's Context and returns a fresh step, or None when it has nothing to do
for this request (the runner then skips it, so a disabled stage costs nothing).

Rules every AnswerStep keeps:

- Events carry a ``choice`` index (``n > 1`` answers interleave choices): state
  is kept per choice.
- Events it does not handle pass through unchanged, in order. Held-back text of
  a choice is released before that choice's ``Finish`` event is passed on (so
  Finish always comes after all of its text).
- Raising, or returning something that is not a sequence of Events, is caught by
  the runner and fails the run with a StageError naming the stage (the same
  guard as the request-side stages).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from pipeline.events import Event
from pipeline.types import Context, WireRequest


class AnswerStep(Protocol):
    """One attempt's state for one answer-side stage.

    Pure: no I/O, never mutates an event it was given (events are frozen
    msgspec Structs: make new ones with msgspec.structs.replace or the
    constructor).
    """

    def feed(self, events: Sequence[Event]) -> Sequence[Event]:
        """The events parsed from one read of the answer (a non-streamed answer is one call).

        Returns the events to pass on, in order; it may hold some text back (a
        tag split across reads) and release it in a later feed or in finish().
        """
        ...

    def finish(self) -> Sequence[Event]:
        """The answer ended (the stream closed after its last event). Returns what was still held back."""
        ...

    def notes(self) -> tuple[str, ...]:
        """What this step changed so far, one short line each, for the run's trace and --explain.

        E.g. 'reasoning extracted from <think>: 312 chars'. Empty when it changed nothing.
        """
        ...


AnswerStage = Callable[[Context], AnswerStep | None]
"""Called once per attempt with the request's built Context (ctx.target gives
the model and its compat flags). Returns a fresh AnswerStep, or None when it
has nothing to do for this request: the runner then skips it entirely, so a
disabled stage costs nothing on the hot path."""


# -- The two stages between the request and the answer: send (the one that does I/O) and parse_stream --
#
# Both are declared here, in the core, so the pipeline can hold them as data; their default
# implementations live in backends/ (``backends.http.send``, ``backends.stream.parse_stream``) and are
# put in the list by the runner. Either can be replaced like any other stage (``Pipeline.replace``, or
# ``pipeline.stages[]`` with ``replace: "send"``), e.g. by a sender that replays recorded bytes.


class SendRecord(Protocol):
    """What a send tells about its exchange, filled in by the sender as it goes.

    ``status`` once the response head came, ``content_type`` from it (it tells parse_stream a streamed
    answer from a whole JSON one), and perf_counter marks: ``start``, ``first_byte``, ``end``.
    """

    status: int | None
    content_type: str
    start: float
    first_byte: float | None
    end: float | None


Send = Callable[[Any, WireRequest, Any, SendRecord], AsyncIterator[bytes]]
"""``send(client, wire, hints, record)``: sends ``wire`` exactly as built and yields the answer's body bytes,
one piece per network read. ``client`` is the owner's HTTP client, ``hints`` what its errors need to say where
they happened (``backends.classify.HintContext``). Every failure is raised as a classified ProviderError; the
run closes the iterator as soon as it stops reading (at ``data: [DONE]``, on an error, on cancellation)."""


class StreamParse(Protocol):
    """One answer's parser: bytes in, typed events out. Pure: no I/O."""

    @property
    def done(self) -> bool:
        """The answer is complete (``data: [DONE]``): nothing more needs to be read."""
        ...

    def feed(self, data: bytes) -> list[Event]:
        """The events completed by one read's bytes, in order."""
        ...

    def close(self) -> list[Event]:
        """The body ended: the events still pending."""
        ...

    def notes(self) -> tuple[str, ...]:
        """What it read and what it left out, and why, one short line each (for the trace and --explain)."""
        ...


ParseStream = Callable[[str], StreamParse]
"""``parse_stream(content_type)``: a fresh parser for one answer, chosen by the response's Content-Type."""
