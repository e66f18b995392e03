"""Rule table: the last place the config is looked for, and the path of an issue about the whole file
(``pipeline.config.default_config_path``, ``load_config``; the search order itself is
``tests/rules/test_load_config.py``).

Rules:
- With no ``GENESIS_CONFIG_PATH`` and no ``GENESIS_STATE_DIR``, the config is ``~/.genesis/genesis.json``:
  ``HOME`` from the environment given, else (absent or empty there) the process's home directory.
- An issue about the file as a whole (missing, too large, not UTF-8, unreadable) has the path ``""``:
  ``ConfigIssue.path`` is always a string, and the message is the problem alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pytest

from pipeline.config import MAX_CONFIG_BYTES, default_config_path, load_config
from pipeline.errors import ConfigError


class Home(NamedTuple):
    rule: str
    env: dict[str, str]
    expected: str  # relative to the folder the row is given; "process" is the process's home


HOME_ROWS: dict[str, Home] = {
    "home_given": Home("HOME from the environment given wins over the process's", {"HOME": "given"}, "given/.genesis/genesis.json"),
    "home_absent": Home("HOME absent from the environment given: the process's home", {}, "process/.genesis/genesis.json"),
    "home_empty": Home("an empty HOME counts as absent", {"HOME": ""}, "process/.genesis/genesis.json"),
}


@pytest.mark.parametrize("row", list(HOME_ROWS.values()), ids=list(HOME_ROWS))
def test_home_fallback(row: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "process"))
    env = {key: str(tmp_path / value) if value else value for key, value in row.env.items()}
    assert default_config_path(env) == tmp_path / row.expected


class WholeFile(NamedTuple):
    rule: str
    name: str  # created in the row's folder ("" : nothing is created)
    data: bytes | None  # None: a folder
    problem: str


WHOLE_FILE_ROWS: dict[str, WholeFile] = {
    "missing": WholeFile("a file asked for and missing", "", b"", "file not found"),
    "too_large": WholeFile(
        "a file over MAX_CONFIG_BYTES",
        "big.json5",
        b" " * (MAX_CONFIG_BYTES + 1),
        f"larger than {MAX_CONFIG_BYTES} bytes; is this the config file?",
    ),
    "not_utf8": WholeFile("bytes that are not UTF-8", "bad.json5", b"\xfe{}", "not valid UTF-8: byte 0xfe at offset 0"),
    "unreadable": WholeFile("a folder given as the file", "dir", None, "cannot be read: Is a directory"),
}


@pytest.mark.parametrize("row", list(WHOLE_FILE_ROWS.values()), ids=list(WHOLE_FILE_ROWS))
def test_whole_file_issue_has_the_empty_path(row: WholeFile, tmp_path: Path) -> None:
    target = tmp_path / (row.name or "absent.json5")
    if row.name and row.data is None:
        target.mkdir()
    elif row.name and row.data is not None:
        target.write_bytes(row.data)
    with pytest.raises(ConfigError) as caught:
        load_config(target, {})
    assert [(issue.path, issue.problem, str(issue)) for issue in caught.value.issues] == [("", row.problem, row.problem)]
