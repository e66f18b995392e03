"""One flag, declared consistently: the config's ``CompatConfig`` (what a user writes, ``UNSET``
allowed) and the resolved ``Compat`` (what stages read, with its default) name the same flags
in the same order with the same types, and the README's compat table has a row for each.
Python's types have no "every field optional" mapping, so mypy strict needs both classes
written out; these checks make forgetting one of the places fail with the flag's name."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import msgspec
import pytest
from msgspec import UnsetType

from pipeline.compat import Compat
from pipeline.config import CompatConfig

README = Path(__file__).resolve().parent.parent / "README.md"


def _camel(name: str) -> str:
    """The flag's name in the config file."""
    return next(field.encode_name for field in msgspec.structs.fields(CompatConfig) if field.name == name)


def _without_unset(hint: object) -> object:
    members = [member for member in typing.get_args(hint) if member is not UnsetType]
    return typing.Union[tuple(members)] if len(members) > 1 else members[0]  # noqa: UP007 - built from a runtime tuple


def _readme_flags() -> list[str]:
    text = README.read_text("utf-8")
    section = text[text.index("### Compat flags") :]
    section = section[: section.index("\n## ")]
    return re.findall(r"^\| `([A-Za-z]+)` \|", section, flags=re.MULTILINE)


def test_config_and_resolved_flags_are_the_same_list() -> None:
    assert Compat.__struct_fields__ == CompatConfig.__struct_fields__


@pytest.mark.parametrize("flag", CompatConfig.__struct_fields__)
def test_a_flag_has_the_same_type_in_both_places(flag: str) -> None:
    config_hints = typing.get_type_hints(CompatConfig)
    resolved_hints = typing.get_type_hints(Compat)
    assert _without_unset(config_hints[flag]) == resolved_hints[flag]


@pytest.mark.parametrize("flag", CompatConfig.__struct_fields__)
def test_a_flag_is_unset_until_the_config_gives_it(flag: str) -> None:
    assert getattr(CompatConfig(), flag) is msgspec.UNSET


@pytest.mark.parametrize("flag", CompatConfig.__struct_fields__)
def test_a_flag_has_a_readme_row(flag: str) -> None:
    assert _camel(flag) in _readme_flags()


def test_the_readme_lists_no_flag_that_does_not_exist() -> None:
    assert sorted(_readme_flags()) == sorted(_camel(flag) for flag in CompatConfig.__struct_fields__)
