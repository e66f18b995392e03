"""Where a config's ``use: "module:function"`` is found, and what a library caller sees for an unknown model.

Rules (``pipeline.runner.import_stage_module``):
- an installed module (``sys.path``) wins;
- a top-level name that is not installed is looked for in the config file's own folder
  (a package, a namespace package or a single module), so ``genesis --config dir/genesis.json5``
  works from any working directory, without ``PYTHONPATH``;
- while it loads, the module sees its siblings; afterwards ``sys.path`` is as it was;
- anything else is a ``ConfigError`` naming the entry and where it looked, never a traceback;
- a config given as text has no folder: installed modules only.

And (``Genesis.build``, ``unwrap_or_raise``): an unknown model raised to a library caller carries
the hint and the config that was read as notes, so its traceback says what to fix.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from pipeline.api import Genesis
from pipeline.errors import ConfigError, UnknownModelError
from pipeline.runner import USE_HINT

SEED_STAGE = """
from returns.result import Success
from pipeline.trace import added

def add_seed(ctx):
    return Success(ctx.updated([added("add_seed", "seed", "reproducible runs")], body={**ctx.body, "seed": 7}))
"""

REQUEST = {"messages": [{"role": "user", "content": "hi"}]}


class Row(NamedTuple):
    rule: str
    files: dict[str, str]  # relative path -> text, written next to the config
    use: str
    error: str | None  # None: the stage loads and adds the seed; else a text the ConfigError holds


ROWS = [
    Row("a package next to the config", {"nx_pkg/__init__.py": "", "nx_pkg/stages.py": SEED_STAGE}, "nx_pkg.stages:add_seed", None),
    Row("a single module next to the config", {"nx_single.py": SEED_STAGE}, "nx_single:add_seed", None),
    Row("a namespace package (no __init__.py) next to the config", {"nx_ns/stages.py": SEED_STAGE}, "nx_ns.stages:add_seed", None),
    Row(
        "the module sees its siblings while it loads",
        {"nx_sib.py": "import nx_sib_helper\nadd_seed = nx_sib_helper.add_seed\n", "nx_sib_helper.py": SEED_STAGE},
        "nx_sib:add_seed",
        None,
    ),
    Row(
        "a module found nowhere: the error says where it looked",
        {},
        "nx_nowhere.stages:add_seed",
        'pipeline.stages[0].use: cannot import module "nx_nowhere.stages" (looked in the installed packages and {folder})',
    ),
    Row(
        "a folder module's missing dependency is named as such",
        {"nx_dep.py": "import nx_not_installed_dependency\n"},
        "nx_dep:add_seed",
        "No module named 'nx_not_installed_dependency'",
    ),
    Row(
        "a module that raises while loading is a config error, not a traceback",
        {"nx_broken.py": "raise ValueError('broken on purpose')\n"},
        "nx_broken:add_seed",
        'module "nx_broken" failed while loading: ValueError: broken on purpose',
    ),
    Row("a folder module without the function", {"nx_empty.py": ""}, "nx_empty:add_seed", 'module "nx_empty" has no function "add_seed"'),
]


@pytest.fixture
def clean_imports() -> Iterator[None]:
    """The rows' modules are forgotten afterwards, and ``sys.path`` must come back as it was."""
    path_before = list(sys.path)
    modules_before = set(sys.modules)
    yield
    for name in set(sys.modules) - modules_before:
        if name.startswith("nx_") or name == "string":
            del sys.modules[name]
    assert sys.path == path_before, "loading a config changed sys.path"


def write_config(folder: Path, files: dict[str, str], stages: str) -> Path:
    for relative, text in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    config = folder / "genesis.json5"
    config.write_text(
        '{ agents: { defaults: { model: { primary: "local/m" } } },'
        ' models: { providers: { local: { baseUrl: "http://127.0.0.1:9/v1", models: [{ id: "m" }] } } },'
        f" pipeline: {{ stages: [{stages}] }} }}"
    )
    return config


@pytest.mark.parametrize("row", ROWS, ids=[row.rule for row in ROWS])
def test_use_modules_are_found_installed_then_next_to_the_config(
    row: Row, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_imports: None
) -> None:
    folder = tmp_path / "config-dir"
    folder.mkdir()
    config = write_config(folder, row.files, f'{{ use: "{row.use}", after: "apply_defaults" }}')
    monkeypatch.chdir(tmp_path)  # not the config's folder: found because of the config, not the cwd
    if row.error is None:
        wire = Genesis.from_config_file(config, env={}).build(None, REQUEST)
        assert b'"seed":7' in wire.body
        return
    with pytest.raises(ConfigError) as raised:
        Genesis.from_config_file(config, env={})
    assert row.error.format(folder=folder.resolve()) in str(raised.value)
    assert raised.value.source == str(config)


def test_an_installed_module_wins_over_a_file_of_the_same_name_next_to_the_config(tmp_path: Path, clean_imports: None) -> None:
    config = write_config(
        tmp_path, {"string.py": "raise RuntimeError('the shadow was imported')\n"}, '{ use: "string:capwords", after: "parse_stream" }'
    )
    genesis = Genesis.from_config_file(config, env={})
    assert dict(genesis.pipeline.stages)["string:capwords"] is string.capwords


def test_a_module_not_found_gets_the_hint_that_says_where_use_modules_are_looked_for(tmp_path: Path, clean_imports: None) -> None:
    config = write_config(tmp_path, {}, '{ use: "nx_missing:stage", after: "apply_defaults" }')
    with pytest.raises(ConfigError) as raised:
        Genesis.from_config_file(config, env={})
    assert raised.value.hint == USE_HINT


def test_a_config_given_as_text_looks_only_in_the_installed_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_imports: None
) -> None:
    config = write_config(tmp_path, {"nx_textonly.py": SEED_STAGE}, '{ use: "nx_textonly:add_seed", after: "apply_defaults" }')
    with pytest.raises(ConfigError) as raised:
        Genesis.from_config_text(config.read_text(), env={})
    assert 'cannot import module "nx_textonly" (looked in the installed packages): ' in str(raised.value)


def test_an_unknown_model_raised_to_a_library_caller_names_the_config_read_and_the_hint(tmp_path: Path) -> None:
    """``Genesis.from_config_file()`` with no file is an empty config: the traceback says so."""
    genesis = Genesis.from_config_file(env={"HOME": str(tmp_path)})
    for call in (genesis.build, genesis.run_sync):
        with pytest.raises(UnknownModelError) as raised:
            call("inferrs/google/gemma-4-E2B-it", REQUEST)
        assert raised.value.__notes__ == [
            f"config read: {tmp_path}/.genesis/genesis.json (absent: built-in providers only)",
            "hint: add models.providers.inferrs (baseUrl and models) to the config",
        ]
        assert str(raised.value) == "Unknown model: inferrs/google/gemma-4-E2B-it"  # the CLI's line is unchanged
