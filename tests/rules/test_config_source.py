"""Rule table: every config error names its source, and is never empty (pipeline/config.py ``parse_config``).

Rules:
- Whatever is wrong (the JSON5 text, the top level, a type, a rule the types cannot express), the
  ``ConfigError`` names the source it was given and lists the issues; an issue about the whole text has
  the path ``""``.
- msgspec's ``convert`` is the fast check and the validator explains what it refused. Should the
  validator ever find nothing where ``convert`` refused (a gap in the validator), the error still says
  what ``convert`` said, as one issue about the whole text: never a traceback, never an error without
  issues. The last rows stand in such a gap by making the validator report nothing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

import pipeline.validate
from pipeline.config import parse_config
from pipeline.errors import ConfigError

SOURCE = "team/genesis.json5"


class Row(NamedTuple):
    rule: str
    text: str
    issues: list[tuple[str, str]]  # (path, problem)


ROWS: dict[str, Row] = {
    "not_json5": Row("text that is not JSON5", "{a", [("", "not valid JSON5: line 1, column 3: Unexpected end of input")]),
    "top_level_list": Row("a top level that is not an object", "[1]", [("", "expected an object at the top level, found a list")]),
    "type_issue": Row("a key the schema does not have", "{zzz: 1}", [("zzz", "unknown key; expected one of: agents, models, pipeline")]),
    "semantic_issue": Row(
        "a rule the types cannot express",
        '{models: {providers: {"a/b": {baseUrl: "http://h/v1"}}}}',
        [("models.providers.a/b", "a provider id cannot contain '/'")],
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_error_names_its_source(row: Row) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(row.text, {}, source=SOURCE)
    error = caught.value
    assert error.source == SOURCE
    assert [(issue.path, issue.problem) for issue in error.issues] == row.issues
    assert str(error).startswith(f"config error in {SOURCE}: ")


GAP_ROWS: dict[str, Row] = {
    "convert_refused": Row("what convert refused, in its words", "{zzz: 1}", [("", "Object contains unknown field `zzz`")]),
    "not_finite": Row(
        "a non-finite number the validator let through",
        '{models: {providers: {p: {baseUrl: "http://h/v1", models: [{id: "m", cost: {input: Infinity}}]}}}}',
        [("", "a number is not finite")],
    ),
}


@pytest.mark.parametrize("row", list(GAP_ROWS.values()), ids=list(GAP_ROWS))
def test_a_gap_in_the_validator_is_still_an_error(row: Row, monkeypatch: pytest.MonkeyPatch) -> None:
    def finds_nothing(*args: Any, **kwargs: Any) -> list[Any]:
        return []

    monkeypatch.setattr(pipeline.validate, "validate", finds_nothing)
    with pytest.raises(ConfigError) as caught:
        parse_config(row.text, {}, source=SOURCE)
    assert caught.value.source == SOURCE
    assert [(issue.path, issue.problem) for issue in caught.value.issues] == row.issues
