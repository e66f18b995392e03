"""The JSON5 rewrite never disagrees with the json5 package: same value, or it steps aside (None).

Rule pinned: whenever ``json5_to_json`` returns text that ``json`` reads, the
json5 package reads the original to the same value. Generated JSON5 covers
every syntax the rewrite handles (comments, quotes, escapes, unquoted keys,
trailing commas, hex, signs, leading and trailing dots, Infinity, NaN);
character soup covers what it must refuse.
"""

from __future__ import annotations

import json
import math
from typing import Any

import json5
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.json5_to_json import json5_to_json


def normalized(value: Any) -> Any:
    """NaN made comparable, and types kept apart (1 and 1.0 and True differ)."""
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value)
    if isinstance(value, dict):
        return ("object", [(key, normalized(item)) for key, item in value.items()])
    if isinstance(value, list):
        return ("array", [normalized(item) for item in value])
    return (type(value).__name__, value)


def agrees(text: str) -> bool:
    """True when the rewrite stepped aside or json refuses it; else both readings must be equal."""
    translated = json5_to_json(text)
    if translated is None:
        return True
    try:
        fast = json.loads(translated)
    except ValueError:
        return True
    return bool(normalized(json5.loads(text)) == normalized(fast))


gap = st.sampled_from(["", " ", "\n", "\t", "\r\n", " // note\n", "/* c */", "/* multi\nline */", "\u00a0", "\u2028", "\ufeff"])
numbers = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.integers(0, 10**6).map(lambda n: f"+{n}"),
    st.integers(0, 10**6).map(hex),
    st.integers(0, 10**6).map(lambda n: f"-0X{n:X}"),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from([".5", "5.", "-.5e3", "+5.e-2", "1E3", "0.0", "-0", "Infinity", "-Infinity", "+Infinity", "NaN", "-NaN", "+NaN"]),
)
string_pieces = st.sampled_from(
    [
        "a",
        "Z",
        " ",
        "\u00e9",
        "\u2028",
        "\u2029",
        "\t",
        '"',
        "'",
        "\\\\",
        "\\n",
        "\\'",
        '\\"',
        "\\v",
        "\\0",
        "\\x41",
        "\\\n",
        "\\\r\n",
        "\\\u2028",
        "\\a",
        "\\/",
        "\\b",
        "\\f",
        "\\r",
        "\\t",
        "$",
        "{",
        "//",
        "/*",
        "\\u0041",
    ]
)


@st.composite
def strings(draw: st.DrawFn) -> str:
    quote = draw(st.sampled_from(['"', "'"]))
    body = "".join(draw(st.lists(string_pieces, max_size=6)))
    escaped = body.replace(quote, "\\" + quote) if not body.endswith("\\") else body
    return quote + escaped.replace("\\" + "\\" + quote, "\\\\\\" + quote) + quote


keys = strings() | st.sampled_from(["a", "_b", "$c", "d1", "true", "null", "Infinity", "NaN", "x$_9"])
literals = st.sampled_from(["true", "false", "null"])


def array(items: list[str], trailing: bool, spacing: str) -> str:
    return "[" + spacing + ("," + spacing).join(items) + ("," if trailing and items else "") + spacing + "]"


def obj(pairs: list[tuple[str, str]], trailing: bool, spacing: str) -> str:
    members = [f"{key}{spacing}:{spacing}{value}" for key, value in pairs]
    return "{" + spacing + ("," + spacing).join(members) + ("," if trailing and members else "") + spacing + "}"


values = st.recursive(
    literals | numbers | strings(),
    lambda children: (
        st.builds(array, st.lists(children, max_size=4), st.booleans(), gap)
        | st.builds(obj, st.lists(st.tuples(keys, children), max_size=4), st.booleans(), gap)
    ),
    max_leaves=20,
)


@settings(max_examples=600, deadline=None)
@given(st.tuples(gap, values, gap).map("".join))
def test_generated_json5_reads_the_same(text: str) -> None:
    assert agrees(text), text


@settings(max_examples=600, deadline=None)
@given(
    st.lists(
        st.sampled_from(list("{}[]:,'\"/*\\+-.0123456789eExXaA_$ \n\t") + ["true", "null", "NaN", "Infinity", "//", "/*", "*/", "\u2028"]),
        max_size=30,
    ).map("".join)
)
def test_character_soup_never_reads_differently(text: str) -> None:
    try:
        json5.loads(text)
    except ValueError:  # json5 refuses it: the rewrite must not produce a value json accepts
        translated = json5_to_json(text)
        if translated is not None:
            with pytest.raises(json.JSONDecodeError):
                json.loads(translated)
        return
    assert agrees(text), text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{a: 1, 'b': 2, \"c\": 3,}", {"a": 1, "b": 2, "c": 3}),
        ("[+1, -0x10, .5, 5., 1e2, +Infinity]", [1, -16, 0.5, 5.0, 100.0, math.inf]),
        ("'a\\\nb\\x41\\v\\0'", "abA\v\0"),
        ("{true: null, null: false}", {"true": None, "null": False}),
        ("/* head */ [1, // one\n 2]", [1, 2]),
    ],
)
def test_rewrites(text: str, expected: Any) -> None:
    translated = json5_to_json(text)
    assert translated is not None and json.loads(translated) == expected


@pytest.mark.parametrize(
    "text",
    ["{a: b}", "[1, 2", "'unterminated", "/* open", "[01]", "['\\1']", "['\\08']", "['\\u0041']", "{caf\u00e9: 1}", "[undefined]", "@"],
)
def test_steps_aside_or_json_refuses(text: str) -> None:
    translated = json5_to_json(text)
    if translated is not None:
        with pytest.raises(json.JSONDecodeError):
            json.loads(translated)
