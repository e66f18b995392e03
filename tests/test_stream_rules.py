"""Rule tables for the chunk decoder and the aggregator: one row per rule, each able to fail.

Decoder rows: chunk payloads in (streamed as ``data:`` frames), events out.
Aggregator rows: events in, a projection of the Completion out.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from backends.stream import Aggregator, StreamParser, response_events
from pipeline.events import (
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

DEEP = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"x": ' + DEEP + "}"


def stream_events(*payloads: str | bytes) -> list[Event]:
    data = b"".join(b"data: " + (p.encode() if isinstance(p, str) else p) + b"\n\n" for p in payloads)
    parser = StreamParser()
    return parser.feed(data) + parser.close()


def delta(d: str, *, index: int = 0, finish: str = "null", extra: str = "") -> str:
    return f'{{"choices":[{{"index":{index},"delta":{d},"finish_reason":{finish}}}]{extra}}}'


# (rule, payloads, expected events)
DECODER_ROWS: list[tuple[str, list[str | bytes], list[Event]]] = [
    (
        "reasoning_content wins over reasoning and reasoning_text",
        [delta('{"reasoning_content":"A","reasoning":"B","reasoning_text":"C"}')],
        [ReasoningDelta("A")],
    ),
    ("reasoning wins over reasoning_text", [delta('{"reasoning":"B","reasoning_text":"C"}')], [ReasoningDelta("B")]),
    ("reasoning_text alone", [delta('{"reasoning_text":"C"}')], [ReasoningDelta("C")]),
    ("an empty reasoning_content falls through", [delta('{"reasoning_content":"","reasoning":"B"}')], [ReasoningDelta("B")]),
    ("reasoning before text in one delta", [delta('{"content":"T","reasoning":"R"}')], [ReasoningDelta("R"), TextDelta("T")]),
    ("empty content is no event", [delta('{"role":"assistant","content":""}')], []),
    ("finish_reason passes as sent", [delta("{}", finish='"length"')], [Finish("length")]),
    ("an unknown finish_reason passes as sent", [delta("{}", finish='"eos_token"')], [Finish("eos_token")]),
    (
        "usage in a choices: [] chunk",
        ['{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}'],
        [Usage(1, 2, 3)],
    ),
    (
        "usage with the last content chunk, after its choice events",
        [delta('{"content":"x"}', finish='"stop"', extra=',"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}')],
        [TextDelta("x"), Finish("stop"), Usage(1, 1, 2)],
    ),
    (
        "usage details: cached, reasoning, cache write",
        [
            '{"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,'
            '"prompt_tokens_details":{"cached_tokens":4,"cache_write_tokens":6},"completion_tokens_details":{"reasoning_tokens":3}}}'
        ],
        [Usage(10, 5, 15, cached_tokens=4, reasoning_tokens=3, cache_write_tokens=6)],
    ),
    (
        "cache_creation_tokens is a cache write",
        ['{"usage":{"prompt_tokens_details":{"cache_creation_tokens":7}}}'],
        [Usage(cache_write_tokens=7)],
    ),
    (
        "Anthropic's cache_creation_input_tokens is a cache write",
        ['{"usage":{"cache_creation_input_tokens":8}}'],
        [Usage(cache_write_tokens=8)],
    ),
    (
        "cache_write_tokens wins over the other names",
        ['{"usage":{"cache_creation_input_tokens":8,"prompt_tokens_details":{"cache_write_tokens":6,"cache_creation_tokens":7}}}'],
        [Usage(cache_write_tokens=6)],
    ),
    (
        "null details and null counts are not reported (vLLM sends prompt_tokens_details: null)",
        ['{"usage":{"prompt_tokens":2,"completion_tokens":null,"total_tokens":2,"prompt_tokens_details":null}}'],
        [Usage(2, 0, 2)],
    ),
    (
        "llama.cpp timings: numbers kept as sent, other values dropped",
        ['{"choices":[],"timings":{"prompt_n":3,"prompt_ms":1.5,"predicted_per_second":20.25,"note":"x","ok":true,"nested":{"a":1}}}'],
        [Timings({"prompt_n": 3, "prompt_ms": 1.5, "predicted_per_second": 20.25})],
    ),
    ("timings without numbers is no event", ['{"timings":{"note":"x"}}'], []),
    ("timings that is not an object is ignored", ['{"timings":[1,2]}'], []),
    (
        "an error object",
        ['{"error":{"message":"boom","type":"InternalServerError","code":500,"param":"n"}}'],
        [ServerError("boom", "InternalServerError", "500", "n")],
    ),
    ("an error string", ['{"error":"plain"}'], [ServerError("plain")]),
    ("an error object without a message", ['{"error":{"code":"x"}}'], [ServerError("(no message)", None, "x")]),
    (
        "n > 1: every event carries its choice",
        [delta('{"content":"a"}'), delta('{"content":"b"}', index=1), delta("{}", index=1, finish='"stop"')],
        [TextDelta("a"), TextDelta("b", 1), Finish("stop", 1)],
    ),
    (
        "n > 1: several choices in one chunk",
        ['{"choices":[{"index":0,"delta":{"content":"a"}},{"index":2,"delta":{"reasoning":"r"},"finish_reason":"length"}]}'],
        [TextDelta("a"), ReasoningDelta("r", 2), Finish("length", 2)],
    ),
    ("a choice without index is choice 0", ['{"choices":[{"delta":{"content":"a"}}]}'], [TextDelta("a")]),
    (
        "streamed tool-call pieces keep their index and id",
        [delta('{"tool_calls":[{"index":1,"id":"c","function":{"name":"f","arguments":"{"}}]}', index=2)],
        [ToolCallDelta(1, "c", "f", "{", choice=2)],
    ),
    (
        "a tool-call piece without function is an empty piece",
        [delta('{"tool_calls":[{"index":0,"id":"c"}]}')],
        [ToolCallDelta(0, "c", None, "")],
    ),
    (
        "a legacy function_call is tool call 0",
        [delta('{"function_call":{"name":"f","arguments":"{}"}}')],
        [ToolCallDelta(0, None, "f", "{}")],
    ),
    (
        "bytes in a skipped field are not read (invalid UTF-8 there is no fault)",
        [b'{"id":"\xff","choices":[{"delta":{"content":"ok"}}]}'],
        [TextDelta("ok")],
    ),
]


@pytest.mark.parametrize(("rule", "payloads", "expected"), DECODER_ROWS, ids=[row[0] for row in DECODER_ROWS])
def test_decoder_rule(rule: str, payloads: list[str | bytes], expected: list[Event]) -> None:
    assert stream_events(*payloads) == expected


# (rule, payload, words the fault must contain): a malformed chunk is one StreamFault, nothing else.
HOSTILE_ROWS: list[tuple[str, bytes, str]] = [
    ("a negative token count", b'{"usage":{"prompt_tokens":-3}}', "Expected `int` >= 0 - at `$.usage.prompt_tokens`"),
    ("a fractional token count", b'{"usage":{"completion_tokens":2.5}}', "got `float` - at `$.usage.completion_tokens`"),
    ("a token count as text", b'{"usage":{"total_tokens":"3"}}', "got `str` - at `$.usage.total_tokens`"),
    (
        "a negative detail count",
        b'{"usage":{"prompt_tokens_details":{"cached_tokens":-1}}}',
        "at `$.usage.prompt_tokens_details.cached_tokens`",
    ),
    ("a negative choice index", b'{"choices":[{"index":-1,"delta":{"content":"x"}}]}', "at `$.choices[0].index`"),
    ("a negative tool-call index", b'{"choices":[{"delta":{"tool_calls":[{"index":-2}]}}]}', "at `$.choices[0].delta.tool_calls[0].index`"),
    ("JSON nested 5,000 deep in a skipped field", b'{"x":' + DEEP.encode() + b',"choices":[]}', "JSON nested too deeply"),
    ("JSON nested 5,000 deep in timings", b'{"timings":{"a":' + DEEP.encode() + b"}}", "JSON nested too deeply"),
    ("invalid UTF-8 inside a content string", b'{"choices":[{"delta":{"content":"a\xff\xfeb"}}]}', "invalid UTF-8 inside a JSON string"),
    ("invalid UTF-8 inside an error message", b'{"error":{"message":"\xc3("}}', "invalid UTF-8 inside a JSON string"),
    ("a lone surrogate escape", b'{"choices":[{"delta":{"content":"\\udc00"}}]}', "invalid utf-16 surrogate pair"),
    ("bad JSON", b'{"choices": [', "truncated"),
    ("two JSON values in one frame", b'{"choices":[]}, {"choices":[]}', "trailing characters"),
    ("not an object", b"[1, 2]", "Expected `object`, got `array`"),
    ("content that is not text", b'{"choices":[{"delta":{"content":{"a":1}}}]}', "at `$.choices[0].delta.content`"),
]


@pytest.mark.parametrize(("rule", "payload", "words"), HOSTILE_ROWS, ids=[row[0] for row in HOSTILE_ROWS])
@pytest.mark.parametrize("framing", ["alone", "in a run"])
def test_hostile_chunk_is_one_fault(rule: str, payload: bytes, words: str, framing: str) -> None:
    good = delta('{"content":"before"}').encode()
    payloads = [payload] if framing == "alone" else [good, payload, good]
    events = stream_events(*payloads)
    assert events[:-1] == ([] if framing == "alone" else [TextDelta("before")])
    [fault] = events[-1:]
    assert isinstance(fault, StreamFault) and fault.message.startswith("malformed chunk") and words in fault.message
    assert len(fault.message) < 400  # an excerpt, not the payload


@pytest.mark.parametrize(("rule", "payload", "words"), HOSTILE_ROWS, ids=[row[0] for row in HOSTILE_ROWS])
def test_hostile_response_is_one_fault(rule: str, payload: bytes, words: str) -> None:
    [fault] = response_events(payload)
    assert isinstance(fault, StreamFault) and fault.message.startswith("malformed response") and words in fault.message


@pytest.mark.parametrize("where", ["feed", "close"])
def test_hostile_payload_at_close_is_a_fault(where: str) -> None:
    parser = StreamParser()
    data = b"data: " + DEEP_OBJECT.encode()
    events = parser.feed(data + (b"\n\n" if where == "feed" else b"")) + parser.close()
    assert [type(e) for e in events] == [StreamFault] and "nested too deeply" in events[0].message  # type: ignore[union-attr]
    assert parser.failed and parser.feed(b"data: {}\n\n") == []


# (rule, error frame, expected event)
ERROR_FRAME_ROWS: list[tuple[str, bytes, Event]] = [
    (
        "llama.cpp error: frame with a JSON object",
        b'error: {"code": 503, "message": "Loading model"}\n\n',
        ServerError("Loading model", None, "503"),
    ),
    ("event: error with a data line", b'event: error\ndata: {"message": "boom"}\n\n', ServerError("boom")),
    ("an error frame that is not JSON is the message", b"error: slot unavailable\n\n", ServerError("slot unavailable")),
    (
        "an error frame nested too deeply is a fault",
        b"error: " + DEEP_OBJECT.encode() + b"\n\n",
        StreamFault("malformed error frame (JSON nested too deeply): " + DEEP_OBJECT[:200] + "... (10007 bytes)"),
    ),
    (
        "an error frame with invalid UTF-8 in a string is a fault",
        b'error: {"message": "\xff"}\n\n',
        StreamFault('malformed error frame (invalid UTF-8 inside a JSON string): {"message": "\ufffd"}'),
    ),
]


@pytest.mark.parametrize(("rule", "data", "expected"), ERROR_FRAME_ROWS, ids=[row[0] for row in ERROR_FRAME_ROWS])
def test_error_frame_rule(rule: str, data: bytes, expected: Event) -> None:
    parser = StreamParser()
    assert parser.feed(data) + parser.close() == [expected]


def test_excerpts_escape_control_characters() -> None:
    [fault] = stream_events(b'{"x": "\x1b[2J\x07"')
    assert isinstance(fault, StreamFault) and "\x1b" not in fault.message and "\\x1b[2J\\x07" in fault.message


def test_done_ends_the_answer_even_inside_a_run() -> None:
    parser = StreamParser()
    events = parser.feed(b"data: " + delta('{"content":"a"}').encode() + b"\n\ndata: [DONE]\n\ndata: {bad\n\n" + b"x" * 100)
    assert events == [TextDelta("a")] and parser.done
    assert parser.feed(b"data: " + delta('{"content":"late"}').encode() + b"\n\n") == [] and parser.close() == []


def test_done_is_set_when_its_frame_completes_not_later() -> None:
    parser = StreamParser()
    assert parser.feed(b"data: [DONE]\r\r") == [] and parser.done  # the second CR completes the frame: no wait for an LF
    parser = StreamParser()
    parser.feed(b"data: [DONE]\n")
    assert not parser.done
    parser.feed(b"\n")
    assert parser.done


# --- the aggregator --------------------------------------------------------------------


def completion_of(events: list[Event]) -> Completion:
    aggregator = Aggregator()
    for event in events:
        aggregator.add(event)
    return aggregator.completion()


def outputs(c: Completion) -> list[tuple[int, str, str, str]]:
    return [(o.index, o.text, o.reasoning, o.finish_reason) for o in c.outputs]


def calls(c: Completion, choice: int = 0) -> list[tuple[str, str, str]]:
    return [(t.id, t.name, t.arguments) for t in c.outputs[choice].tool_calls]


F = Finish
T = TextDelta
R = ReasoningDelta
C = ToolCallDelta

# (rule, events, projection of the completion, expected)
AGGREGATOR_ROWS: list[tuple[str, list[Event], Any, Any]] = [
    (
        "n > 1: choices are kept apart, not interleaved",
        [T("A"), T("a", 1), T("B"), T("b", 1), F("stop"), F("length", 1)],
        outputs,
        [(0, "AB", "", "stop"), (1, "ab", "", "length")],
    ),
    (
        "n > 1: the top level is choice 0's, whichever choice finished last",
        [T("A"), T("a", 1), F("length"), F("stop", 1)],
        lambda c: (c.text, c.finish_reason, c.raw_finish_reason),
        ("A", "length", "length"),
    ),
    ("n > 1: reasoning per choice", [R("x"), R("y", 1), F("stop"), F("stop", 1)], outputs, [(0, "", "x", "stop"), (1, "", "y", "stop")]),
    ("n > 1: outputs in index order", [T("c", 2), T("a"), F("stop", 2), F("stop")], lambda c: [o.index for o in c.outputs], [0, 2]),
    ("n = 1: one output", [T("a"), F("stop")], outputs, [(0, "a", "", "stop")]),
    ("finish stop -> stop", [F("stop")], lambda c: c.finish_reason, "stop"),
    ("finish length -> length", [F("length")], lambda c: c.finish_reason, "length"),
    ("finish tool_calls -> tool_use", [F("tool_calls")], lambda c: c.finish_reason, "tool_use"),
    (
        "finish function_call -> tool_use",
        [F("function_call")],
        lambda c: (c.finish_reason, c.raw_finish_reason),
        ("tool_use", "function_call"),
    ),
    (
        "a new id on an index in use starts a new call (Ollama)",
        [C(0, "a", "f", "{}"), C(0, "b", "g", "[]"), F("tool_calls")],
        calls,
        [("a", "f", "{}"), ("b", "g", "[]")],
    ),
    (
        "the same id on every piece is one call (llama-cpp-python)",
        [C(0, "a", "f", '{"x"'), C(0, "a", "f", ": 1"), C(0, "a", "f", "}"), F("tool_calls")],
        calls,
        [("a", "f", '{"x": 1}')],
    ),
    (
        "pieces without id extend the latest call of their index",
        [C(0, "a", "f", "["), C(0, "b", "g", "{"), C(0, arguments="}"), C(0, "a", None, "]")],
        calls,
        [("a", "f", "["), ("b", "g", "{}"), ("a", "", "]")],
    ),
    ("an id arriving after id-less pieces names that call", [C(0, None, "f", "{"), C(0, "late", None, "}")], calls, [("late", "f", "{}")]),
    (
        "calls by index, calls sharing an index in order",
        [C(1, "x", "f", "1"), C(0, "a", "g", "2"), C(0, "b", "h", "3")],
        calls,
        [("a", "g", "2"), ("b", "h", "3"), ("x", "f", "1")],
    ),
    ("a call without id gets call_<index>", [C(3, None, "f", "{}")], calls, [("call_3", "f", "{}")]),
    (
        "tool calls per choice",
        [C(0, "a", "f", "1", choice=1), C(0, "b", "g", "2"), F("stop"), F("tool_calls", 1)],
        lambda c: (calls(c, 0), calls(c, 1)),
        ([("b", "g", "2")], [("a", "f", "1")]),
    ),
    (
        "parsed arguments, and {} for none",
        [C(0, "a", "f", '{"x": [1]}'), C(1, "b", "g", "  ")],
        lambda c: [t.parsed_arguments for t in c.tool_calls],
        [{"x": [1]}, {}],
    ),
    (
        "arguments nested too deeply are kept raw with a reason",
        [C(0, "a", "f", DEEP)],
        lambda c: (c.tool_calls[0].parsed_arguments, c.tool_calls[0].arguments_error),
        (None, "arguments are not valid JSON: JSON nested too deeply"),
    ),
    ("the last usage wins", [Usage(1, 1, 2), Usage(5, 3, 8)], lambda c: c.usage, Usage(5, 3, 8)),
    ("timings reach the completion", [Timings({"prompt_ms": 1.5})], lambda c: c.timings, {"prompt_ms": 1.5}),
]


@pytest.mark.parametrize(("rule", "events", "project", "expected"), AGGREGATOR_ROWS, ids=[row[0] for row in AGGREGATOR_ROWS])
def test_aggregator_rule(rule: str, events: list[Event], project: Any, expected: Any) -> None:
    if not any(isinstance(e, Finish) for e in events):
        events = [*events, *(Finish("stop", i) for i in sorted({getattr(e, "choice", 0) for e in events}))]
    assert project(completion_of(events)) == expected


# (rule, events, what .finish says)
FINISH_ROWS: list[tuple[str, list[Event], str | None]] = [
    ("nothing seen: no finish", [], None),
    ("choice 0 without a finish", [T("a")], None),
    ("choice 0 finished", [T("a"), F("stop")], "stop"),
    ("choice 1 not finished yet", [T("a"), T("b", 1), F("stop")], None),
    ("choice 0 not finished yet", [T("a"), T("b", 1), F("stop", 1)], None),
    ("all finished: choice 0's", [T("a"), T("b", 1), F("stop", 1), F("length")], "length"),
    ("only choice 1 seen: the lowest index seen", [T("b", 1), F("length", 1)], "length"),
]


@pytest.mark.parametrize(("rule", "events", "expected"), FINISH_ROWS, ids=[row[0] for row in FINISH_ROWS])
def test_finish_rule(rule: str, events: list[Event], expected: str | None) -> None:
    aggregator = Aggregator()
    for event in events:
        aggregator.add(event)
    assert aggregator.finish == expected


@pytest.mark.parametrize(
    ("events", "words"),
    [
        ([T("a")], "finish_reason None is not a completion"),
        ([F("error")], "finish_reason 'error' is not a completion"),
        ([F("eos")], "finish_reason 'eos' is not a completion"),
        ([F("stop"), F("content_filter", 1)], "finish_reason 'content_filter' is not a completion (choice 1)"),
        ([], "the answer has no choice"),
    ],
)
def test_a_finish_that_is_not_a_completion_raises(events: list[Event], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        completion_of(events)


def test_streamed_and_whole_answers_with_several_choices_give_the_same_completion() -> None:
    stream = (
        b"".join(
            b"data: " + p.encode() + b"\n\n"
            for p in [
                '{"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning_content":"think"}}]}',
                '{"choices":[{"index":1,"delta":{"role":"assistant","content":"Hello"}}]}',
                '{"choices":[{"index":0,"delta":{"content":"Hi"}}]}',
                '{"choices":[{"index":1,"delta":{"content":" there"}}]}',
                '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","function":{"name":"f","arguments":"{\\"a\\""}}]}}]}',
                '{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":": 1}"}}]}}]}',
                '{"choices":[{"index":1,"delta":{},"finish_reason":"stop"}]}',
                '{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}',
                '{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}',
            ]
        )
        + b"data: [DONE]\n\n"
    )
    whole = (
        b'{"object":"chat.completion","choices":['
        b'{"index":0,"message":{"role":"assistant","content":"Hi","reasoning_content":"think","tool_calls":'
        b'[{"id":"t1","type":"function","function":{"name":"f","arguments":"{\\"a\\": 1}"}}]},"finish_reason":"tool_calls"},'
        b'{"index":1,"message":{"role":"assistant","content":"Hello there"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}'
    )
    parser = StreamParser()
    streamed = completion_of(parser.feed(stream) + parser.close())
    assert streamed == completion_of(response_events(whole))
    assert outputs(streamed) == [(0, "Hi", "think", "tool_use"), (1, "Hello there", "", "stop")]
    assert (streamed.text, streamed.tool_calls[0].parsed_arguments) == ("Hi", {"a": 1})
    assert msgspec.json.decode(msgspec.json.encode(streamed), type=Completion) == streamed


# ---- usage reported more than once in one answer ----

USAGE_ROWS = [
    # (events, expected usage): one choice -> the last report wins; several choices -> one report per choice, summed
    ([TextDelta("a"), Usage(9, 1, 10), Usage(9, 2, 11), Finish("stop")], Usage(9, 2, 11)),
    ([TextDelta("a"), TextDelta("b", 1), Usage(9, 2, 11), Usage(9, 3, 12), Finish("stop"), Finish("stop", 1)], Usage(9, 5, 14)),
    ([TextDelta("a"), TextDelta("b", 1), Usage(9, 5, 14), Finish("stop"), Finish("stop", 1)], Usage(9, 5, 14)),
]


@pytest.mark.parametrize(("events", "expected"), USAGE_ROWS, ids=["one-choice-last-wins", "two-choices-summed", "two-choices-one-report"])
def test_usage_reports_per_answer(events: list[Any], expected: Usage) -> None:
    aggregator = Aggregator()
    for event in events:
        aggregator.add(event)
    assert aggregator.completion().usage == expected
