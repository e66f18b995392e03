"""The seven declared stages and the answer-side stages (issue 14; pipeline/runner.py, backends/session.py).

Every row runs the real session with the ``send`` stage replaced by a recorded replay
(``tests.replay``): the same API a user has, no socket.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from returns.result import Failure, Result, Success

from pipeline.answer import AnswerStep
from pipeline.api import Genesis
from pipeline.errors import GenesisError, ProviderError, StageError
from pipeline.events import Completion, Event, Finish, TextDelta
from pipeline.runner import Pipeline
from pipeline.types import Context
from tests import stage_examples
from tests.conftest import genesis_from
from tests.replay import Recording, Replay, sse_of

SEVEN = ("resolve_ref", "apply_defaults", "compat_shaping", "strip_native_only", "attach_headers", "send", "parse_stream")
CONFIG = """{
  agents: { defaults: { model: { primary: "a/m1", fallbacks: ["b/m2"] } } },
  models: { mode: "replace", providers: {
    a: { baseUrl: "http://a.invalid/v1", apiKey: "sk-answer-secret", maxRetries: 1, models: [{ id: "m1" }] },
    b: { baseUrl: "http://b.invalid/v1", models: [{ id: "m2" }] },
  } },
  %s
}"""
PROMPT = {"messages": [{"role": "user", "content": "hi"}]}
HELLO = sse_of([TextDelta("Hello"), TextDelta(" world"), Finish("stop")], done=True)


async def no_sleep(seconds: float) -> None:
    return None


def genesis_with(*recordings: Recording, extra: str = "", **options: Any) -> tuple[Genesis, Replay]:
    genesis = genesis_from(CONFIG % extra, {}, sleep=no_sleep, **options)
    replay = Replay(*recordings)
    genesis.pipeline = genesis.pipeline.replace("send", replay)
    return genesis, replay


def request_side(ctx: Context) -> Result[Context, GenesisError]:
    return Success(ctx)


def answer_side(ctx: Context) -> AnswerStep | None:
    return None


def unannotated_request_stage(ctx):  # type: ignore[no-untyped-def]
    return Success(ctx)


def unannotated_answer_stage(ctx):  # type: ignore[no-untyped-def]
    return stage_examples.shout(ctx)


# ---- the list: seven stages, sides kept apart -----------------------------------------------------


def test_the_pipeline_lists_the_cards_seven_stages() -> None:
    assert Pipeline().names == SEVEN


def test_replacing_send_or_parse_stream_keeps_the_cards_names() -> None:
    replay = Replay()
    assert Pipeline().replace("send", replay, "my_sender").names == SEVEN
    assert Pipeline().replace("send", replay).send is replay


PLACEMENT_RULES: list[tuple[str, Callable[[], Pipeline], str]] = [
    ("send cannot be removed", lambda: Pipeline().remove("send"), "stage 'send': cannot be removed"),
    ("parse_stream cannot be removed", lambda: Pipeline().remove("parse_stream"), "stage 'parse_stream': cannot be removed"),
    (
        "nothing goes right after send",
        lambda: Pipeline().insert_after("send", "x", answer_side),
        "stage 'x': cannot go between send and parse_stream",
    ),
    (
        "nothing goes right before parse_stream",
        lambda: Pipeline().insert_before("parse_stream", "x", request_side),
        "stage 'x': cannot go between send and parse_stream",
    ),
    (
        "a request-side stage is refused after parse_stream",
        lambda: Pipeline().insert_after("parse_stream", "x", request_side),
        "stage 'x': is request-side (its return annotation says so) but sits on the answer side; put it before send",
    ),
    (
        "an answer-side stage is refused before send",
        lambda: Pipeline().insert_before("send", "x", answer_side),
        "stage 'x': is answer-side (its return annotation says so) but sits on the request side; put it after parse_stream",
    ),
    (
        "an answer-side stage cannot replace a request-side one",
        lambda: Pipeline().replace("apply_defaults", answer_side),
        "is answer-side",
    ),
    (
        "parse_stream must follow send in a hand-made list",
        lambda: Pipeline(tuple(reversed(Pipeline().stages))),
        "stage 'parse_stream': must come right after send",
    ),
    ("a list with send but no parse_stream", lambda: Pipeline(Pipeline().stages[:-1]), "must come right after send"),
]


@pytest.mark.parametrize(("rule", "edit", "message"), PLACEMENT_RULES, ids=[row[0] for row in PLACEMENT_RULES])
def test_stages_are_refused_where_their_side_does_not_belong(rule: str, edit: Callable[[], Pipeline], message: str) -> None:
    with pytest.raises(StageError) as caught:
        edit()
    assert message in str(caught.value)


def test_answer_side_stages_go_after_parse_stream_in_order() -> None:
    builtin = ("builtin", answer_side)
    pipeline = Pipeline(answer_builtins=[builtin]).insert_after("parse_stream", "shout", stage_examples.shout)
    pipeline = pipeline.insert_after("shout", "hold", answer_side)
    assert pipeline.names == (*SEVEN, "shout", "hold")  # built-ins are not listed: a compat flag turns them on
    assert [stage.name for stage in pipeline.answer_stages] == ["builtin", "shout", "hold"]
    assert [stage.name for stage in pipeline.request_stages] == list(SEVEN[:5])


def test_a_request_side_only_list_builds_but_has_no_send() -> None:
    pipeline = Pipeline(Pipeline().request_stages)
    with pytest.raises(StageError, match="stage 'send': this pipeline has no such stage"):
        pipeline.send  # noqa: B018


# ---- a run through the answer-side stages ----------------------------------------------------------


def completion_of(genesis: Genesis, request: dict[str, Any] = PROMPT, backend: str = "asyncio") -> Completion:
    return genesis.run_sync("a/m1", request, backend=backend)


@pytest.mark.parametrize(
    ("answer", "stream"),
    [
        (Recording.sse(HELLO, piece_size=7), True),
        (Recording.whole(b'{"choices":[{"message":{"content":"Hello world"},"finish_reason":"stop"}]}'), False),
    ],
    ids=["streamed", "whole"],
)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_answer_side_stage_transforms_the_answer_and_notes_it(answer: Recording, stream: bool, backend: str) -> None:
    genesis, _ = genesis_with(answer)
    genesis.pipeline = genesis.pipeline.insert_after("parse_stream", "shout", stage_examples.shout)
    completion = completion_of(genesis, {**PROMPT, "stream": stream}, backend)
    assert completion.text == "HELLO WORLD"
    assert [(note.stage, note.note) for note in completion.answer_trace if note.stage == "shout"] == [("shout", "upper-cased 11 chars")]


def test_held_back_text_is_released_and_every_stage_sees_it() -> None:
    genesis, _ = genesis_with(Recording.sse(HELLO, piece_size=5))
    pipeline = genesis.pipeline.insert_after("parse_stream", "hold", stage_examples.hold_until_finish)
    genesis.pipeline = pipeline.insert_after("hold", "shout", stage_examples.shout)
    events: list[Event] = []
    completion = genesis.run_sync("a/m1", {**PROMPT, "stream": True}, on_event=events.append)
    assert completion.text == "HELLO WORLD"
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("HELLO WORLD")]


def test_stages_after_the_end_see_what_an_earlier_stage_released_at_finish() -> None:
    no_finish_before_end = sse_of([TextDelta("a"), TextDelta("b")]) + sse_of([Finish("stop")])
    genesis, _ = genesis_with(Recording.sse(no_finish_before_end, piece_size=3))
    pipeline = genesis.pipeline.insert_after("parse_stream", "hold", stage_examples.hold_until_finish)
    genesis.pipeline = pipeline.insert_after("hold", "shout", stage_examples.shout)
    assert completion_of(genesis).text == "AB"


def test_a_stage_with_nothing_to_do_is_left_out_of_the_run() -> None:
    genesis, _ = genesis_with(Recording.sse(HELLO))
    genesis.pipeline = genesis.pipeline.insert_after("parse_stream", "off", stage_examples.off)
    ctx = genesis.shape("a/m1", PROMPT).unwrap()
    assert genesis.pipeline.answer_chain(ctx) is None
    assert completion_of(genesis).text == "Hello world"


def test_built_in_answer_stages_run_before_the_custom_ones() -> None:
    calls: list[str] = []

    def tracing(name: str) -> Callable[[Context], AnswerStep | None]:
        def stage(ctx: Context) -> AnswerStep | None:
            calls.append(name)
            return stage_examples.shout(ctx)

        return stage

    pipeline = Pipeline(answer_builtins=[("extract_think_tags", tracing("builtin"))]).insert_after(
        "parse_stream", "custom", tracing("custom")
    )
    genesis, _ = genesis_with(Recording.sse(HELLO))
    genesis.pipeline = pipeline.replace("send", genesis.pipeline.send)
    completion = completion_of(genesis)
    assert calls == ["builtin", "custom"]
    assert [note.stage for note in completion.answer_trace if note.note.startswith("upper")] == ["extract_think_tags"]


# ---- the guard: a bad answer-side stage fails the run naming it, never retried or failed over -----


class _Feeds:
    def __init__(self, feed: Callable[[Sequence[Event]], Any], notes: Callable[[], Any] = tuple) -> None:
        self._feed, self._notes = feed, notes

    def feed(self, events: Sequence[Event]) -> Any:
        return self._feed(events)

    def finish(self) -> Sequence[Event]:
        return ()

    def notes(self) -> Any:
        return self._notes()


def _boom(*_: Any) -> Any:
    raise RuntimeError("boom")


GUARD_RULES: list[tuple[str, Callable[[Context], Any], str]] = [
    ("a stage that raises when called", _boom, "stage 'bad': raised RuntimeError: boom"),
    ("a step whose feed raises", lambda ctx: _Feeds(_boom), "stage 'bad': raised RuntimeError: boom"),
    (
        "a feed that returns no sequence",
        lambda ctx: _Feeds(lambda events: {"a": 1}),
        "stage 'bad': returned dict; expected a sequence of events",
    ),
    ("a feed that returns a non-event", lambda ctx: _Feeds(lambda events: ["text"]), "stage 'bad': returned a sequence holding str"),
    ("a stage that returns neither a step nor None", lambda ctx: 42, "stage 'bad': returned int; expected an AnswerStep"),
    ("a request-side stage after parse_stream", unannotated_request_stage, "stage 'bad': returned a Result: it is a request-side stage"),
    (
        "notes that are not strings",
        lambda ctx: _Feeds(list, lambda: [1]),
        "stage 'bad': notes() returned list; expected a tuple of strings",
    ),
]


@pytest.mark.parametrize(("rule", "stage", "message"), GUARD_RULES, ids=[row[0] for row in GUARD_RULES])
def test_a_bad_answer_side_stage_fails_the_run_naming_it_and_is_not_retried(
    rule: str, stage: Callable[[Context], Any], message: str
) -> None:
    genesis, replay = genesis_with(Recording.sse(HELLO), Recording.sse(HELLO), Recording.sse(HELLO))
    genesis.pipeline = genesis.pipeline.insert_after("parse_stream", "bad", stage)
    with pytest.raises(StageError) as caught:
        completion_of(genesis, backend="trio")
    assert message in str(caught.value)
    assert not isinstance(caught.value, ProviderError) and len(replay.sent) <= 1  # no retry, no fallback


def test_an_answer_side_stage_before_send_fails_naming_it() -> None:
    genesis, _ = genesis_with(Recording.sse(HELLO))
    result = genesis.pipeline.insert_before("send", "bad", unannotated_answer_stage).build(genesis.catalog, PROMPT, ref="a/m1")
    assert isinstance(result, Failure)
    assert "stage 'bad': returned an answer-side step (or None): answer-side stages go after parse_stream" in str(result.failure())


# ---- send and parse_stream: replaceable, traced -------------------------------------------------------


def test_send_notes_each_try_and_parse_stream_how_the_answer_ended() -> None:
    overloaded = Recording(503, "application/json", (b'{"error": {"message": "busy"}}',))
    genesis, replay = genesis_with(overloaded, Recording.sse(HELLO + b"trailing junk"))
    completion = completion_of(genesis)
    notes = [(note.stage, note.note) for note in completion.answer_trace]
    assert [stage for stage, _ in notes] == ["send", "send", "parse_stream"]
    assert notes[0][1].startswith("a/m1 try 1: HTTP 503") and notes[0][1].endswith("failed: overloaded")
    assert notes[1][1].startswith("a/m1 try 2 (retry): HTTP 200") and notes[1][1].endswith("answered")
    assert notes[2][1] == "ended at data: [DONE]"
    assert len(replay.sent) == 2 and completion.text == "Hello world"


def test_a_whole_json_answer_is_noted_as_such() -> None:
    body = b'{"choices":[{"message":{"content":"Hi"},"finish_reason":"stop"}]}'
    genesis, _ = genesis_with(Recording.whole(body))
    completion = completion_of(genesis, {**PROMPT, "stream": False})
    assert ("parse_stream", f"a whole JSON answer, not a stream ({len(body)} bytes)") in [
        (n.stage, n.note) for n in completion.answer_trace
    ]


def test_counting_events_notes_parse_streams_events_by_kind() -> None:
    genesis, _ = genesis_with(Recording.sse(HELLO))
    genesis.pipeline = genesis.pipeline.counting_events()
    completion = completion_of(genesis)
    assert ("parse_stream", "events: 1 Finish, 2 TextDelta") in [(n.stage, n.note) for n in completion.answer_trace]


def test_send_and_an_answer_side_stage_from_the_config() -> None:
    stages = (
        'pipeline: { stages: [{ use: "tests.stage_examples:replay_hello", replace: "send" },'
        ' { use: "tests.stage_examples:shout", after: "parse_stream" }] },'
    )
    genesis = genesis_from(CONFIG % stages, {})
    assert genesis.pipeline.names == (*SEVEN, "tests.stage_examples:shout")
    assert genesis.pipeline.send is stage_examples.replay_hello
    assert completion_of(genesis).text == "HELLO WORLD"


# ---- Genesis.build: the wire request with its trace and target, secrets never shown ---------------------


def test_build_carries_trace_and_target_outside_the_bytes() -> None:
    genesis, _ = genesis_with()
    wire = genesis.build("a/m1", PROMPT)
    assert wire.target is not None and wire.target.ref == "a/m1"
    assert next((change.stage, change.field) for change in wire.trace) == ("resolve_ref", "model")
    assert b"resolve" not in wire.body and "sk-answer-secret" not in repr(wire)
    assert "context" not in repr(wire) and "trace" not in repr(wire)


# ---- one error channel: request-side stages return their errors -------------------------------------


def _stage(name: str) -> Any:
    return dict(Pipeline().request_stages)[name]


@pytest.mark.parametrize("name", ["apply_defaults", "compat_shaping", "strip_native_only", "attach_headers"])
def test_a_request_stage_run_too_early_returns_a_failure_naming_it(name: str) -> None:
    genesis, _ = genesis_with()
    ctx = Context(catalog=genesis.catalog, request=PROMPT, body=dict(PROMPT))
    result = _stage(name)(ctx)  # no resolve_ref before it: no target
    assert isinstance(result, Failure) and isinstance(result.failure(), StageError)
    assert f"stage '{name}': needs a resolved model" in str(result.failure())


def test_resolve_ref_returns_an_unknown_model_as_a_failure() -> None:
    genesis, _ = genesis_with()
    ctx = Context(catalog=genesis.catalog, request=PROMPT, body=dict(PROMPT), ref="nowhere/x")
    result = _stage("resolve_ref")(ctx)
    assert isinstance(result, Failure) and "Unknown model: nowhere/x" in str(result.failure())
