"""Colour only on a terminal, honouring ``NO_COLOR`` (issue 11, item 6; https://no-color.org).

Rules (pipeline/commands/output.py): stdout (answers, tables, JSON) is data and never coloured;
stderr is coloured only when it is a terminal, ``NO_COLOR`` is unset or empty, and ``TERM`` is not
``dumb``. Coloured: an error red, a warning and a failed attempt yellow, reasoning and the status
line dim; each coloured piece ends with a reset before its line break.
"""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from pipeline.cli import main
from pipeline.commands.output import colour_enabled, painted

ROOT = Path(__file__).resolve().parent.parent
ESC = "\x1b["


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Closed(io.StringIO):
    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


class Row(NamedTuple):
    rule: str
    env: dict[str, str]
    stream: Any
    colour: bool


ROWS: dict[str, Row] = {
    "terminal": Row("a terminal, NO_COLOR unset: colour", {}, Terminal(), True),
    "no_color_set": Row("NO_COLOR=1 disables colour", {"NO_COLOR": "1"}, Terminal(), False),
    "no_color_any_value": Row("NO_COLOR with any non-empty value disables colour, even 0", {"NO_COLOR": "0"}, Terminal(), False),
    "no_color_empty": Row("NO_COLOR set but empty is as if unset (no-color.org)", {"NO_COLOR": ""}, Terminal(), True),
    "dumb_terminal": Row("TERM=dumb: no colour", {"TERM": "dumb"}, Terminal(), False),
    "other_term": Row("any other TERM: colour", {"TERM": "xterm-256color"}, Terminal(), True),
    "pipe_or_file": Row("not a terminal (a pipe, a file): never colour", {}, io.StringIO(), False),
    "no_isatty": Row("a stream without isatty: no colour", {}, object(), False),
    "closed": Row("a stream whose isatty fails: no colour", {}, Closed(), False),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=list(ROWS))
def test_colour_enabled(row: Row) -> None:
    assert colour_enabled(row.stream, row.env) is row.colour, row.rule


@pytest.mark.parametrize(
    ("rule", "text", "painted_text"),
    [
        ("a line: code, text, reset", "oops", "\x1b[31moops\x1b[0m"),
        ("the line break stays outside the colour", "oops\n", "\x1b[31moops\x1b[0m\n"),
        ("nothing to colour: as is", "\n", "\n"),
        ("empty: as is", "", ""),
    ],
    ids=["line", "newline-outside", "only-newline", "empty"],
)
def test_painted(rule: str, text: str, painted_text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    assert painted(text, "error", Terminal()) == painted_text, rule


# ---- in the CLI: stderr coloured on a terminal, stdout never -------------------------------------------

CONFIG = (
    '{models: {mode: "replace", providers: {r: {baseUrl: "http://127.0.0.1:9/v1", maxRetries: 0, '
    'models: [{id: "text-and-reasoning"}, {id: "empty"}]}, e: {baseUrl: "http://127.0.0.1:9/v1"}}}, '
    'pipeline: {stages: [{use: "tests.test_text_mode:replay", replace: "send"}]}}'
)


class Streams(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def on_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """Run ``main`` with stdout and stderr both terminals; ``no_color``: NO_COLOR=1."""
    config = tmp_path / "genesis.json5"
    config.write_text(CONFIG)
    monkeypatch.delenv("TERM", raising=False)

    def run(*args: str, no_color: bool = False) -> Streams:
        if no_color:
            monkeypatch.setenv("NO_COLOR", "1")
        else:
            monkeypatch.delenv("NO_COLOR", raising=False)
        out, err = Terminal(), Terminal()
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        code = main([*args, "--config", str(config)])
        monkeypatch.undo()  # restore the real streams before anything else prints
        return Streams(code, out.getvalue(), err.getvalue())

    return run


class CliRow(NamedTuple):
    rule: str
    args: tuple[str, ...]
    coloured: list[str]  # stderr pieces that are coloured on a terminal


CLI_ROWS: dict[str, CliRow] = {
    "error_red": CliRow(
        "an error line is red", ("wire", "--prompt", "hi", "--model", "nowhere/x"), ["\x1b[31mgenesis: Unknown model: nowhere/x"]
    ),
    "warning_yellow": CliRow(
        "a warning is yellow; the table on stdout is plain",
        ("models", "list", "--provider", "e"),
        ["\x1b[33mgenesis: warning: no models to list"],
    ),
    "reasoning_and_status_dim": CliRow(
        "reasoning and the status line are dim; the answer on stdout is plain",
        ("infer", "model", "run", "--model", "r/text-and-reasoning", "--prompt", "hi"),
        ["\x1b[2m[reasoning] \x1b[0m", "\x1b[2mThe user greets me.\x1b[0m", "\x1b[2mgenesis: r/text-and-reasoning · "],
    ),
    "no_text_dim": CliRow(
        "[no text] is dim", ("infer", "model", "run", "--model", "r/empty", "--prompt", "hi"), ["\x1b[2m[no text]\x1b[0m\n"]
    ),
}


@pytest.mark.parametrize("row", CLI_ROWS.values(), ids=list(CLI_ROWS))
def test_stderr_coloured_on_a_terminal_stdout_never(row: CliRow, on_terminal: Any) -> None:
    done = on_terminal(*row.args)
    for piece in row.coloured:
        assert piece in done.err, (row.rule, done.err)
    assert ESC not in done.out, "stdout is data: never coloured"
    plain = on_terminal(*row.args, no_color=True)
    assert ESC not in plain.out + plain.err, "NO_COLOR=1: no colour anywhere"
    assert plain.code == done.code


def _run_with_stderr(fd: int, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "wire", "--config", "/nonexistent/x.json5", "--prompt", "hi"],
        stdout=subprocess.PIPE,
        stderr=fd,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env},
        timeout=60,
    )


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other end is gone: all is read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("rule", "env", "coloured"),
    [
        ("a real terminal: the error is red", {}, True),
        ("a real terminal with NO_COLOR=1: plain", {"NO_COLOR": "1"}, False),
    ],
    ids=["tty", "tty-no-color"],
)
def test_a_real_terminal(rule: str, env: dict[str, str], coloured: bool, tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    try:
        done = _run_with_stderr(follower, env, tmp_path)
        os.close(follower)
        err = _read_all(leader).decode()
    finally:
        os.close(leader)
    assert done.returncode == 2
    assert err.startswith("\x1b[31mgenesis: " if coloured else "genesis: "), (rule, err)
    assert (ESC in err) is coloured


def test_a_pipe_and_a_file_get_no_colour(tmp_path: Path) -> None:
    piped = _run_with_stderr(subprocess.PIPE, {}, tmp_path)
    assert piped.stderr.startswith(b"genesis: ") and b"\x1b" not in piped.stderr
    with (tmp_path / "err.log").open("wb") as log:
        _run_with_stderr(log.fileno(), {}, tmp_path)
    logged = (tmp_path / "err.log").read_bytes()
    assert logged.startswith(b"genesis: ") and b"\x1b" not in logged
