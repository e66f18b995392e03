"""Rule table for the chunk decoder (``backends.chunks``): one JSON chunk in, its events out.

Each row names the rule of the module docstring it pins. Rows run on the decoder
directly (``decode_chunk`` + ``chunk_events``), so a row fails for exactly one
rule; tests/test_stream_rules.py holds the rows that go through the stream
parser (hostile payloads, error frames) and is not repeated here.

Where a rule holds for streamed deltas and whole messages alike, the row is
checked both ways: the delta as a ``chat.completion.chunk`` and the same fields
as a non-streamed ``message``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from backends.chunks import (
    DECODE_ERRORS,
    Chunk,
    ErrorObject,
    chunk_events,
    decode_chunk,
    decode_problem,
    excerpt,
    server_error,
    timings_event,
    usage_event,
)
from pipeline.events import Event, Finish, ReasoningDelta, ServerError, TextDelta, Timings, ToolCallDelta, Usage


def events_of(body: dict[str, Any] | bytes) -> list[Event]:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    out: list[Event] = []
    chunk_events(decode_chunk(payload), out)
    return out


def streamed(delta: dict[str, Any], *, index: int | None = None, finish: str | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"delta": delta, "finish_reason": finish}
    if index is not None:
        choice["index"] = index
    return {"object": "chat.completion.chunk", "choices": [choice]}


def whole(message: dict[str, Any], *, index: int | None = None, finish: str | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"message": message, "finish_reason": finish}
    if index is not None:
        choice["index"] = index
    return {"object": "chat.completion", "choices": [choice]}


# (rule, delta or message fields, choice index, expected events): checked as a streamed delta AND as a whole message
BOTH_WAYS: list[tuple[str, dict[str, Any], int | None, list[Event]]] = [
    ("reasoning_content first", {"reasoning_content": "A", "reasoning": "B", "reasoning_text": "C"}, None, [ReasoningDelta("A")]),
    ("then reasoning", {"reasoning": "B", "reasoning_text": "C"}, None, [ReasoningDelta("B")]),
    ("then reasoning_text", {"reasoning_text": "C"}, None, [ReasoningDelta("C")]),
    (
        "an empty reasoning_content falls through to reasoning_text",
        {"reasoning_content": "", "reasoning_text": "C"},
        None,
        [ReasoningDelta("C")],
    ),
    ("a null reasoning_content falls through", {"reasoning_content": None, "reasoning": "B"}, None, [ReasoningDelta("B")]),
    ("an empty reasoning is no event", {"reasoning": ""}, None, []),
    ("reasoning comes before text", {"content": "T", "reasoning": "R"}, None, [ReasoningDelta("R"), TextDelta("T")]),
    ("empty content is no event", {"content": ""}, None, []),
    ("null content is no event", {"content": None}, None, []),
    ("every event carries its choice's index", {"content": "T", "reasoning": "R"}, 3, [ReasoningDelta("R", 3), TextDelta("T", 3)]),
    ("a choice without index is choice 0", {"content": "T"}, None, [TextDelta("T", 0)]),
    (
        "a legacy function_call is tool call 0",
        {"function_call": {"name": "f", "arguments": "{}"}},
        None,
        [ToolCallDelta(0, None, "f", "{}")],
    ),
    ("a function_call without arguments has empty arguments", {"function_call": {"name": "f"}}, 2, [ToolCallDelta(0, None, "f", "", 2)]),
    (
        "function_call is ignored beside tool_calls (llama-cpp-python sends both)",
        {
            "tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}],
            "function_call": {"name": "f", "arguments": "{}"},
        },
        None,
        [ToolCallDelta(0, "c", "f", "{}")],
    ),
    (
        "function_call is read beside an empty tool_calls",
        {"tool_calls": [], "function_call": {"name": "g", "arguments": "[]"}},
        None,
        [ToolCallDelta(0, None, "g", "[]")],
    ),
    (
        "a tool call without function: no name, empty arguments",
        {"tool_calls": [{"index": 0, "id": "c"}]},
        None,
        [ToolCallDelta(0, "c", None, "")],
    ),
    (
        "a tool call with null arguments has empty arguments",
        {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": None}}]},
        None,
        [ToolCallDelta(0, "c", "f", "")],
    ),
]


@pytest.mark.parametrize(("rule", "fields", "index", "expected"), BOTH_WAYS, ids=[row[0] for row in BOTH_WAYS])
@pytest.mark.parametrize("shape", ["streamed delta", "whole message"])
def test_rule_for_deltas_and_messages(rule: str, fields: dict[str, Any], index: int | None, expected: list[Event], shape: str) -> None:
    body = streamed(fields, index=index) if shape == "streamed delta" else whole(fields, index=index)
    assert events_of(body) == expected


# (rule, chunk, expected events)
ROWS: list[tuple[str, dict[str, Any] | bytes, list[Event]]] = [
    # --- tool calls: streamed pieces keep the server's index, whole messages number by position ---
    (
        "a streamed piece carries its call's index",
        streamed({"tool_calls": [{"index": 2, "id": "c", "function": {"name": "f", "arguments": "{"}}]}),
        [ToolCallDelta(2, "c", "f", "{")],
    ),
    (
        "a streamed piece without index is call 0",
        streamed({"tool_calls": [{"id": "c", "function": {"arguments": "x"}}]}),
        [ToolCallDelta(0, "c", None, "x")],
    ),
    (
        "several streamed pieces keep their own indexes",
        streamed({"tool_calls": [{"index": 1, "function": {"arguments": "a"}}, {"index": 0, "function": {"arguments": "b"}}]}, index=1),
        [ToolCallDelta(1, None, None, "a", 1), ToolCallDelta(0, None, None, "b", 1)],
    ),
    (
        "a whole message's calls are numbered by position, whatever index they carry",
        whole(
            {
                "tool_calls": [
                    {"index": 5, "id": "a", "function": {"name": "f", "arguments": "{}"}},
                    {"index": 5, "id": "b", "function": {"name": "g", "arguments": "[]"}},
                ]
            },
            index=1,
        ),
        [ToolCallDelta(0, "a", "f", "{}", 1), ToolCallDelta(1, "b", "g", "[]", 1)],
    ),
    # --- finish ---
    ("finish_reason stop", streamed({}, finish="stop"), [Finish("stop")]),
    ("finish_reason length (the answer was cut at max_tokens)", streamed({}, finish="length"), [Finish("length")]),
    ("finish_reason on a whole message", whole({"content": "x"}, index=2, finish="length"), [TextDelta("x", 2), Finish("length", 2)]),
    ("finish after the choice's other events", streamed({"content": "x"}, finish="stop"), [TextDelta("x"), Finish("stop")]),
    ("a finish without delta or message", {"choices": [{"index": 1, "finish_reason": "stop"}]}, [Finish("stop", 1)]),
    ("a choice with neither delta nor message nor finish is nothing", {"choices": [{"index": 0}]}, []),
    ("choices: [] alone is nothing", {"choices": []}, []),
    ("choices: null is nothing", {"choices": None}, []),
    (
        "a delta wins over a message in the same choice",
        {"choices": [{"delta": {"content": "d"}, "message": {"content": "m"}}]},
        [TextDelta("d")],
    ),
    # --- usage ---
    ("usage: the three counts", {"usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}, [Usage(3, 2, 5)]),
    (
        "usage: cached_tokens from prompt_tokens_details",
        {"usage": {"prompt_tokens_details": {"cached_tokens": 4}}},
        [Usage(cached_tokens=4)],
    ),
    (
        "usage: reasoning_tokens from completion_tokens_details",
        {"usage": {"completion_tokens_details": {"reasoning_tokens": 3}}},
        [Usage(reasoning_tokens=3)],
    ),
    ("usage: SGLang's top-level reasoning_tokens", {"usage": {"reasoning_tokens": 7}}, [Usage(reasoning_tokens=7)]),
    (
        "usage: completion_tokens_details wins over the top-level reasoning_tokens",
        {"usage": {"reasoning_tokens": 7, "completion_tokens_details": {"reasoning_tokens": 3}}},
        [Usage(reasoning_tokens=3)],
    ),
    (
        "usage: a null detail falls back to the top-level reasoning_tokens",
        {"usage": {"reasoning_tokens": 7, "completion_tokens_details": {"reasoning_tokens": None}}},
        [Usage(reasoning_tokens=7)],
    ),
    (
        "usage: a detail of 0 is a report of 0, not a fallback",
        {"usage": {"reasoning_tokens": 7, "completion_tokens_details": {"reasoning_tokens": 0}}},
        [Usage(reasoning_tokens=0)],
    ),
    (
        "usage: cache_creation_tokens wins over cache_creation_input_tokens",
        {"usage": {"cache_creation_input_tokens": 8, "prompt_tokens_details": {"cache_creation_tokens": 7}}},
        [Usage(cache_write_tokens=7)],
    ),
    (
        "usage: cache_write_tokens wins over cache_creation_tokens",
        {"usage": {"prompt_tokens_details": {"cache_write_tokens": 6, "cache_creation_tokens": 7}}},
        [Usage(cache_write_tokens=6)],
    ),
    (
        "usage: prompt details without a cache write keep cache_creation_input_tokens",
        {"usage": {"cache_creation_input_tokens": 8, "prompt_tokens_details": {"cached_tokens": 1}}},
        [Usage(cached_tokens=1, cache_write_tokens=8)],
    ),
    ("usage: null counts are not reported", {"usage": {"prompt_tokens": None, "total_tokens": None}}, [Usage()]),
    ("usage: an empty usage object is a Usage of zeros", {"usage": {}}, [Usage()]),
    ("usage: null is no usage", {"usage": None}, []),
    (
        "usage comes after the choices' events",
        {"choices": [{"delta": {"content": "x"}, "finish_reason": "stop"}], "usage": {"total_tokens": 1}},
        [TextDelta("x"), Finish("stop"), Usage(total_tokens=1)],
    ),
    # --- timings ---
    ("timings: integer and float values kept as sent", {"timings": {"a": 1, "b": 2.5}}, [Timings({"a": 1, "b": 2.5})]),
    ("timings: booleans are not numbers", {"timings": {"a": True, "b": 1}}, [Timings({"b": 1})]),
    ("timings: only booleans is no event", {"timings": {"a": False}}, []),
    ("timings: strings and nulls dropped", {"timings": {"a": "1", "b": None, "c": 3}}, [Timings({"c": 3})]),
    ("timings: an empty object is no event", {"timings": {}}, []),
    ("timings: null is no event", {"timings": None}, []),
    ("timings: a number is no event", {"timings": 3}, []),
    (
        "timings come after usage",
        {"usage": {"total_tokens": 1}, "timings": {"a": 1}},
        [Usage(total_tokens=1), Timings({"a": 1})],
    ),
    # --- in-stream errors ---
    (
        "an error object keeps message, type, code and param",
        {"error": {"message": "m", "type": "t", "code": "c", "param": "p"}},
        [ServerError("m", "t", "c", "p")],
    ),
    ("a numeric error code becomes its digits", {"error": {"message": "m", "code": 503}}, [ServerError("m", None, "503")]),
    ("an error object with an empty message says so", {"error": {"message": ""}}, [ServerError("(no message)")]),
    ("an error string is the message", {"error": "plain"}, [ServerError("plain")]),
    ("error: null is no error", {"error": None}, []),
    (
        "an error comes before the choices' events",
        {"error": "e", "choices": [{"delta": {"content": "x"}}]},
        [ServerError("e"), TextDelta("x")],
    ),
    # --- the decoder reads only what it uses ---
    ("unknown fields are skipped", {"id": "x", "created": 1, "system_fingerprint": {"a": [1]}, "choices": []}, []),
    ("unknown delta fields are skipped", streamed({"role": "assistant", "refusal": None, "audio": {"x": 1}}), []),
]


@pytest.mark.parametrize(("rule", "body", "expected"), ROWS, ids=[row[0] for row in ROWS])
def test_chunk_rule(rule: str, body: dict[str, Any] | bytes, expected: list[Event]) -> None:
    assert events_of(body) == expected


def test_events_are_appended_to_the_list_given() -> None:
    out: list[Event] = [TextDelta("before")]
    chunk_events(decode_chunk(b'{"choices":[{"delta":{"content":"x"}}]}'), out)
    assert out == [TextDelta("before"), TextDelta("x")]


# --- the pieces on their own ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("text", ServerError("text")),
        (ErrorObject(message="m", type="t", code=7, param="p"), ServerError("m", "t", "7", "p")),
        (ErrorObject(message="m", code=0), ServerError("m", None, "0")),
        (ErrorObject(), ServerError("(no message)")),
    ],
    ids=["string", "object with an int code", "code 0 is a code", "empty object"],
)
def test_server_error(error: ErrorObject | str, expected: ServerError) -> None:
    assert server_error(error) == expected


def test_usage_event_from_a_decoded_chunk() -> None:
    chunk = decode_chunk(b'{"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}')
    assert chunk.usage is not None and usage_event(chunk.usage) == Usage(1, 2, 3)


@pytest.mark.parametrize(
    ("timings", "expected"),
    [({"x": 1.0}, Timings({"x": 1.0})), ({"x": True}, None), ([1], None), ("x", None), (None, None)],
    ids=["float", "bool", "list", "string", "null"],
)
def test_timings_event(timings: Any, expected: Timings | None) -> None:
    assert timings_event(timings) == expected


# (rule, payload, the problem decode_problem names)
PROBLEM_ROWS: list[tuple[str, bytes, str]] = [
    (
        "a negative count names the path",
        b'{"usage":{"cached_tokens":1,"prompt_tokens":-1}}',
        "Expected `int` >= 0 - at `$.usage.prompt_tokens`",
    ),
    ("a negative reasoning count", b'{"usage":{"reasoning_tokens":-1}}', "Expected `int` >= 0 - at `$.usage.reasoning_tokens`"),
    (
        "a negative cache write",
        b'{"usage":{"cache_creation_input_tokens":-1}}',
        "Expected `int` >= 0 - at `$.usage.cache_creation_input_tokens`",
    ),
    (
        "a negative completion detail",
        b'{"usage":{"completion_tokens_details":{"reasoning_tokens":-2}}}',
        "at `$.usage.completion_tokens_details.reasoning_tokens`",
    ),
    (
        "a negative cache_write_tokens",
        b'{"usage":{"prompt_tokens_details":{"cache_write_tokens":-2}}}',
        "at `$.usage.prompt_tokens_details.cache_write_tokens`",
    ),
    (
        "a negative cache_creation_tokens",
        b'{"usage":{"prompt_tokens_details":{"cache_creation_tokens":-2}}}',
        "at `$.usage.prompt_tokens_details.cache_creation_tokens`",
    ),
    ("invalid UTF-8 in a string", b'{"choices":[{"delta":{"content":"\xff"}}]}', "invalid UTF-8 inside a JSON string"),
    ("nesting too deep", b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}", "JSON nested too deeply"),
    ("a usage that is not an object", b'{"usage":[1]}', "Expected `object | null`, got `array` - at `$.usage`"),
    ("an error that is neither text nor object", b'{"error":5}', "at `$.error`"),
]


@pytest.mark.parametrize(("rule", "payload", "problem"), PROBLEM_ROWS, ids=[row[0] for row in PROBLEM_ROWS])
def test_a_payload_that_is_not_a_chunk_raises_a_decode_error_with_its_problem(rule: str, payload: bytes, problem: str) -> None:
    with pytest.raises(DECODE_ERRORS) as caught:
        decode_chunk(payload)
    assert problem in decode_problem(caught.value)


def test_decode_problem_of_other_errors_is_their_text() -> None:
    assert decode_problem(ValueError("plain words")) == "plain words"
    assert decode_problem(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")) == "invalid UTF-8 inside a JSON string"


def test_a_valid_chunk_decodes_to_the_struct() -> None:
    assert decode_chunk(b"{}") == Chunk()


# (rule, data, limit, excerpt)
EXCERPT_ROWS: list[tuple[str, bytes | str, int, str]] = [
    ("short bytes are kept whole", b"abc", 200, "abc"),
    ("text at the limit is kept whole", "a" * 5, 5, "aaaaa"),
    ("one character over the limit is cut, with the length", "a" * 6, 5, "aaaaa... (6 bytes)"),
    ("the length counts bytes of the whole payload", b"\xc3\xa9" * 6, 5, "ééééé... (12 bytes)"),
    ("multi-byte characters are not cut short by the byte read", "é" * 5, 5, "ééééé"),
    ("bytes of four-byte characters up to the limit", "🙂" * 5, 5, "🙂🙂🙂🙂🙂"),
    ("control characters are escaped", b"a\x1b[2J\nb", 200, "a\\x1b[2J\\nb"),
    ("four-byte characters are read far enough to tell a cut", "🙂".encode() * 6, 5, "🙂🙂🙂🙂🙂... (24 bytes)"),
    ("printable characters stay as they are beside escaped ones", b"a\\b'\x1b", 200, "a\\b'\\x1b"),
    ("invalid UTF-8 is replaced", b"a\xffb", 200, "a\ufffdb"),
    ("printable text is left alone", "a b\u00e9", 200, "a b\u00e9"),
    ("the default limit is 200 characters", "x" * 201, 200, "x" * 200 + "... (201 bytes)"),
]


@pytest.mark.parametrize(("rule", "data", "limit", "expected"), EXCERPT_ROWS, ids=[row[0] for row in EXCERPT_ROWS])
def test_excerpt_rule(rule: str, data: bytes | str, limit: int, expected: str) -> None:
    assert excerpt(data, limit) == expected


def test_excerpt_default_limit() -> None:
    assert excerpt("x" * 201) == "x" * 200 + "... (201 bytes)"
    assert excerpt(b"x" * 200) == "x" * 200
