"""The SSE decoder and the stream parser: golden tables, every split, big events."""

from __future__ import annotations

import pytest

from backends.sse import DataRun, SSEDecoder, SSEError, SSEEvent
from backends.stream import Aggregator, StreamParser, response_events
from pipeline.events import Finish, ReasoningDelta, ServerError, StreamFault, TextDelta, Timings, ToolCallDelta, Usage

M = "message"
CASES: list[tuple[bytes, list[SSEEvent]]] = [
    (b"data: a\n\n", [SSEEvent(M, b"a")]),
    (b"data: a\r\n\r\n", [SSEEvent(M, b"a")]),
    (b"data: a\r\r", [SSEEvent(M, b"a")]),
    (b"data: a\r\n\ndata: b\r\r", [SSEEvent(M, b"a"), SSEEvent(M, b"b")]),
    (b"data:a\n\n", [SSEEvent(M, b"a")]),
    (b"data:  two spaces\n\n", [SSEEvent(M, b" two spaces")]),
    (b"data: line1\ndata: line2\n\n", [SSEEvent(M, b"line1\nline2")]),
    (b": ping\n\ndata: x\n: comment inside\n\n", [SSEEvent(M, b"x")]),
    (b"event: update\ndata: x\n\n", [SSEEvent("update", b"x")]),
    (b"id: 7\nretry: 100\nfoo: bar\ndata: x\n\n", [SSEEvent(M, b"x")]),
    (b"event: only\n\ndata: y\n\n", [SSEEvent(M, b"y")]),
    (b"data\n\n", [SSEEvent(M, b"")]),
    (b'error: {"message": "slot unavailable"}\n\n', [SSEEvent("error", b'{"message": "slot unavailable"}')]),
    (b"\n\n\n", []),
    (b"data: unterminated", [SSEEvent(M, b"unterminated")]),  # close() dispatches what is pending
]


def decode_all(data: bytes, *, split: int | None = None, pack: bool = False) -> list[SSEEvent]:
    decoder = SSEDecoder(pack_json_runs=pack)
    pieces = [data] if split is None else [data[i : i + split] for i in range(0, len(data), split)]
    items: list[SSEEvent | DataRun] = []
    for piece in pieces:
        items += decoder.feed(piece)
    items += decoder.close()
    events: list[SSEEvent] = []
    for item in items:
        events += [SSEEvent(M, p) for p in item.payloads] if isinstance(item, DataRun) else [item]
    return events


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_golden(data: bytes, expected: list[SSEEvent]) -> None:
    assert decode_all(data) == expected


@pytest.mark.parametrize(("data", "expected"), CASES)
@pytest.mark.parametrize("pack", [False, True])
def test_split_at_every_byte(data: bytes, expected: list[SSEEvent], pack: bool) -> None:
    assert decode_all(data, split=1, pack=pack) == expected
    for cut in range(1, len(data)):
        decoder = SSEDecoder(pack_json_runs=pack)
        items = decoder.feed(data[:cut]) + decoder.feed(data[cut:]) + decoder.close()
        flat: list[SSEEvent] = []
        for item in items:
            flat += [SSEEvent(M, p) for p in item.payloads] if isinstance(item, DataRun) else [item]
        assert flat == expected, cut


def test_pack_turns_plain_frames_into_one_run() -> None:
    items = SSEDecoder(pack_json_runs=True).feed(b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: [DONE]\n\n')
    assert items == [DataRun([b'{"a":1}', b'{"b":2}']), SSEEvent(M, b"[DONE]")]
    items = SSEDecoder(pack_json_runs=True).feed(b'data: {"a":1}\r\n\r\ndata: {"b":2}\r\n\r\n')
    assert items == [DataRun([b'{"a":1}', b'{"b":2}'])]


def test_event_over_the_limit_is_a_clear_error() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(SSEError, match="larger than the limit of 1000 bytes"):
        decoder.feed(b"data: " + b"x" * 2000)
    decoder = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(SSEError):
        for _ in range(30):
            decoder.feed(b"data: " + b"x" * 100 + b"\n")


def test_one_event_of_64_mib_in_network_sized_pieces() -> None:
    text = "a" * (64 * 1024 * 1024)
    payload = b'data: {"choices": [{"delta": {"content": "' + text.encode() + b'"}}]}\n\n'
    payload += b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
    parser = StreamParser()
    events = []
    view = memoryview(payload)
    for start in range(0, len(payload), 65536):
        events += parser.feed(bytes(view[start : start + 65536]))
    events += parser.close()
    assert parser.done and len(events) == 2
    assert isinstance(events[0], TextDelta) and len(events[0].text) == len(text)
    assert events[1] == Finish("stop")


def chunk(delta: str, finish: str = "null", extra: str = "") -> bytes:
    return f'data: {{"id":"c","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]{extra}}}\n\n'.encode()


VLLM_STREAM = (
    chunk('{"role":"assistant","content":""}')
    + chunk('{"reasoning":"Let me think"}')
    + chunk('{"reasoning_content":" more"}')
    + chunk('{"content":"Hello"}')
    + chunk('{"content":" wörld"}')
    + chunk('{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather"}}]}')
    + chunk('{"tool_calls":[{"index":0,"function":{"arguments":"{\\"city\\": "}}]}')
    + chunk('{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"now","arguments":""}}]}')
    + chunk('{"tool_calls":[{"index":0,"function":{"arguments":"\\"Paris\\"}"}}]}')
    + chunk("{}", '"tool_calls"')
    + b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}\n\n'
    + b"data: [DONE]\n\n"
)


def parse(data: bytes, split: int | None = None) -> list[object]:
    parser = StreamParser()
    pieces = [data] if split is None else [data[i : i + split] for i in range(0, len(data), split)]
    events: list[object] = []
    for piece in pieces:
        events += parser.feed(piece)
    return events + parser.close()


def test_vllm_stream_events_and_completion() -> None:
    events = parse(VLLM_STREAM)
    assert events == [
        ReasoningDelta("Let me think"),
        ReasoningDelta(" more"),
        TextDelta("Hello"),
        TextDelta(" wörld"),
        ToolCallDelta(0, "call_a", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"city": '),
        ToolCallDelta(1, "call_b", "now", ""),
        ToolCallDelta(0, None, None, '"Paris"}'),
        Finish("tool_calls"),
        Usage(12, 9, 21),
    ]
    aggregator = Aggregator()
    for event in events:
        aggregator.add(event)  # type: ignore[arg-type]
    completion = aggregator.completion()
    assert (completion.text, completion.reasoning, completion.finish_reason) == ("Hello wörld", "Let me think more", "tool_use")
    assert [(c.id, c.name, c.parsed_arguments) for c in completion.tool_calls] == [
        ("call_a", "get_weather", {"city": "Paris"}),
        ("call_b", "now", {}),
    ]
    assert completion.usage == Usage(12, 9, 21)


@pytest.mark.parametrize("split", [1, 2, 3, 7, 64, 1000])
def test_vllm_stream_any_split(split: int) -> None:
    assert parse(VLLM_STREAM, split) == parse(VLLM_STREAM)


def test_crlf_and_cr_streams_parse_the_same() -> None:
    assert parse(VLLM_STREAM.replace(b"\n", b"\r\n")) == parse(VLLM_STREAM)
    assert parse(VLLM_STREAM.replace(b"\n", b"\r"), 5) == parse(VLLM_STREAM)


def test_llamacpp_usage_with_last_chunk_and_timings() -> None:
    data = chunk('{"content":"hi"}') + chunk(
        "{}", '"stop"', ',"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4},"timings":{"predicted_ms":1.5}'
    )
    assert parse(data) == [TextDelta("hi"), Finish("stop"), Usage(3, 1, 4), Timings({"predicted_ms": 1.5})]


def test_malformed_chunk_keeps_earlier_events_then_faults() -> None:
    data = chunk('{"content":"ok"}') + b'data: {"choices": [{"delta": {"content": "x"\n\n' + chunk('{"content":"after"}')
    events = parse(data)
    assert events[0] == TextDelta("ok")
    assert isinstance(events[1], StreamFault) and "malformed chunk" in events[1].message
    assert len(events) == 2


def test_error_objects_in_the_stream() -> None:
    data = chunk('{"content":"a"}') + b'data: {"error": {"message": "boom", "type": "InternalServerError", "code": 500}}\n\n'
    assert parse(data)[1] == ServerError("boom", "InternalServerError", "500")
    assert parse(b'data: {"error": "plain"}\n\n') == [ServerError("plain")]
    assert parse(b'error: {"code": 503, "message": "Loading model"}\n\n') == [ServerError("Loading model", None, "503")]


def test_nothing_after_done() -> None:
    assert parse(b"data: [DONE]\n\n" + chunk('{"content":"late"}')) == []


def test_non_stream_response_maps_to_the_same_completion() -> None:
    body = (
        b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi",'
        b'"reasoning":null,"tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"}},'
        b'{"id":"t2","type":"function","function":{"name":"g","arguments":"[1]"}}]},"finish_reason":"tool_calls"}],'
        b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}'
    )
    aggregator = Aggregator()
    for event in response_events(body):
        aggregator.add(event)
    completion = aggregator.completion()
    assert completion.text == "Hi" and completion.finish_reason == "tool_use"
    assert [(c.id, c.name, c.parsed_arguments) for c in completion.tool_calls] == [("t1", "f", {}), ("t2", "g", [1])]
    assert isinstance(response_events(b"<html>oops</html>")[0], StreamFault)


def test_unparseable_tool_arguments_are_kept_raw() -> None:
    aggregator = Aggregator()
    for event in (ToolCallDelta(0, "c", "f", "{broken"), Finish("tool_calls")):
        aggregator.add(event)
    [call] = aggregator.completion().tool_calls
    assert call.parsed_arguments is None and call.arguments == "{broken" and call.arguments_error
