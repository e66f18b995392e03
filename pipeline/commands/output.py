"""How every command talks to a person on stderr: ``<prog>: <what> (hint: <how to fix>)``.

Kept apart from the argument parser (``pipeline.cli``) so that commands can
use it without importing the module that dispatches to them.

Rules:
- The program name in every message is the one the user typed (``fluffbuzz``
  is the same command as ``genesis``); ``pipeline.cli.main`` sets it once per
  run (``use_program``), everything here reads it.
- Colour goes only to a terminal, and only to stderr: stdout (answers, tables,
  JSON) is data and is never coloured. ``NO_COLOR`` set to anything but the
  empty string turns colour off (https://no-color.org), and so does
  ``TERM=dumb``. What is coloured: an error red, ``warning:`` and a failed
  attempt yellow, reasoning and the status line dim.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Literal, TextIO

if TYPE_CHECKING:
    from pipeline.errors import GenesisError

DEFAULT_PROGRAM = "genesis"

Style = Literal["error", "warning", "dim"]
_SGR: dict[Style, str] = {"error": "\x1b[31m", "warning": "\x1b[33m", "dim": "\x1b[2m"}
_RESET = "\x1b[0m"

_program = DEFAULT_PROGRAM


def program_name(argv0: str | None) -> str:
    """The command's name as the user typed it: the basename of ``argv[0]``; ``genesis`` when
    there is none or it names a Python file (``python -m pipeline.cli``, ``python -c``).

    >>> [program_name(a) for a in ("/home/u/.venv/bin/fluffbuzz", "genesis", "/x/pipeline/cli.py", "-c", "", None)]
    ['fluffbuzz', 'genesis', 'genesis', 'genesis', 'genesis', 'genesis']
    """
    name = PurePath(argv0).name if argv0 else ""
    if not name or name.startswith("-") or name.endswith((".py", ".pyc", ".pyz")):
        return DEFAULT_PROGRAM
    return name


def use_program(name: str) -> None:
    global _program
    _program = name


def program() -> str:
    return _program


def colour_enabled(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Whether to colour what goes to ``stream``: a terminal, ``NO_COLOR`` unset or empty, ``TERM`` not ``dumb``."""
    environ = os.environ if env is None else env
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


def painted(text: str, style: Style, stream: TextIO) -> str:
    """``text`` in ``style`` when ``stream`` takes colour, else as is. Each piece ends with the
    reset, before its line break: an interrupted run never leaves the terminal coloured."""
    body = text.rstrip("\n")
    if not body or not colour_enabled(stream):
        return text
    return f"{_SGR[style]}{body}{_RESET}{text[len(body) :]}"


def say(message: str, style: Style | None = None) -> None:
    """One line on stderr, ``<prog>: <message>``."""
    line = f"{_program}: {message}"
    print(painted(line, style, sys.stderr) if style else line, file=sys.stderr)


def warn(message: str) -> None:
    """``<prog>: warning: <message>`` on stderr."""
    say(f"warning: {message}", "warning")


class WarningLines(logging.Handler):
    """A logging handler that prints each record as ``<prog>: warning: <message>`` (the library's warnings in the CLI)."""

    def emit(self, record: logging.LogRecord) -> None:
        warn(record.getMessage())


def report_error(error: GenesisError) -> None:
    """Print a GenesisError the way every command does: one line (a line per issue for config errors)."""
    from pipeline.errors import ConfigError

    lines = error.lines() if isinstance(error, ConfigError) else [str(error)]
    if error.hint:
        lines[-1] += f" (hint: {error.hint})"
    for line in lines:
        say(line, "error")
