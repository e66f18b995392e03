"""Rule table for the think-tag step (compat ``extractThinkTags``, transforms/think_tags.py).

Each row is one rule: the flag, the events of each read fed in turn, what each ``feed`` and then
``finish`` returns, and the step's notes. The events fed in are checked unchanged afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pytest

from pipeline.events import Event, Finish, ReasoningDelta, TextDelta, Timings, ToolCallDelta, Usage
from pipeline.types import Context
from tests.conftest import genesis_from
from transforms.think_tags import ThinkTags, extract_think_tags

T = TextDelta
R = ReasoningDelta
STOP = Finish("stop")


def extracted(chars: int) -> str:
    return f"reasoning extracted from <think>: {chars} chars"


def dropped(chars: int) -> str:
    return f"whitespace after </think> dropped: {chars} chars"


def unclosed(chars: int, where: str = "") -> str:
    return f"no </think> before the answer ended: {chars} chars kept as reasoning{where}"


# (rule, starts inside, the reads fed in, what each feed returns and then finish, notes)
Row = tuple[str, bool, list[list[Event]], list[list[Event]], tuple[str, ...]]
ROWS: list[Row] = [
    (
        "text without a tag passes on unchanged, with no notes",
        False,
        [[T("Hello"), T(" world"), STOP]],
        [[T("Hello"), T(" world"), STOP], []],
        (),
    ),
    (
        "a block at the start becomes reasoning; the tags go",
        False,
        [[T("<think>plan</think>Hi"), STOP]],
        [[R("plan"), T("Hi"), STOP], []],
        (extracted(4),),
    ),
    (
        "whitespace right after </think> is dropped, across deltas, up to the first other character",
        False,
        [[T("<think>p</think>\n"), T(" \n\t"), T("\r\nHi  there \n"), STOP]],
        [[R("p"), T("Hi  there \n"), STOP], []],
        (extracted(1), dropped(6)),
    ),
    (
        "only space, tab, CR and LF are dropped after </think>: a no-break space or a form feed is text",
        False,
        [[T("<think>p</think>\u00a0x"), T("<think>q</think>\fy"), STOP]],
        [[R("p"), T("\u00a0x"), R("q"), T("\fy"), STOP], []],
        (extracted(2),),
    ),
    (
        "whitespace inside the block and before <think> is kept",
        False,
        [[T("\n<think>\n plan \n</think>answer"), STOP]],
        [[T("\n"), R("\n plan \n"), T("answer"), STOP], []],
        (extracted(8),),
    ),
    (
        "a block in the middle of the text",
        False,
        [[T("Sure. <think>hmm</think> Done"), STOP]],
        [[T("Sure. "), R("hmm"), T("Done"), STOP], []],
        (extracted(3), dropped(1)),
    ),
    (
        "a block opens and closes several times",
        False,
        [[T("<think>a</think>x<think>b</think>y"), STOP]],
        [[R("a"), T("x"), R("b"), T("y"), STOP], []],
        (extracted(2),),
    ),
    (
        "whitespace between </think> and the next <think> is dropped",
        False,
        [[T("<think>a</think>\n<think>b</think>c"), STOP]],
        [[R("a"), R("b"), T("c"), STOP], []],
        (extracted(2), dropped(1)),
    ),
    (
        "an empty block: the tags go, nothing else",
        False,
        [[T("<think></think>Hi"), STOP]],
        [[T("Hi"), STOP], []],
        (extracted(0),),
    ),
    (
        "an open tag split across reads is held, then opens the block",
        False,
        [[T("<th")], [T("ink>r</think>t"), STOP]],
        [[], [R("r"), T("t"), STOP], []],
        (extracted(1),),
    ),
    (
        "a close tag split across three reads is held, then closes the block",
        False,
        [[T("<think>ab</")], [T("thi")], [T("nk>c"), STOP]],
        [[R("ab")], [], [T("c"), STOP], []],
        (extracted(2),),
    ),
    (
        "a lone < at the end of a delta is held, then released with what follows",
        False,
        [[T("x <")], [T(" y"), STOP]],
        [[T("x ")], [T("< y"), STOP], []],
        (),
    ),
    (
        "'a < b' is text",
        False,
        [[T("if a < b and c<d"), STOP]],
        [[T("if a < b and c<d"), STOP], []],
        (),
    ),
    (
        "<thinking>, <Think> and <div> are text",
        False,
        [[T("<thinking>x</thinking> <Think>y <div>z</div>"), STOP]],
        [[T("<thinking>x</thinking> <Think>y <div>z</div>"), STOP], []],
        (),
    ),
    (
        "a held '<th' that turns out to be '<the' is released as text, in order",
        False,
        [[T("x <th")], [T("e>y"), STOP]],
        [[T("x ")], [T("<the>y"), STOP], []],
        (),
    ),
    (
        "a tag prefix at the end of the answer is text, released before Finish",
        False,
        [[T("a <thin"), STOP]],
        [[T("a "), T("<thin"), STOP], []],
        (),
    ),
    (
        "a </think> outside a block is text",
        False,
        [[T("a</think>b"), STOP]],
        [[T("a</think>b"), STOP], []],
        (),
    ),
    (
        "a <think> inside a block is reasoning",
        False,
        [[T("<think>a<think>b</think>c"), STOP]],
        [[R("a<think>b"), T("c"), STOP], []],
        (extracted(9),),
    ),
    (
        "no </think>: what was seen stays reasoning (a close-tag prefix too), and the notes say so",
        False,
        [[T("<think>still go"), T("ing </thi"), STOP]],
        [[R("still go"), R("ing "), R("</thi"), STOP], []],
        (extracted(17), unclosed(17)),
    ),
    (
        "an unclosed block counts only its own chars",
        False,
        [[T("<think>ab</think>c<think>de"), STOP]],
        [[R("ab"), T("c"), R("de"), STOP], []],
        (extracted(4), unclosed(2)),
    ),
    (
        "finish() without a Finish event releases held text and notes the open block",
        False,
        [[T("<think>x</th")]],
        [[R("x")], [R("</th")]],
        (extracted(5), unclosed(5)),
    ),
    (
        "finish() releases held text as text outside a block",
        False,
        [[T("x<")]],
        [[T("x")], [T("<")]],
        (),
    ),
    (
        "an answer that ends right after </think> leaves no text",
        False,
        [[T("<think>a</think>\n\n"), STOP]],
        [[R("a"), STOP], []],
        (extracted(1), dropped(2)),
    ),
    (
        "characters outside ASCII around the tags",
        False,
        [[T("é<think>ü</think>ß"), STOP]],
        [[T("é"), R("ü"), T("ß"), STOP], []],
        (extracted(1),),
    ),
    (
        "startsInside: all text up to the first </think> is reasoning, a <think> in it too",
        True,
        [[T("plan <think> more</think>\n\nAnswer"), STOP]],
        [[R("plan <think> more"), T("Answer"), STOP], []],
        (extracted(17), dropped(2)),
    ),
    (
        "startsInside: after the first </think>, blocks open as with true",
        True,
        [[T("a</think>b<think>c</think>d"), STOP]],
        [[R("a"), T("b"), R("c"), T("d"), STOP], []],
        (extracted(2),),
    ),
    (
        "startsInside with no </think>: all of it is reasoning, and the notes say so",
        True,
        [[T("only "), T("thoughts"), STOP]],
        [[R("only "), R("thoughts"), STOP], []],
        (extracted(13), unclosed(13)),
    ),
    (
        "startsInside with no text at all (tool calls only): nothing changed, nothing noted",
        True,
        [[ToolCallDelta(0, "c1", "f", "{}"), Finish("tool_calls")]],
        [[ToolCallDelta(0, "c1", "f", "{}"), Finish("tool_calls")], []],
        (),
    ),
    (
        "startsInside when the server sends reasoning apart: text stays text, noted",
        True,
        [[R("server's"), T("Answer"), STOP]],
        [[R("server's"), T("Answer"), STOP], []],
        ("startsInside not applied: the server sent reasoning apart",),
    ),
    (
        "startsInside when the server sends reasoning apart in choice 1: only choice 1 is not inside, noted with its choice",
        True,
        [[R("server's", 1), T("A1", 1), T("r0"), Finish("stop", 1), STOP]],
        [[R("server's", 1), T("A1", 1), R("r0"), Finish("stop", 1), STOP], []],
        (extracted(2), unclosed(2), "startsInside not applied: the server sent reasoning apart (choice 1)"),
    ),
    (
        "text of a choice after its Finish starts outside a block",
        False,
        [[T("<think>a"), T("x<"), STOP, T("<think>y</think>z")]],
        [[R("a"), R("x"), R("<"), STOP, R("y"), T("z")], []],
        (extracted(4), unclosed(3)),
    ),
    (
        "reasoning the server sends apart passes untouched beside extracted reasoning",
        False,
        [[R("s"), T("x<think>y</think>z"), STOP]],
        [[R("s"), T("x"), R("y"), T("z"), STOP], []],
        (extracted(1),),
    ),
    (
        "other events pass through untouched and in order, while a block is open",
        False,
        [[T("<think>a"), ToolCallDelta(0, "c", "f", "{}"), Usage(1, 2, 3), Timings({"x": 1.0}), T("</think>b"), STOP]],
        [[R("a"), ToolCallDelta(0, "c", "f", "{}"), Usage(1, 2, 3), Timings({"x": 1.0}), T("b"), STOP], []],
        (extracted(1),),
    ),
    (
        "choices are kept apart: a tag split in choice 0 is not closed by choice 1's text",
        False,
        [[T("<th"), T("<think>b", 1)], [T("ink>a"), T("</think>B", 1)], [T("</think>A"), Finish("stop", 1), STOP]],
        [[R("b", 1)], [R("a"), T("B", 1)], [T("A"), Finish("stop", 1), STOP], []],
        (extracted(2),),
    ),
    (
        "held text of a choice comes out before its own Finish, not before another choice's",
        False,
        [[T("x<"), T("y", 1), Finish("stop", 1), STOP]],
        [[T("x"), T("y", 1), Finish("stop", 1), T("<"), STOP], []],
        (),
    ),
    (
        "an open block in choice 1 is noted with its choice",
        False,
        [[T("<think>ab", 1), Finish("length", 1)]],
        [[R("ab", 1), Finish("length", 1)], []],
        (extracted(2), unclosed(2, " (choice 1)")),
    ),
]


@pytest.mark.parametrize(("rule", "starts_inside", "reads", "expected", "notes"), ROWS, ids=[row[0] for row in ROWS])
def test_rule(rule: str, starts_inside: bool, reads: list[list[Event]], expected: list[list[Event]], notes: tuple[str, ...]) -> None:
    fed = copy.deepcopy(reads)
    step = ThinkTags(starts_inside=starts_inside)
    got: list[Sequence[Event]] = [list(step.feed(read)) for read in fed]
    got.append(list(step.finish()))
    assert got == expected
    assert step.notes() == notes
    assert fed == reads  # nothing fed in was changed


def test_text_the_step_does_not_change_is_the_same_object() -> None:
    plain, not_a_tag = T("Hello"), T("a < b")
    out = ThinkTags(starts_inside=False).feed([plain, not_a_tag])
    assert out[0] is plain and out[1] is not_a_tag


def test_other_events_are_the_same_objects() -> None:
    events: list[Event] = [R("r"), ToolCallDelta(0, "c", "f", "{}"), Usage(1, 2, 3), STOP]
    out = ThinkTags(starts_inside=False).feed(events)
    assert all(a is b for a, b in zip(out, events, strict=True))


def config(compat: str) -> str:
    return f'{{models: {{providers: {{p: {{baseUrl: "http://10.0.0.9/v1", models: [{{id: "m", compat: {{ {compat} }} }}]}}}}}}}}'


def shaped(compat: str) -> Context:
    """The built request's Context for model p/m with this compat block, as the runner gives it to the step."""
    return genesis_from(config(compat)).shape("p/m", {"messages": [{"role": "user", "content": "hi"}]}).unwrap()


# (rule, compat block, the step made: None, or what a lone text delta becomes)
FLAG_ROWS: list[tuple[str, str, type[Event] | None]] = [
    ("the flag absent: no step, the run skips it", "", None),
    ("extractThinkTags: false: no step", "extractThinkTags: false", None),
    ("extractThinkTags: true: text outside a block stays text", "extractThinkTags: true", TextDelta),
    ('extractThinkTags: "startsInside": the answer starts as reasoning', 'extractThinkTags: "startsInside"', ReasoningDelta),
]


@pytest.mark.parametrize(("rule", "compat", "first"), FLAG_ROWS, ids=[row[0] for row in FLAG_ROWS])
def test_flag(rule: str, compat: str, first: type[Event] | None) -> None:
    ctx = shaped(compat)
    step = extract_think_tags(ctx)
    if first is None:
        assert step is None
    else:
        assert step is not None
        assert [type(event) for event in step.feed([T("x")])] == [first]


def test_no_target_no_step() -> None:
    ctx = shaped("extractThinkTags: true")
    assert extract_think_tags(ctx) is not None
    assert extract_think_tags(ctx.updated((), target=None)) is None


def test_a_fresh_step_per_call() -> None:
    ctx = shaped("extractThinkTags: true")
    first = extract_think_tags(ctx)
    assert first is not None
    first.feed([T("<think>a")])
    second = extract_think_tags(ctx)
    assert second is not None and second is not first
    assert list(second.feed([T("b")])) == [T("b")]


def test_the_flag_on_a_provider_entry_of_the_builtin_table_is_inherited() -> None:
    """A built-in provider's compat (pipeline/providers.py) is a layer under the model's, for this flag too."""
    from pipeline.compat import resolve_compat
    from pipeline.config import CompatConfig, ModelConfig

    provider = CompatConfig(extract_think_tags="startsInside")
    assert resolve_compat(ModelConfig(id="m"), native=False, loopback=True, provider_compat=provider).extract_think_tags == "startsInside"
    model = ModelConfig(id="m", compat=CompatConfig(extract_think_tags=False))
    assert resolve_compat(model, native=False, loopback=True, provider_compat=provider).extract_think_tags is False


# (rule, compat block, the config error)
BAD_ROWS: list[tuple[str, str, str]] = [
    ("a string other than startsInside", 'extractThinkTags: "yes"', 'expected true, false or "startsInside", found the string "yes"'),
    ("a number", "extractThinkTags: 1", 'expected true, false or "startsInside", found the number 1'),
    ("the wrong case", 'extractThinkTags: "startsinside"', 'expected true, false or "startsInside", found the string "startsinside"'),
    ("null", "extractThinkTags: null", 'expected true, false or "startsInside", found null'),
]


@pytest.mark.parametrize(("rule", "compat", "message"), BAD_ROWS, ids=[row[0] for row in BAD_ROWS])
def test_a_wrong_value_is_a_config_error_naming_the_path(rule: str, compat: str, message: str) -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        genesis_from(config(compat))
    assert f"models.providers.p.models[0].compat.extractThinkTags: {message}" in str(caught.value)
