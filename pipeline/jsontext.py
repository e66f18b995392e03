"""Reading JSON and JSON5 text that nobody vetted: the config file, a ``--request`` file.

Rules:
- Plain JSON is valid JSON5, so it takes the fast path: the C ``json``
  module (about 1 MB in 30 ms). Other JSON5 is rewritten as JSON by one
  linear scan (``pipeline.json5_to_json``) and read by ``json`` too (about
  1 MB in 0.3 s). Only text that the rewrite is unsure of, or that ``json``
  then refuses, goes to the ``json5`` package (50-70 KB/s), whose errors
  point at line and column; such text is read up to ``MAX_JSON5_CHARS``
  (2 MiB, about half a minute), so a huge broken file is refused with a
  hint instead of parsing for minutes.
- A key that appears twice in one object is an error naming the object's
  path and the key; the last value never wins silently.
- Nesting is limited (``MAX_CONFIG_DEPTH`` containers for a config): a
  deeper document is an error saying so and naming the limit, never a
  ``RecursionError``. The ``json5`` parser spends about 20 Python frames per
  level, so before it runs the depth is measured by a linear scan that skips
  strings and comments.
- Paths read like the validator's: ``models.providers.vllm.headers``,
  ``models[0]``; a key that is empty or holds unprintable characters is
  shown JSON-quoted and escaped, so a message stays one printable line.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from typing import Any

from pipeline.errors import ConfigIssue

MAX_CONFIG_DEPTH = 64
# The json5 package reads 50-70 KB/s: 2 MiB is about half a minute. Larger text that is not plain
# JSON is refused rather than left to run for minutes; plain JSON of any size takes the fast path.
MAX_JSON5_CHARS = 2 * 1024 * 1024
_JSON5_FRAMES_PER_LEVEL = 25  # measured ~20 for json5 0.17; the margin covers its entry frames


class TextError(Exception):
    """The text is not a usable document: every issue found, each with a path ('' for the whole text)."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("; ".join(str(issue) for issue in issues))
        self.issues = issues


def shown(text: str, limit: int = 200) -> str:
    """Text made safe for a one-line message: unprintable characters escaped, long text cut.

    >>> shown("tab\\there"), shown("\\ud800x")
    ('tab\\\\there', '\\\\ud800x')
    """
    if text.isprintable() and len(text) <= limit:
        return text
    escaped = "".join(char if char.isprintable() else json.dumps(char)[1:-1] for char in text[:limit])
    return escaped if len(text) <= limit else escaped + "..."


def join_key(path: str, key: object) -> str:
    """The path of an object member.

    >>> join_key("", "models"), join_key("models", "providers"), join_key("h", ""), join_key("h", "a\\nb")
    ('models', 'models.providers', 'h.""', 'h."a\\\\nb"')
    """
    name = key if isinstance(key, str) else str(key)
    if not name or not name.isprintable():
        name = json.dumps(name)
    return f"{path}.{name}" if path else name


def join_index(path: str, index: int) -> str:
    return f"{path}[{index}]"


class _PairsCollector:
    """``object_pairs_hook`` that builds each object and remembers which keys it saw twice."""

    def __init__(self) -> None:
        self.duplicates: dict[int, list[str]] = {}

    def __call__(self, pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
        built: dict[str, Any] = {}
        for key, value in pairs:
            if key in built:
                self.duplicates.setdefault(id(built), []).append(key)
            built[key] = value
        return built


def parse_json5(text: str, *, max_depth: int = MAX_CONFIG_DEPTH) -> Any:
    """Parse JSON5 (plain JSON on the fast path); raise ``TextError`` with every structural issue.

    >>> parse_json5('{"a": [1, 2]}'), parse_json5("{a: 'b', /* c */ d: [1,],}")
    ({'a': [1, 2]}, {'a': 'b', 'd': [1]})
    >>> parse_json5('{"a": {"b": 1, "b": 2}}')
    Traceback (most recent call last):
    ...
    pipeline.jsontext.TextError: a: key "b" appears twice
    """
    collector = _PairsCollector()
    try:
        value = json.loads(text, object_pairs_hook=collector)
    except json.JSONDecodeError as not_json:
        collector = _PairsCollector()
        value = _parse_json5_translated(text, collector, max_depth)
        if value is _NOT_TRANSLATED:
            if len(text) > MAX_JSON5_CHARS:
                raise TextError([ConfigIssue("", _too_large_for_json5(len(text), not_json))]) from None
            collector = _PairsCollector()
            value = _parse_json5_slow(text, collector, max_depth)
    except RecursionError:
        raise TextError([ConfigIssue("", _too_deep(max_depth))]) from None
    except ValueError as exc:  # the int() digit limit; only the message says which
        raise TextError([ConfigIssue("", _number_problem(exc))]) from None
    issues = structure_issues(value, max_depth, collector.duplicates)
    if issues:
        raise TextError(issues)
    return value


_NOT_TRANSLATED = object()


def _parse_json5_translated(text: str, collector: _PairsCollector, max_depth: int) -> Any:
    """JSON5 read fast: rewritten as JSON (``pipeline.json5_to_json``) and read by ``json``.

    ``_NOT_TRANSLATED`` when the rewrite is unsure or ``json`` refuses the result: only the json5
    package then decides, so a broken file still gets json5's line and column.
    """
    from pipeline.json5_to_json import json5_to_json

    translated = json5_to_json(text)
    if translated is None:
        return _NOT_TRANSLATED
    try:
        return json.loads(translated, object_pairs_hook=collector)
    except RecursionError:  # the rewrite keeps every bracket: the original is as deep
        raise TextError([ConfigIssue("", _too_deep(max_depth))]) from None
    except ValueError:  # JSONDecodeError included
        return _NOT_TRANSLATED


def _parse_json5_slow(text: str, collector: _PairsCollector, max_depth: int) -> Any:
    import json5  # only for text that is not plain JSON

    depth = scan_depth(text)
    if depth > max_depth:
        raise TextError([ConfigIssue("", _too_deep(max_depth, depth))])
    needed = _stack_depth() + (depth + 2) * _JSON5_FRAMES_PER_LEVEL + 100
    previous = sys.getrecursionlimit()
    try:
        if needed > previous:  # pure-Python frames only (no C stack); restored right after
            sys.setrecursionlimit(needed)
        return json5.loads(text, object_pairs_hook=collector)
    except RecursionError:
        raise TextError([ConfigIssue("", _too_deep(max_depth))]) from None
    except ValueError as exc:
        message = str(exc)
        if "digits" in message and "int" in message:
            raise TextError([ConfigIssue("", _number_problem(exc))]) from None
        raise TextError([ConfigIssue("", f"not valid JSON5: {_json5_position(message)}")]) from None
    except Exception as exc:  # third-party code on hostile text: whatever it raises is "not valid", never a traceback
        raise TextError([ConfigIssue("", f"not valid JSON5: {type(exc).__name__}: {shown(str(exc))}")]) from None
    finally:
        if sys.getrecursionlimit() != previous:
            sys.setrecursionlimit(previous)


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


_JSON5_ERROR = re.compile(r"<string>:(\d+) (.*) at column (\d+)", re.S)


def _json5_position(message: str) -> str:
    """json5's ``<string>:2 Unexpected "," at column 8`` as ``line 2, column 8: Unexpected ","``.

    >>> _json5_position('<string>:2 Unexpected "\\n" at column 18')
    'line 2, column 18: Unexpected "\\\\n"'
    """
    match = _JSON5_ERROR.fullmatch(message.strip())
    if match:
        return shown(f"line {match.group(1)}, column {match.group(3)}: {match.group(2)}")
    return shown(message.strip().removeprefix("<string>:"))


def _too_large_for_json5(size: int, not_json: json.JSONDecodeError) -> str:
    return (
        f"not valid JSON (line {not_json.lineno}, column {not_json.colno}: {not_json.msg}) nor JSON5 that the fast"
        f" reader takes; the exact JSON5 reader, which would say where, reads up to {MAX_JSON5_CHARS} characters"
        f" and this text has {size}: check the JSON5 near that position, or write the config as plain JSON"
    )


def _number_problem(exc: BaseException) -> str:
    digits = re.search(r"has (\d+) digits", str(exc))
    count = f" ({digits.group(1)} digits)" if digits else ""
    return f"a number is too long{count}; at most {sys.get_int_max_str_digits()} digits are read"


def _too_deep(limit: int, depth: int | None = None) -> str:
    found = f"nested {depth} levels deep" if depth is not None else "nested too deep"
    return f"{found}; the limit is {limit} levels of objects and lists"


# Strings (closed by their quote or, unclosed, by the line end), comments, and brackets.
# Every alternative always matches and never rescans, so the scan is linear even on hostile text.
_DEPTH_TOKENS = re.compile(
    r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"?'
    r"|'[^'\\\n]*(?:\\.[^'\\\n]*)*'?"
    r"|//[^\n]*"
    r"|/\*(?:[^*]|\*(?!/))*(?:\*/)?"
    r"|[\[\]{}]",
    re.S,
)


def scan_depth(text: str) -> int:
    """How deeply the brackets of a JSON5 text nest, ignoring strings and comments.

    >>> scan_depth("{a: [1, {b: '[[['}], // {{{\\n}"), scan_depth("[]"), scan_depth("1")
    (3, 1, 0)
    """
    depth = deepest = 0
    for match in _DEPTH_TOKENS.finditer(text):
        token = match.group()
        if token in ("{", "["):
            depth += 1
            deepest = max(deepest, depth)
        elif token in ("}", "]"):
            depth = max(depth - 1, 0)
    return deepest


def structure_issues(value: Any, max_depth: int, duplicates: dict[int, list[str]] | None = None) -> list[ConfigIssue]:
    """Duplicate keys and excess nesting in a parsed tree, walked without recursion.

    >>> structure_issues([[[]]], 2)
    [ConfigIssue('[0][0]', 'nested too deep; the limit is 2 levels of objects and lists')]
    """
    if not duplicates and _deepest(value, max_depth) <= max_depth:
        return []  # the common case, found without building a path for every node
    issues: list[ConfigIssue] = []
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    deep_reported = False
    while stack:
        node, path, depth = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if depth > max_depth:
            if not deep_reported:  # once is enough: every deeper branch says the same
                where = path if len(path) <= 80 else path[:80] + "..."
                issues.append(ConfigIssue(where, _too_deep(max_depth)))
                deep_reported = True
            continue
        if isinstance(node, dict):
            repeated: dict[str, int] = {}
            for key in (duplicates or {}).get(id(node), ()):
                repeated[key] = repeated.get(key, 1) + 1
            for key, count in repeated.items():
                times = "twice" if count == 2 else f"{count} times"
                issues.append(ConfigIssue(path, f'key "{shown(key, 60)}" appears {times}'))
            children = [(item, join_key(path, key), depth + 1) for key, item in node.items()]
        else:
            children = [(item, join_index(path, index), depth + 1) for index, item in enumerate(node)]
        stack.extend(reversed(children))
    return issues


def _deepest(value: Any, stop_beyond: int) -> int:
    """How deeply objects and lists nest in a tree (counted up to one level past ``stop_beyond``)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > stop_beyond:
            break
        items = node.values() if isinstance(node, dict) else node
        stack.extend((item, depth + 1) for item in items if isinstance(item, (dict, list)))
    return deepest
