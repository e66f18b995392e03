"""Strict validation of decoded JSON against msgspec types, reporting every problem.

``msgspec.convert`` stops at the first error; a user fixing a config wants
all of them at once, each with its dotted path, what was expected and what
was found. This walks the value against ``msgspec.inspect`` type info and
collects issues; only a value that passes is then converted.
"""

from __future__ import annotations

import difflib
from typing import Any

import msgspec.inspect as mi

from pipeline.errors import ConfigIssue
from pipeline.jsontext import join_index, join_key, shown

# A string found where one of these is expected may be a key: it is described, never quoted.
_SECRET_PATH_PARTS = ("apikey", "headers", "token", "secret", "password")


def describe_value(value: Any) -> str:
    """How a found value reads in an error message.

    >>> describe_value(True), describe_value(3), describe_value("x"), describe_value([1])
    ('true', 'the number 3', 'the string "x"', 'a list')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f'the string "{shown(value, 37)}"'
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def describe_type(t: mi.Type) -> str:
    if isinstance(t, mi.StructType):
        return "an object"
    if isinstance(t, mi.DictType):
        return "an object"
    if isinstance(t, (mi.ListType, mi.TupleType, mi.VarTupleType, mi.FrozenSetType, mi.SetType)):
        return "a list"
    if isinstance(t, mi.StrType):
        return "a non-empty string" if t.min_length else "a string"
    if isinstance(t, mi.BoolType):
        return "true or false"
    if isinstance(t, mi.IntType):
        return "a whole number" + _bounds(t)
    if isinstance(t, mi.FloatType):
        return "a number" + _bounds(t)
    if isinstance(t, mi.LiteralType):
        return ("one of " if len(t.values) > 1 else "") + ", ".join(f'"{v}"' if isinstance(v, str) else repr(v) for v in t.values)
    if isinstance(t, mi.NoneType):
        return "null"
    if isinstance(t, mi.UnionType):
        # true, false and a lone literal read as a list of choices: 'true, false or "startsInside"'
        words = [word for member in t.types for word in (["true", "false"] if isinstance(member, mi.BoolType) else [describe_type(member)])]
        return ", ".join(words[:-1]) + " or " + words[-1]
    return "a value"


def _bounds(t: mi.IntType | mi.FloatType) -> str:
    """The range a number must be in, as words.

    >>> _bounds(mi.IntType(ge=0, le=10)), _bounds(mi.FloatType(gt=0)), _bounds(mi.IntType(ge=1))
    (' from 0 to 10', ' greater than 0', ' of at least 1')
    """
    if t.ge is not None and t.le is not None:
        return f" from {t.ge} to {t.le}"
    lower = f" greater than {t.gt}" if t.gt is not None else f" of at least {t.ge}" if t.ge is not None else ""
    upper = f" less than {t.lt}" if t.lt is not None else f" at most {t.le}" if t.le is not None else ""
    return lower + ("," if lower and upper else "") + upper


def validate(value: Any, t: mi.Type, path: str = "", *, quiet: frozenset[str] = frozenset()) -> list[ConfigIssue]:
    """All the ways ``value`` fails to match ``t``; an empty list when it matches.

    A string at a path in ``quiet`` (one that took a value from the environment) is never quoted.
    """
    issues: list[ConfigIssue] = []
    _check(value, t, path, issues, quiet)
    return issues


def _mismatch(value: Any, t: mi.Type, path: str, issues: list[ConfigIssue], quiet: frozenset[str]) -> None:
    lowered = path.lower()
    secret = isinstance(value, str) and (path in quiet or any(part in lowered for part in _SECRET_PATH_PARTS))
    found = "a string" if secret else describe_value(value)
    issues.append(ConfigIssue(path, f"expected {describe_type(t)}, found {found}"))


def _join(path: str, key: object) -> str:
    return join_key(path, key)


def _check(value: Any, t: mi.Type, path: str, issues: list[ConfigIssue], quiet: frozenset[str]) -> None:
    if isinstance(t, mi.AnyType):
        return
    if isinstance(t, mi.UnionType):
        _check_union(value, t, path, issues, quiet)
    elif isinstance(t, mi.StructType):
        _check_struct(value, t, path, issues, quiet)
    elif isinstance(t, mi.DictType):
        if not isinstance(value, dict):
            return _mismatch(value, t, path, issues, quiet)
        for key, item in value.items():
            _check(key, t.key_type, _join(path, str(key)), issues, quiet)
            _check(item, t.value_type, _join(path, str(key)), issues, quiet)
    elif isinstance(t, (mi.ListType, mi.VarTupleType, mi.FrozenSetType, mi.SetType)):
        if not isinstance(value, list):
            return _mismatch(value, t, path, issues, quiet)
        if t.min_length and len(value) < t.min_length:
            issues.append(ConfigIssue(path, f"expected at least {t.min_length} item(s), found none"))
        for index, item in enumerate(value):
            _check(item, t.item_type, join_index(path, index), issues, quiet)
    elif isinstance(t, mi.StrType):
        if not isinstance(value, str):
            return _mismatch(value, t, path, issues, quiet)
        if t.min_length and len(value) < t.min_length:
            _mismatch(value, t, path, issues, quiet)
    elif isinstance(t, mi.BoolType):
        if not isinstance(value, bool):
            _mismatch(value, t, path, issues, quiet)
    elif isinstance(t, mi.IntType):
        if isinstance(value, bool) or not isinstance(value, int) or not _in_bounds(value, t):
            _mismatch(value, t, path, issues, quiet)
    elif isinstance(t, mi.FloatType):
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or value != value or not _in_bounds(value, t):
            _mismatch(value, t, path, issues, quiet)
    elif isinstance(t, mi.LiteralType):
        if value not in t.values or isinstance(value, bool):
            _mismatch(value, t, path, issues, quiet)
    elif isinstance(t, mi.NoneType):
        if value is not None:
            _mismatch(value, t, path, issues, quiet)
    else:  # pragma: no cover - a schema type this validator was not taught
        raise TypeError(f"validate() does not handle {t!r}")


def _in_bounds(value: float, t: mi.IntType | mi.FloatType) -> bool:
    if value in (float("inf"), float("-inf")):
        return False
    if t.gt is not None and not value > t.gt:
        return False
    if t.ge is not None and not value >= t.ge:
        return False
    if t.lt is not None and not value < t.lt:
        return False
    if t.le is not None and not value <= t.le:
        return False
    return True


def _check_union(value: Any, t: mi.UnionType, path: str, issues: list[ConfigIssue], quiet: frozenset[str]) -> None:
    attempts: list[list[ConfigIssue]] = []
    for member in t.types:
        found: list[ConfigIssue] = []
        _check(value, member, path, found, quiet)
        if not found:
            return
        attempts.append(found)
    # An object was given and one member is an object type: its issues are the useful ones.
    if isinstance(value, dict):
        for member, found in zip(t.types, attempts, strict=True):
            if isinstance(member, (mi.StructType, mi.DictType)):
                issues.extend(found)
                return
    _mismatch(value, t, path, issues, quiet)


def _check_struct(value: Any, t: mi.StructType, path: str, issues: list[ConfigIssue], quiet: frozenset[str]) -> None:
    if not isinstance(value, dict):
        return _mismatch(value, t, path, issues, quiet)
    fields = {field.encode_name: field for field in t.fields}
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            close = difflib.get_close_matches(str(key)[:100], list(fields), n=1, cutoff=0.6)
            suggestion = f' (did you mean "{close[0]}"?)' if close else ""
            known = ", ".join(fields)
            issues.append(ConfigIssue(_join(path, str(key)), f"unknown key{suggestion}; expected one of: {known}"))
            continue
        _check(item, field.type, _join(path, key), issues, quiet)
    for name, field in fields.items():
        if field.required and name not in value:
            issues.append(ConfigIssue(_join(path, name), f"missing; expected {describe_type(field.type)}"))
