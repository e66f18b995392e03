"""Rule table: where the config file is found and how it is read (``pipeline.config.load_config``).

Rules (README "Config reference"; the docstrings of ``default_config_path`` and ``load_config``):
- ``--config PATH`` wins; else ``GENESIS_CONFIG_PATH``; else ``$GENESIS_STATE_DIR/genesis.json``;
  else ``$HOME/.genesis/genesis.json``.
- A missing file at the default place is an empty config (built-in providers only); a missing file
  that was asked for (a path, or ``GENESIS_CONFIG_PATH``) is an error.
- A file over ``MAX_CONFIG_BYTES`` is refused before it is parsed; one of exactly that size is read.
- Bytes that are not UTF-8 are an error naming the first bad byte and its offset; a file that cannot
  be read (a folder, no permission) is an error with the system's reason.
- An empty (or blank) file is an empty config.
Every error names the file, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.config import MAX_CONFIG_BYTES, LoadedConfig, load_config
from pipeline.errors import ConfigError

VALID = '{models: {providers: {p: {baseUrl: "http://10.0.0.9/v1", models: [{id: "m"}]}}}}'


@dataclass(frozen=True)
class Where:
    """A row: which files exist (relative to a fresh folder), the --config argument, the environment."""

    rule: str
    files: dict[str, bytes]
    path: str | None
    env: dict[str, str]
    read: str | None  # the file whose content is used (relative), or None: the empty config
    source_suffix: str  # how the LoadedConfig's source ends


FOUND = [
    Where(
        "--config wins over every variable",
        {"a.json5": VALID.encode(), "c.json5": b"{}"},
        "a.json5",
        {"GENESIS_CONFIG_PATH": "c.json5", "GENESIS_STATE_DIR": "s", "HOME": "h"},
        "a.json5",
        "a.json5",
    ),
    Where(
        "GENESIS_CONFIG_PATH when no --config",
        {"c.json5": VALID.encode(), "s/genesis.json": b"{}"},
        None,
        {"GENESIS_CONFIG_PATH": "c.json5", "GENESIS_STATE_DIR": "s"},
        "c.json5",
        "c.json5",
    ),
    Where(
        "an empty GENESIS_CONFIG_PATH counts as unset",
        {"s/genesis.json": VALID.encode()},
        None,
        {"GENESIS_CONFIG_PATH": "", "GENESIS_STATE_DIR": "s"},
        "s/genesis.json",
        "s/genesis.json",
    ),
    Where(
        "GENESIS_STATE_DIR/genesis.json next",
        {"s/genesis.json": VALID.encode(), "h/.genesis/genesis.json": b"{}"},
        None,
        {"GENESIS_STATE_DIR": "s", "HOME": "h"},
        "s/genesis.json",
        "s/genesis.json",
    ),
    Where(
        "an empty GENESIS_STATE_DIR counts as unset",
        {"h/.genesis/genesis.json": VALID.encode()},
        None,
        {"GENESIS_STATE_DIR": "", "HOME": "h"},
        "h/.genesis/genesis.json",
        "h/.genesis/genesis.json",
    ),
    Where(
        "$HOME/.genesis/genesis.json last",
        {"h/.genesis/genesis.json": VALID.encode()},
        None,
        {"HOME": "h"},
        "h/.genesis/genesis.json",
        "h/.genesis/genesis.json",
    ),
    Where(
        "absent at the default place: the empty config",
        {},
        None,
        {"HOME": "h"},
        None,
        "h/.genesis/genesis.json (absent: built-in providers only)",
    ),
    Where(
        "absent in the state dir: the empty config",
        {},
        None,
        {"GENESIS_STATE_DIR": "s"},
        None,
        "s/genesis.json (absent: built-in providers only)",
    ),
    Where("an empty file: the empty config", {"e.json5": b""}, "e.json5", {}, None, "e.json5"),
    Where("a blank file: the empty config", {"e.json5": b" \n\t\n"}, "e.json5", {}, None, "e.json5"),
    Where("exactly MAX_CONFIG_BYTES is read", {"big.json5": b"{}" + b" " * (MAX_CONFIG_BYTES - 2)}, "big.json5", {}, None, "big.json5"),
]


def _lay_out(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _absolute(root: Path, env: dict[str, str]) -> dict[str, str]:
    return {key: str(root / value) if value else value for key, value in env.items()}


@pytest.mark.parametrize("row", FOUND, ids=[row.rule for row in FOUND])
def test_config_found(row: Where, tmp_path: Path) -> None:
    _lay_out(tmp_path, row.files)
    loaded = load_config(None if row.path is None else tmp_path / row.path, _absolute(tmp_path, row.env))
    assert isinstance(loaded, LoadedConfig)
    # The source names the file that was read, or the one that was looked for and is absent.
    file, _, absent = row.source_suffix.partition(" (")
    assert loaded.source == str(tmp_path / file) + (f" ({absent}" if absent else "")
    providers = loaded.config.models.providers
    assert list(providers) == (["p"] if row.read is not None and row.files[row.read] == VALID.encode() else [])


@dataclass(frozen=True)
class Refused:
    rule: str
    files: dict[str, bytes]
    path: str | None
    env: dict[str, str]
    problem: str  # the one issue, after "config error in <file>: "
    file: str  # the file the error names (relative)


REFUSED = [
    Refused("a --config file that is missing", {}, "nope.json5", {"HOME": "h"}, "file not found", "nope.json5"),
    Refused(
        "a GENESIS_CONFIG_PATH file that is missing",
        {},
        None,
        {"GENESIS_CONFIG_PATH": "nope.json5", "HOME": "h"},
        "file not found",
        "nope.json5",
    ),
    Refused(
        "one byte over MAX_CONFIG_BYTES",
        {"big.json5": b"{}" + b" " * (MAX_CONFIG_BYTES - 1)},
        "big.json5",
        {},
        f"larger than {MAX_CONFIG_BYTES} bytes; is this the config file?",
        "big.json5",
    ),
    Refused(
        "bytes that are not UTF-8: the first bad byte and its offset",
        {"bad.json5": b"{a:\xff}"},
        "bad.json5",
        {},
        "not valid UTF-8: byte 0xff at offset 3",
        "bad.json5",
    ),
    Refused("a folder is not a file: the system's reason", {"dir/x": b""}, "dir", {}, "cannot be read: Is a directory", "dir"),
]


@pytest.mark.parametrize("row", REFUSED, ids=[row.rule for row in REFUSED])
def test_config_refused(row: Refused, tmp_path: Path) -> None:
    _lay_out(tmp_path, row.files)
    with pytest.raises(ConfigError) as caught:
        load_config(None if row.path is None else tmp_path / row.path, _absolute(tmp_path, row.env))
    error = caught.value
    assert (error.source, [str(issue) for issue in error.issues]) == (str(tmp_path / row.file), [row.problem])
    assert str(error) == f"config error in {tmp_path / row.file}: {row.problem}"


def test_the_folder_of_the_file_read_is_kept_resolved(tmp_path: Path) -> None:
    """``folder`` is the absolute, resolved folder of the file read (``use:`` modules are looked for
    there), through a symlinked folder too; a default config that is absent has none."""
    real = tmp_path / "real"
    _lay_out(real, {"g.json5": VALID.encode()})
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    assert load_config(tmp_path / "link" / "g.json5", {}).folder == str(real.resolve())
    assert load_config(None, {"GENESIS_STATE_DIR": str(tmp_path / "none")}).folder is None
