"""Stages the tests plug in: by code (``Pipeline.insert_after``) and by config (``pipeline.stages[]``).

- ``shout``: an answer-side stage that upper-cases text deltas and counts what it changed.
- ``hold_until_finish``: an answer-side stage that holds every text delta of a choice back and
  releases it, joined, just before that choice's Finish (or at the end of the answer).
- ``off``: an answer-side stage with nothing to do for any request (returns None).
- ``replay_hello``: a ``send`` stage that plays a recorded "Hello world" stream (no socket).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from pipeline.answer import AnswerStep, SendRecord
from pipeline.events import Event, Finish, TextDelta
from pipeline.types import Context, WireRequest

HELLO = (
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"content":" world"}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)


class _Shout:
    def __init__(self) -> None:
        self.changed = 0

    def feed(self, events: Sequence[Event]) -> Sequence[Event]:
        out: list[Event] = []
        for event in events:
            if type(event) is TextDelta and event.text != event.text.upper():
                self.changed += len(event.text)
                event = TextDelta(event.text.upper(), event.choice)
            out.append(event)
        return out

    def finish(self) -> Sequence[Event]:
        return ()

    def notes(self) -> tuple[str, ...]:
        return (f"upper-cased {self.changed} chars",) if self.changed else ()


def shout(ctx: Context) -> AnswerStep | None:
    return _Shout()


class _Hold:
    def __init__(self) -> None:
        self.held: dict[int, list[str]] = {}

    def feed(self, events: Sequence[Event]) -> Sequence[Event]:
        out: list[Event] = []
        for event in events:
            if type(event) is TextDelta:
                self.held.setdefault(event.choice, []).append(event.text)
                continue
            if type(event) is Finish:
                out += self._release(event.choice)
            out.append(event)
        return out

    def _release(self, choice: int) -> list[Event]:
        pieces = self.held.pop(choice, [])
        return [TextDelta("".join(pieces), choice)] if pieces else []

    def finish(self) -> Sequence[Event]:
        return [event for choice in sorted(self.held) for event in self._release(choice)]

    def notes(self) -> tuple[str, ...]:
        return ("held text until each choice finished",)


def hold_until_finish(ctx: Context) -> AnswerStep | None:
    return _Hold()


def off(ctx: Context) -> AnswerStep | None:
    return None


async def replay_hello(client: Any, wire: WireRequest, hints: Any, record: SendRecord) -> AsyncGenerator[bytes, None]:
    record.status, record.content_type = 200, "text/event-stream"
    record.first_byte = time.perf_counter()
    for start in range(0, len(HELLO), 40):  # in several reads, as a network would cut it
        yield HELLO[start : start + 40]
    record.end = time.perf_counter()
