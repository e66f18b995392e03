"""How every command prints an error: ``genesis: <what> (hint: <how to fix>)`` on stderr.

Kept apart from the argument parser (``pipeline.cli``) so that commands can
use it without importing the module that dispatches to them.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.errors import GenesisError


def report_error(error: GenesisError) -> None:
    """Print a GenesisError the way every command does: one line (a line per issue for config errors)."""
    from pipeline.errors import ConfigError

    lines = error.lines() if isinstance(error, ConfigError) else [str(error)]
    if error.hint:
        lines[-1] += f" (hint: {error.hint})"
    for line in lines:
        print(f"genesis: {line}", file=sys.stderr)
