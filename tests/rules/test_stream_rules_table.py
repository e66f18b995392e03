"""Rule table for ``backends.stream``: the StreamParser, response_events and the Aggregator.

Each row names the rule of the module docstring (or of the class or function
docstring) it pins. tests/test_stream_rules.py already pins the decoder rows, the
hostile payloads and the main aggregator rows; this table fills the gaps: what
the parser does after [DONE] or a fault, faults from the SSE limits, error
frames that are JSON strings, the usage sum of several choices, which id and
name a tool call keeps, and what a completion says when it is not one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from backends.stream import FINISH_REASONS, Aggregator, StreamParser, per_choice_sum, response_events
from pipeline.events import (
    Attempt,
    AttemptFailed,
    Completion,
    Event,
    Finish,
    ReasoningDelta,
    ServerError,
    StreamFault,
    TextDelta,
    Timings,
    ToolCallDelta,
    Usage,
)


def frame(payload: str) -> bytes:
    return b"data: " + payload.encode() + b"\n\n"


def text(t: str, index: int = 0) -> bytes:
    return frame(f'{{"choices":[{{"index":{index},"delta":{{"content":"{t}"}}}}]}}')


FINISH = frame('{"choices":[{"delta":{},"finish_reason":"stop"}]}')


def parse(pieces: list[bytes], *, limit: int | None = None) -> tuple[list[Event], bool, bool]:
    parser = StreamParser() if limit is None else StreamParser(max_event_bytes=limit)
    events: list[Event] = []
    for piece in pieces:
        events += parser.feed(piece)
    events += parser.close()
    return events, parser.done, parser.failed


# (rule, pieces fed, max_event_bytes, expected events, done, failed)
PARSER_ROWS: list[tuple[str, list[bytes], int | None, list[Event], bool, bool]] = [
    ("a stream that ends without [DONE] is neither done nor failed", [text("a")], None, [TextDelta("a")], False, False),
    ("[DONE] sets done", [text("a") + b"data: [DONE]\n\n"], None, [TextDelta("a")], True, False),
    ("[DONE] in a later piece sets done", [text("a"), b"data: [DONE]\n\n"], None, [TextDelta("a")], True, False),
    ("after [DONE] nothing is parsed", [b"data: [DONE]\n\n", text("late"), b"data: {bad\n\n"], None, [], True, False),
    ("after [DONE] close() adds nothing", [b"data: [DONE]\n\n" + b"data: {bad"], None, [], True, False),
    ("[DONE] without its blank line counts at close()", [text("a") + b"data: [DONE]"], None, [TextDelta("a")], True, False),
    (
        "a malformed chunk: the events before it, one fault, nothing after",
        [text("a") + b"data: {bad\n\n" + text("b"), text("c")],
        None,
        [TextDelta("a"), StreamFault("malformed chunk (JSON is malformed: object keys must be strings (byte 1)): {bad")],
        False,
        True,
    ),
    (
        "a fault stops the frames after it in the same piece, named events too",
        [b"data: {bad\n\nevent: x\n" + text("b") + b'error: {"message":"m"}\n\n'],
        None,
        [StreamFault("malformed chunk (JSON is malformed: object keys must be strings (byte 1)): {bad")],
        False,
        True,
    ),
    (
        "a malformed chunk at close() is a fault",
        [text("a") + b"data: {bad"],
        None,
        [TextDelta("a"), StreamFault("malformed chunk (JSON is malformed: object keys must be strings (byte 1)): {bad")],
        False,
        True,
    ),
    (
        "a line over the limit: the events before it, then one fault",
        [text("a") + b": " + b"x" * 80],
        64,
        [TextDelta("a"), StreamFault("a line is larger than the limit of 64 bytes")],
        False,
        True,
    ),
    (
        "an event over the limit is a fault",
        [b"data: " + b"1" * 20 + b"\ndata: " + b"2" * 20 + b"\n"],
        32,
        [StreamFault("an event is larger than the limit of 32 bytes")],
        False,
        True,
    ),
    (
        "a line over the limit found at close() is a fault",
        [text("a"), b"data: " + b"x" * 80],
        64,
        [TextDelta("a"), StreamFault("a line is larger than the limit of 64 bytes")],
        False,
        True,
    ),
    (
        "an event over the limit found at close() is a fault",
        [text("a") + b"data: " + b"1" * 40 + b"\ndata: " + b"2" * 40],
        64,
        [TextDelta("a"), StreamFault("an event is larger than the limit of 64 bytes")],
        False,
        True,
    ),
    (
        "after a limit fault nothing is parsed",
        [b": " + b"x" * 64, text("b")],
        32,
        [StreamFault("a line is larger than the limit of 32 bytes")],
        False,
        True,
    ),
    (
        "a malformed chunk before a limit fault in one piece: one fault, the first",
        [b"data: {bad\n\n: " + b"x" * 64],
        32,
        [StreamFault("malformed chunk (JSON is malformed: object keys must be strings (byte 1)): {bad")],
        False,
        True,
    ),
    (
        "[DONE] before a limit fault in one piece: done, no fault",
        [text("a") + b"data: [DONE]\n\n: " + b"x" * 80],
        64,
        [TextDelta("a")],
        True,
        False,
    ),
    ("an error frame that is a JSON string is the message", [b'error: "slot busy"\n\n'], None, [ServerError("slot busy")], False, False),
    ("event: error with text data is the message", [b"event: error\ndata: oops\n\n"], None, [ServerError("oops")], False, False),
    (
        "an error frame with invalid UTF-8 outside a string is its text",
        [b"error: bad \xff\n\n"],
        None,
        [ServerError("bad \ufffd")],
        False,
        False,
    ),
    (
        "an error frame does not end the stream",
        [b'error: {"message":"m"}\n\n' + text("a")],
        None,
        [ServerError("m"), TextDelta("a")],
        False,
        False,
    ),
    (
        "a hostile error frame is a fault and ends parsing",
        [b'error: {"message":"\xff"}\n\n' + text("a")],
        None,
        [StreamFault('malformed error frame (invalid UTF-8 inside a JSON string): {"message":"\ufffd"}')],
        False,
        True,
    ),
    (
        "a data event named otherwise is still a chunk",
        [b"event: update\n" + text("a")],
        None,
        [TextDelta("a")],
        False,
        False,
    ),
    (
        "a run and lone frames give the same events",
        [text("a") + text("b"), b": c\n" + text("c"), text("d", 1)],
        None,
        [TextDelta("a"), TextDelta("b"), TextDelta("c"), TextDelta("d", 1)],
        False,
        False,
    ),
]


@pytest.mark.parametrize(("rule", "pieces", "limit", "expected", "done", "failed"), PARSER_ROWS, ids=[row[0] for row in PARSER_ROWS])
def test_parser_rule(rule: str, pieces: list[bytes], limit: int | None, expected: list[Event], done: bool, failed: bool) -> None:
    assert parse(pieces, limit=limit) == (expected, done, failed)
    data = b"".join(pieces)
    assert parse([data[i : i + 1] for i in range(len(data))], limit=limit) == (expected, done, failed)


def test_a_failed_parser_stays_silent_on_feed_and_close() -> None:
    parser = StreamParser()
    assert parser.feed(b"data: {bad\n\n") != []
    assert parser.feed(text("a")) == [] and parser.close() == [] and parser.failed and not parser.done


def test_a_parser_failed_with_a_frame_pending_stays_silent_at_close() -> None:
    parser = StreamParser()
    assert len(parser.feed(b"data: {bad\n\n" + text("a").rstrip(b"\n"))) == 1
    assert parser.close() == []


def test_a_done_parser_stays_silent_on_feed_and_close() -> None:
    parser = StreamParser()
    assert parser.feed(b"data: [DONE]\n\n") == []
    assert parser.feed(text("a")) == [] and parser.close() == [] and parser.done and not parser.failed


def test_the_default_limit_is_the_decoders() -> None:
    parser = StreamParser()
    assert parser.feed(b"data: " + b'{"choices":[],"x":"' + b"y" * 100_000 + b'"}\n\n') == []
    assert not parser.failed


# (rule, body, expected events)
RESPONSE_ROWS: list[tuple[str, bytes, list[Event]]] = [
    (
        "a whole answer: reasoning, text, calls, finish, usage",
        b'{"choices":[{"message":{"content":"c","reasoning_content":"r","tool_calls":[{"id":"t","function":{"name":"f","arguments":"{}"}}]},'
        b'"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}',
        [ReasoningDelta("r"), TextDelta("c"), ToolCallDelta(0, "t", "f", "{}"), Finish("tool_calls"), Usage(1, 1, 2)],
    ),
    ("an error object as the whole answer", b'{"error":{"message":"m"}}', [ServerError("m")]),
    ("not JSON is one fault", b"<html>", [StreamFault("malformed response (JSON is malformed: invalid character (byte 0)): <html>")]),
    ("an empty body is one fault", b"", [StreamFault("malformed response (Input data was truncated): ")]),
    ("an empty object is no event", b"{}", []),
]


@pytest.mark.parametrize(("rule", "body", "expected"), RESPONSE_ROWS, ids=[row[0] for row in RESPONSE_ROWS])
def test_response_rule(rule: str, body: bytes, expected: list[Event]) -> None:
    assert response_events(body) == expected


# --- the aggregator ------------------------------------------------------------------------------

T, R, C, F = TextDelta, ReasoningDelta, ToolCallDelta, Finish


def complete(events: list[Event], **names: str) -> Completion:
    aggregator = Aggregator()
    for event in events:
        aggregator.add(event)
    return aggregator.completion(**names)


def calls(c: Completion, choice: int = 0) -> list[tuple[str, str, str, Any]]:
    return [(t.id, t.name, t.arguments, t.parsed_arguments) for t in c.outputs[choice].tool_calls]


# (rule, events, projection, expected)
AGGREGATOR_ROWS: list[tuple[str, list[Event], Callable[[Completion], Any], Any]] = [
    ("text pieces join in order", [T("a"), T("b"), T("c"), F("stop")], lambda c: c.text, "abc"),
    ("reasoning pieces join in order", [R("a"), R("b"), F("stop")], lambda c: c.reasoning, "ab"),
    (
        "reasoning of choice 2 stays with choice 2",
        [R("x", 2), T("y"), F("stop"), F("stop", 2)],
        lambda c: (c.reasoning, c.outputs[1].reasoning),
        ("", "x"),
    ),
    ("a tool call keeps the first id", [C(0, "a", "f", "["), C(0, None, None, "]"), F("tool_calls")], calls, [("a", "f", "[]", [])]),
    ("a tool call keeps the first name", [C(0, "a", "f", ""), C(0, "a", "g", "{}"), F("tool_calls")], calls, [("a", "f", "{}", {})]),
    ("a name arriving late names the call", [C(0, "a", None, "{"), C(0, None, "f", "}"), F("tool_calls")], calls, [("a", "f", "{}", {})]),
    ("a call without a name has an empty name", [C(0, "a", None, "{}"), F("tool_calls")], calls, [("a", "", "{}", {})]),
    ("empty argument pieces add nothing", [C(0, "a", "f", ""), C(0, None, None, "1"), F("tool_calls")], calls, [("a", "f", "1", 1)]),
    (
        "parallel calls with their own indexes stay apart (vLLM)",
        [C(0, "a", "f", "{"), C(1, "b", "g", "["), C(0, None, None, "}"), C(1, None, None, "]"), F("tool_calls")],
        calls,
        [("a", "f", "{}", {}), ("b", "g", "[]", [])],
    ),
    (
        "parallel calls all numbered 0 (Ollama): a new id starts a new call",
        [C(0, "a", "f", "{}"), C(0, "b", "f", "{}"), C(0, "c", "g", "[]"), F("tool_calls")],
        lambda c: [t.id for t in c.tool_calls],
        ["a", "b", "c"],
    ),
    (
        "an id-less piece after a new id extends the new call",
        [C(0, "a", "f", "1"), C(0, "b", "g", "2"), C(0, None, None, "3"), F("tool_calls")],
        calls,
        [("a", "f", "1", 1), ("b", "g", "23", 23)],
    ),
    (
        "a call id-less from the start takes the first id that arrives",
        [C(0, None, "f", "1"), C(0, "x", None, "2"), C(0, "x", None, "3"), F("tool_calls")],
        calls,
        [("x", "f", "123", 123)],
    ),
    (
        "calls without id get call_<index>",
        [C(0, None, "f", "{}"), C(2, None, "g", "{}"), F("tool_calls")],
        lambda c: [t.id for t in c.tool_calls],
        ["call_0", "call_2"],
    ),
    ("whitespace-only arguments parse as {}", [C(0, "a", "f", " \n "), F("tool_calls")], calls, [("a", "f", " \n ", {})]),
    (
        "arguments that are not JSON are kept raw with the reason",
        [C(0, "a", "f", "{x"), F("tool_calls")],
        lambda c: (c.tool_calls[0].arguments, c.tool_calls[0].parsed_arguments, c.tool_calls[0].arguments_error),
        ("{x", None, "arguments are not valid JSON: JSON is malformed: object keys must be strings (byte 1)"),
    ),
    ("valid arguments have no error", [C(0, "a", "f", "{}"), F("tool_calls")], lambda c: c.tool_calls[0].arguments_error, None),
    ("the raw finish reason is kept", [F("length")], lambda c: (c.finish_reason, c.raw_finish_reason), ("length", "length")),
    ("the last finish of a choice wins", [F("length"), F("stop")], lambda c: c.finish_reason, "stop"),
    ("provider and model are passed through", [F("stop")], lambda c: (c.provider, c.model), ("", "")),
    ("no usage reported: usage is None", [T("a"), F("stop")], lambda c: c.usage, None),
    ("no timings reported: timings is None", [T("a"), F("stop")], lambda c: c.timings, None),
    ("the last timings win", [Timings({"a": 1.0}), Timings({"b": 2.0}), F("stop")], lambda c: c.timings, {"b": 2.0}),
    (
        "one choice: the last usage wins even after a second report",
        [T("a"), Usage(5, 1, 6), Usage(5, 2, 7), Usage(5, 3, 8), F("stop")],
        lambda c: c.usage,
        Usage(5, 3, 8),
    ),
    (
        "several choices: one usage per choice, summed",
        [T("a"), T("b", 1), T("c", 2), Usage(9, 1, 10), Usage(9, 2, 11), Usage(9, 3, 12), F("stop"), F("stop", 1), F("stop", 2)],
        lambda c: c.usage,
        Usage(9, 6, 15),
    ),
    (
        "usage before any choice is seen is one report",
        [Usage(9, 2, 11), T("a"), F("stop")],
        lambda c: c.usage,
        Usage(9, 2, 11),
    ),
    (
        "events that are not part of an answer change nothing",
        [T("a"), ServerError("x"), StreamFault("y"), AttemptFailed(Attempt("p", "m", ok=False)), F("stop")],
        lambda c: (c.text, c.finish_reason, [o.index for o in c.outputs]),
        ("a", "stop", [0]),
    ),
    (
        "a choice seen only by its finish is an output",
        [T("a"), F("stop"), F("length", 1)],
        lambda c: [(o.index, o.text) for o in c.outputs],
        [(0, "a"), (1, "")],
    ),
    (
        "only choice 1 seen: it is the top level",
        [T("b", 1), F("length", 1)],
        lambda c: (c.text, c.finish_reason, len(c.outputs)),
        ("b", "length", 1),
    ),
]


@pytest.mark.parametrize(("rule", "events", "project", "expected"), AGGREGATOR_ROWS, ids=[row[0] for row in AGGREGATOR_ROWS])
def test_aggregator_rule(rule: str, events: list[Event], project: Callable[[Completion], Any], expected: Any) -> None:
    assert project(complete(events)) == expected


def test_provider_and_model_name_the_completion() -> None:
    c = complete([T("a"), F("stop")], provider="vllm", model="m")
    assert (c.provider, c.model) == ("vllm", "m")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("stop", "stop"), ("length", "length"), ("tool_calls", "tool_use"), ("function_call", "tool_use")],
)
def test_finish_reasons_that_are_completions(raw: str, expected: str) -> None:
    assert FINISH_REASONS[raw] == expected and complete([F(raw)]).finish_reason == expected


@pytest.mark.parametrize("raw", ["error", "content_filter", "eos", "", "STOP", "tool_use"])
def test_other_finish_reasons_are_not_completions(raw: str) -> None:
    assert raw not in FINISH_REASONS
    with pytest.raises(ValueError, match=f"^finish_reason '{raw}' is not a completion$"):
        complete([F(raw)])


def test_a_choice_without_finish_names_its_index() -> None:
    with pytest.raises(ValueError, match=r"^finish_reason None is not a completion \(choice 2\)$"):
        complete([T("a"), F("stop"), T("b", 2)])
    with pytest.raises(ValueError, match=r"^finish_reason None is not a completion$"):
        complete([T("a"), F("stop", 2)])


def test_nothing_seen_is_not_a_completion() -> None:
    with pytest.raises(ValueError, match=r"^finish_reason None is not a completion: the answer has no choice$"):
        complete([Usage(1, 1, 2), Timings({"a": 1.0})])


# (rule, events, .text, .finish)
PROPERTY_ROWS: list[tuple[str, list[Event], str, str | None]] = [
    ("nothing seen", [], "", None),
    ("text so far, unfinished", [T("a"), T("b")], "ab", None),
    ("the lowest index seen", [T("x", 3), T("y", 1)], "y", None),
    ("finished", [T("a"), F("length")], "a", "length"),
    ("a finish that is not a completion is still the finish", [F("error")], "", "error"),
    ("usage alone sees no choice", [Usage(1, 1, 2)], "", None),
    ("reasoning alone is seen", [R("r", 1), F("stop", 1)], "", "stop"),
    ("a tool call alone is seen", [C(0, "a", "f", "", 1)], "", None),
    ("reasoning alone makes its choice the lowest seen", [T("x", 2), R("r", 1)], "", None),
    ("a tool call alone makes its choice the lowest seen", [T("x", 2), C(0, "a", "f", "", 1)], "", None),
    ("a finish alone makes its choice the lowest seen", [T("x", 2), F("stop", 1)], "", None),
]


@pytest.mark.parametrize(("rule", "events", "text_so_far", "finish"), PROPERTY_ROWS, ids=[row[0] for row in PROPERTY_ROWS])
def test_text_and_finish_so_far(rule: str, events: list[Event], text_so_far: str, finish: str | None) -> None:
    aggregator = Aggregator()
    for event in events:
        aggregator.add(event)
    assert (aggregator.text, aggregator.finish) == (text_so_far, finish)


# (rule, before, more, sum)
SUM_ROWS: list[tuple[str, Usage, Usage, Usage]] = [
    ("completion tokens add up; the prompt counts once", Usage(9, 2, 11), Usage(9, 3, 12), Usage(9, 5, 14)),
    ("the larger prompt count wins", Usage(7, 1, 8), Usage(9, 1, 10), Usage(9, 2, 11)),
    ("the larger prompt count wins, either order", Usage(9, 1, 10), Usage(7, 1, 8), Usage(9, 2, 11)),
    ("total is prompt plus completion, whatever the reports said", Usage(9, 1, 0), Usage(9, 1, 0), Usage(9, 2, 11)),
    (
        "cached and cache-write count once (the larger), reasoning adds up",
        Usage(9, 1, 10, cached_tokens=4, reasoning_tokens=1, cache_write_tokens=2),
        Usage(9, 1, 10, cached_tokens=3, reasoning_tokens=5, cache_write_tokens=6),
        Usage(9, 2, 11, cached_tokens=4, reasoning_tokens=6, cache_write_tokens=6),
    ),
    (
        "cached: the larger, either order",
        Usage(9, 1, 10, cached_tokens=3, cache_write_tokens=6),
        Usage(9, 1, 10, cached_tokens=4, cache_write_tokens=2),
        Usage(9, 2, 11, cached_tokens=4, cache_write_tokens=6),
    ),
]


@pytest.mark.parametrize(("rule", "before", "more", "expected"), SUM_ROWS, ids=[row[0] for row in SUM_ROWS])
def test_per_choice_sum_rule(rule: str, before: Usage, more: Usage, expected: Usage) -> None:
    assert per_choice_sum(before, more) == expected
