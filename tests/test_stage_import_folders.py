"""A ``use:`` module of one name in two config folders: each config gets its own folder's.

Rules (``pipeline.runner.import_stage_module``), one row each, every row on configs loaded in one process:

- two configs in two folders, each with its own module (or package) of the same name, each get their own;
- loading the first config again afterwards gets the first folder's again;
- one folder's config loaded twice shares that folder's module (it is loaded once);
- an installed module still wins, in every folder;
- a config given as text does not see a module some folder's config loaded: installed modules only;
- a load that fails in the second folder leaves the first folder's module where it was;
- ``sys.path`` is as it was after every load.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from pipeline.api import Genesis
from pipeline.errors import ConfigError
from tests.test_stage_import import write_config as write_stage_config

REQUEST = {"messages": [{"role": "user", "content": "hi"}]}


def seed_stage(seed: int) -> str:
    return f"""
from returns.result import Success
from pipeline.trace import added

def add_seed(ctx):
    return Success(ctx.updated([added("add_seed", "seed", "from this folder")], body={{**ctx.body, "seed": {seed}}}))
"""


def write_config(folder: Path, files: dict[str, str], use: str) -> Path:
    """A config in its own ``folder`` whose one custom stage is ``use``, with the module files beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    return write_stage_config(folder, files, f'{{ use: "{use}", after: "apply_defaults" }}')


def seed_of(config: Path) -> object:
    wire = Genesis.from_config_file(config, env={}).build("local/m", REQUEST)
    return dict(wire.context.body if wire.context is not None else {}).get("seed")


@pytest.fixture
def clean_imports() -> Iterator[None]:
    """The rows' modules are forgotten afterwards, and ``sys.path`` must come back as it was."""
    path_before = list(sys.path)
    modules_before = set(sys.modules)
    yield
    for name in set(sys.modules) - modules_before:
        if name.startswith("nx_"):
            del sys.modules[name]
    assert sys.path == path_before, "loading a config changed sys.path"


class Twin(NamedTuple):
    rule: str
    files: Callable[[int], dict[str, str]]  # the folder's files, by the seed its stage adds
    use: str


TWINS = [
    Twin("a single module", lambda seed: {"nx_twin.py": seed_stage(seed)}, "nx_twin:add_seed"),
    Twin("a package", lambda seed: {"nx_twinpkg/__init__.py": "", "nx_twinpkg/stages.py": seed_stage(seed)}, "nx_twinpkg.stages:add_seed"),
    Twin("a namespace package", lambda seed: {"nx_twinns/stages.py": seed_stage(seed)}, "nx_twinns.stages:add_seed"),
]


@pytest.mark.parametrize("twin", TWINS, ids=[twin.rule for twin in TWINS])
def test_two_folders_each_get_their_own_module(twin: Twin, tmp_path: Path, clean_imports: None) -> None:
    first = write_config(tmp_path / "first", twin.files(1), twin.use)
    second = write_config(tmp_path / "second", twin.files(2), twin.use)
    assert [seed_of(first), seed_of(second), seed_of(first)] == [1, 2, 1]


def test_one_folder_loaded_twice_shares_its_module(tmp_path: Path, clean_imports: None) -> None:
    config = write_config(tmp_path / "only", {"nx_once.py": seed_stage(3)}, "nx_once:add_seed")
    stages = [dict(Genesis.from_config_file(config, env={}).pipeline.stages)["nx_once:add_seed"] for _ in range(2)]
    assert stages[0] is stages[1]


def test_an_installed_module_wins_in_every_folder(tmp_path: Path, clean_imports: None) -> None:
    shadow = {"string.py": "raise RuntimeError('the shadow was imported')\n"}
    for name in ("first", "second"):
        config = write_config(tmp_path / name, shadow, "string:capwords")
        assert dict(Genesis.from_config_file(config, env={}).pipeline.stages)["string:capwords"] is string.capwords


def test_a_config_given_as_text_does_not_see_a_folders_module(tmp_path: Path, clean_imports: None) -> None:
    config = write_config(tmp_path / "first", {"nx_seen.py": seed_stage(4)}, "nx_seen:add_seed")
    assert seed_of(config) == 4
    with pytest.raises(ConfigError) as raised:
        Genesis.from_config_text(config.read_text(), env={})
    assert 'cannot import module "nx_seen" (looked in the installed packages)' in str(raised.value)


def test_a_failed_load_in_a_second_folder_leaves_the_first_folders_module(tmp_path: Path, clean_imports: None) -> None:
    first = write_config(tmp_path / "first", {"nx_fails.py": seed_stage(5)}, "nx_fails:add_seed")
    second = write_config(tmp_path / "second", {"nx_fails.py": "raise ValueError('broken on purpose')\n"}, "nx_fails:add_seed")
    assert seed_of(first) == 5
    loaded = sys.modules["nx_fails"]
    with pytest.raises(ConfigError) as raised:
        Genesis.from_config_file(second, env={})
    assert "broken on purpose" in str(raised.value)
    assert sys.modules["nx_fails"] is loaded and seed_of(first) == 5
