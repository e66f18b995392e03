"""The answer side, snapshot-tested: a recorded stream in, the events after each stage out.

For each recorded transcript (tests/conformance/*.json5), the snapshot holds, one line per
event, what ``parse_stream`` made of the body, then what each answer-side stage passed on,
then each stage's notes. A change in any stage's behaviour shows up as a reviewable diff
in ``snapshots/``. The stages run as a run runs them (``Pipeline.answer_chain``): each
stage's output is the next one's input, and held-back events come out at the end.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from backends.stream import parse_stream
from pipeline.events import Event
from pipeline.runner import Pipeline
from tests import stage_examples
from tests.conftest import genesis_from
from tests.test_conformance import TRANSCRIPTS, Transcript

SHOWN = [
    "llamacpp_python/think-tags-inline",
    "llamacpp/reasoning-stream",
    "llamacpp/timings",
    "vllm/stream-with-usage",
    "vllm/tool-call-stream",
    "vllm/n2-choices-stream",
    "vllm/keep-alive-comments",
    "vllm/in-stream-generation-error",
]
BY_ID = {t.id: t for t in TRANSCRIPTS}
# The answer-side stages, in their order after parse_stream (tests.stage_examples).
STAGES = (("shout", stage_examples.shout), ("hold_until_finish", stage_examples.hold_until_finish))
CONFIG = '{models: {mode: "replace", providers: {local: {baseUrl: "http://127.0.0.1:8000/v1", models: [{id: "m"}]}}}}'


def event_line(event: Event) -> str:
    """One event on one line: its kind, its main text quoted, then its other fields (zero counts left out)."""
    fields: dict[str, Any] = msgspec.to_builtins(event)
    kind = fields.pop("event")
    choice = fields.pop("choice", 0)
    parts = [kind]
    for key in ("text", "message", "reason"):
        if key in fields:
            value = fields.pop(key)
            parts.append(json.dumps(value, ensure_ascii=False) if key != "reason" else value)
    values = fields.pop("values", {})
    fields.update(values)
    parts += [f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in fields.items() if value not in (0, None, "")]
    if choice:
        parts.append(f"[choice {choice}]")
    return " ".join(parts)


def stage_by_stage(t: Transcript) -> str:
    ctx = genesis_from(CONFIG).shape("local/m", {"messages": [{"role": "user", "content": "hi"}]}).unwrap()
    parser = parse_stream(t.content_type)
    parsed = parser.feed(t.body) + parser.close()
    lines = [f"# {t.id}: {t.request}", "## after parse_stream"]
    lines += [f"  {event_line(event)}" for event in parsed] or ["  (no events)"]
    lines += [f"  note: {note}" for note in parser.notes()]
    events = parsed
    for count, (name, _) in enumerate(STAGES, start=1):
        pipeline = Pipeline(answer_builtins=(), count_events=False)
        for stage_name, stage in STAGES[:count]:
            pipeline = pipeline.insert_after(pipeline.names[-1], stage_name, stage)
        chain = pipeline.answer_chain(ctx)
        assert chain is not None
        events = chain.feed(list(parsed)) + chain.finish()
        lines.append(f"## after {name}")
        lines += [f"  {event_line(event)}" for event in events] or ["  (no events)"]
        lines += [f"  note: {note.note}" for note in chain.notes() if note.stage == name]
    return "\n".join(lines)


@pytest.mark.parametrize("transcript", SHOWN)
def test_answer_side_stage_by_stage(transcript: str, snapshot: Any) -> None:
    assert stage_by_stage(BY_ID[transcript]) == snapshot


@pytest.mark.parametrize("transcript", SHOWN)
def test_the_answer_is_the_same_whatever_the_reads(transcript: str) -> None:
    """A stage sees each read's events: fed a byte at a time, the stages still give the same events."""
    t = BY_ID[transcript]
    ctx = genesis_from(CONFIG).shape("local/m", {"messages": [{"role": "user", "content": "hi"}]}).unwrap()
    pipeline = Pipeline(answer_builtins=()).insert_after("parse_stream", "shout", stage_examples.shout)
    pipeline = pipeline.insert_after("shout", "hold_until_finish", stage_examples.hold_until_finish)

    def through(pieces: list[bytes]) -> list[Event]:
        parser, chain = parse_stream(t.content_type), pipeline.answer_chain(ctx)
        assert chain is not None
        out: list[Event] = []
        for piece in pieces:
            out += chain.feed(parser.feed(piece))
        return out + chain.feed(parser.close()) + chain.finish()

    whole = through([t.body])
    assert through([t.body[i : i + 1] for i in range(len(t.body))]) == whole
