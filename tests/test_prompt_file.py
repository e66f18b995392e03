"""``--prompt-file FILE`` (``-``: stdin) for ``genesis wire`` and ``genesis infer model run`` (issue 11, item 6).

Rules (pipeline/commands/common.py, README "The commands"): the prompt is the file's text exactly
(a final line break included), less a UTF-8 byte order mark; ``--system`` and ``--max-tokens``
apply as with ``--prompt``. It excludes ``--prompt`` and ``--request``. A file that cannot be
read, is not UTF-8, is empty, or is larger than 64 MiB is one line on stderr naming the option
and the file, exit 2 like every usage error, never a traceback.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from pipeline.cli import main

CONFIG = '{models: {mode: "replace", providers: {p: {baseUrl: "http://127.0.0.1:9/v1", models: [{id: "m"}]}}}, agents: {defaults: {model: {primary: "p/m"}}}}'


class Run(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    config = tmp_path / "genesis.json5"
    config.write_text(CONFIG)
    monkeypatch.delenv("NO_COLOR", raising=False)

    def invoke(*args: str, stdin: bytes | None = None, command: tuple[str, ...] = ("wire", "--json")) -> Run:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        try:
            code = main([*command, "--config", str(config), *args])
        except SystemExit as exit:  # argparse's usage errors
            code = int(exit.code or 0)
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return invoke


class Accepted(NamedTuple):
    rule: str
    data: bytes
    extra: list[str]
    messages: list[dict[str, str]]
    max_tokens: int | None = None


ACCEPTED: dict[str, Accepted] = {
    "text_exactly": Accepted(
        "the prompt is the file's text exactly, its final line break included",
        b"What is 2 + 2?\nAnswer briefly.\n",
        [],
        [{"role": "user", "content": "What is 2 + 2?\nAnswer briefly.\n"}],
    ),
    "utf8": Accepted("UTF-8 text of any script", "Что такое 2 + 2? 🙂".encode(), [], [{"role": "user", "content": "Что такое 2 + 2? 🙂"}]),
    "bom_dropped": Accepted(
        "a UTF-8 byte order mark is not part of the prompt", b"\xef\xbb\xbfhi", [], [{"role": "user", "content": "hi"}]
    ),
    "with_system": Accepted(
        "--system goes before the prompt, as with --prompt",
        b"hi",
        ["--system", "be brief"],
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
    ),
    "with_max_tokens": Accepted(
        "--max-tokens applies, as with --prompt", b"hi", ["--max-tokens", "5"], [{"role": "user", "content": "hi"}], 5
    ),
}


@pytest.mark.parametrize("from_stdin", [False, True], ids=["file", "stdin"])
@pytest.mark.parametrize("row", ACCEPTED.values(), ids=list(ACCEPTED))
def test_the_prompt_comes_from_the_file(row: Accepted, from_stdin: bool, run: Any, tmp_path: Path) -> None:
    path = tmp_path / "prompt.txt"
    path.write_bytes(row.data)
    done = run("--prompt-file", "-" if from_stdin else str(path), *row.extra, stdin=row.data if from_stdin else None)
    assert done.code == 0, done.err
    body = json.loads(done.out)["body"]
    assert body["messages"] == row.messages, row.rule
    assert body.get("max_tokens") == row.max_tokens


def test_the_same_request_as_prompt(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "prompt.txt"
    path.write_text("hi")
    assert run("--prompt-file", str(path)).out == run("--prompt", "hi").out


class Refused(NamedTuple):
    rule: str
    setup: str  # what the FILE argument is: see ``argument``
    message: str  # the whole stderr line after "genesis: "


REFUSED: dict[str, Refused] = {
    "missing": Refused("a file that does not exist", "missing", "--prompt-file {path}: cannot be read: No such file or directory"),
    "directory": Refused("a directory", "directory", "--prompt-file {path}: cannot be read: Is a directory"),
    "not_utf8": Refused(
        "bytes that are not UTF-8, with the first bad byte and its offset",
        "latin1",
        "--prompt-file {path}: not valid UTF-8: byte 0xe9 at offset 3 (a prompt file is UTF-8 text)",
    ),
    "empty": Refused(
        "an empty file (an empty pipe is the usual mistake)", "empty", "--prompt-file {path}: is empty; the prompt is the file's text"
    ),
    "empty_stdin": Refused("an empty stdin", "empty-stdin", "--prompt-file stdin: is empty; the prompt is the file's text"),
    "too_large": Refused("larger than the cap: read no further", "large", "--prompt-file {path}: larger than 1 MiB; is it the right file?"),
    "no_stdin": Refused("no standard input at all", "no-stdin", "--prompt-file stdin: there is no standard input to read"),
}


def argument(setup: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "prompt.txt"
    if setup == "missing":
        return str(tmp_path / "nowhere.txt")
    if setup == "directory":
        return str(tmp_path)
    if setup == "latin1":
        path.write_bytes("café".encode("latin-1"))
    elif setup == "empty":
        path.write_bytes(b"")
    elif setup == "large":
        monkeypatch.setattr("pipeline.commands.common.MAX_INPUT_BYTES", 1024 * 1024)
        path.write_bytes(b"a" * (1024 * 1024 + 1))
    elif setup == "empty-stdin":
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
        return "-"
    elif setup == "no-stdin":
        monkeypatch.setattr(sys, "stdin", None)
        return "-"
    return str(path)


@pytest.mark.parametrize("command", [("wire",), ("infer", "model", "run")], ids=["wire", "run"])
@pytest.mark.parametrize("row", REFUSED.values(), ids=list(REFUSED))
def test_a_bad_prompt_file_is_one_line_and_exit_2(
    row: Refused, command: tuple[str, ...], run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = argument(row.setup, tmp_path, monkeypatch)
    done = run("--prompt-file", path, command=command)
    assert done.code == 2
    assert done.err == "genesis: " + row.message.format(path=path) + "\n", row.rule
    assert done.out == ""


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("hi")
    path.chmod(0)
    done = run("--prompt-file", str(path))
    assert (done.code, done.err) == (2, f"genesis: --prompt-file {path}: cannot be read: Permission denied\n")


def test_json_run_reports_a_bad_prompt_file_as_a_request_error(run: Any, tmp_path: Path) -> None:
    done = run("--prompt-file", str(tmp_path / "nowhere.txt"), command=("infer", "model", "run", "--json"))
    assert done.code == 2
    assert json.loads(done.out)["error"]["class"] == "request"


@pytest.mark.parametrize("other", [["--prompt", "hi"], ["--request", "body.json"]], ids=["prompt", "request"])
def test_prompt_file_excludes_the_other_sources(other: list[str], run: Any, tmp_path: Path) -> None:
    path = tmp_path / "prompt.txt"
    path.write_text("hi")
    done = run("--prompt-file", str(path), *other)
    assert done.code == 2
    assert f"argument {other[0]}: not allowed with argument --prompt-file" in done.err
