"""``bench/build_cost.py``, so it cannot rot: it counts, its stage grouping accounts for every bytecode,
and the count is the same from one run to the next (deterministic, unlike wall clock). No count is
asserted: the count is what a change to the build path moves.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("resolve_ref", "apply_defaults", "compat_shaping", "strip_native_only", "attach_headers")


def _run() -> tuple[float, dict[str, float]]:
    done = subprocess.run(
        [sys.executable, "bench/build_cost.py", "--builds", "2", "--by-stage"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    first, *rest = done.stdout.splitlines()
    total = re.match(r"build\s+([\d.]+) bytecodes per build \(\d+ B body, \d+ trace entries\)", first)
    assert total is not None, first
    by_stage = {line.split(None, 1)[1]: float(line.split(None, 1)[0]) for line in rest}
    return float(total.group(1)), by_stage


def test_build_cost_counts_every_bytecode_once_and_the_same_each_run() -> None:
    total, by_stage = _run()
    assert total > 0
    assert set(STAGES) <= set(by_stage), by_stage  # each built-in stage runs Python of its own
    assert abs(sum(by_stage.values()) - total) < 1, (total, by_stage)
    assert _run()[0] == total
