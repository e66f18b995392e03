"""Rule table for parse_stream's notes (``backends.stream``): how an answer ended and what was left.

``parse_stream`` picks the parser by the Content-Type; its ``notes()`` go into
``Completion.answer_trace``. Each row feeds the body in the pieces given (a
network cuts anywhere), closes, and states the notes and the text read.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from backends.stream import parse_stream
from pipeline.events import TextDelta

SSE = "text/event-stream"
JSON = "application/json"
HI = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}\n\n'
WHOLE = b'{"choices":[{"index":0,"message":{"content":"Hi"},"finish_reason":"stop"}]}'


class Row(NamedTuple):
    rule: str
    content_type: str
    pieces: list[bytes]
    notes: tuple[str, ...]
    text: str


ROWS: list[Row] = [
    Row("a stream that ends at data: [DONE] says so", SSE, [HI, b"data: [DONE]\n\n"], ("ended at data: [DONE]",), "Hi"),
    Row(
        "the bytes after [DONE] are counted over every piece",
        SSE,
        [HI + b"data: [DONE]\n\n", b"abc", b"de"],
        ("ended at data: [DONE]", "5 bytes after the end were ignored"),
        "Hi",
    ),
    Row("a stream that ends without [DONE] says so", SSE, [HI], ("the body ended without data: [DONE]",), "Hi"),
    Row(
        "a malformed frame stops the parser, and what follows is counted",
        SSE,
        [HI + b"data: {not json\n\n", b"data: x\n\n"],
        ("stopped at a malformed frame (a fault event says which); the rest was not parsed", "9 bytes after the end were ignored"),
        "Hi",
    ),
    Row(
        "a whole JSON answer in pieces is read whole, and its size is the sum of the pieces",
        JSON,
        [WHOLE[:10], WHOLE[10:30], WHOLE[30:]],
        (f"a whole JSON answer, not a stream ({len(WHOLE)} bytes)",),
        "Hi",
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.rule for row in ROWS])
def test_parse_stream_notes_rule(row: Row) -> None:
    parser = parse_stream(row.content_type)
    events = [event for piece in row.pieces for event in parser.feed(piece)] + parser.close()
    assert parser.notes() == row.notes
    assert "".join(event.text for event in events if isinstance(event, TextDelta)) == row.text
