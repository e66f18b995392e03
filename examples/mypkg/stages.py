"""A request-side stage (a seed for reproducible runs) and an answer-side one (digits masked)."""

from __future__ import annotations

from collections.abc import Sequence

from returns.result import Result, Success

from pipeline.errors import GenesisError
from pipeline.events import Event, TextDelta
from pipeline.trace import added
from pipeline.types import Context


def add_seed(ctx: Context) -> Result[Context, GenesisError]:
    return Success(ctx.updated([added("add_seed", "seed", "reproducible runs")], body={**ctx.body, "seed": 7}))


class MaskDigits:
    """Digits in the answer's text become '#'. (A rule that spans pieces, like a tag, holds text back.)"""

    def __init__(self) -> None:
        self.masked = 0

    def feed(self, events: Sequence[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            if isinstance(event, TextDelta) and any(c.isdigit() for c in event.text):
                self.masked += sum(c.isdigit() for c in event.text)
                event = TextDelta("".join("#" if c.isdigit() else c for c in event.text), event.choice)
            out.append(event)
        return out

    def finish(self) -> tuple[Event, ...]:
        return ()

    def notes(self) -> tuple[str, ...]:
        return (f"masked {self.masked} digits",) if self.masked else ()


def mask_digits(ctx: Context) -> MaskDigits:
    return MaskDigits()
