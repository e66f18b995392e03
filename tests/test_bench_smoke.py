"""The benchmark in its tiny smoke mode, so it cannot rot (no timing is asserted).

Run with the project's own Python: Genesis installed, the peers (LiteLLM, the
OpenAI SDK) usually not, and smoke mode skips a missing peer with a line
saying so. The full benchmark is ``bench/run``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_smoke() -> None:
    done = subprocess.run([sys.executable, "bench/bench.py", "--smoke"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for section in ("1. Request build", "2. Stream parse", "3. Cold start", "4. Concurrency"):
        assert section in done.stdout
    assert "genesis" in done.stdout and "0 error(s)" in done.stdout
