"""Rule table for history hygiene and text-only input (compat shaping): messages and flags in, messages and trace out.

Each row is one rule. The whole compat shaping stage runs (the rules' order is part of the rule), on a
fresh deep copy of the request that must come back unchanged.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import genesis_from

IMG = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
TXT = {"type": "text", "text": "look"}
CALL_A = {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
CALL_B = {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}
USER = {"role": "user", "content": "go"}


def config(input_kinds: str = '["text"]', compat: str = "") -> str:
    return f'{{models: {{providers: {{p: {{baseUrl: "http://10.0.0.9/v1", models: [{{id: "m", input: {input_kinds}, compat: {{ {compat} }} }}]}}}}}}}}'


# (name, config, messages in, messages out, trace lines of compat_shaping that must appear)
ROWS: list[tuple[str, str, list[Any], list[Any], list[str]]] = [
    (
        "an unanswered tool call gets 'No result provided' before the next user turn",
        config(),
        [USER, {"role": "assistant", "tool_calls": [CALL_A]}, USER],
        [USER, {"role": "assistant", "tool_calls": [CALL_A]}, {"role": "tool", "tool_call_id": "a", "content": "No result provided"}, USER],
        ["messages[2] added: history: tool call a has no result (No result provided)"],
    ),
    (
        "only the unanswered one of two parallel calls gets a result, after the real one",
        config(),
        [USER, {"role": "assistant", "tool_calls": [CALL_A, CALL_B]}, {"role": "tool", "tool_call_id": "b", "content": "2"}, USER],
        [
            USER,
            {"role": "assistant", "tool_calls": [CALL_A, CALL_B]},
            {"role": "tool", "tool_call_id": "b", "content": "2"},
            {"role": "tool", "tool_call_id": "a", "content": "No result provided"},
            USER,
        ],
        ["messages[3] added: history: tool call a has no result (No result provided)"],
    ),
    (
        "tool calls of the last turn are left alone (their results may be on the way)",
        config(),
        [USER, {"role": "assistant", "tool_calls": [CALL_A]}],
        [USER, {"role": "assistant", "tool_calls": [CALL_A]}],
        [],
    ),
    (
        "an empty assistant turn is removed",
        config(),
        [USER, {"role": "assistant", "content": ""}, USER],
        [USER, USER],
        ["messages[1] removed: history: an assistant turn with no text and no tool calls"],
    ),
    (
        "an assistant turn with content None and no calls is removed too",
        config(),
        [USER, {"role": "assistant", "content": None}, USER],
        [USER, USER],
        ["messages[1] removed: history: an assistant turn with no text and no tool calls"],
    ),
    (
        "an assistant turn with text stays",
        config(),
        [USER, {"role": "assistant", "content": "ok"}, USER],
        [USER, {"role": "assistant", "content": "ok"}, USER],
        [],
    ),
    (
        "empty reasoning fields are removed, non-empty ones kept without requiresThinkingAsText",
        config(),
        [USER, {"role": "assistant", "content": "ok", "reasoning_content": "", "reasoning": "why"}, USER],
        [USER, {"role": "assistant", "content": "ok", "reasoning": "why"}, USER],
        ["messages[1].reasoning_content removed: history: empty reasoning"],
    ),
    (
        "requiresThinkingAsText: reasoning leads the text, fields gone",
        config(compat="requiresThinkingAsText: true"),
        [USER, {"role": "assistant", "content": "4", "reasoning_content": "2+2"}, USER],
        [USER, {"role": "assistant", "content": "2+2\n\n4"}, USER],
        ["messages[1].content changed: requiresThinkingAsText: true (earlier reasoning sent as leading text)"],
    ),
    (
        "requiresThinkingAsText on a content array: a leading text part",
        config(compat="requiresThinkingAsText: true"),
        [USER, {"role": "assistant", "content": [{"type": "text", "text": "4"}], "reasoning": "2+2"}, USER],
        [USER, {"role": "assistant", "content": [{"type": "text", "text": "2+2"}, {"type": "text", "text": "4"}]}, USER],
        ["messages[1].content changed: requiresThinkingAsText: true (earlier reasoning sent as leading text)"],
    ),
    (
        "a reasoning-only turn is not empty: with requiresThinkingAsText it becomes text",
        config(compat="requiresThinkingAsText: true"),
        [USER, {"role": "assistant", "content": None, "reasoning_text": "hmm"}, USER],
        [USER, {"role": "assistant", "content": "hmm"}, USER],
        ["messages[1].content changed: requiresThinkingAsText: true (earlier reasoning sent as leading text)"],
    ),
    (
        "an image part to a text-only model is removed and traced",
        config(),
        [{"role": "user", "content": [TXT, IMG]}],
        [{"role": "user", "content": [TXT]}],
        ["messages[0].content[1] removed: model input is text only"],
    ),
    (
        "a message left empty by the removal gets a placeholder text",
        config(),
        [{"role": "user", "content": [IMG]}],
        [{"role": "user", "content": [{"type": "text", "text": "(image omitted: this model takes text only)"}]}],
        [
            "messages[0].content[0] removed: model input is text only",
            "messages[0].content[0] added: a message left empty ((image omitted: this model takes text only))",
        ],
    ),
    (
        "an image to a model that takes images stays",
        config('["text", "image"]'),
        [{"role": "user", "content": [TXT, IMG]}],
        [{"role": "user", "content": [TXT, IMG]}],
        [],
    ),
    (
        "image removal runs before requiresStringContent: the text left is joined into a string",
        config(compat="requiresStringContent: true"),
        [{"role": "user", "content": [TXT, IMG, TXT]}],
        [{"role": "user", "content": "look\nlook"}],
        [
            "messages[0].content[1] removed: model input is text only",
            "messages[0].content changed: requiresStringContent: true (2 text parts joined into one string)",
        ],
    ),
]


@pytest.mark.parametrize(("name", "config_text", "messages", "expected", "trace"), ROWS, ids=[row[0] for row in ROWS])
def test_rule(name: str, config_text: str, messages: list[Any], expected: list[Any], trace: list[str]) -> None:
    request = {"messages": copy.deepcopy(messages)}
    pristine = copy.deepcopy(request)
    ctx = genesis_from(config_text).shape("p/m", request).unwrap()
    assert ctx.body["messages"] == expected
    shaping = [str(change) for change in ctx.trace if change.stage == "compat_shaping"]
    assert shaping == trace
    assert request == pristine, "a stage changed the caller's request"
