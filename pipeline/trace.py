"""What each stage changed, and why.

Rule: a stage never drops or rewrites a field silently. Every edit to the
body or the headers is recorded as a ``Change`` naming the stage, the field
(a path such as ``messages[1].content`` or ``header Authorization``), the
action, and the rule that caused it. ``genesis wire --explain`` prints them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec

from pipeline.secrets import scrub

Action = Literal["added", "removed", "changed"]

# The rules of the changes the runner records for a custom stage that changed the body or the
# headers and recorded nothing (pipeline.runner): what it set, and what it dropped.
UNRECORDED_SET = "set by a custom stage that recorded no rule"
UNRECORDED_DROP = "dropped by a custom stage that recorded no rule"


class Change(msgspec.Struct, frozen=True, omit_defaults=True):
    stage: str
    action: Action
    field: str
    rule: str
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.field} {self.action}: {self.rule}{detail}"


def added(stage: str, field: str, rule: str, detail: str = "") -> Change:
    return Change(stage, "added", field, rule, detail)


def removed(stage: str, field: str, rule: str, detail: str = "") -> Change:
    return Change(stage, "removed", field, rule, detail)


def changed(stage: str, field: str, rule: str, detail: str = "") -> Change:
    return Change(stage, "changed", field, rule, detail)


def render_trace(trace: tuple[Change, ...], stage_order: tuple[str, ...]) -> list[str]:
    """Lines grouped by stage, in pipeline order; stages that changed nothing say so.

    >>> render_trace((removed("strip_native_only", "service_tier", "proxy-style endpoint"),),
    ...              ("resolve_ref", "strip_native_only"))
    ['resolve_ref: no changes', 'strip_native_only:', '  - service_tier removed: proxy-style endpoint']

    A change naming a stage that is not in ``stage_order`` is never dropped: such stages
    follow, in the order they first appear in the trace.

    >>> render_trace((added("mine", "seed", "reproducible runs"),), ("resolve_ref",))
    ['resolve_ref: no changes', 'mine:', '  + seed added: reproducible runs']
    """
    marks = {"added": "+", "removed": "-", "changed": "~"}
    unlisted = [stage for stage in dict.fromkeys(change.stage for change in trace) if stage not in stage_order]
    lines: list[str] = []
    for stage in (*stage_order, *unlisted):
        entries = [change for change in trace if change.stage == stage]
        if not entries:
            lines.append(f"{stage}: no changes")
            continue
        lines.append(f"{stage}:")
        lines.extend(f"  {marks[change.action]} {change}" for change in entries)
    return lines


def observed_changes(
    stage: str, before: Mapping[str, Any], after: Mapping[str, Any], path: str = "", secrets: frozenset[str] = frozenset()
) -> list[Change]:
    """The differences between two bodies, as Changes: for a stage that changed the body and recorded nothing.

    Objects are compared member by member and lists of the same length item by item, so a
    path names the innermost value that differs (``messages[0].content``); a list whose
    length changed is one change. Values are shown cut to a short excerpt, scrubbed first of
    ``secrets`` and of anything that reads as a credential (``pipeline.secrets.scrub``), so a key a
    stage puts in the body is never shown, not even its first characters.

    >>> [str(c) for c in observed_changes("s", {"a": 1, "m": [{"c": "x"}], "z": 0}, {"a": 1, "m": [{"c": "y"}], "seed": 7})]
    ['m[0].c changed: set by a custom stage that recorded no rule ("x" -> "y")', 'z removed: dropped by a custom stage that recorded no rule (was 0)', 'seed added: set by a custom stage that recorded no rule (7)']
    """
    changes: list[Change] = []
    for key, old in before.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in after:
            changes.append(removed(stage, where, UNRECORDED_DROP, f"was {_excerpt(old, secrets)}"))
        else:
            changes += _value_changes(stage, where, old, after[key], secrets)
    changes += [
        added(stage, f"{path}.{key}" if path else str(key), UNRECORDED_SET, _excerpt(new, secrets))
        for key, new in after.items()
        if key not in before
    ]
    return changes


def _value_changes(stage: str, where: str, old: Any, new: Any, secrets: frozenset[str]) -> list[Change]:
    if old is new:
        return []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return observed_changes(stage, old, new, where, secrets)
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            change
            for index, (a, b) in enumerate(zip(old, new, strict=True))
            for change in _value_changes(stage, f"{where}[{index}]", a, b, secrets)
        ]
    if type(old) is type(new) and old == new:
        return []
    return [changed(stage, where, UNRECORDED_SET, f"{_excerpt(old, secrets)} -> {_excerpt(new, secrets)}")]


def _excerpt(value: Any, secrets: frozenset[str], limit: int = 60) -> str:
    try:
        text = scrub(msgspec.json.encode(value).decode(), secrets)  # scrubbed whole: a cut key would not match
    except (TypeError, msgspec.EncodeError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def observed_header_changes(stage: str, before: Sequence[tuple[str, str]], after: Sequence[tuple[str, str]]) -> list[Change]:
    """Header differences (names compared case-insensitively), as Changes; values are never shown: any may be a key.

    >>> [str(c) for c in observed_header_changes("s", [("X-A", "1"), ("X-B", "2")], [("x-a", "9"), ("X-C", "3")])]
    ['header X-A changed: set by a custom stage that recorded no rule', 'header X-B removed: dropped by a custom stage that recorded no rule', 'header X-C added: set by a custom stage that recorded no rule']
    """
    old = {name.lower(): (name, value) for name, value in before}
    new = {name.lower(): (name, value) for name, value in after}
    changes: list[Change] = []
    for key, (name, value) in old.items():
        if key not in new:
            changes.append(removed(stage, f"header {name}", UNRECORDED_DROP))
        elif new[key][1] != value:
            changes.append(changed(stage, f"header {name}", UNRECORDED_SET))
    changes += [added(stage, f"header {name}", UNRECORDED_SET) for key, (name, _) in new.items() if key not in old]
    return changes
