"""Rule table for history hygiene and text-only input (transforms/history_hygiene.py and the image rule of
transforms/compat_shaping.py): the README's "rules that need no flag" table.

Each row runs the whole compat shaping stage (the rules' order is part of the rule) on a context built for
that row, and checks the stage did not mutate its input. tests/test_history_rules.py holds the first table
of these rules; the rows here add the edges (which turns close a pending call, which fields count as
reasoning, the exact trace) and the rows that must NOT fire.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from tests.rules.support import config, context, shaped, trace_lines
from transforms.compat_shaping import IMAGE_OMITTED_TEXT, compat_shaping
from transforms.history_hygiene import NO_RESULT_TEXT

STAGE = "compat_shaping"
USER = {"role": "user", "content": "go"}
CALL_A = {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
CALL_B = {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}
ASK_A = {"role": "assistant", "tool_calls": [CALL_A]}
ASK_AB = {"role": "assistant", "content": "two", "tool_calls": [CALL_A, CALL_B]}
IMG = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
TXT = {"type": "text", "text": "look"}
THINK = config("compat: {requiresThinkingAsText: true}")
PROXY = config()


def no_result(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": NO_RESULT_TEXT}


def result(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "ok"}


class Row(NamedTuple):
    rule: str
    messages: list[Any]
    shaped: list[Any]
    trace: list[str]
    text: str = PROXY


ROWS: dict[str, Row] = {
    # a tool call with no result | a role: "tool" message `No result provided` is inserted before the next
    # assistant, user, system or developer turn (calls in the last turn are left alone)
    "missing_result_before_user": Row(
        "a tool call with no result gets No result provided before the next user turn",
        [ASK_A, USER],
        [ASK_A, no_result("a"), USER],
        ["messages[1] added: history: tool call a has no result (No result provided)"],
    ),
    "missing_result_after_a_first_user_turn": Row(
        "a call anywhere before the last turn counts, not only in the first message",
        [USER, ASK_A, USER],
        [USER, ASK_A, no_result("a"), USER],
        ["messages[2] added: history: tool call a has no result (No result provided)"],
    ),
    "missing_result_answered_once": Row(
        "a call is answered once: later turns do not repeat the result",
        [ASK_A, USER, {"role": "assistant", "content": "x"}, USER],
        [ASK_A, no_result("a"), USER, {"role": "assistant", "content": "x"}, USER],
        ["messages[1] added: history: tool call a has no result (No result provided)"],
    ),
    "missing_result_before_system": Row(
        "... before the next system turn",
        [ASK_A, {"role": "system", "content": "s"}],
        [ASK_A, no_result("a"), {"role": "system", "content": "s"}],
        ["messages[1] added: history: tool call a has no result (No result provided)"],
    ),
    "missing_result_before_developer": Row(
        "... before the next developer turn (which then goes as system)",
        [ASK_A, {"role": "developer", "content": "d"}],
        [ASK_A, no_result("a"), {"role": "system", "content": "d"}],
        [
            "messages[1] added: history: tool call a has no result (No result provided)",
            "messages[2].role changed: supportsDeveloperRole: false (developer -> system)",
        ],
    ),
    "missing_result_before_next_assistant": Row(
        "... before the next assistant turn, whose own calls are then pending",
        [ASK_A, {"role": "assistant", "content": "more", "tool_calls": [CALL_B]}, USER],
        [ASK_A, no_result("a"), {"role": "assistant", "content": "more", "tool_calls": [CALL_B]}, no_result("b"), USER],
        [
            "messages[1] added: history: tool call a has no result (No result provided)",
            "messages[3] added: history: tool call b has no result (No result provided)",
        ],
    ),
    "missing_results_in_call_order": Row(
        "two unanswered calls: one result each, in call order",
        [ASK_AB, USER],
        [ASK_AB, no_result("a"), no_result("b"), USER],
        [
            "messages[1] added: history: tool call a has no result (No result provided)",
            "messages[2] added: history: tool call b has no result (No result provided)",
        ],
    ),
    "only_the_unanswered_call": Row(
        "of two parallel calls only the unanswered one gets a result, after the real one",
        [ASK_AB, result("b"), USER],
        [ASK_AB, result("b"), no_result("a"), USER],
        ["messages[2] added: history: tool call a has no result (No result provided)"],
    ),
    "answered_calls_untouched": Row(
        "calls that all have results: nothing inserted",
        [ASK_AB, result("a"), result("b"), USER],
        [ASK_AB, result("a"), result("b"), USER],
        [],
    ),
    "last_turn_calls_left_alone": Row(
        "calls in the last turn are left alone (their results may be on the way)",
        [USER, ASK_AB],
        [USER, ASK_AB],
        [],
    ),
    "last_turn_after_results_left_alone": Row(
        "a pending call answered by nothing before the end: no turn follows, nothing inserted",
        [USER, ASK_AB, result("a")],
        [USER, ASK_AB, result("a")],
        [],
    ),
    "calls_without_ids_ignored": Row(
        "calls without a string id cannot be answered and are not",
        [{"role": "assistant", "tool_calls": [{"id": "", "function": {}}, {"id": 5}, "junk", {"function": {}}]}, USER],
        [{"role": "assistant", "tool_calls": [{"id": "", "function": {}}, {"id": 5}, "junk", {"function": {}}]}, USER],
        [],
    ),
    "user_tool_calls_not_pending": Row(
        "only assistant turns' tool_calls are pending calls",
        [{"role": "user", "content": "x", "tool_calls": [CALL_A]}, USER],
        [{"role": "user", "content": "x", "tool_calls": [CALL_A]}, USER],
        [],
    ),
    # an assistant turn with no text, no tool calls and no reasoning | removed
    "empty_assistant_removed": Row(
        "an assistant turn with no text, no tool calls and no reasoning is removed",
        [USER, {"role": "assistant", "content": "  "}, {"role": "assistant"}, {"role": "assistant", "content": []}, USER],
        [USER, USER],
        [
            "messages[1] removed: history: an assistant turn with no text and no tool calls",
            "messages[2] removed: history: an assistant turn with no text and no tool calls",
            "messages[3] removed: history: an assistant turn with no text and no tool calls",
        ],
    ),
    "assistant_with_something_stays": Row(
        "an assistant turn with text, a content array, a function_call or reasoning stays",
        [
            {"role": "assistant", "content": "x"},
            {"role": "assistant", "content": [TXT]},
            {"role": "assistant", "content": None, "function_call": {"name": "f"}},
            {"role": "assistant", "content": "", "reasoning_text": "hm"},
            USER,
        ],
        [
            {"role": "assistant", "content": "x"},
            {"role": "assistant", "content": [TXT]},
            {"role": "assistant", "content": None, "function_call": {"name": "f"}},
            {"role": "assistant", "content": "", "reasoning_text": "hm"},
            USER,
        ],
        [],
    ),
    "empty_user_turn_stays": Row(
        "only assistant turns are removed for saying nothing",
        [{"role": "user", "content": ""}, {"role": "system", "content": ""}],
        [{"role": "user", "content": ""}, {"role": "system", "content": ""}],
        [],
    ),
    # an empty reasoning field on an earlier turn | removed
    "empty_reasoning_fields_removed": Row(
        "empty reasoning fields (reasoning_content, reasoning, reasoning_text) on an assistant turn are removed",
        [{"role": "assistant", "content": "x", "reasoning_content": "", "reasoning": " ", "reasoning_text": None}, USER],
        [{"role": "assistant", "content": "x"}, USER],
        [
            "messages[0].reasoning_content removed: history: empty reasoning",
            "messages[0].reasoning removed: history: empty reasoning",
            "messages[0].reasoning_text removed: history: empty reasoning",
        ],
    ),
    "empty_reasoning_on_two_turns": Row(
        "empty reasoning goes on every earlier turn, each recorded",
        [{"role": "assistant", "content": "x", "reasoning": ""}, USER, {"role": "assistant", "content": "y", "reasoning_text": ""}, USER],
        [{"role": "assistant", "content": "x"}, USER, {"role": "assistant", "content": "y"}, USER],
        ["messages[0].reasoning removed: history: empty reasoning", "messages[2].reasoning_text removed: history: empty reasoning"],
    ),
    "reasoning_kept_without_flag": Row(
        "non-empty reasoning stays as it is without requiresThinkingAsText",
        [{"role": "assistant", "content": "x", "reasoning": "because"}, USER],
        [{"role": "assistant", "content": "x", "reasoning": "because"}, USER],
        [],
    ),
    "user_reasoning_untouched": Row(
        "reasoning fields on other roles are not the history rule's business",
        [{"role": "user", "content": "x", "reasoning": ""}],
        [{"role": "user", "content": "x", "reasoning": ""}],
        [],
    ),
    # requiresThinkingAsText | true: an earlier assistant turn's reasoning goes first in its text, as plain text
    "thinking_as_text_string": Row(
        "requiresThinkingAsText: reasoning leads the turn's text, separated by a blank line; the fields go",
        [{"role": "assistant", "content": "answer", "reasoning_content": "why", "reasoning_text": ""}, USER],
        [{"role": "assistant", "content": "why\n\nanswer"}, USER],
        ["messages[0].content changed: requiresThinkingAsText: true (earlier reasoning sent as leading text)"],
        THINK,
    ),
    "thinking_as_text_said_once": Row(
        "requiresThinkingAsText: the same text under two names is said once; two texts are both said, in field order",
        [
            {"role": "assistant", "content": "a", "reasoning": "same", "reasoning_content": "same"},
            {"role": "assistant", "content": "b", "reasoning_text": "two", "reasoning_content": "one"},
            USER,
        ],
        [{"role": "assistant", "content": "same\n\na"}, {"role": "assistant", "content": "one\n\ntwo\n\nb"}, USER],
        [
            "messages[0].content changed: requiresThinkingAsText: true (earlier reasoning sent as leading text)",
            "messages[1].content changed: requiresThinkingAsText: true (earlier reasoning sent as leading text)",
        ],
        THINK,
    ),
    "thinking_as_text_array_and_none": Row(
        "requiresThinkingAsText: a content array gets a leading text part; no content becomes the reasoning",
        [
            {"role": "assistant", "content": [TXT], "reasoning": "r1"},
            {"role": "assistant", "content": None, "reasoning": "r2", "tool_calls": [CALL_A]},
            result("a"),
            USER,
        ],
        [
            {"role": "assistant", "content": [{"type": "text", "text": "r1"}, TXT]},
            {"role": "assistant", "content": "r2", "tool_calls": [CALL_A]},
            result("a"),
            USER,
        ],
        [
            "messages[0].content changed: requiresThinkingAsText: true (earlier reasoning sent as leading text)",
            "messages[1].content changed: requiresThinkingAsText: true (earlier reasoning sent as leading text)",
        ],
        THINK,
    ),
    "thinking_as_text_empty_string_content": Row(
        "requiresThinkingAsText: an empty string content becomes the reasoning alone",
        [{"role": "assistant", "content": "", "reasoning": "r"}, USER],
        [{"role": "assistant", "content": "r"}, USER],
        ["messages[0].content changed: requiresThinkingAsText: true (earlier reasoning sent as leading text)"],
        THINK,
    ),
    "thinking_as_text_only_empty_reasoning": Row(
        "requiresThinkingAsText with only empty reasoning: the empty fields are just removed",
        [{"role": "assistant", "content": "x", "reasoning": ""}, USER],
        [{"role": "assistant", "content": "x"}, USER],
        ["messages[0].reasoning removed: history: empty reasoning"],
        THINK,
    ),
    # image parts to a model whose input is ["text"] | removed; a message left with no parts gets a text
    "image_parts_removed": Row(
        "image parts (image_url, image, input_image) to a text-only model are removed",
        [{"role": "user", "content": [TXT, IMG, {"type": "image"}, {"type": "input_image"}, "raw"]}],
        [{"role": "user", "content": [TXT, "raw"]}],
        [
            "messages[0].content[1] removed: model input is text only",
            "messages[0].content[2] removed: model input is text only",
            "messages[0].content[3] removed: model input is text only",
        ],
    ),
    "image_only_message_gets_text": Row(
        "a message left with no parts gets the text (image omitted: this model takes text only)",
        [USER, {"role": "user", "content": [IMG]}],
        [USER, {"role": "user", "content": [{"type": "text", "text": IMAGE_OMITTED_TEXT}]}],
        [
            "messages[1].content[0] removed: model input is text only",
            f"messages[1].content[0] added: a message left empty ({IMAGE_OMITTED_TEXT})",
        ],
    ),
    "images_in_a_later_message": Row(
        "every message is looked at: images in a later message go too (after one with text parts only)",
        [{"role": "user", "content": [TXT]}, USER, {"role": "user", "content": [IMG, TXT]}],
        [{"role": "user", "content": [TXT]}, USER, {"role": "user", "content": [TXT]}],
        ["messages[2].content[0] removed: model input is text only"],
    ),
    "images_in_two_messages": Row(
        "the removals of every message are traced, not only the last one's",
        [{"role": "user", "content": [IMG, TXT]}, USER, {"role": "user", "content": [TXT, IMG]}],
        [{"role": "user", "content": [TXT]}, USER, {"role": "user", "content": [TXT]}],
        ["messages[0].content[0] removed: model input is text only", "messages[2].content[1] removed: model input is text only"],
    ),
    "images_kept_for_vision_model": Row(
        "a model whose input has image keeps image parts",
        [{"role": "user", "content": [TXT, IMG]}],
        [{"role": "user", "content": [TXT, IMG]}],
        [],
        config('input: ["text", "image"]'),
    ),
    "text_arrays_untouched": Row(
        "a text-only model: arrays without images and string content are untouched",
        [{"role": "user", "content": [TXT]}, USER],
        [{"role": "user", "content": [TXT]}, USER],
        [],
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_history_rule(row: Row) -> None:
    ctx = shaped(compat_shaping, context(row.text, {"messages": row.messages, "seed": 1}))
    assert ctx.body == {"messages": row.shaped, "seed": 1}
    assert trace_lines(ctx, STAGE) == row.trace


def test_messages_not_a_list_left_to_the_server() -> None:
    ctx = context(THINK, {"messages": "hello", "seed": 1})
    assert shaped(compat_shaping, ctx) is ctx
