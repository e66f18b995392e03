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

from collections.abc import Callable, Sequence
from typing import Protocol

from pipeline.events import Event
from pipeline.types import Context


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
