"""Rule table for the compat shaping stage (transforms/compat_shaping.py): flags in, body and trace out.

One row per rule of the README's "Compat flags" table (quoted in ``rule``), checked both ways: the rule
fires when its flag (or default) says so, and leaves the body alone when it does not. History hygiene and
image rules have their own table (tests/rules/test_history_hygiene.py). Every row calls the stage function
directly, on a context built for that row alone, and checks the stage did not mutate its input.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from tests.rules.support import LOOPBACK_URL, NATIVE_URL, config, context, shaped, trace_lines
from transforms.compat_shaping import ASSISTANT_BRIDGE_TEXT, RULES, Rule, compat_shaping

STAGE = "compat_shaping"
USER = {"role": "user", "content": "go"}
WEATHER = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
TIME = {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
TOOL_STRICT = {"type": "function", "function": {"name": "get_weather", "strict": True, "parameters": {}}}
TOOL_PLAIN = {"type": "function", "function": {"name": "get_time"}}
NATIVE = config(base_url=NATIVE_URL)
PROXY = config()


class Row(NamedTuple):
    rule: str
    config: str
    request: dict[str, Any]
    body: dict[str, Any]  # the whole body after the stage
    trace: list[str]  # the stage's whole trace, in order


def msgs(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"messages": list(messages), **extra}


ROWS: dict[str, Row] = {
    # requiresStringContent | false | a content array of only text parts becomes one string joined with `\n`; mixed arrays stay
    "string_content_joins_text_parts": Row(
        "requiresStringContent: a content array of only text parts becomes one string joined with \\n",
        config("compat: {requiresStringContent: true}"),
        msgs({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
        msgs({"role": "user", "content": "a\nb"}),
        ["messages[0].content changed: requiresStringContent: true (2 text parts joined into one string)"],
    ),
    "string_content_one_part_singular": Row(
        "requiresStringContent: one text part, said in the singular",
        config("compat: {requiresStringContent: true}"),
        msgs(USER, {"role": "user", "content": [{"type": "text", "text": "a"}]}),
        msgs(USER, {"role": "user", "content": "a"}),
        ["messages[1].content changed: requiresStringContent: true (1 text part joined into one string)"],
    ),
    "string_content_mixed_array_stays": Row(
        "requiresStringContent: mixed arrays (text + image) stay",
        config('input: ["text", "image"], compat: {requiresStringContent: true}'),
        msgs({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "u"}}]}),
        msgs({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "u"}}]}),
        [],
    ),
    "string_content_text_part_without_string_stays": Row(
        "requiresStringContent: a part typed text whose text is not a string is not a text part",
        config("compat: {requiresStringContent: true}"),
        msgs({"role": "user", "content": [{"type": "text", "text": 5}]}),
        msgs({"role": "user", "content": [{"type": "text", "text": 5}]}),
        [],
    ),
    "string_content_empty_array_stays": Row(
        "requiresStringContent: an empty array is not a text-only array",
        config("compat: {requiresStringContent: true}"),
        msgs({"role": "user", "content": []}),
        msgs({"role": "user", "content": []}),
        [],
    ),
    "string_content_off_by_default": Row(
        "requiresStringContent defaults to false: arrays stay",
        PROXY,
        msgs({"role": "user", "content": [{"type": "text", "text": "a"}]}),
        msgs({"role": "user", "content": [{"type": "text", "text": "a"}]}),
        [],
    ),
    # supportsTools | true | false: no tools/tool_choice; history tool calls become [tool call: name(args)], results [tool result]\n…
    "tools_false_removes_tool_fields": Row(
        "supportsTools false: no tools, tool_choice, parallel_tool_calls, functions, function_call",
        config("compat: {supportsTools: false}"),
        msgs(USER, tools=[TOOL_PLAIN], tool_choice="auto", parallel_tool_calls=True, functions=[], function_call="auto", seed=1),
        msgs(USER, seed=1),
        [
            "tools removed: supportsTools: false",
            "tool_choice removed: supportsTools: false",
            "parallel_tool_calls removed: supportsTools: false",
            "functions removed: supportsTools: false",
            "function_call removed: supportsTools: false",
        ],
    ),
    "tools_false_without_messages_adds_none": Row(
        "supportsTools false: a body with no messages gets none",
        config("compat: {supportsTools: false}"),
        {"prompt": "x", "tools": [TOOL_PLAIN]},
        {"prompt": "x"},
        ["tools removed: supportsTools: false"],
    ),
    "tools_false_flattens_history": Row(
        "supportsTools false: tool calls become [tool call: name(args)] after the turn's text; results [tool result]\\n... as user text",
        config("compat: {supportsTools: false}"),
        msgs(
            USER,
            {"role": "assistant", "content": "Checking.", "tool_calls": [WEATHER, TIME], "name": "bot"},
            {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "noon"}, {"type": "text", "text": "UTC"}]},
            {"role": "function", "name": "get_time", "content": "1 pm"},
            {"role": "assistant", "content": "plain"},
            USER,
        ),
        msgs(
            USER,
            {
                "role": "assistant",
                "content": 'Checking.\n[tool call: get_weather({"city": "Paris"})]\n[tool call: get_time({})]',
                "name": "bot",
            },
            {"role": "user", "content": "[tool result]\n18 C"},
            {"role": "user", "content": "[tool result]\nnoon\nUTC"},
            {"role": "user", "content": "[tool result]\n1 pm"},
            {"role": "assistant", "content": "plain"},
            USER,
        ),
        [
            "messages[1] changed: supportsTools: false (tool calls flattened to text)",
            "messages[2] changed: supportsTools: false (tool result sent as user text)",
            "messages[3] changed: supportsTools: false (tool result sent as user text)",
            "messages[4] changed: supportsTools: false (tool result sent as user text)",
        ],
    ),
    "tools_false_odd_calls": Row(
        "supportsTools false: a call with no function (or not an object) is [tool call]; object arguments are JSON; no text means only the calls",
        config("compat: {supportsTools: false}"),
        msgs(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"type": "function"}, "junk", {"function": {"name": "f", "arguments": {"a": 1}}}],
            },
            {"role": "assistant", "content": "", "tool_calls": [{"function": {}}]},
            {"role": "tool", "tool_call_id": "y"},
            USER,
        ),
        msgs(
            {"role": "assistant", "content": '[tool call]\n[tool call]\n[tool call: f({"a":1})]'},
            {"role": "assistant", "content": "[tool call: ()]"},
            {"role": "user", "content": "[tool result]\n"},
            USER,
        ),
        [
            "messages[0] changed: supportsTools: false (tool calls flattened to text)",
            "messages[1] changed: supportsTools: false (tool calls flattened to text)",
            "messages[2] changed: supportsTools: false (tool result sent as user text)",
        ],
    ),
    "tools_true_keeps_everything": Row(
        "supportsTools defaults to true: tools and history stay",
        PROXY,
        msgs(
            USER,
            {"role": "assistant", "tool_calls": [WEATHER]},
            {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
            tools=[TOOL_PLAIN],
            tool_choice="auto",
        ),
        msgs(
            USER,
            {"role": "assistant", "tool_calls": [WEATHER]},
            {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
            tools=[TOOL_PLAIN],
            tool_choice="auto",
        ),
        [],
    ),
    # supportsDeveloperRole | false (native: true) | false: developer messages go as system
    "developer_becomes_system_on_proxy": Row(
        "supportsDeveloperRole false (proxy default): developer messages go as system",
        PROXY,
        msgs({"role": "system", "content": "s"}, {"role": "developer", "content": "d"}, USER),
        msgs({"role": "system", "content": "s"}, {"role": "system", "content": "d"}, USER),
        ["messages[1].role changed: supportsDeveloperRole: false (developer -> system)"],
    ),
    "developer_kept_on_native": Row(
        "supportsDeveloperRole true on native endpoints: developer stays",
        NATIVE,
        msgs({"role": "developer", "content": "d"}, USER),
        msgs({"role": "developer", "content": "d"}, USER),
        [],
    ),
    "developer_kept_when_flag_true": Row(
        "supportsDeveloperRole true set on a proxy-style model: developer stays",
        config("compat: {supportsDeveloperRole: true}"),
        msgs({"role": "developer", "content": "d"}),
        msgs({"role": "developer", "content": "d"}),
        [],
    ),
    # requiresToolResultName | false | adds name to role: "tool" messages
    "tool_result_name_parallel_calls": Row(
        "requiresToolResultName: each tool result gets the name of the call it answers (parallel calls, answered out of order)",
        config("compat: {requiresToolResultName: true}"),
        msgs(
            USER,
            {"role": "assistant", "tool_calls": [WEATHER, TIME]},
            {"role": "tool", "tool_call_id": "c2", "content": "noon"},
            {"role": "tool", "tool_call_id": "c1", "content": "18 C"},
        ),
        msgs(
            USER,
            {"role": "assistant", "tool_calls": [WEATHER, TIME]},
            {"role": "tool", "tool_call_id": "c2", "content": "noon", "name": "get_time"},
            {"role": "tool", "tool_call_id": "c1", "content": "18 C", "name": "get_weather"},
        ),
        [
            "messages[2].name added: requiresToolResultName: true (get_time)",
            "messages[3].name added: requiresToolResultName: true (get_weather)",
        ],
    ),
    "tool_result_name_kept_or_unknown": Row(
        "requiresToolResultName: a name already there stays; a result for no known call gets none; a non-tool message gets none",
        config("compat: {requiresToolResultName: true}"),
        msgs(
            {"role": "assistant", "tool_calls": [WEATHER, {"id": "c9", "function": "bad"}]},
            {"role": "tool", "tool_call_id": "c1", "content": "1", "name": "mine"},
            {"role": "tool", "tool_call_id": "zz", "content": "2"},
            {"role": "tool", "tool_call_id": "c9", "content": "3"},
            {"role": "user", "tool_call_id": "c1", "content": "4"},
        ),
        msgs(
            {"role": "assistant", "tool_calls": [WEATHER, {"id": "c9", "function": "bad"}]},
            {"role": "tool", "tool_call_id": "c1", "content": "1", "name": "mine"},
            {"role": "tool", "tool_call_id": "zz", "content": "2"},
            {"role": "tool", "tool_call_id": "c9", "content": "3"},
            {"role": "user", "tool_call_id": "c1", "content": "4"},
        ),
        [],
    ),
    "tool_result_name_without_ids": Row(
        "requiresToolResultName: a result without tool_call_id takes the name of a call without id; a call without a name gives none",
        config("compat: {requiresToolResultName: true}"),
        msgs(
            {"role": "assistant", "tool_calls": ["junk", {"function": {"name": "legacy"}}]},
            {"role": "tool", "content": "1"},
            {"role": "assistant", "tool_calls": [{"id": "n1", "function": {}}]},
            {"role": "tool", "tool_call_id": "n1", "content": "2"},
        ),
        msgs(
            {"role": "assistant", "tool_calls": ["junk", {"function": {"name": "legacy"}}]},
            {"role": "tool", "content": "1", "name": "legacy"},
            {"role": "assistant", "tool_calls": [{"id": "n1", "function": {}}]},
            {"role": "tool", "tool_call_id": "n1", "content": "2"},
        ),
        ["messages[1].name added: requiresToolResultName: true (legacy)"],
    ),
    "tool_result_name_off_by_default": Row(
        "requiresToolResultName defaults to false: no name",
        PROXY,
        msgs({"role": "assistant", "tool_calls": [WEATHER]}, {"role": "tool", "tool_call_id": "c1", "content": "1"}),
        msgs({"role": "assistant", "tool_calls": [WEATHER]}, {"role": "tool", "tool_call_id": "c1", "content": "1"}),
        [],
    ),
    # requiresAssistantAfterToolResult | false | inserts an assistant turn between a tool result and a following user turn
    "assistant_after_tool_result": Row(
        "requiresAssistantAfterToolResult: an assistant turn goes right after the last tool result, before the user turn",
        config("compat: {requiresAssistantAfterToolResult: true}"),
        msgs(
            {"role": "assistant", "tool_calls": [WEATHER, TIME]},
            {"role": "tool", "tool_call_id": "c1", "content": "1"},
            {"role": "tool", "tool_call_id": "c2", "content": "2"},
            USER,
        ),
        msgs(
            {"role": "assistant", "tool_calls": [WEATHER, TIME]},
            {"role": "tool", "tool_call_id": "c1", "content": "1"},
            {"role": "tool", "tool_call_id": "c2", "content": "2"},
            {"role": "assistant", "content": ASSISTANT_BRIDGE_TEXT},
            USER,
        ),
        ["messages[3] added: requiresAssistantAfterToolResult: true"],
    ),
    "assistant_after_tool_result_not_before_assistant_or_at_end": Row(
        "requiresAssistantAfterToolResult: nothing when an assistant already follows, or when the tool result is last",
        config("compat: {requiresAssistantAfterToolResult: true}"),
        msgs(
            {"role": "assistant", "tool_calls": [WEATHER]},
            {"role": "tool", "tool_call_id": "c1", "content": "1"},
            {"role": "assistant", "content": "ok", "tool_calls": [TIME]},
            {"role": "tool", "tool_call_id": "c2", "content": "2"},
        ),
        msgs(
            {"role": "assistant", "tool_calls": [WEATHER]},
            {"role": "tool", "tool_call_id": "c1", "content": "1"},
            {"role": "assistant", "content": "ok", "tool_calls": [TIME]},
            {"role": "tool", "tool_call_id": "c2", "content": "2"},
        ),
        [],
    ),
    "assistant_after_tool_result_off_by_default": Row(
        "requiresAssistantAfterToolResult defaults to false",
        PROXY,
        msgs({"role": "assistant", "tool_calls": [WEATHER]}, {"role": "tool", "tool_call_id": "c1", "content": "1"}, USER),
        msgs({"role": "assistant", "tool_calls": [WEATHER]}, {"role": "tool", "tool_call_id": "c1", "content": "1"}, USER),
        [],
    ),
    # supportsStrictMode | false (native: true) | false: strict removed from tool functions
    "strict_removed_on_proxy": Row(
        "supportsStrictMode false (proxy default): strict removed from tool functions",
        PROXY,
        msgs(USER, tools=[TOOL_PLAIN, TOOL_STRICT, {"type": "function"}]),
        msgs(
            USER,
            tools=[TOOL_PLAIN, {"type": "function", "function": {"name": "get_weather", "parameters": {}}}, {"type": "function"}],
        ),
        ["tools[1].function.strict removed: supportsStrictMode: false"],
    ),
    "strict_kept_on_native": Row(
        "supportsStrictMode true on native endpoints: strict stays",
        NATIVE,
        msgs(USER, tools=[TOOL_STRICT]),
        msgs(USER, tools=[TOOL_STRICT]),
        [],
    ),
    "strict_kept_when_flag_true": Row(
        "supportsStrictMode true set on a proxy-style model: strict stays",
        config("compat: {supportsStrictMode: true}"),
        msgs(USER, tools=[TOOL_STRICT]),
        msgs(USER, tools=[TOOL_STRICT]),
        [],
    ),
    "strict_tools_not_a_list": Row(
        "supportsStrictMode false: tools that are not a list are left to the server",
        PROXY,
        msgs(USER, tools={"a": 1}),
        msgs(USER, tools={"a": 1}),
        [],
    ),
    # supportsReasoningEffort | the model's reasoning | reasoning_effort sent only when true
    "effort_removed_for_plain_model": Row(
        "supportsReasoningEffort defaults to the model's reasoning: removed for a model without reasoning: true",
        PROXY,
        msgs(USER, reasoning_effort="low"),
        msgs(USER),
        ["reasoning_effort removed: supportsReasoningEffort: false (model is not reasoning: true)"],
    ),
    "effort_kept_for_reasoning_model": Row(
        "supportsReasoningEffort defaults to the model's reasoning: kept for reasoning: true",
        config("reasoning: true"),
        msgs(USER, reasoning_effort="low"),
        msgs(USER, reasoning_effort="low"),
        [],
    ),
    "effort_removed_when_flag_false": Row(
        "supportsReasoningEffort false on a reasoning model: removed (the rule says only the flag)",
        config("reasoning: true, compat: {supportsReasoningEffort: false}"),
        msgs(USER, reasoning_effort="high"),
        msgs(USER),
        ["reasoning_effort removed: supportsReasoningEffort: false"],
    ),
    "effort_kept_when_flag_true": Row(
        "supportsReasoningEffort true on a plain model: kept",
        config("compat: {supportsReasoningEffort: true}"),
        msgs(USER, reasoning_effort="high"),
        msgs(USER, reasoning_effort="high"),
        [],
    ),
    # thinkingFormat | openai | qwen: top-level enable_thinking; qwen-chat-template: chat_template_kwargs.enable_thinking
    "qwen_effort_none_disables_thinking": Row(
        'thinkingFormat qwen: reasoning_effort "none" becomes enable_thinking: false',
        config('compat: {thinkingFormat: "qwen"}'),
        msgs(USER, reasoning_effort="none"),
        msgs(USER, enable_thinking=False),
        [
            "reasoning_effort removed: thinkingFormat: qwen (carried as enable_thinking)",
            "enable_thinking added: thinkingFormat: qwen (false)",
        ],
    ),
    "qwen_effort_level_enables_thinking": Row(
        "thinkingFormat qwen: an effort level becomes enable_thinking: true",
        config('compat: {thinkingFormat: "qwen"}'),
        msgs(USER, reasoning_effort="low"),
        msgs(USER, enable_thinking=True),
        [
            "reasoning_effort removed: thinkingFormat: qwen (carried as enable_thinking)",
            "enable_thinking added: thinkingFormat: qwen (true)",
        ],
    ),
    "qwen_null_effort_disables_thinking": Row(
        "thinkingFormat qwen: reasoning_effort null also switches thinking off",
        config('compat: {thinkingFormat: "qwen"}'),
        msgs(USER, reasoning_effort=None),
        msgs(USER, enable_thinking=False),
        [
            "reasoning_effort removed: thinkingFormat: qwen (carried as enable_thinking)",
            "enable_thinking added: thinkingFormat: qwen (false)",
        ],
    ),
    "qwen_reasoning_model_thinks_by_default": Row(
        "thinkingFormat qwen: a reasoning model with no effort gets enable_thinking: true",
        config('reasoning: true, compat: {thinkingFormat: "qwen"}'),
        msgs(USER),
        msgs(USER, enable_thinking=True),
        ["enable_thinking added: thinkingFormat: qwen (true)"],
    ),
    "qwen_plain_model_without_effort_untouched": Row(
        "thinkingFormat qwen: a model without reasoning and no effort: nothing added",
        config('compat: {thinkingFormat: "qwen"}'),
        msgs(USER),
        msgs(USER),
        [],
    ),
    "qwen_chat_template_merges_kwargs": Row(
        "thinkingFormat qwen-chat-template: chat_template_kwargs.enable_thinking, the caller's kwargs kept",
        config('compat: {thinkingFormat: "qwen-chat-template"}'),
        msgs(USER, reasoning_effort="none", chat_template_kwargs={"foo": 1}),
        msgs(USER, chat_template_kwargs={"foo": 1, "enable_thinking": False}),
        [
            "reasoning_effort removed: thinkingFormat: qwen-chat-template (carried as enable_thinking)",
            "chat_template_kwargs.enable_thinking added: thinkingFormat: qwen-chat-template (false)",
        ],
    ),
    "qwen_chat_template_replaces_bad_kwargs": Row(
        "thinkingFormat qwen-chat-template: kwargs that are not an object are replaced",
        config('reasoning: true, compat: {thinkingFormat: "qwen-chat-template"}'),
        msgs(USER, chat_template_kwargs="x"),
        msgs(USER, chat_template_kwargs={"enable_thinking": True}),
        ["chat_template_kwargs.enable_thinking added: thinkingFormat: qwen-chat-template (true)"],
    ),
    # supportsUsageInStreaming | true for vllm, sglang, llamacpp, lmstudio, ollama and loopback URLs |
    #   stream_options.include_usage on streamed requests; stream_options is never sent without stream: true
    "usage_added_on_loopback_stream": Row(
        "supportsUsageInStreaming true on loopback URLs: stream_options.include_usage on streamed requests",
        config(base_url=LOOPBACK_URL),
        msgs(USER, stream=True),
        msgs(USER, stream=True, stream_options={"include_usage": True}),
        ["stream_options.include_usage added: supportsUsageInStreaming: true"],
    ),
    "usage_merged_into_stream_options": Row(
        "supportsUsageInStreaming: include_usage joins the caller's stream_options",
        config(base_url=LOOPBACK_URL),
        msgs(USER, stream=True, stream_options={"continuous_usage_stats": True}),
        msgs(USER, stream=True, stream_options={"continuous_usage_stats": True, "include_usage": True}),
        ["stream_options.include_usage added: supportsUsageInStreaming: true"],
    ),
    "usage_replaces_bad_stream_options": Row(
        "supportsUsageInStreaming: stream_options that are not an object become {include_usage: true}",
        config(base_url=LOOPBACK_URL),
        msgs(USER, stream=True, stream_options=[1]),
        msgs(USER, stream=True, stream_options={"include_usage": True}),
        ["stream_options.include_usage added: supportsUsageInStreaming: true"],
    ),
    "usage_caller_choice_wins": Row(
        "supportsUsageInStreaming: the caller's include_usage (even false) stays",
        config(base_url=LOOPBACK_URL),
        msgs(USER, stream=True, stream_options={"include_usage": False}),
        msgs(USER, stream=True, stream_options={"include_usage": False}),
        [],
    ),
    "usage_not_added_on_lan_proxy": Row(
        "supportsUsageInStreaming false on a non-loopback proxy-style URL: nothing added",
        PROXY,
        msgs(USER, stream=True),
        msgs(USER, stream=True),
        [],
    ),
    "usage_flag_true_on_lan_proxy": Row(
        "supportsUsageInStreaming true set on a LAN model: added",
        config("compat: {supportsUsageInStreaming: true}"),
        msgs(USER, stream=True),
        msgs(USER, stream=True, stream_options={"include_usage": True}),
        ["stream_options.include_usage added: supportsUsageInStreaming: true"],
    ),
    "usage_not_added_without_stream": Row(
        "supportsUsageInStreaming: only on streamed requests",
        config(base_url=LOOPBACK_URL),
        msgs(USER),
        msgs(USER),
        [],
    ),
    "stream_options_removed_without_stream": Row(
        "stream_options is never sent without stream: true (stream false)",
        config(base_url=LOOPBACK_URL),
        msgs(USER, stream=False, stream_options={"include_usage": True}),
        msgs(USER, stream=False),
        ["stream_options removed: stream_options is only valid with stream: true (vLLM answers 400)"],
    ),
    "stream_options_removed_when_stream_not_true": Row(
        'stream_options is never sent without stream: true (stream "yes", not true)',
        config(),
        msgs(USER, stream="yes", stream_options={}),
        msgs(USER, stream="yes"),
        ["stream_options removed: stream_options is only valid with stream: true (vLLM answers 400)"],
    ),
    # maxTokensField | max_tokens (native: max_completion_tokens) | the field the token limit travels in
    "max_tokens_field_renamed_on_proxy": Row(
        "maxTokensField max_tokens (proxy default): max_completion_tokens is renamed, in place",
        PROXY,
        {"max_completion_tokens": 64, **msgs(USER)},
        {"max_tokens": 64, **msgs(USER)},
        ["max_tokens changed: maxTokensField: max_tokens (renamed from max_completion_tokens)"],
    ),
    "max_tokens_field_renamed_on_native": Row(
        "maxTokensField max_completion_tokens (native default): max_tokens is renamed",
        NATIVE,
        msgs(USER, max_tokens=64),
        msgs(USER, max_completion_tokens=64),
        ["max_completion_tokens changed: maxTokensField: max_completion_tokens (renamed from max_tokens)"],
    ),
    "max_tokens_field_both_set": Row(
        "maxTokensField: when both are set, the other field goes and the endpoint's field wins",
        PROXY,
        msgs(USER, max_tokens=10, max_completion_tokens=99),
        msgs(USER, max_tokens=10),
        ["max_completion_tokens removed: maxTokensField: max_tokens (max_tokens is also set)"],
    ),
    "max_tokens_field_already_right": Row(
        "maxTokensField: the endpoint's own field stays as it is",
        config('compat: {maxTokensField: "max_completion_tokens"}'),
        msgs(USER, max_completion_tokens=5),
        msgs(USER, max_completion_tokens=5),
        [],
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_compat_rule(row: Row) -> None:
    ctx = shaped(compat_shaping, context(row.config, row.request))
    assert ctx.body == row.body
    assert list(ctx.body) == list(row.body), "field order changed"
    assert trace_lines(ctx, STAGE) == row.trace
    assert all(change.stage == STAGE for change in ctx.trace)


def test_nothing_to_do_returns_the_same_context() -> None:
    ctx = context(config(base_url=LOOPBACK_URL), msgs(USER))
    assert shaped(compat_shaping, ctx) is ctx


ALL_FLAGS_ON = config(
    "compat: {requiresToolResultName: true, requiresAssistantAfterToolResult: true, requiresStringContent: true,"
    " supportsStrictMode: false, supportsTools: true, requiresThinkingAsText: true}"
)


ANSWERED = msgs(
    {"role": "assistant", "content": "x", "tool_calls": [WEATHER]},
    {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": "1"},
    {"role": "assistant", "content": "ok"},
    USER,
)


@pytest.mark.parametrize(
    "body",
    [msgs(USER, tools=[TOOL_PLAIN], stream=True), {"prompt": "x"}, ANSWERED],
    ids=["nothing_to_shape", "no_messages", "answered_tool_history"],
)
@pytest.mark.parametrize("rule", RULES, ids=[rule.__name__ for rule in RULES])
def test_a_rule_with_nothing_to_do_returns_the_body_itself(rule: Rule, body: dict[str, Any]) -> None:
    """No list or dict is rebuilt when a rule does not apply (and no messages key appears from nowhere)."""
    target = context(ALL_FLAGS_ON, body).target
    assert target is not None
    same, changes = rule(body, target.model.compat, target)
    assert same is body
    assert changes == []
