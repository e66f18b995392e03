"""Rule table: the three history rules run in one walk over the messages, each as if over the previous one's output.

``transforms.history_hygiene.history_hygiene`` answers unanswered tool calls (rule 1), removes assistant
turns that say nothing (rule 2) and cleans earlier reasoning (rule 3) in one pass. Each row is a history
where the rules meet: a trace path names the message where that rule found it (rule 2 after rule 1's
insertions, rule 3 after rule 2's removals), and the trace lists rule 1's changes, then rule 2's, then
rule 3's, whatever order the walk meets them in. A history that needs nothing comes back as the same body.
Each row runs the whole compat shaping stage, as tests/rules/test_history_hygiene.py does.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from pipeline.compat import Compat
from tests.rules.support import config, context, shaped, trace_lines
from transforms.compat_shaping import compat_shaping
from transforms.history_hygiene import NO_RESULT_TEXT, history_hygiene

STAGE = "compat_shaping"
USER = {"role": "user", "content": "go"}
EMPTY = {"role": "assistant", "content": ""}
BLANK = {"role": "assistant", "content": "   ", "reasoning_content": ""}
ASK_A = {"role": "assistant", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
SAID_EMPTY_REASONING = {"role": "assistant", "content": "ok", "reasoning_content": ""}
SAID = {"role": "assistant", "content": "ok"}
NO_RESULT_A = {"role": "tool", "tool_call_id": "a", "content": NO_RESULT_TEXT}
ANSWERED_A = {"role": "tool", "tool_call_id": "a", "content": "sunny"}

REMOVED_TURN = "removed: history: an assistant turn with no text and no tool calls"
ADDED_RESULT = "added: history: tool call a has no result (No result provided)"


class Row(NamedTuple):
    rule: str
    messages: list[Any]
    shaped: list[Any]
    trace: list[str]


ROWS: dict[str, Row] = {
    "two_removals_named_where_found": Row(
        "rule 2 names each removed turn where it found it: two empty turns in a row are messages[0] and messages[1]",
        [EMPTY, BLANK, USER],
        [USER],
        [f"messages[0] {REMOVED_TURN}", f"messages[1] {REMOVED_TURN}"],
    ),
    "removal_after_an_insertion": Row(
        "rule 2 sees rule 1's output: a removed turn after an inserted result is named past the insertion",
        [ASK_A, USER, EMPTY, USER],
        [ASK_A, NO_RESULT_A, USER, USER],
        [f"messages[1] {ADDED_RESULT}", f"messages[3] {REMOVED_TURN}"],
    ),
    "reasoning_after_a_removal": Row(
        "rule 3 sees rule 2's output: a turn after a removed one is named one place earlier",
        [EMPTY, SAID_EMPTY_REASONING, USER],
        [SAID, USER],
        [f"messages[0] {REMOVED_TURN}", "messages[0].reasoning_content removed: history: empty reasoning"],
    ),
    "reasoning_after_an_insertion": Row(
        "rule 3 sees rule 1's insertions: a turn after an inserted result is named one place later",
        [ASK_A, USER, SAID_EMPTY_REASONING, USER],
        [ASK_A, NO_RESULT_A, USER, SAID, USER],
        [f"messages[1] {ADDED_RESULT}", "messages[3].reasoning_content removed: history: empty reasoning"],
    ),
    "trace_in_rule_order": Row(
        "the trace lists rule 1, then rule 2, then rule 3, though the walk meets them the other way round",
        [SAID_EMPTY_REASONING, EMPTY, ASK_A, USER],
        [SAID, ASK_A, NO_RESULT_A, USER],
        [f"messages[3] {ADDED_RESULT}", f"messages[1] {REMOVED_TURN}", "messages[0].reasoning_content removed: history: empty reasoning"],
    ),
    "result_before_a_removed_turn_stays": Row(
        "a result inserted before a turn that rule 2 then removes stays, where rule 1 put it",
        [ASK_A, EMPTY, USER],
        [ASK_A, NO_RESULT_A, USER],
        [f"messages[1] {ADDED_RESULT}", f"messages[2] {REMOVED_TURN}"],
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_history_rules_in_one_walk(row: Row) -> None:
    ctx = shaped(compat_shaping, context(config(), {"messages": row.messages, "seed": 1}))
    assert ctx.body == {"messages": row.shaped, "seed": 1}
    assert trace_lines(ctx, STAGE) == row.trace


UNCHANGED: dict[str, list[Any]] = {
    "answered_call": [ASK_A, ANSWERED_A, SAID, USER],
    "call_in_the_last_turn": [USER, ASK_A],
    "reasoning_kept": [USER, {"role": "assistant", "content": "ok", "reasoning": "why"}, USER],
}


@pytest.mark.parametrize("messages", list(UNCHANGED.values()), ids=list(UNCHANGED))
def test_a_history_that_needs_nothing_is_the_same_body(messages: list[Any]) -> None:
    body = {"messages": messages}
    target = context(config(), body).target
    assert target is not None
    same, changes = history_hygiene(body, Compat(), target)
    assert same is body
    assert changes == []
