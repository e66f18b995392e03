"""A run with no answer-side step reads the answer exactly as before: no extra call per read or event.

Counted, not timed: every Python function call of a whole run (``sys.setprofile``) over a replayed
stream of n reads. An answer-side stage that returns None for the request may cost a fixed number of
calls (it is called once per attempt), never more with more reads; a stage with a step costs calls
on every read, which is what this check would see.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from pipeline.api import Genesis
from pipeline.events import Finish, TextDelta
from pipeline.runner import Pipeline
from tests import stage_examples
from tests.conftest import genesis_from
from tests.replay import Recording, Replay, sse_of

CONFIG = '{models: {mode: "replace", providers: {local: {baseUrl: "http://local.invalid/v1", models: [{id: "m"}]}}}}'
PROMPT = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


def calls_in_a_run(reads: int, edit: Callable[[Pipeline], Pipeline]) -> int:
    body = sse_of([TextDelta(f"t{i}") for i in range(reads)] + [Finish("stop")], done=True)
    frames = [frame + b"\n\n" for frame in body.split(b"\n\n") if frame]
    genesis: Genesis = genesis_from(CONFIG)
    genesis.pipeline = edit(genesis.pipeline.replace("send", Replay(Recording(200, "text/event-stream", tuple(frames)))))
    count = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        completion = genesis.run_sync("local/m", PROMPT)
    finally:
        sys.setprofile(None)
    assert completion.text.lower() == "".join(f"t{i}" for i in range(reads))
    return count


def unchanged(pipeline: Pipeline) -> Pipeline:
    return pipeline


def with_off(pipeline: Pipeline) -> Pipeline:
    return pipeline.insert_after("parse_stream", "off", stage_examples.off)


def with_step(pipeline: Pipeline) -> Pipeline:
    return pipeline.insert_after("parse_stream", "shout", stage_examples.shout)


def extra_calls_per_read(edit: Callable[[Pipeline], Pipeline]) -> float:
    """How many more calls the run makes per extra read than the unchanged pipeline makes."""
    calls_in_a_run(5, edit)  # warm: first-use imports and caches are not the hot path
    calls_in_a_run(5, unchanged)
    small = calls_in_a_run(20, edit) - calls_in_a_run(20, unchanged)
    large = calls_in_a_run(60, edit) - calls_in_a_run(60, unchanged)
    return (large - small) / 40


@pytest.mark.parametrize(("edit", "per_read"), [(with_off, 0)], ids=["a stage that returns None costs no call per read"])
def test_no_answer_side_step_means_no_extra_call_per_read(edit: Callable[[Pipeline], Pipeline], per_read: float) -> None:
    assert extra_calls_per_read(edit) == per_read


def test_the_count_sees_a_step_on_the_hot_path() -> None:
    """The check can fail: a stage with a step is called on every read."""
    assert extra_calls_per_read(with_step) >= 1
