"""The program name in messages is the one the user typed (issue 11, "Why" 8).

``fluffbuzz`` is installed as another name for ``genesis``; every line the CLI writes for a person
(errors, warnings, notices, the status line, usage, help, ``--version``) names the command as it
was run: the basename of ``argv[0]``, or ``genesis`` when that is a Python file (``python -m
pipeline.cli``). The console scripts run as a user runs them, in a subprocess.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from pipeline.cli import main
from pipeline.commands.output import WarningLines, program, program_name, use_program

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("argv0", "name"),
    [
        ("/home/u/.venv/bin/fluffbuzz", "fluffbuzz"),
        ("genesis", "genesis"),
        ("./my-alias", "my-alias"),
        ("/x/pipeline/cli.py", "genesis"),  # python -m pipeline.cli
        ("-c", "genesis"),  # python -c
        ("", "genesis"),
        (None, "genesis"),
    ],
    ids=["script-path", "bare", "relative", "python-m", "python-c", "empty", "none"],
)
def test_program_name(argv0: str | None, name: str) -> None:
    assert program_name(argv0) == name


class Row(NamedTuple):
    rule: str
    args: list[str]
    stream: str  # "out" or "err"
    line: str  # the line that must start with the program name (as "{prog}")
    code: int


def rows(config: str, fault_config: str) -> dict[str, Row]:
    return {
        "user_error": Row("a user error's line", ["wire", "--config", "/nonexistent/x.json5", "--prompt", "hi"], "err", "{prog}: ", 2),
        "usage_error": Row("argparse's usage error", ["wire"], "err", "{prog} wire: error: ", 2),
        "usage": Row("the usage line of an error", ["wire"], "err", "usage: {prog} wire ", 2),
        "help": Row("--help", ["--help"], "out", "usage: {prog} ", 0),
        "version": Row("--version", ["--version"], "out", "{prog} 0.", 0),
        "warning": Row("a warning", ["models", "list", "--config", config], "err", "{prog}: warning: no models to list", 0),
        "status_line": Row(
            "the status line after a run",
            ["infer", "model", "run", "--config", fault_config, "--prompt", "hi"],
            "err",
            "{prog}: fault/ok · ",
            0,
        ),
        "attempt_notice": Row(
            "a failed attempt's notice",
            ["infer", "model", "run", "--config", fault_config, "--model", "fault/overloaded", "--prompt", "hi"],
            "err",
            "{prog}: fault/overloaded failed (overloaded",
            0,
        ),
    }


@pytest.fixture(scope="module")
def configs(fault_server: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("program-name")
    empty = folder / "empty.json5"
    empty.write_text('{models: {mode: "replace"}}')
    fault = folder / "fault.json5"
    fault.write_text(
        f'{{agents: {{defaults: {{model: {{primary: "fault/ok", fallbacks: ["fault/ok"]}}}}}}, models: {{mode: "replace", providers: {{fault: {{baseUrl: "{fault_server.base_url}", maxRetries: 0, models: [{{id: "ok"}}, {{id: "overloaded"}}]}}}}}}}}'
    )
    return str(empty), str(fault)


ROW_IDS = list(rows("", ""))


@pytest.mark.parametrize("prog", ["fluffbuzz", "genesis"])
@pytest.mark.parametrize("row_id", ROW_IDS)
def test_every_message_names_the_command_as_typed(prog: str, row_id: str, configs: tuple[str, str], tmp_path: Path) -> None:
    row = rows(*configs)[row_id]
    script = BIN / prog
    assert script.exists(), f"{script}: the console scripts are installed by scripts/setup (pip install -e .)"
    done = subprocess.run(
        [str(script), *row.args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=60,
    )
    text = done.stdout if row.stream == "out" else done.stderr
    expected = row.line.format(prog=prog)
    assert any(line.startswith(expected) for line in text.splitlines()), (row.rule, text)
    assert done.returncode == row.code, done.stderr
    other = "genesis" if prog == "fluffbuzz" else "fluffbuzz"
    assert f"{other}:" not in done.stdout + done.stderr and f"usage: {other}" not in done.stdout + done.stderr


def test_python_m_says_genesis(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "wire"], capture_output=True, text=True, cwd=ROOT, env={"HOME": str(tmp_path)}, timeout=60
    )
    assert "usage: genesis wire" in done.stderr and "genesis wire: error:" in done.stderr


def test_the_name_holds_for_one_run(capsys: pytest.CaptureFixture[str]) -> None:
    """In-process, ``main(argv, prog=...)`` names that run's lines and puts the earlier name back after it."""
    assert main(["wire", "--config", "/nonexistent/x.json5", "--prompt", "hi"], prog="fluffbuzz") == 2
    assert capsys.readouterr().err.startswith("fluffbuzz: ")
    assert program() == "genesis"
    assert main(["wire", "--config", "/nonexistent/x.json5", "--prompt", "hi"]) == 2
    assert capsys.readouterr().err.startswith("genesis: ")


def test_library_warnings_carry_the_name(capsys: pytest.CaptureFixture[str]) -> None:
    """The library's logged warnings (TLS verification off, ...) print under the run's name."""
    logger = logging.Logger("test-program-name")
    logger.addHandler(WarningLines())
    earlier = program()
    use_program("fluffbuzz")
    try:
        logger.warning("TLS certificate verification is OFF for %s", "https://h/v1")
    finally:
        use_program(earlier)
    assert capsys.readouterr().err == "fluffbuzz: warning: TLS certificate verification is OFF for https://h/v1\n"
