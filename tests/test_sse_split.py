"""The stream parser's events do not depend on how the bytes arrive, and its work is linear in them.

Split invariance is checked with hypothesis over generated streams (LF, CR, CRLF and mixed
line ends, multi-line data, comments, event:/id:/retry: fields, [DONE], error frames, bad
JSON, tool-call pieces, usage, several choices) cut at random places.

Linearity is checked without timing: the SSE decoder does its scanning and copying through
a few named byte primitives (``backends.sse._find`` and friends); a meter counts the bytes
they examine for an input and for the same input four times over, in one run.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backends.sse as sse
from backends.sse import DataRun, SSEDecoder, SSEEvent
from backends.stream import StreamParser
from pipeline.events import Event, StreamFault, TextDelta

# --- generated streams ---------------------------------------------------------------------

# Frames are drawn from a table built once (a few draws per example keep 10,000 examples fast);
# line ends of "mixed" streams and the cut points come from a drawn seed.
TEXTS = ["", "a", "ab é", "東🙂", '"q"', "back\\slash", "new\nline", "cr\rhere", "\t{}[]:,", "[DONE]", "data: x"]


def chunk_json(rng: random.Random) -> str:
    choice = rng.randrange(3)
    kind = rng.choice(["content", "reasoning", "tool", "tool_piece", "finish", "usage", "usage_with_content", "two_choices"])
    text = rng.choice(TEXTS)
    if kind == "content":
        body: dict[str, object] = {"choices": [{"index": choice, "delta": {"content": text}, "finish_reason": None}]}
    elif kind == "reasoning":
        body = {"choices": [{"index": choice, "delta": {rng.choice(["reasoning_content", "reasoning", "reasoning_text"]): text}}]}
    elif kind == "tool":
        call = {
            "index": rng.randrange(3),
            "id": rng.choice(["call_a", "call_b"]),
            "type": "function",
            "function": {"name": "f", "arguments": text},
        }
        body = {"choices": [{"index": choice, "delta": {"tool_calls": [call]}}]}
    elif kind == "tool_piece":
        body = {"choices": [{"index": choice, "delta": {"tool_calls": [{"index": rng.randrange(3), "function": {"arguments": text}}]}}]}
    elif kind == "finish":
        body = {"choices": [{"index": choice, "delta": {}, "finish_reason": rng.choice(["stop", "length", "tool_calls", "error"])}]}
    elif kind == "usage":
        body = {
            "choices": [],
            "usage": {"prompt_tokens": choice, "completion_tokens": 2, "total_tokens": 9, "prompt_tokens_details": {"cached_tokens": 1}},
        }
    elif kind == "usage_with_content":
        body = {
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            "timings": {"predicted_ms": 1.5},
        }
    else:
        body = {"choices": [{"index": 0, "delta": {"content": text}}, {"index": 1, "delta": {"content": rng.choice(TEXTS)}}]}
    return json.dumps(body, ensure_ascii=rng.random() < 0.5, separators=rng.choice([(",", ":"), (", ", ": ")]))


def frame_lines(rng: random.Random) -> list[str]:
    """One frame as its lines, the blank line that dispatches it included."""
    payload = chunk_json(rng)
    kind = rng.choice(
        ["data"] * 8 + ["multiline", "comment", "fields", "unknown", "error", "event_error", "bad", "two_values", "done", "blank"]
    )
    if kind == "data":
        return [f"data: {payload}", ""]
    if kind == "multiline":  # JSON split at a comma: an LF inside JSON is whitespace
        head, sep, tail = payload.partition(",")
        return [f"data: {head}{sep}", f"data:{tail}", ""]
    if kind == "comment":
        return rng.choice([[": ping", ""], [f"data: {payload}", ": inside", ""]])
    if kind == "fields":
        return [rng.choice(["event: message", "id: 7", "retry: 100", "id", "event: update"]), f"data: {payload}", ""]
    if kind == "unknown":
        return ["foo: bar", f"data: {payload}", ""]
    if kind == "error":
        return [rng.choice(['error: {"code": 503, "message": "Loading model"}', "error: slot unavailable"]), ""]
    if kind == "event_error":
        return ["event: error", 'data: {"error": {"message": "boom"}}', ""]
    if kind == "bad":
        return [rng.choice(["data: {bad", 'data: {"choices": [', "data: [1,", "data: "]), ""]
    if kind == "two_values":
        return [f"data: {payload}, {payload}", ""]
    if kind == "done":
        return ["data: [DONE]", ""]
    return [""]


_table_rng = random.Random(20261123)
FRAME_TABLE = [frame_lines(_table_rng) for _ in range(400)]
FRAMES = st.lists(st.sampled_from(FRAME_TABLE), max_size=12)
MODES = st.sampled_from(["lf", "crlf", "cr", "mixed"])
SEEDS = st.integers(0, 2**32 - 1)
TAILS = st.sampled_from(["none", "frame without blank line", "line without end"])


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """A stream and the places to cut it."""
    mode = draw(MODES)
    rng = random.Random(draw(SEEDS))
    fixed = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}.get(mode)

    def end() -> str:
        return fixed or rng.choice(["\n", "\r", "\r\n"])

    text = "".join(line + end() for lines in draw(FRAMES) for line in lines)
    tail = draw(TAILS)
    if tail != "none":
        text += f"data: {chunk_json(rng)}" + (end() if tail == "frame without blank line" else "")
    data = text.encode()
    cuts = sorted({rng.randrange(len(data) + 1) for _ in range(rng.choice([0, 1, 2, 5, 30, len(data)]))})
    return data, cuts


def pieces_of(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def parse(pieces: list[bytes]) -> tuple[list[Event], bool, bool]:
    parser = StreamParser()
    events: list[Event] = []
    for piece in pieces:
        events += parser.feed(piece)
    events += parser.close()
    return events, parser.done, parser.failed


def sse_events(pieces: list[bytes], *, pack: bool) -> list[SSEEvent]:
    decoder = SSEDecoder(pack_json_runs=pack)
    items: list[SSEEvent | DataRun] = []
    for piece in pieces:
        items += decoder.feed(piece)
    items += decoder.close()
    flat: list[SSEEvent] = []
    for item in items:
        flat += [SSEEvent("message", p) for p in item.payloads] if isinstance(item, DataRun) else [item]
    return flat


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_any_split_gives_the_events_of_the_whole_stream(stream: tuple[bytes, list[int]]) -> None:
    data, cuts = stream
    pieces = pieces_of(data, cuts)
    assert parse(pieces) == parse([data])
    # the run fast path hands out exactly the payloads the line rules give
    assert sse_events([data], pack=True) == sse_events(pieces, pack=False)


def test_a_frame_with_two_json_values_faults_whole_and_split() -> None:
    one = b'{"choices":[{"delta":{"content":"a"}}]}'
    data = b"data: " + one + b", " + one + b"\n\n"
    whole = parse([data])[0]
    assert [type(e) for e in whole] == [StreamFault] and "trailing characters" in whole[0].message  # type: ignore[union-attr]
    for cut in range(1, len(data)):
        assert parse([data[:cut], data[cut:]])[0] == whole, cut
    assert parse([b"data: " + one + b"\n\n" + data])[0] == [TextDelta("a"), *whole]


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_done_is_set_when_the_done_frame_completes(line_end: bytes) -> None:
    lines = [line for i in range(5) for line in (chunk_frame(i), b"")]
    data = line_end.join([*lines, b"data: [DONE]", b"", b"data: {late", b"", b""])
    done_at = data.index(b"[DONE]") + len(b"[DONE]") + len(line_end) + 1  # a CR ends the blank line at once
    for cut in range(1, len(data)):
        parser = StreamParser()
        parser.feed(data[:cut])
        assert parser.done == (cut >= done_at), cut
        parser.feed(data[cut:])
        assert parser.done and not parser.failed


# --- linear work -----------------------------------------------------------------------------


class Meter:
    """Counts the bytes the decoder's byte primitives examine or copy."""

    def __init__(self) -> None:
        self.examined = 0

    def find(self, buffer: bytes, sub: bytes, start: int = 0, end: int | None = None) -> int:
        stop = len(buffer) if end is None else end
        hit = bytes.find(buffer, sub, start, stop)
        self.examined += (hit + len(sub) if hit >= 0 else stop) - start
        return hit

    def rfind(self, buffer: bytes, sub: bytes, start: int = 0) -> int:
        hit = bytes.rfind(buffer, sub, start)
        self.examined += len(buffer) - (hit if hit >= 0 else start)
        return hit

    def split(self, buffer: bytes, separator: bytes) -> list[bytes]:
        self.examined += len(buffer)
        return bytes.split(buffer, separator)

    def join(self, separator: bytes, parts: list[bytes]) -> bytes:
        joined = bytes.join(separator, parts)
        self.examined += len(joined)
        return joined


@contextmanager
def metered(monkeypatch: pytest.MonkeyPatch) -> Iterator[Meter]:
    meter = Meter()
    with monkeypatch.context() as patch:
        for name in ("find", "rfind", "split", "join"):
            patch.setattr(sse, f"_{name}", getattr(meter, name))
        yield meter


def chunk_frame(i: int) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": f"token {i} "}}]}).encode()


def frames(n: int, line_end: bytes, *, extra: bytes = b"") -> bytes:
    return b"".join(chunk_frame(i) + line_end + extra + line_end for i in range(n))


STREAMS: dict[str, Callable[[int], bytes]] = {
    "LF": lambda n: frames(n, b"\n"),
    "CRLF": lambda n: frames(n, b"\r\n"),
    "CR": lambda n: frames(n, b"\r"),
    "multi-line data": lambda n: frames(n, b"\n", extra=b"data: more\n"),
    "comments": lambda n: frames(n, b"\n", extra=b": ping\n"),
    "CR with comments": lambda n: frames(n, b"\r", extra=b": ping\r"),
    "fields": lambda n: frames(n, b"\r\n", extra=b"id: 1\r\nevent: x\r\n"),
    "one big event": lambda n: b"data: " + b"x" * (n * 512) + b"\n\n",
    "one big multi-line event": lambda n: b"data: x\r" * (n * 64) + b"\r",
}


@pytest.mark.parametrize("piece_size", [1024, 16384, None], ids=["1 KiB reads", "16 KiB reads", "one read"])
@pytest.mark.parametrize("name", list(STREAMS))
def test_work_is_linear_in_the_input(name: str, piece_size: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    work: list[int] = []
    sizes: list[int] = []
    for n in (2000, 8000):
        data = STREAMS[name](n)
        step = piece_size or len(data)
        with metered(monkeypatch) as meter:
            decoder = SSEDecoder(pack_json_runs=True)
            for start in range(0, len(data), step):
                decoder.feed(data[start : start + step])
            decoder.close()
        work.append(meter.examined)
        sizes.append(len(data))
    assert sizes[1] == pytest.approx(4 * sizes[0], rel=0.02)
    assert 3.6 <= work[1] / work[0] <= 4.4, work  # four times the input, four times the work
    assert work[1] <= 8 * sizes[1], work  # each byte examined a bounded number of times
