"""``${VAR}`` expansion in config strings.

Rules:
- ``${NAME}`` with NAME matching ``[A-Z_][A-Z0-9_]*`` is replaced by the
  environment's value.
- ``$${NAME}`` is the escape: it yields the literal text ``${NAME}``.
- A missing or empty variable is an error naming the variable and the config
  path; an unexpanded ``${...}`` is never sent anywhere.
- Anything else (``$HOME``, ``${lower}``, a lone ``$``) is left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline.errors import ConfigIssue

_REFERENCE = re.compile(r"\$(\$?)\{([A-Z_][A-Z0-9_]*)\}")


def expand_string(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand one string; return it with the names of missing or empty variables.

    >>> expand_string("Bearer ${TOKEN}", {"TOKEN": "abc"})
    ('Bearer abc', [])
    >>> expand_string("$${TOKEN} stays", {})
    ('${TOKEN} stays', [])
    >>> expand_string("${NOPE}", {})
    ('${NOPE}', ['NOPE'])
    """
    if "$" not in text:
        return text, []
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:
            return "${" + name + "}"
        value = env.get(name, "")
        if not value:
            missing.append(name)
            return match.group(0)
        return value

    return _REFERENCE.sub(replace, text), missing


def expand_tree(
    value: Any, env: Mapping[str, str], path: str = ""
) -> tuple[Any, list[ConfigIssue], set[str]]:
    """Expand every string in a parsed JSON5 tree (new tree; the input is not touched).

    Returns the new tree, the issues found, and the dotted paths of strings that
    took a value from the environment (those values are treated as secrets).
    """
    issues: list[ConfigIssue] = []
    expanded_paths: set[str] = set()

    def walk(node: Any, at: str) -> Any:
        if isinstance(node, str):
            result, missing = expand_string(node, env)
            for name in missing:
                state = "empty" if name in env else "not set"
                issues.append(ConfigIssue(at, f"environment variable {name} is {state}"))
            if result != node and not missing:
                expanded_paths.add(at)
            return result
        if isinstance(node, dict):
            return {key: walk(item, f"{at}.{key}" if at else str(key)) for key, item in node.items()}
        if isinstance(node, list):
            return [walk(item, f"{at}[{index}]") for index, item in enumerate(node)]
        return node

    return walk(value, path), issues, expanded_paths
