"""What each stage changed, and why.

Rule: a stage never drops or rewrites a field silently. Every edit to the
body or the headers is recorded as a ``Change`` naming the stage, the field
(a path such as ``messages[1].content`` or ``header Authorization``), the
action, and the rule that caused it. ``genesis wire --explain`` prints them.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Action = Literal["added", "removed", "changed"]


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
    """
    marks = {"added": "+", "removed": "-", "changed": "~"}
    lines: list[str] = []
    for stage in stage_order:
        entries = [change for change in trace if change.stage == stage]
        if not entries:
            lines.append(f"{stage}: no changes")
            continue
        lines.append(f"{stage}:")
        lines.extend(f"  {marks[change.action]} {change}" for change in entries)
    return lines
