"""Rule table for ``${VAR}`` expansion (pipeline/envsubst.py, README "Config rules", SPEC 1).

Each row: text and environment in; the expanded text, the problems and the count of substitutions out.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from pipeline.envsubst import expand_string, expand_tree, is_secret_path

ENV = {"TOKEN": "abc", "_X1": "u", "EMPTY": ""}
INVALID = "is not a valid variable reference (a name is [A-Z_][A-Z0-9_]*)"


class Row(NamedTuple):
    rule: str
    text: str
    expanded: str
    problems: list[str]
    substituted: int
    quote: bool = True


ROWS: dict[str, Row] = {
    "plain": Row("a string without $ is itself", "plain text", "plain text", [], 0),
    "one_var": Row("${NAME} is replaced by the environment's value", "Bearer ${TOKEN}", "Bearer abc", [], 1),
    "two_vars_and_text": Row("every reference is replaced, the text around kept", "a${TOKEN}b${_X1}c", "aabcbuc", [], 2),
    "underscore_digits": Row("a name is [A-Z_][A-Z0-9_]*", "${_X1}", "u", [], 1),
    "escape": Row("$${ is the escape: it yields the literal ${", "$${TOKEN}", "${TOKEN}", [], 0),
    "escape_lower": Row("$${lower} is ${lower}", "x$${lower}y", "x${lower}y", [], 0),
    "escape_then_var": Row("an escape and a reference side by side", "$${TOKEN}${TOKEN}", "${TOKEN}abc", [], 1),
    "dollar_plain": Row("a $ not followed by { is plain text", "cost $5, $HOME, $$", "cost $5, $HOME, $$", [], 0),
    "trailing_dollar": Row("a $ at the very end is plain text", "pay $", "pay $", [], 0),
    "adjacent_vars": Row("two references with nothing between them are both replaced", "${TOKEN}${_X1}", "abcu", [], 2),
    "dollar_before_escape": Row("only $${ is the escape: a $ before it stays, so $$${NAME} is $${NAME}", "$$${TOKEN}", "$${TOKEN}", [], 0),
    "double_dollar_then_var": Row("$$ followed by a reference: the first $ is text", "$$x${TOKEN}", "$$xabc", [], 1),
    "missing": Row("a missing variable is an error naming it", "${NOPE}", "${NOPE}", ["environment variable NOPE is not set"], 0),
    "empty": Row("an empty variable is an error naming it", "${EMPTY}", "${EMPTY}", ["environment variable EMPTY is empty"], 0),
    "lower": Row(
        "a name that is not [A-Z_][A-Z0-9_]* is an error quoting it, with its position and the escape",
        "ab${lower}",
        "ab${lower}",
        [f'"${{lower}}" at position 3 {INVALID}; write "$${{lower}}" to send it literally'],
        0,
    ),
    "dash": Row(
        "${A-B} is an error", "${A-B}", "${A-B}", [f'"${{A-B}}" at position 1 {INVALID}; write "$${{A-B}}" to send it literally'], 0
    ),
    "default_syntax": Row(
        "${A:-x} is an error (no shell defaults)",
        "${A:-x}",
        "${A:-x}",
        [f'"${{A:-x}}" at position 1 {INVALID}; write "$${{A:-x}}" to send it literally'],
        0,
    ),
    "leading_digit": Row(
        "a name may not start with a digit",
        "${1A}",
        "${1A}",
        [f'"${{1A}}" at position 1 {INVALID}; write "$${{1A}}" to send it literally'],
        0,
    ),
    "empty_ref": Row(
        "an empty ${} is an error",
        "x ${}",
        "x ${}",
        ['"${}" at position 3 is an empty variable reference; write "$${}" to send it literally'],
        0,
    ),
    "unclosed": Row(
        "a ${ with no closing } is an error",
        "ab ${TOKEN",
        "ab ${TOKEN",
        ['"${" at position 4 has no closing "}"; write "$${" to send it literally'],
        0,
    ),
    "unclosed_at_the_end": Row(
        "a ${ that ends the string is unclosed too",
        "ab${",
        "ab${",
        ['"${" at position 3 has no closing "}"; write "$${" to send it literally'],
        0,
    ),
    "secret_not_quoted": Row(
        "in a key or header value only the position is given, never the text",
        "k${bad}",
        "k${bad}",
        ["the ${...} at position 2 is not a valid variable reference (a name is [A-Z_][A-Z0-9_]*); write $${...} to send it literally"],
        0,
        False,
    ),
    "secret_empty_ref_not_quoted": Row(
        "an empty ${} in a secret: position only",
        "${}",
        "${}",
        ["the ${...} at position 1 is an empty variable reference; write $${...} to send it literally"],
        0,
        False,
    ),
    "problems_and_values_together": Row(
        "every problem is reported, and good references still expand",
        "${TOKEN}-${NOPE}-${bad}-${TOKEN}",
        "abc-${NOPE}-${bad}-abc",
        ["environment variable NOPE is not set", f'"${{bad}}" at position 18 {INVALID}; write "$${{bad}}" to send it literally'],
        2,
    ),
    "long_reference_shortened": Row(
        "a long bad reference is quoted shortened",
        "${" + "a" * 100 + "}",
        "${" + "a" * 100 + "}",
        [f'"{"${" + "a" * 58}..." at position 1 {INVALID}; write "${"${" + "a" * 58}..." to send it literally'],
        0,
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_expand_string(row: Row) -> None:
    assert expand_string(row.text, ENV, quote=row.quote) == (row.expanded, row.problems, row.substituted)


def test_quoting_is_the_default() -> None:
    assert expand_string("${bad}", ENV) == expand_string("${bad}", ENV, quote=True)
    assert expand_string("${bad}", ENV)[1][0].startswith('"${bad}" at position 1')


@pytest.mark.parametrize(
    ("path", "secret"),
    [
        ("models.providers.a.apiKey", True),
        ("models.providers.a.headers.X-Team", True),
        ("models.providers.a.models[0].headers.X", True),
        ("models.providers.a.baseUrl", False),
        ("models.providers.apiKeyring.name", False),
        ("headers", False),
    ],
)
def test_is_secret_path(path: str, secret: bool) -> None:
    assert is_secret_path(path) is secret


def test_expand_tree_paths_secrets_and_purity() -> None:
    tree = {
        "models": {"providers": {"a": {"apiKey": "${bad}", "baseUrl": "http://${HOST}/v1", "headers": {"X": "${TOKEN}"}, "n": 5}}},
        "list": ["${TOKEN}", "plain", ["${lower}"]],
    }
    before = repr(tree)
    expanded, issues, from_env = expand_tree(tree, {**ENV, "HOST": "h"})
    assert repr(tree) == before, "the input tree is not touched"
    assert expanded == {
        "models": {"providers": {"a": {"apiKey": "${bad}", "baseUrl": "http://h/v1", "headers": {"X": "abc"}, "n": 5}}},
        "list": ["abc", "plain", ["${lower}"]],
    }
    assert [str(issue) for issue in issues] == [
        "models.providers.a.apiKey: the ${...} at position 1 is not a valid variable reference (a name is [A-Z_][A-Z0-9_]*);"
        " write $${...} to send it literally",
        f'list[2][0]: "${{lower}}" at position 1 {INVALID}; write "$${{lower}}" to send it literally',
    ]
    assert from_env == {"models.providers.a.baseUrl": "http://h/v1", "models.providers.a.headers.X": "abc", "list[0]": "abc"}


def test_expand_tree_with_a_root_path() -> None:
    expanded, issues, from_env = expand_tree({"k": "${TOKEN}"}, ENV, "root")
    assert (expanded, issues, from_env) == ({"k": "abc"}, [], {"root.k": "abc"})
