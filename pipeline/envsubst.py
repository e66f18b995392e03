"""``${VAR}`` expansion in config strings.

Rules:
- ``${NAME}`` with NAME matching ``[A-Z_][A-Z0-9_]*`` is replaced by the
  environment's value.
- ``$${`` is the escape: it yields the literal text ``${`` (so ``$${NAME}``
  is ``${NAME}``, and ``$${lower}`` is ``${lower}``).
- Any other ``${`` is an error naming the config path: an empty ``${}``, a
  name that is not ``[A-Z_][A-Z0-9_]*`` (``${lower}``, ``${A-B}``,
  ``${A:-x}``), or a ``${`` with no closing ``}``. None of them is ever sent
  as it stands.
- A missing or empty variable is an error naming the variable and the path.
- A ``$`` not followed by ``{`` is plain text: ``cost $5``, ``$HOME``, ``$$``.
- The text of a bad reference is quoted in the error unless the string is a
  key or a header value (those may hold secrets); then only its position is
  given. Positions count characters from 1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline.errors import ConfigIssue
from pipeline.jsontext import join_index, join_key, shown

_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


def is_secret_path(path: str) -> bool:
    """Whether the string at ``path`` may hold a secret (an apiKey or a header value).

    >>> is_secret_path("models.providers.a.apiKey"), is_secret_path("models.providers.a.baseUrl")
    (True, False)
    """
    return path.endswith(".apiKey") or ".headers." in path


def expand_string(text: str, env: Mapping[str, str], *, quote: bool = True) -> tuple[str, list[str], int]:
    """Expand one string; return it, its problems, and how many variables were substituted.

    >>> expand_string("Bearer ${TOKEN}", {"TOKEN": "abc"})
    ('Bearer abc', [], 1)
    >>> expand_string("$${TOKEN} stays, cost $5", {})
    ('${TOKEN} stays, cost $5', [], 0)
    >>> expand_string("${NOPE}", {})[1]
    ['environment variable NOPE is not set']
    >>> expand_string("${lower}", {})[1]
    ['"${lower}" at position 1 is not a valid variable reference (a name is [A-Z_][A-Z0-9_]*); write "$${lower}" to send it literally']
    """
    if "$" not in text:
        return text, [], 0
    pieces: list[str] = []
    problems: list[str] = []
    substituted = 0
    start = index = 0
    while True:
        index = text.find("$", index)
        if index < 0 or index + 1 >= len(text):
            break
        following = text[index + 1]
        if following == "$" and text.startswith("{", index + 2):
            pieces.append(text[start:index] + "${")
            start = index = index + 3
            continue
        if following != "{":
            index += 1
            continue
        close = text.find("}", index + 2)
        if close < 0:
            problems.append(f'"${{" at position {index + 1} has no closing "}}"; write "$${{" to send it literally')
            break
        name = text[index + 2 : close]
        reference = text[index : close + 1]
        if not _NAME.fullmatch(name):
            what = "an empty variable reference" if not name else "not a valid variable reference (a name is [A-Z_][A-Z0-9_]*)"
            quoted = f'"{shown(reference, 60)}" at position {index + 1}' if quote else f"the ${{...}} at position {index + 1}"
            literal = f'"${shown(reference, 60)}"' if quote else "$${...}"
            problems.append(f"{quoted} is {what}; write {literal} to send it literally")
        elif env.get(name):
            pieces.append(text[start:index] + env[name])
            substituted += 1
            start = close + 1
        else:
            problems.append(f"environment variable {name} is {'empty' if name in env else 'not set'}")
        index = close + 1
    pieces.append(text[start:])
    return "".join(pieces), problems, substituted


def expand_tree(value: Any, env: Mapping[str, str], path: str = "") -> tuple[Any, list[ConfigIssue], dict[str, str]]:
    """Expand every string in a parsed JSON5 tree (new tree; the input is not touched).

    Returns the new tree, the issues found, and the strings that took a value
    from the environment by their dotted paths (callers treat some as secrets).
    The tree's depth is already bounded by the parser (``pipeline.jsontext``).
    """
    issues: list[ConfigIssue] = []
    from_env: dict[str, str] = {}

    def walk(node: Any, at: str) -> Any:
        if isinstance(node, str):
            result, problems, substituted = expand_string(node, env, quote=not is_secret_path(at))
            issues.extend(ConfigIssue(at, problem) for problem in problems)
            if substituted:
                from_env[at] = result
            return result
        if isinstance(node, dict):
            return {key: walk(item, join_key(at, key)) for key, item in node.items()}
        if isinstance(node, list):
            return [walk(item, join_index(at, index)) for index, item in enumerate(node)]
        return node

    return walk(value, path), issues, from_env
