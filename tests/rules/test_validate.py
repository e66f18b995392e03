"""Rule table for the config validator (pipeline/validate.py): a value and a type in, every issue out.

The validator exists because msgspec stops at the first error; it must report every problem with its
dotted path, what was expected (in words) and what was found, and never quote a string that may be a key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import msgspec.inspect as mi
import pytest

from pipeline.validate import _bounds, describe_type, describe_value, validate


class Inner(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    flag: bool = False
    level: Literal["low", "high", 3] = "low"


class Outer(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    base_url: Annotated[str, msgspec.Meta(min_length=1)]
    count: Annotated[int, msgspec.Meta(ge=0, le=10)] = 0
    ratio: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    tags: list[str] = []
    some: Annotated[list[int], msgspec.Meta(min_length=1)] = msgspec.field(default_factory=lambda: [1])
    pair: tuple[int, ...] = ()
    inner: Inner = Inner()
    either: int | Inner = 0
    maybe: str | None = None
    headers: dict[str, str] = {}
    api_key: str = ""
    anything: Any = None


OUTER = mi.type_info(Outer)

# (rule, value, issues)
ROWS: dict[str, tuple[str, Any, list[str]]] = {
    "valid": ("a value that matches has no issues", {"baseUrl": "u", "count": 10, "ratio": 0.5, "anything": [{"x": None}]}, []),
    "missing_required": ("a required key that is missing", {}, ["baseUrl: missing; expected a non-empty string"]),
    "unknown_key_then_more": (
        "an unknown key does not stop the check of the keys after it",
        {"baseUrl": "u", "zzz": 1, "count": 11},
        [
            "zzz: unknown key; expected one of: baseUrl, count, ratio, tags, some, pair, inner, either, maybe, headers, apiKey, anything",
            "count: expected a whole number from 0 to 10, found the number 11",
        ],
    ),
    "unknown_key_close": (
        "an unknown key gets the close one",
        {"baseUrl": "u", "cuont": 1},
        [
            'cuont: unknown key (did you mean "count"?); expected one of: baseUrl, count, ratio, tags, some, pair, inner, either, maybe, headers, apiKey, anything'
        ],
    ),
    "not_an_object": ("the top level must be an object", [1], ["expected an object, found a list"]),
    "empty_string": ("min_length on a string", {"baseUrl": ""}, ['baseUrl: expected a non-empty string, found the string ""']),
    "int_bounds_low": ("ge", {"baseUrl": "u", "count": -1}, ["count: expected a whole number from 0 to 10, found the number -1"]),
    "int_bounds_high": ("le", {"baseUrl": "u", "count": 11}, ["count: expected a whole number from 0 to 10, found the number 11"]),
    "int_edges_ok": ("the bounds themselves are inside", {"baseUrl": "u", "count": 0}, []),
    "int_not_float": (
        "a whole number is not 1.5",
        {"baseUrl": "u", "count": 1.5},
        ["count: expected a whole number from 0 to 10, found the number 1.5"],
    ),
    "bool_not_int": ("true is not a number", {"baseUrl": "u", "count": True}, ["count: expected a whole number from 0 to 10, found true"]),
    "float_gt": (
        "gt: the bound itself is outside",
        {"baseUrl": "u", "ratio": 0},
        ["ratio: expected a number greater than 0, found the number 0"],
    ),
    "float_accepts_int": ("an int is a number", {"baseUrl": "u", "ratio": 2}, []),
    "float_inf": (
        "infinity is out of every range",
        {"baseUrl": "u", "ratio": float("inf")},
        ["ratio: expected a number greater than 0, found the number inf"],
    ),
    "float_nan": (
        "NaN is not a number",
        {"baseUrl": "u", "ratio": float("nan")},
        ["ratio: expected a number greater than 0, found the number nan"],
    ),
    "float_bool": ("false is not a number", {"baseUrl": "u", "ratio": False}, ["ratio: expected a number greater than 0, found false"]),
    "list_items": (
        "each list item is checked, with its index",
        {"baseUrl": "u", "tags": ["a", 2, None]},
        [
            "tags[1]: expected a string, found the number 2",
            "tags[2]: expected a string, found null",
        ],
    ),
    "list_min_length": ("min_length on a list", {"baseUrl": "u", "some": []}, ["some: expected at least 1 item(s), found none"]),
    "list_min_length_edge": ("a list of exactly min_length items is enough", {"baseUrl": "u", "some": [1]}, []),
    "not_a_list": ("a list where a list goes", {"baseUrl": "u", "pair": {"a": 1}}, ["pair: expected a list, found an object"]),
    "nested_struct": (
        "nested objects: every issue, with the dotted path",
        {"baseUrl": "u", "inner": {"flag": "yes", "level": "mid", "x": 1}},
        [
            'inner.flag: expected true or false, found the string "yes"',
            'inner.level: expected one of 3, "high", "low", found the string "mid"',
            "inner.x: unknown key; expected one of: flag, level",
        ],
    ),
    "literal_not_bool": (
        "a literal 3 is not true",
        {"baseUrl": "u", "inner": {"level": True}},
        ['inner.level: expected one of 3, "high", "low", found true'],
    ),
    "literal_int_ok": ("a literal number", {"baseUrl": "u", "inner": {"level": 3}}, []),
    "union_object_issues": (
        "an object given to int | object: the object's issues",
        {"baseUrl": "u", "either": {"flag": 1}},
        ["either.flag: expected true or false, found the number 1"],
    ),
    "union_mismatch": (
        "a value matching no member of a union",
        {"baseUrl": "u", "either": "x"},
        ['either: expected a whole number or an object, found the string "x"'],
    ),
    "optional_null_ok": ("null where null is allowed", {"baseUrl": "u", "maybe": None}, []),
    "optional_wrong": ("a string or null", {"baseUrl": "u", "maybe": 1}, ["maybe: expected a string or null, found the number 1"]),
    "dict_values": (
        "dict values are checked, with the key in the path",
        {"baseUrl": "u", "headers": {"X-A": 1, "ok": "v"}},
        ["headers.X-A: expected a string, found the number 1"],
    ),
    "dict_not_object": ("a dict where an object goes", {"baseUrl": "u", "headers": ["a"]}, ["headers: expected an object, found a list"]),
    "secret_path_not_quoted": (
        "a string at a path naming a key, header, token, secret or password is described, not quoted",
        {"baseUrl": "u", "apiKey": 5, "inner": "sk-1"},
        [
            "apiKey: expected a string, found the number 5",
            'inner: expected an object, found the string "sk-1"',
        ],
    ),
    "secret_string_not_quoted": (
        "a string where a header map goes is never quoted",
        {"baseUrl": "u", "headers": "sk-secret"},
        ["headers: expected an object, found a string"],
    ),
    "long_string_shortened": (
        "a long found string is shortened",
        {"baseUrl": "u", "count": "x" * 80},
        [f'count: expected a whole number from 0 to 10, found the string "{"x" * 37}..."'],
    ),
}


@pytest.mark.parametrize(("rule", "value", "issues"), list(ROWS.values()), ids=list(ROWS))
def test_validate(rule: str, value: Any, issues: list[str]) -> None:
    assert [str(issue) for issue in validate(value, OUTER)] == issues


class Keyed(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    names: dict[Annotated[str, msgspec.Meta(min_length=1)], int] = {}


KEYED = mi.type_info(Keyed)

# (rule, value, quiet paths, issues): a dict's keys are checked against its key type, at the key's own path.
KEY_ROWS: dict[str, tuple[str, Any, frozenset[str], list[str]]] = {
    "key_checked": (
        "a key that breaks the key type is an issue at the key's path, next to its value's issue",
        {"names": {"": 1, "ok": "x"}},
        frozenset(),
        ['names."": expected a non-empty string, found the string ""', 'names.ok: expected a whole number, found the string "x"'],
    ),
    "key_quiet": (
        "a key at a quiet path is not quoted",
        {"names": {"": 1}},
        frozenset({'names.""'}),
        ['names."": expected a non-empty string, found a string'],
    ),
    "keys_fine": ("keys that match the key type give no issue", {"names": {"a": 1, "b": 2}}, frozenset(), []),
}


# (rule, value, type, quiet paths, issues): a type checked on its own, as the top-level value.
TYPE_ROWS: dict[str, tuple[str, Any, mi.Type, frozenset[str], list[str]]] = {
    "null_refuses_a_number": (
        "a null type refuses anything but null",
        5,
        mi.NoneType(),
        frozenset(),
        ["expected null, found the number 5"],
    ),
    "null_accepts_null": ("a null type accepts null", None, mi.NoneType(), frozenset(), []),
    "null_quiet_string": (
        "a string at a quiet path is not quoted",
        "s3cret",
        mi.NoneType(),
        frozenset({""}),
        ["expected null, found a string"],
    ),
}


@pytest.mark.parametrize(("rule", "value", "t", "quiet", "issues"), list(TYPE_ROWS.values()), ids=list(TYPE_ROWS))
def test_type_alone(rule: str, value: Any, t: mi.Type, quiet: frozenset[str], issues: list[str]) -> None:
    assert [str(issue) for issue in validate(value, t, quiet=quiet)] == issues


def test_a_type_it_was_not_taught_is_a_loud_error() -> None:
    with pytest.raises(TypeError, match=r"^validate\(\) does not handle DateTimeType\(tz=None\)$"):
        validate(1, mi.DateTimeType())


@pytest.mark.parametrize(("rule", "value", "quiet", "issues"), list(KEY_ROWS.values()), ids=list(KEY_ROWS))
def test_dict_keys_are_checked(rule: str, value: Any, quiet: frozenset[str], issues: list[str]) -> None:
    assert [str(issue) for issue in validate(value, KEYED, quiet=quiet)] == issues


def test_quiet_paths_are_never_quoted() -> None:
    issues = validate({"baseUrl": "u", "maybe": 5, "count": "from-env"}, OUTER, quiet=frozenset({"count"}))
    assert [str(issue) for issue in issues] == [
        "maybe: expected a string or null, found the number 5",
        "count: expected a whole number from 0 to 10, found a string",
    ]


def test_validate_under_a_path() -> None:
    assert [str(issue) for issue in validate({"flag": 1}, mi.type_info(Inner), "root")] == [
        "root.flag: expected true or false, found the number 1"
    ]


@pytest.mark.parametrize(
    ("value", "described"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (3, "the number 3"),
        (0.5, "the number 0.5"),
        ("x", 'the string "x"'),
        ({}, "an object"),
        ([], "a list"),
        (b"x", "bytes"),
    ],
)
def test_describe_value(value: Any, described: str) -> None:
    assert describe_value(value) == described


@pytest.mark.parametrize(
    ("t", "described"),
    [
        (mi.StrType(), "a string"),
        (mi.StrType(min_length=1), "a non-empty string"),
        (mi.BoolType(), "true or false"),
        (mi.IntType(), "a whole number"),
        (mi.FloatType(ge=0, le=1), "a number from 0 to 1"),
        (mi.NoneType(), "null"),
        (mi.DictType(mi.StrType(), mi.StrType()), "an object"),
        (mi.SetType(mi.IntType()), "a list"),
        (mi.LiteralType(("a", 1)), 'one of "a", 1'),
        (mi.UnionType((mi.IntType(), mi.NoneType())), "a whole number or null"),
        # a bool member reads as two choices (extractThinkTags: true, false or "startsInside")
        (mi.UnionType((mi.BoolType(), mi.LiteralType(("startsInside",)))), 'true, false or "startsInside"'),
        (mi.AnyType(), "a value"),
    ],
)
def test_describe_type(t: mi.Type, described: str) -> None:
    assert describe_type(t) == described


@pytest.mark.parametrize(
    ("t", "words"),
    [
        (mi.IntType(ge=0, le=10), " from 0 to 10"),
        (mi.FloatType(gt=0), " greater than 0"),
        (mi.IntType(ge=1), " of at least 1"),
        (mi.IntType(lt=5), " less than 5"),
        (mi.IntType(le=5), " at most 5"),
        (mi.FloatType(gt=0, lt=1), " greater than 0, less than 1"),
        (mi.IntType(), ""),
    ],
)
def test_bounds_in_words(t: mi.IntType | mi.FloatType, words: str) -> None:
    assert _bounds(t) == words


def test_upper_bounds_checked() -> None:
    class Capped(msgspec.Struct):
        below: Annotated[float, msgspec.Meta(lt=1)] = 0
        upto: Annotated[int, msgspec.Meta(le=1)] = 0

    issues = validate({"below": 1, "upto": 2}, mi.type_info(Capped))
    assert [str(issue) for issue in issues] == [
        "below: expected a number less than 1, found the number 1",
        "upto: expected a whole number at most 1, found the number 2",
    ]
    assert validate({"below": 0.99, "upto": 1}, mi.type_info(Capped)) == []
