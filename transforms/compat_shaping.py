"""Stage 3: shape the body to what the model's endpoint accepts (compat flags).

Each rule below reads one resolved flag (``pipeline.compat``) and returns a
new body plus the changes it made; the stage folds ``RULES`` in order. Rules
never edit a message in place: a changed message is a new dict in a new list.

- History hygiene first (``transforms.history_hygiene``): unanswered tool
  calls get a ``No result provided`` result, empty assistant turns go,
  earlier reasoning is cleaned (or sent as text: requiresThinkingAsText).
- A model whose ``input`` has no ``image``: image parts are removed from
  content arrays (the server would answer 400, and 400 never fails over); a
  message left with no parts gets the text ``IMAGE_OMITTED_TEXT``.
- supportsDeveloperRole false: ``developer`` messages go as ``system``
  (inferrs answers 422 to ``developer``).
- supportsTools false: no ``tools``/``tool_choice``; earlier tool calls and
  tool results in the history become text.
- requiresToolResultName: ``role: "tool"`` messages get the function's name.
- requiresAssistantAfterToolResult: an assistant turn between a tool result
  and a following user turn.
- requiresStringContent: a content array made only of text parts becomes one
  string joined with "\\n"; mixed arrays (text + image) are left as they are.
- supportsStrictMode false: ``strict`` is removed from tool functions.
- thinkingFormat / supportsReasoningEffort: how (and whether) reasoning
  effort reaches the server.
- supportsUsageInStreaming: ``stream_options.include_usage`` on streamed
  requests; ``stream_options`` never without ``stream: true`` (vLLM: 400).
- maxTokensField: the token limit travels under the field the endpoint reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from returns.result import Failure, Result, Success

from pipeline.compat import Compat
from pipeline.errors import GenesisError
from pipeline.refs import Target
from pipeline.trace import Change, added, changed, removed
from pipeline.types import Context, missing_target
from transforms.history_hygiene import history_hygiene

STAGE = "compat_shaping"

Body = dict[str, Any]
Rule = Callable[[Body, Compat, Target], tuple[Body, list[Change]]]

# Text of the assistant turn inserted after a tool result (requiresAssistantAfterToolResult).
ASSISTANT_BRIDGE_TEXT = "I have processed the tool results."
# Text of a message whose only parts were images sent to a text-only model.
IMAGE_OMITTED_TEXT = "(image omitted: this model takes text only)"
_IMAGE_PART_TYPES = ("image_url", "image", "input_image")
_TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call")


def _messages(body: Body) -> list[Any]:
    messages = body.get("messages")
    return messages if isinstance(messages, list) else []


def text_only_input(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    if "image" in target.model.config.input:
        return body, []
    messages = _messages(body)
    shaped = list(messages)
    changes: list[Change] = []
    for index, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        images = [at for at, part in enumerate(content) if isinstance(part, dict) and part.get("type") in _IMAGE_PART_TYPES]
        if not images:
            continue
        kept = [part for at, part in enumerate(content) if at not in images]
        changes += [removed(STAGE, f"messages[{index}].content[{at}]", "model input is text only") for at in images]
        if not kept:
            kept = [{"type": "text", "text": IMAGE_OMITTED_TEXT}]
            changes.append(added(STAGE, f"messages[{index}].content[0]", "a message left empty", IMAGE_OMITTED_TEXT))
        shaped[index] = {**message, "content": kept}
    return ({**body, "messages": shaped}, changes) if changes else (body, [])


def developer_role(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    if compat.supports_developer_role:
        return body, []
    messages = _messages(body)
    changes: list[Change] = []
    shaped = list(messages)
    for index, message in enumerate(messages):
        if message.get("role") == "developer":
            shaped[index] = {**message, "role": "system"}
            changes.append(changed(STAGE, f"messages[{index}].role", "supportsDeveloperRole: false", "developer -> system"))
    return ({**body, "messages": shaped}, changes) if changes else (body, [])


def text_of(content: Any) -> str:
    """The text in a message content: the string itself, or its text parts joined with newlines.

    >>> text_of([{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}])
    'a\\nb'
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part["text"] for part in content if _is_text_part(part))
    return ""


def _tool_call_text(call: Any) -> str:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return "[tool call]"
    arguments = function.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = msgspec.json.encode(arguments).decode()
    return f"[tool call: {function.get('name', '')}({arguments})]"


def tools_surface(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    if compat.supports_tools:
        return body, []
    changes = [removed(STAGE, field, "supportsTools: false") for field in _TOOL_FIELDS if field in body]
    shaped: list[Any] = []
    for index, message in enumerate(_messages(body)):
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            said = text_of(message.get("content"))
            lines = ([said] if said else []) + [_tool_call_text(call) for call in message["tool_calls"]]
            flattened = {key: value for key, value in message.items() if key != "tool_calls"}
            shaped.append({**flattened, "content": "\n".join(lines)})
            changes.append(changed(STAGE, f"messages[{index}]", "supportsTools: false", "tool calls flattened to text"))
        elif role in ("tool", "function"):
            shaped.append({"role": "user", "content": "[tool result]\n" + text_of(message.get("content"))})
            changes.append(changed(STAGE, f"messages[{index}]", "supportsTools: false", "tool result sent as user text"))
        else:
            shaped.append(message)
    if not changes:
        return body, []
    new_body = {key: value for key, value in body.items() if key not in _TOOL_FIELDS}
    if "messages" in body:
        new_body["messages"] = shaped
    return new_body, changes


def tool_result_name(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    if not compat.requires_tool_result_name:
        return body, []
    names: dict[str, str] = {}
    shaped: list[Any] = []
    changes: list[Change] = []
    for index, message in enumerate(_messages(body)):
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                names[call.get("id", "")] = call["function"].get("name", "")
        name = names.get(message.get("tool_call_id", ""))
        if message.get("role") == "tool" and "name" not in message and name:
            shaped.append({**message, "name": name})
            changes.append(added(STAGE, f"messages[{index}].name", "requiresToolResultName: true", name))
        else:
            shaped.append(message)
    return ({**body, "messages": shaped}, changes) if changes else (body, [])


def assistant_after_tool_result(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    if not compat.requires_assistant_after_tool_result:
        return body, []
    shaped: list[Any] = []
    changes: list[Change] = []
    messages = _messages(body)
    for index, message in enumerate(messages):
        shaped.append(message)
        following = messages[index + 1] if index + 1 < len(messages) else None
        if message.get("role") == "tool" and following is not None and following.get("role") == "user":
            shaped.append({"role": "assistant", "content": ASSISTANT_BRIDGE_TEXT})
            changes.append(added(STAGE, f"messages[{len(shaped) - 1}]", "requiresAssistantAfterToolResult: true"))
    return ({**body, "messages": shaped}, changes) if changes else (body, [])


def _is_text_part(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)


def string_content(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    if not compat.requires_string_content:
        return body, []
    messages = _messages(body)
    shaped = list(messages)
    changes: list[Change] = []
    for index, message in enumerate(messages):
        content = message.get("content")
        if isinstance(content, list) and content and all(_is_text_part(part) for part in content):
            shaped[index] = {**message, "content": "\n".join(part["text"] for part in content)}
            detail = f"{len(content)} text part{'s' if len(content) > 1 else ''} joined into one string"
            changes.append(changed(STAGE, f"messages[{index}].content", "requiresStringContent: true", detail))
    return ({**body, "messages": shaped}, changes) if changes else (body, [])


def strict_mode(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    tools = body.get("tools")
    if compat.supports_strict_mode or not isinstance(tools, list):
        return body, []
    shaped = list(tools)
    changes: list[Change] = []
    for index, tool in enumerate(tools):
        function = tool.get("function")
        if isinstance(function, dict) and "strict" in function:
            shaped[index] = {**tool, "function": {k: v for k, v in function.items() if k != "strict"}}
            changes.append(removed(STAGE, f"tools[{index}].function.strict", "supportsStrictMode: false"))
    return ({**body, "tools": shaped}, changes) if changes else (body, [])


def reasoning_effort(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    has_effort = "reasoning_effort" in body
    if compat.thinking_format == "openai":
        if has_effort and not compat.supports_reasoning_effort:
            why = "supportsReasoningEffort: false" + ("" if target.model.config.reasoning else " (model is not reasoning: true)")
            return {k: v for k, v in body.items() if k != "reasoning_effort"}, [removed(STAGE, "reasoning_effort", why)]
        return body, []
    if not (has_effort or target.model.config.reasoning):
        return body, []
    # Qwen-style servers switch thinking on or off instead of taking an effort level.
    enable = body.get("reasoning_effort") not in (None, "none") if has_effort else True
    rule = f"thinkingFormat: {compat.thinking_format}"
    new_body = {k: v for k, v in body.items() if k != "reasoning_effort"}
    changes = [removed(STAGE, "reasoning_effort", rule, "carried as enable_thinking")] if has_effort else []
    if compat.thinking_format == "qwen":
        new_body["enable_thinking"] = enable
        changes.append(added(STAGE, "enable_thinking", rule, str(enable).lower()))
    else:
        kwargs = body.get("chat_template_kwargs")
        new_body["chat_template_kwargs"] = {**(kwargs if isinstance(kwargs, dict) else {}), "enable_thinking": enable}
        changes.append(added(STAGE, "chat_template_kwargs.enable_thinking", rule, str(enable).lower()))
    return new_body, changes


def usage_in_streaming(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    if body.get("stream") is not True:
        if "stream_options" in body:
            why = "stream_options is only valid with stream: true (vLLM answers 400)"
            return {k: v for k, v in body.items() if k != "stream_options"}, [removed(STAGE, "stream_options", why)]
        return body, []
    options = body.get("stream_options")
    if not compat.supports_usage_in_streaming or (isinstance(options, dict) and "include_usage" in options):
        return body, []
    merged = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    change = added(STAGE, "stream_options.include_usage", "supportsUsageInStreaming: true")
    return {**body, "stream_options": merged}, [change]


def max_tokens_field(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    wanted = compat.max_tokens_field
    other = "max_completion_tokens" if wanted == "max_tokens" else "max_tokens"
    if other not in body:
        return body, []
    rule = f"maxTokensField: {wanted}"
    if wanted in body:
        return {k: v for k, v in body.items() if k != other}, [removed(STAGE, other, rule, f"{wanted} is also set")]
    renamed = {(wanted if key == other else key): value for key, value in body.items()}
    return renamed, [changed(STAGE, wanted, rule, f"renamed from {other}")]


RULES: tuple[Rule, ...] = (
    history_hygiene,
    text_only_input,
    developer_role,
    tools_surface,
    tool_result_name,
    assistant_after_tool_result,
    string_content,
    strict_mode,
    reasoning_effort,
    usage_in_streaming,
    max_tokens_field,
)


def run(ctx: Context) -> Context | GenesisError:
    target = ctx.target
    if target is None:  # stages return their errors, never raise them
        return missing_target(STAGE)
    compat = target.model.compat
    body = ctx.body
    changes: list[Change] = []
    for rule in RULES:
        body, made = rule(body, compat, target)
        changes += made
    return ctx.updated(changes, body=body) if changes else ctx


def compat_shaping(ctx: Context) -> Result[Context, GenesisError]:
    """The stage: ``run`` as a Result (the stage contract; the runner calls ``run`` itself)."""
    shaped = run(ctx)
    return Failure(shaped) if isinstance(shaped, GenesisError) else Success(shaped)
