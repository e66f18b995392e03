"""What one request build costs, counted in Python bytecodes (deterministic, unlike wall clock).

Run: ``.venv/bin/python bench/build_cost.py [--top N] [--builds N]``. It builds the benchmark's
request (``bench/workload.py``: 10 messages, 2 tools, ``stream: true``) with ``Genesis.build``, as
row 1 of ``bench/run`` does, with ``sys.settrace`` opcode events on, and prints the Python bytecodes
one build executes (the mean over ``--builds`` builds after a first, unmetered one: the count is the
same for each). ``--top N`` lists the N functions that execute the most, grouped by function;
``--by-stage`` groups them by the request-side stage they run under (the helpers a stage calls count
as its own), the rest being the runner's fold, ``check_request``, the encode and the facade.

C code (msgspec's encode, ``dict``/``list`` builtins) runs no bytecodes: this counts the Python around
it, which is what a change to the Python code can cut. No test asserts a count.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections import Counter
from types import FrameType
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import workload as W  # bench/ is not a package: its modules import each other by name

from pipeline.api import Genesis


class Meter:
    """Counts opcodes while on: in total, by function, and by the outermost stage function on the stack."""

    def __init__(self, stages: dict[str, str]) -> None:
        self.total = 0
        self.by_function: Counter[str] = Counter()
        self.by_stage: Counter[str] = Counter()
        self._stages = stages

    def tracer(self, frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            self.total += 1
            code = frame.f_code
            self.by_function[f"{'/'.join(code.co_filename.rsplit('/', 2)[-2:])}:{code.co_qualname}"] += 1
            self.by_stage[self._stage_of(frame)] += 1
        return self.tracer

    def _stage_of(self, frame: FrameType | None) -> str:
        """The stage whose module the outermost of the frames is in (a stage's helpers run under it)."""
        found = "(the runner, check_request, encode_wire, the facade)"
        while frame is not None:
            found = self._stages.get(frame.f_code.co_filename, found)
            frame = frame.f_back
        return found

    def __enter__(self) -> Meter:
        sys.settrace(self.tracer)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--top", type=int, default=0, help="list the N functions with the most bytecodes per build")
    ap.add_argument("--by-stage", action="store_true", help="group the bytecodes by the request-side stage they run under")
    ap.add_argument("--builds", type=int, default=10, help="builds metered (the count is the mean; it is the same for each)")
    args = ap.parse_args()
    genesis = Genesis.from_config_text(W.genesis_config(), env=W.GENESIS_ENV)
    first = genesis.build(W.GENESIS_REF, W.REQUEST)  # first use: imports and caches are not the hot path
    stage_files = {inspect.getfile(stage.run): stage.name for stage in genesis.pipeline.request_stages}
    meter = Meter(stage_files)
    with meter:
        for _ in range(args.builds):
            wire = genesis.build(W.GENESIS_REF, W.REQUEST)
    assert wire.body == first.body, "the builds must be identical"
    print(f"build   {meter.total / args.builds:8.1f} bytecodes per build ({len(wire.body)} B body, {len(wire.trace)} trace entries)")
    if args.by_stage:
        for stage, count in meter.by_stage.most_common():
            print(f"        {count / args.builds:7.1f}  {stage}")
    if args.top:
        for function, count in meter.by_function.most_common(args.top):
            print(f"        {count / args.builds:7.1f}  {function}")


if __name__ == "__main__":
    main()
