"""What an answer-side stage costs per read of a streamed answer, counted in Python bytecodes.

Run: ``.venv/bin/python bench/answer_side_cost.py``. Wall clock on a shared machine is too noisy
for a difference of a few per cent (bench.py's stream rows; report their medians); bytecodes
executed are not: each variant runs a whole ``Genesis.run`` over an ``httpx.MockTransport``
whose body comes one SSE frame (one event) per read, with ``sys.settrace`` opcode events on,
for 20 and for 60 reads; the difference over 40 reads is the per-read cost (start-up, the
request build and the stage's one call per attempt cancel out). Variants:

- ``no answer-side stage``: the seven stages as they are;
- ``stage returning None``: an answer-side stage with nothing to do for the request;
- ``step passing all``: an answer-side stage whose step passes every event on.

No test asserts a count (tests/test_answer_hot_path.py pins the rule itself: a stage that
returns None adds no call per read).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Sequence
from types import FrameType
from typing import Any

import httpx

from pipeline.api import Genesis

CONFIG = '{models: {mode: "replace", providers: {local: {baseUrl: "http://local.invalid/v1", models: [{id: "m"}]}}}}'
PROMPT = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


def frames(reads: int) -> list[bytes]:
    chunks = [{"choices": [{"index": 0, "delta": {"content": f"t{i}"}}]} for i in range(reads)]
    out = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks]
    return out + [b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n', b"data: [DONE]\n\n"]


class PassAll:
    def feed(self, events: Sequence[Any]) -> Sequence[Any]:
        return events

    def finish(self) -> tuple[()]:
        return ()

    def notes(self) -> tuple[str, ...]:
        return ()


def nothing_to_do(ctx: Any) -> None:
    return None


def pass_all(ctx: Any) -> PassAll:
    return PassAll()


VARIANTS = {"no answer-side stage": None, "stage returning None": nothing_to_do, "step passing all": pass_all}


def bytecodes_of_a_run(reads: int, stage: Any) -> int:
    pieces = frames(reads)

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    genesis = Genesis.from_config_text(CONFIG, env={}, transport=httpx.MockTransport(handler))
    if stage is not None:
        genesis.pipeline = genesis.pipeline.insert_after("parse_stream", "measured", stage)
    total = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal total
        frame.f_trace_opcodes = True
        if event == "opcode":
            total += 1
        return tracer

    sys.settrace(tracer)
    try:
        completion = genesis.run_sync("local/m", PROMPT)
    finally:
        sys.settrace(None)
    assert completion.text == "".join(f"t{i}" for i in range(reads)), completion.text
    return total


def main() -> None:
    baseline = None
    for name, stage in VARIANTS.items():
        bytecodes_of_a_run(5, stage)  # first use: imports and caches are not the hot path
        per_read = (bytecodes_of_a_run(60, stage) - bytecodes_of_a_run(20, stage)) / 40
        baseline = per_read if baseline is None else baseline
        print(f"{name:<22} {per_read:8.1f} bytecodes per read  {per_read / baseline - 1:+7.1%}")


if __name__ == "__main__":
    main()
