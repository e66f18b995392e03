"""The think-tag step on answers split at every position: the same text, reasoning and notes
however the answer is cut into deltas and reads, streamed (SSE, split at every byte) or not
(one JSON body), and the same as a whole-string reading of the rules (``reference`` below,
written apart from the step, with a regex)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends.stream import Aggregator, StreamParser, response_events
from pipeline.events import Completion, Event, Finish, TextDelta
from transforms.think_tags import ThinkTags

# Realistic answers: reasoning models' habits (a newline after <think>, "\n\n" after </think>),
# '<' that is not a tag, several blocks, a block never closed, non-ASCII.
ANSWERS: list[tuple[str, bool, str]] = [
    ("one block, then the answer", False, "<think>\nThe user wants 2+2. Is a < b? <div> is HTML.\n</think>\n\n2 + 2 = 4."),
    ("text, two blocks, a stray '<' at the end", False, "Let me check. <think>first</think> Then <think>second <th</think>\nDone <"),
    ("<thinking> and </think> outside a block are text", False, "<thinking>no</thinking> a</think>b <think>yes</think>c"),
    ("a block never closed", False, "Sure <think>I keep thinking and never clo</thi"),
    ("startsInside: up to the first </think>, then blocks again", True, "planning é ü\n</think>\n\nAnswer: <think>again</think>ok"),
    ("startsInside, never closed", True, "all of it <think> is reasoning"),
]


def reference(text: str, starts_inside: bool) -> tuple[str, str]:
    """The rules on a whole string: tags split the text; whitespace after a close tag goes."""
    answer: list[str] = []
    reasoning: list[str] = []
    inside = starts_inside
    after_close = False
    for token in re.split(r"(</?think>)", text):
        if token == ("</think>" if inside else "<think>"):
            after_close = inside
            inside = not inside
            continue
        if after_close:
            token = re.sub(r"^[ \t\r\n]+", "", token)
            after_close = not token
        (reasoning if inside else answer).append(token)
    return "".join(answer), "".join(reasoning)


def run(reads: Iterable[Sequence[Event]], starts_inside: bool) -> tuple[str, str, tuple[str, ...]]:
    step = ThinkTags(starts_inside=starts_inside)
    aggregator = Aggregator()
    for read in reads:
        for event in step.feed(read):
            aggregator.add(event)
    for event in step.finish():
        aggregator.add(event)
    completion = aggregator.completion()
    return completion.text, completion.reasoning, step.notes()


def deltas(text: str, cuts: Sequence[int]) -> list[list[Event]]:
    """The text cut at ``cuts``, each piece one read; the last read carries the Finish."""
    bounds = [0, *cuts, len(text)]
    reads: list[list[Event]] = [[TextDelta(text[a:b])] for a, b in itertools.pairwise(bounds) if b > a]
    return [*reads[:-1], [*reads[-1], Finish("stop")]] if reads else [[Finish("stop")]]


@pytest.mark.parametrize(("name", "starts_inside", "text"), ANSWERS, ids=[row[0] for row in ANSWERS])
def test_every_cut_into_two_and_three_deltas_gives_the_same_answer(name: str, starts_inside: bool, text: str) -> None:
    whole = run(deltas(text, []), starts_inside)
    assert whole[:2] == reference(text, starts_inside)
    for cut in range(1, len(text)):
        assert run(deltas(text, [cut]), starts_inside) == whole, f"cut at {cut}"
    for first, second in itertools.combinations(range(1, len(text)), 2):
        assert run(deltas(text, [first, second]), starts_inside) == whole, f"cut at {first}, {second}"


def test_one_delta_per_character_gives_the_same_answer() -> None:
    for _, starts_inside, text in ANSWERS:
        assert run(deltas(text, range(1, len(text))), starts_inside) == run(deltas(text, []), starts_inside)


def sse_body(pieces_by_choice: dict[int, list[str]]) -> bytes:
    """A streamed answer: choices' pieces interleaved, one chunk each, then finish, usage and [DONE]."""
    frames: list[str] = []
    for round_of_pieces in itertools.zip_longest(*pieces_by_choice.values()):
        for index, piece in zip(pieces_by_choice, round_of_pieces, strict=True):
            if piece is not None:
                frames.append(json.dumps({"choices": [{"index": index, "delta": {"content": piece}}]}))
    for index in pieces_by_choice:
        frames.append(json.dumps({"choices": [{"index": index, "delta": {}, "finish_reason": "stop"}]}))
    frames.append(json.dumps({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}}))
    return "".join(f"data: {frame}\n\n" for frame in [*frames, "[DONE]"]).encode()


def json_body(text_by_choice: dict[int, str]) -> bytes:
    choices = [
        {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        for index, text in text_by_choice.items()
    ]
    return json.dumps({"choices": choices, "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}}).encode()


def streamed(body: bytes, cuts: Sequence[int], starts_inside: bool) -> tuple[Completion, tuple[str, ...]]:
    parser = StreamParser()
    bounds = [0, *cuts, len(body)]
    reads = [parser.feed(body[a:b]) for a, b in itertools.pairwise(bounds)]
    reads.append(parser.close())
    return _complete(reads, starts_inside)


def not_streamed(body: bytes, starts_inside: bool) -> tuple[Completion, tuple[str, ...]]:
    return _complete([response_events(body)], starts_inside)


def _complete(reads: list[list[Event]], starts_inside: bool) -> tuple[Completion, tuple[str, ...]]:
    step = ThinkTags(starts_inside=starts_inside)
    aggregator = Aggregator()
    for read in reads:
        for event in step.feed(read):
            aggregator.add(event)
    for event in step.finish():
        aggregator.add(event)
    return aggregator.completion(), step.notes()


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _answer(completion: Completion) -> list[tuple[int, str, str]]:
    return [(output.index, output.text, output.reasoning) for output in completion.outputs]


@pytest.mark.parametrize(("name", "starts_inside", "text"), ANSWERS, ids=[row[0] for row in ANSWERS])
def test_sse_split_at_every_byte_gives_the_non_streamed_completion(name: str, starts_inside: bool, text: str) -> None:
    expected, expected_notes = not_streamed(json_body({0: text}), starts_inside)
    assert (expected.text, expected.reasoning) == reference(text, starts_inside)
    body = sse_body({0: _pieces(text, 3)})
    for cut in range(len(body) + 1):
        completion, notes = streamed(body, [cut], starts_inside)
        assert (_answer(completion), notes) == (_answer(expected), expected_notes), f"cut at byte {cut}"


def test_two_interleaved_choices_split_at_every_byte() -> None:
    texts = {0: "<think>zero\n</think>\n\nA0 < B0", 1: "pre <think>one <thinking></think> A1"}
    expected, expected_notes = not_streamed(json_body(texts), False)
    assert [(o.text, o.reasoning) for o in expected.outputs] == [reference(texts[0], False), reference(texts[1], False)]
    body = sse_body({index: _pieces(text, 2) for index, text in texts.items()})
    for cut in range(len(body) + 1):
        completion, notes = streamed(body, [cut], False)
        assert (_answer(completion), notes) == (_answer(expected), expected_notes), f"cut at byte {cut}"


# Text made of the pieces that matter: tags, their fragments, '<' alone, whitespace, other characters.
FRAGMENTS = st.sampled_from(["<think>", "</think>", "<", "</", "<th", "think", "ink>", ">", "/", "a", "é", " ", "\n", "\t", "<thinking>"])
TEXTS = st.lists(FRAGMENTS, max_size=24).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=TEXTS, data=st.data(), starts_inside=st.booleans())
def test_any_text_cut_anywhere_follows_the_rules(text: str, data: st.DataObject, starts_inside: bool) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=6)))
    cuts = [cut for cut in cuts if cut < len(text)]
    got = run(deltas(text, cuts), starts_inside)
    assert got[:2] == reference(text, starts_inside)
    assert got == run(deltas(text, []), starts_inside)


@settings(max_examples=150, deadline=None)
@given(text=TEXTS, size=st.integers(1, 5), data=st.data(), starts_inside=st.booleans())
def test_any_text_streamed_in_any_reads_gives_the_non_streamed_completion(
    text: str, size: int, data: st.DataObject, starts_inside: bool
) -> None:
    body = sse_body({0: _pieces(text, size)})
    cuts = sorted(data.draw(st.sets(st.integers(0, len(body)), max_size=8)))
    expected, expected_notes = not_streamed(json_body({0: text}), starts_inside)
    completion, notes = streamed(body, cuts, starts_inside)
    assert (_answer(completion), notes) == (_answer(expected), expected_notes)
