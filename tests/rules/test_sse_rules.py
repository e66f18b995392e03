"""Rule table for the SSE decoder (``backends.sse``): one row per rule, each able to fail.

Each row names the rule it pins (the module docstring's rules, or the WHATWG
event-stream interpretation rules, html.spec.whatwg.org "9.2.6 Interpreting an
event stream"), the bytes in, and the events out. Every row is checked three
ways: fed whole, fed one byte at a time, and with the ``DataRun`` fast path on
(runs flattened back to events): the events never depend on how bytes arrive.

tests/test_sse.py and tests/test_sse_split.py hold the golden cases, hypothesis
split invariance and the linear-work meter; this table fills the gaps between
them (line-end mixes, field parsing details, dispatch and reset, [DONE], the
limits at their exact boundary, and what a broken decoder does afterwards).
"""

from __future__ import annotations

import pytest

from backends.sse import DONE, DataRun, Item, SSEDecoder, SSEError, SSEEvent

M = "message"

# (rule, bytes in, events out)
ROWS: list[tuple[str, bytes, list[SSEEvent]]] = [
    # --- line ends ---
    ("WHATWG: a line ends in LF", b"data: a\n\n", [SSEEvent(M, b"a")]),
    ("WHATWG: a line ends in CRLF", b"data: a\r\n\r\n", [SSEEvent(M, b"a")]),
    ("WHATWG: a line ends in a lone CR", b"data: a\r\r", [SSEEvent(M, b"a")]),
    (
        "line ends mixed freely in one stream (CR, LF, CRLF)",
        b"data: a\rdata: b\r\n\ndata: c\n\r",
        [SSEEvent(M, b"a\nb"), SSEEvent(M, b"c")],
    ),
    ("an LF right after a CR belongs to it (one line end, not a blank line)", b"data: a\r\ndata: b\r\n\r\n", [SSEEvent(M, b"a\nb")]),
    (
        "CR LF CR is a line end and a blank line: the event is dispatched",
        b"data: a\r\n\rdata: b\r\r",
        [SSEEvent(M, b"a"), SSEEvent(M, b"b")],
    ),
    ("LF CR is two line ends: the event is dispatched", b"data: a\n\rdata: b\n\n", [SSEEvent(M, b"a"), SSEEvent(M, b"b")]),
    # --- data lines ---
    ("data: lines accumulate, joined with LF", b"data: a\ndata: b\ndata: c\n\n", [SSEEvent(M, b"a\nb\nc")]),
    ("multi-line data with CRLF ends is joined with LF, never CRLF", b"data: a\r\ndata: b\r\n\r\n", [SSEEvent(M, b"a\nb")]),
    ("multi-line data with CR ends is joined with LF", b"data: a\rdata: b\r\r", [SSEEvent(M, b"a\nb")]),
    (
        "multi-line JSON data with CRLF decodes to one payload",
        b'data: {"a":\r\ndata: 1}\r\n\r\n',
        [SSEEvent(M, b'{"a":\n1}')],
    ),
    ("WHATWG: one space after the colon is dropped", b"data: a\n\n", [SSEEvent(M, b"a")]),
    ("WHATWG: no space after the colon is fine", b"data:a\n\n", [SSEEvent(M, b"a")]),
    ("WHATWG: only the first space is dropped", b"data:  a\n\n", [SSEEvent(M, b" a")]),
    ("WHATWG: a tab after the colon is kept", b"data:\ta\n\n", [SSEEvent(M, b"\ta")]),
    ("WHATWG: a field without a colon has an empty value", b"data\n\n", [SSEEvent(M, b"")]),
    ("WHATWG: empty data lines add empty lines", b"data\ndata\n\n", [SSEEvent(M, b"\n")]),
    ("a field without a colon ends at its line end (a colon later is another line's)", b"data\ndata: x\n\n", [SSEEvent(M, b"\nx")]),
    ("an unknown field without a colon ends at its line end", b"foo\nevent: x\ndata: a\n\n", [SSEEvent("x", b"a")]),
    ("WHATWG: data: with nothing after it is an empty line", b"data:\ndata: x\n\n", [SSEEvent(M, b"\nx")]),
    ("a colon later in the value is kept", b"data: a: b\n\n", [SSEEvent(M, b"a: b")]),
    ("the field name is case-sensitive (Data is unknown)", b"Data: a\ndata: b\n\n", [SSEEvent(M, b"b")]),
    ("a field name that only starts with data is unknown", b"datax: a\ndata: b\n\n", [SSEEvent(M, b"b")]),
    ("a leading space makes a field name unknown", b" data: a\ndata: b\n\n", [SSEEvent(M, b"b")]),
    # --- dispatch ---
    ("WHATWG: a blank line dispatches the event", b"data: a\n\ndata: b\n\n", [SSEEvent(M, b"a"), SSEEvent(M, b"b")]),
    ("WHATWG: blank lines without data dispatch nothing", b"\n\r\n\r\n", []),
    ("WHATWG: an event without data is not dispatched", b"event: x\n\n", []),
    ("WHATWG: the event name is reset by every blank line", b"event: x\n\ndata: a\n\n", [SSEEvent(M, b"a")]),
    ("WHATWG: the event name is reset after a dispatch", b"event: x\ndata: a\n\ndata: b\n\n", [SSEEvent("x", b"a"), SSEEvent(M, b"b")]),
    ("close() dispatches pending data without a blank line", b"data: a\n", [SSEEvent(M, b"a")]),
    ("close() counts a last line without its end", b"data: a\ndata: b", [SSEEvent(M, b"a\nb")]),
    ("close() after a lone CR dispatches", b"data: a\r", [SSEEvent(M, b"a")]),
    ("close() counts a last data:a line (no space) without its end", b"data:a", [SSEEvent(M, b"a")]),
    ("close() counts a last event: line without its end", b"data: a\nevent: y", [SSEEvent("y", b"a")]),
    ("close() counts a last error: line without its end", b"error: e", [SSEEvent("error", b"e")]),
    ("close() counts a last data: with nothing after the colon", b"data:", [SSEEvent(M, b"")]),
    ("close() counts a last event: with nothing after the colon", b"data: a\nevent:", [SSEEvent(M, b"a")]),
    ("WHATWG: event: with only the space is an empty name: message", b"event: \ndata: a\n\n", [SSEEvent(M, b"a")]),
    ("error: with only the space is an empty error", b"error: \n\n", [SSEEvent("error", b"")]),
    # --- event, comments, other fields ---
    ("event: names the event", b"event: update\ndata: a\n\n", [SSEEvent("update", b"a")]),
    ("event: after data still names it", b"data: a\nevent: update\n\n", [SSEEvent("update", b"a")]),
    ("the last event: wins", b"event: one\nevent: two\ndata: a\n\n", [SSEEvent("two", b"a")]),
    ("WHATWG: an empty event name is message", b"event:\ndata: a\n\n", [SSEEvent(M, b"a")]),
    ("an event name without a colon is empty: message", b"event\ndata: a\n\n", [SSEEvent(M, b"a")]),
    ("event: keeps spaces after the first", b"event:  x\ndata: a\n\n", [SSEEvent(" x", b"a")]),
    ("an event name that is not UTF-8 is decoded with replacement", b"event: \xff\ndata: a\n\n", [SSEEvent("\ufffd", b"a")]),
    ("WHATWG: a line starting with a colon is a comment", b": ping\ndata: a\n: more\n\n", [SSEEvent(M, b"a")]),
    ("a lone colon is a comment", b":\ndata: a\n\n", [SSEEvent(M, b"a")]),
    ("a comment between two events dispatches nothing", b"data: a\n\n: ping\n\ndata: b\n\n", [SSEEvent(M, b"a"), SSEEvent(M, b"b")]),
    ("a comment that says data: is still a comment", b":data: a\n\n", []),
    ("WHATWG: id: is ignored here", b"id: 7\ndata: a\n\n", [SSEEvent(M, b"a")]),
    ("WHATWG: retry: is ignored here", b"retry: 10\ndata: a\n\n", [SSEEvent(M, b"a")]),
    ("WHATWG: unknown fields are ignored", b"foo: bar\nfoo\ndata: a\n\n", [SSEEvent(M, b"a")]),
    # --- llama.cpp's error: field ---
    ("error: is surfaced as an event named error", b"error: slot unavailable\n\n", [SSEEvent("error", b"slot unavailable")]),
    ("error: without a colon is an error event with empty data", b"error\n\n", [SSEEvent("error", b"")]),
    ("error: lines accumulate like data:", b"error: a\nerror: b\n\n", [SSEEvent("error", b"a\nb")]),
    ("error: names the event even beside data:", b"data: a\nerror: b\n\n", [SSEEvent("error", b"a\nb")]),
    ("an error event ends like any other: the next is a message", b"error: x\n\ndata: a\n\n", [SSEEvent("error", b"x"), SSEEvent(M, b"a")]),
    # --- [DONE] ---
    ("[DONE] ends the stream: nothing after it", b"data: a\n\ndata: [DONE]\n\ndata: b\n\n", [SSEEvent(M, b"a"), SSEEvent(M, DONE)]),
    ("[DONE] without the space ends the stream", b"data:[DONE]\n\ndata: b\n\n", [SSEEvent(M, DONE)]),
    ("[DONE] with CRLF ends the stream", b"data: [DONE]\r\n\r\ndata: b\r\n\r\n", [SSEEvent(M, DONE)]),
    ("[DONE] at close() ends the stream", b"data: [DONE]", [SSEEvent(M, DONE)]),
    (
        "[DONE] inside other data is not the end marker",
        b"data: [DONE]\ndata: x\n\ndata: b\n\n",
        [SSEEvent(M, b"[DONE]\nx"), SSEEvent(M, b"b")],
    ),
    ("[DONE] with more text is not the end marker", b"data: [DONE] \n\ndata: b\n\n", [SSEEvent(M, b"[DONE] "), SSEEvent(M, b"b")]),
    ("[DONE] in an event: line is just a name", b"event: [DONE]\ndata: a\n\n", [SSEEvent("[DONE]", b"a")]),
]


def flatten(items: list[Item]) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for item in items:
        events += [SSEEvent(M, payload) for payload in item.payloads] if isinstance(item, DataRun) else [item]
    return events


def decode(pieces: list[bytes], *, pack: bool = False, max_event_bytes: int | None = None) -> list[Item]:
    decoder = (
        SSEDecoder(pack_json_runs=pack) if max_event_bytes is None else SSEDecoder(pack_json_runs=pack, max_event_bytes=max_event_bytes)
    )
    items: list[Item] = []
    for piece in pieces:
        items += decoder.feed(piece)
    return items + decoder.close()


@pytest.mark.parametrize(("rule", "data", "expected"), ROWS, ids=[row[0] for row in ROWS])
@pytest.mark.parametrize("pack", [False, True], ids=["line rules", "run fast path"])
def test_sse_rule(rule: str, data: bytes, expected: list[SSEEvent], pack: bool) -> None:
    assert flatten(decode([data], pack=pack)) == expected
    assert flatten(decode([data[i : i + 1] for i in range(len(data))], pack=pack)) == expected


@pytest.mark.parametrize(("rule", "data", "expected"), ROWS, ids=[row[0] for row in ROWS])
@pytest.mark.parametrize("pack", [False, True], ids=["line rules", "run fast path"])
def test_events_come_out_as_soon_as_their_frame_completes(rule: str, data: bytes, expected: list[SSEEvent], pack: bool) -> None:
    """Split invariance at every prefix, without close(): byte by byte, the events out so far are those of the prefix fed at once."""
    decoder = SSEDecoder(pack_json_runs=pack)
    so_far: list[Item] = []
    for cut in range(1, len(data) + 1):
        so_far += decoder.feed(data[cut - 1 : cut])
        assert flatten(so_far) == flatten(SSEDecoder(pack_json_runs=pack).feed(data[:cut])), cut


# --- the run fast path: which frames make one DataRun -----------------------------------------

# (rule, bytes in, items out, pack_json_runs=True)
RUN_ROWS: list[tuple[str, bytes, list[Item]]] = [
    ("plain LF frames make one run", b"data: 1\n\ndata: 2\n\n", [DataRun([b"1", b"2"])]),
    ("plain CRLF frames make one run", b"data: 1\r\n\r\ndata: 2\r\n\r\n", [DataRun([b"1", b"2"])]),
    ("one plain frame is a run of one", b"data: 1\n\n", [DataRun([b"1"])]),
    ("a run stops at [DONE], which is its own event", b"data: 1\n\ndata: [DONE]\n\ndata: 3\n\n", [DataRun([b"1"]), SSEEvent(M, DONE)]),
    ("[DONE] first: no empty run", b"data: [DONE]\n\ndata: 1\n\n", [SSEEvent(M, DONE)]),
    ("a named event is not part of a run", b"data: 1\n\nevent: x\ndata: 2\n\n", [SSEEvent(M, b"1"), SSEEvent("x", b"2")]),
    ("multi-line data is not part of a run", b"data: 1\ndata: 2\n\n", [SSEEvent(M, b"1\n2")]),
    (
        "a comment between frames sends them through the line rules",
        b"data: 1\n\n: c\n\ndata: 2\n\n",
        [SSEEvent(M, b"1"), SSEEvent(M, b"2")],
    ),
    ("a stray CR in a payload sends it through the line rules", b"data: 1\r\n\ndata: 2\n\n", [SSEEvent(M, b"1"), SSEEvent(M, b"2")]),
    ("a frame still open at the end is not part of the run", b"data: 1\n\ndata: 2\n", [DataRun([b"1"]), SSEEvent(M, b"2")]),
    ("data: without the space is not the run's shape", b"data:1\n\ndata:2\n\n", [SSEEvent(M, b"1"), SSEEvent(M, b"2")]),
    # which line end a run has is read from its own first line, not from a line before it
    ("LF frames after a CRLF comment make one run", b": c\r\ndata: 1\n\ndata: 2\n\n", [DataRun([b"1", b"2"])]),
    ("CRLF frames after an LF comment make one run", b": c\ndata: 1\r\n\r\ndata: 2\r\n\r\n", [DataRun([b"1", b"2"])]),
    # a CR or LF left in ANY payload after the split sends the frames through the line rules
    ("a stray CR in a later payload sends it through the line rules", b"data: 1\n\ndata: 2\rx\n\n", [SSEEvent(M, b"1"), SSEEvent(M, b"2")]),
    (
        "a second data: line in a later frame sends it through the line rules",
        b"data: 1\n\ndata: 2\ndata: 3\n\n",
        [SSEEvent(M, b"1"), SSEEvent(M, b"2\n3")],
    ),
    ("a stray CR inside an LF frame sends it through the line rules", b"data: 1\rx\n\ndata: 2\n\n", [SSEEvent(M, b"1"), SSEEvent(M, b"2")]),
    ("an empty data: line then another line is not a run (LF first in the payload)", b"data: \ndata: x\n\n", [SSEEvent(M, b"\nx")]),
    ("an empty data: line ended by a CR is not a run (CR first in the payload)", b"data: \rx\n\n", [SSEEvent(M, b"")]),
    # the run ends exactly after its last frame end: nothing of the last frame is read twice
    (
        "a CRLF run's last payload is read once, whatever it ends with",
        b"data: 1\r\n\r\ndata: metadata\r\n\r\n",
        [DataRun([b"1", b"metadata"])],
    ),
    ("an LF run's last payload is read once, whatever it ends with", b"data: 1\n\ndata: x:\n\n", [DataRun([b"1", b"x:"])]),
]


@pytest.mark.parametrize(("rule", "data", "expected"), RUN_ROWS, ids=[row[0] for row in RUN_ROWS])
def test_run_rule(rule: str, data: bytes, expected: list[Item]) -> None:
    assert decode([data], pack=True) == expected
    assert flatten(decode([data], pack=False)) == flatten(expected)  # the run hands out what the line rules give


@pytest.mark.parametrize("pack", [False, True], ids=["line rules", "run fast path"])
def test_done_in_one_piece_with_the_frames_before_it_ends_the_stream(pack: bool) -> None:
    """Rule: [DONE] sets ``done`` as soon as its frame is complete, also when a run of frames brought it."""
    decoder = SSEDecoder(pack_json_runs=pack)
    items = decoder.feed(b"data: 1\n\ndata: [DONE]\n\n")
    assert flatten(items) == [SSEEvent(M, b"1"), SSEEvent(M, DONE)] and decoder.done
    assert decoder.feed(b"data: 2\n\n") == [] and decoder.close() == []


# (rule, bytes in, items out with pack_json_runs=True and max_event_bytes=LIMIT_FOR_RUNS)
LIMIT_FOR_RUNS = 16
RUN_LIMIT_ROWS: list[tuple[str, bytes, list[Item]]] = [
    (
        "frames of exactly the limit, from the first to the last frame end, are still one run",
        b"data: 1\n\ndata: 2\n\n",  # the last frame end starts 16 bytes after the run
        [DataRun([b"1", b"2"])],
    ),
    (
        "a run is measured from where it starts, not from the start of the piece",
        b": comment\ndata: 1\n\ndata: 2\n\n",
        [DataRun([b"1", b"2"])],
    ),
]


@pytest.mark.parametrize(("rule", "data", "expected"), RUN_LIMIT_ROWS, ids=[row[0] for row in RUN_LIMIT_ROWS])
def test_run_limit_rule(rule: str, data: bytes, expected: list[Item]) -> None:
    assert decode([data], pack=True, max_event_bytes=LIMIT_FOR_RUNS) == expected


def test_runs_are_off_unless_asked_for() -> None:
    assert decode([b"data: 1\n\ndata: 2\n\n"]) == [SSEEvent(M, b"1"), SSEEvent(M, b"2")]


def test_a_run_attempt_that_fails_is_not_retried_before_the_end_of_what_it_looked_at() -> None:
    """Rule (linear time): the frames a failed run attempt looked at go through the line rules; the next feed() tries again."""
    decoder = SSEDecoder(pack_json_runs=True)
    assert decoder.feed(b"data: 1\n\n: c\ndata: 2\n\ndata: 3\n\n") == [SSEEvent(M, b"1"), SSEEvent(M, b"2"), SSEEvent(M, b"3")]
    assert decoder.feed(b"data: 4\n\ndata: 5\n\n") == [DataRun([b"4", b"5"])]


# --- [DONE] and feeding after the end ------------------------------------------------------------


@pytest.mark.parametrize("pack", [False, True], ids=["line rules", "run fast path"])
def test_done_is_set_as_soon_as_its_frame_completes_and_nothing_is_read_after(pack: bool) -> None:
    decoder = SSEDecoder(pack_json_runs=pack)
    assert decoder.feed(b"data: a\n\ndata: [DONE]\n") == ([DataRun([b"a"])] if pack else [SSEEvent(M, b"a")])
    assert not decoder.done
    assert decoder.feed(b"\ndata: b\n\n") == [SSEEvent(M, DONE)]
    assert decoder.done
    assert decoder.feed(b"data: c\n\n") == [] and decoder.close() == []


def test_a_later_event_that_is_not_done_leaves_done_unset() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n")
    assert not decoder.done
    decoder.close()
    assert not decoder.done


@pytest.mark.parametrize("piece", [b"", bytearray(b""), memoryview(b"")], ids=["bytes", "bytearray", "memoryview"])
def test_feeding_nothing_changes_nothing(piece: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(piece) == []
    assert decoder.feed(b"\ndata: b\n\n") == [SSEEvent(M, b"a\nb")]  # the LF after the CR still belongs to it


@pytest.mark.parametrize("kind", [bytearray, memoryview], ids=["bytearray", "memoryview"])
def test_any_bytes_like_piece_is_decoded(kind: type[bytearray] | type[memoryview]) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(kind(b"data: a\n\n")) == [SSEEvent(M, b"a")]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        ([b"data: a\r", b"\n", b"data: b\n\n"], [SSEEvent(M, b"a\nb")]),
        ([b"data: a\r", b"\ndata: b\n\n"], [SSEEvent(M, b"a\nb")]),
        ([b"data: a\r", b"\r"], [SSEEvent(M, b"a")]),
        ([b"data: a\r", b"data: b\r\r"], [SSEEvent(M, b"a\nb")]),
        ([b"data: a\r\n", b"\n"], [SSEEvent(M, b"a")]),
        ([b"data: a\r", b"\n", b"\n"], [SSEEvent(M, b"a")]),
        ([b"data: a", b"\r", b"\n", b"\r", b"\n"], [SSEEvent(M, b"a")]),
        ([b"da", b"ta: a", b"b", b"\n\n"], [SSEEvent(M, b"ab")]),
    ],
    ids=[
        "CR then LF alone",
        "CR then LF with more",
        "CR then CR",
        "CR then a line",
        "CRLF then LF",
        "CR, LF, LF",
        "every byte of CRLF CRLF apart",
        "a line in pieces",
    ],
)
def test_a_cr_at_the_end_of_a_piece_pairs_with_an_lf_first_in_the_next(pieces: list[bytes], expected: list[SSEEvent]) -> None:
    """Rule: a CR ends its line at once; an LF right after it, even at the start of the next feed(), belongs to it."""
    assert flatten(decode(pieces)) == expected
    assert flatten(decode(pieces, pack=True)) == expected


# --- limits ------------------------------------------------------------------------------------

LIMIT = 16


@pytest.mark.parametrize("pack", [False, True], ids=["line rules", "run fast path"])
@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"], ids=["LF", "CRLF", "CR"])
def test_a_line_of_exactly_the_limit_passes_one_more_byte_fails(pack: bool, line_end: bytes) -> None:
    """Rule: no line (without its end) may be larger than max_event_bytes."""
    fits = b"data: " + b"x" * (LIMIT - 6)  # a line of LIMIT bytes
    assert decode([fits + line_end + line_end], pack=pack, max_event_bytes=LIMIT) != []
    with pytest.raises(SSEError, match=f"a line is larger than the limit of {LIMIT} bytes"):
        decode([fits + b"x" + line_end + line_end], pack=pack, max_event_bytes=LIMIT)


@pytest.mark.parametrize("split", [1, 5, None], ids=["byte by byte", "5-byte pieces", "whole"])
def test_a_partial_line_fails_exactly_where_the_whole_line_would(split: int | None) -> None:
    """Rule: a partial line is measured the same way as a whole one."""
    fits = b": " + b"x" * (LIMIT - 2)
    pieces = [fits] if split is None else [fits[i : i + split] for i in range(0, len(fits), split)]
    decoder = SSEDecoder(max_event_bytes=LIMIT)
    for piece in pieces:
        assert decoder.feed(piece) == []
    with pytest.raises(SSEError, match="a line is larger"):
        decoder.feed(b"x")


def test_a_partial_line_over_the_limit_carries_the_events_decoded_before_it_in_the_same_piece() -> None:
    """Rule: the SSEError carries the events decoded before it, also when the line over the limit is still open."""
    decoder = SSEDecoder(max_event_bytes=LIMIT)
    with pytest.raises(SSEError, match="a line is larger") as caught:
        decoder.feed(b"data: a\n\n: " + b"x" * LIMIT)
    assert caught.value.events == [SSEEvent(M, b"a")]


def test_done_is_a_bool_from_the_start() -> None:
    decoder = SSEDecoder()
    assert decoder.done is False
    decoder.feed(b"data: [DONE]\n\n")
    assert decoder.done is True


def test_a_partial_line_over_the_limit_fails_at_close_too() -> None:
    decoder = SSEDecoder(max_event_bytes=LIMIT)
    with pytest.raises(SSEError, match="a line is larger"):
        decoder.feed(b"data: " + b"x" * LIMIT)


@pytest.mark.parametrize("pack", [False, True], ids=["line rules", "run fast path"])
def test_event_data_of_exactly_the_limit_passes_one_more_byte_fails(pack: bool) -> None:
    """Rule: no event's data may be larger than max_event_bytes (the LFs joining its lines count, the last one not)."""
    # three lines of 4 bytes: 4 + 1 + 4 + 1 + 4 = 14 bytes of data, then 2 more in a fourth line: 16 = LIMIT + 1 line end
    fits = b"data: aaaa\ndata: bbbb\ndata: cccc\ndata: d\n\n"  # 4+1+4+1+4+1+1 = 16
    [event] = flatten(decode([fits], pack=pack, max_event_bytes=LIMIT))
    assert len(event.data) == LIMIT
    with pytest.raises(SSEError, match=f"an event is larger than the limit of {LIMIT} bytes"):
        decode([fits.replace(b"d\n", b"dd\n")], pack=pack, max_event_bytes=LIMIT)


def test_the_data_limit_resets_with_each_event() -> None:
    frame = b"data: " + b"x" * LIMIT + b"\n\n"
    assert flatten(decode([frame * 3], max_event_bytes=LIMIT + 6)) == [SSEEvent(M, b"x" * LIMIT)] * 3


@pytest.mark.parametrize("pack", [False, True], ids=["line rules", "run fast path"])
def test_every_event_may_hold_exactly_the_limit(pack: bool) -> None:
    """The size count starts again at zero with each event: the limit is per event, not per stream."""
    event = b"data:aaaaaaaa\ndata:bbbbbbb\n\n"  # 8 + 1 + 7 = 16 bytes of data
    assert flatten(decode([event * 3], pack=pack, max_event_bytes=LIMIT)) == [SSEEvent(M, b"aaaaaaaa\nbbbbbbb")] * 3


def test_the_error_carries_the_events_before_it_and_the_decoder_stays_broken() -> None:
    decoder = SSEDecoder(max_event_bytes=LIMIT)
    with pytest.raises(SSEError) as caught:
        decoder.feed(b"data: a\n\nevent: x\ndata: b\n\ndata: " + b"y" * LIMIT + b"\n\n")
    assert caught.value.events == [SSEEvent(M, b"a"), SSEEvent("x", b"b")]
    assert decoder.feed(b"data: c\n\n") == [] and decoder.close() == []


@pytest.mark.parametrize("line", [b"data: ", b"data:", b"error: "], ids=["data: lines", "data: without the space", "error: lines"])
def test_an_event_over_the_limit_carries_the_events_before_it(line: bytes) -> None:
    decoder = SSEDecoder(max_event_bytes=LIMIT)
    with pytest.raises(SSEError, match="an event is larger") as caught:
        decoder.feed(b"data: a\n\n" + line + b"aaaaaaaaa\n" + line + b"bbbbbbbbb\n")
    assert caught.value.events == [SSEEvent(M, b"a")]


def test_an_event_over_the_limit_breaks_the_decoder_too() -> None:
    decoder = SSEDecoder(max_event_bytes=LIMIT)
    with pytest.raises(SSEError, match="an event is larger") as caught:
        decoder.feed(b"data: aaaaaaaaa\ndata: bbbbbbbbb\n")
    assert caught.value.events == []
    assert decoder.feed(b"\n") == [] and decoder.close() == []


def test_an_sse_error_without_events_has_an_empty_list() -> None:
    assert SSEError("x").events == [] and str(SSEError("x")) == "x"


def test_a_run_longer_than_the_limit_is_measured_frame_by_frame() -> None:
    """The run fast path never lets a frame past the limit, nor refuses frames that fit one by one."""
    frames = b"data: abcdefgh\n\n" * 4  # 64 bytes of frames, each line 14 bytes
    assert flatten(decode([frames], pack=True, max_event_bytes=LIMIT)) == [SSEEvent(M, b"abcdefgh")] * 4
    with pytest.raises(SSEError, match="a line is larger"):
        decode([frames + b"data: " + b"x" * LIMIT + b"\n\n"], pack=True, max_event_bytes=LIMIT)


# The one-frame fast path is taken only between frames: a piece that looks like a whole frame but
# continues a line, an event's fields or a pending CR belongs to what came before it.
# (rule, the pieces, items out with pack_json_runs=True)
BETWEEN_FRAMES_ROWS: list[tuple[str, list[bytes], list[Item]]] = [
    (
        "a frame-like piece after an open line ends that line",
        [b"data: a", b"data: b\n\n"],
        [DataRun([b"adata: b"])],
    ),
    (
        "a frame-like piece after a data line joins the same event",
        [b"data: a\n", b"data: b\n\n"],
        [SSEEvent("message", b"a\nb")],
    ),
    (
        "a frame-like piece after an event: line is that event's data",
        [b"event: ping\n", b"data: b\n\n"],
        [SSEEvent("ping", b"b")],
    ),
]


@pytest.mark.parametrize(("rule", "pieces", "expected"), BETWEEN_FRAMES_ROWS, ids=[row[0] for row in BETWEEN_FRAMES_ROWS])
def test_the_one_frame_path_only_between_frames(rule: str, pieces: list[bytes], expected: list[Item]) -> None:
    decoder = SSEDecoder(pack_json_runs=True)
    items = [item for piece in pieces for item in decoder.feed(piece)]
    assert items + decoder.close() == expected
