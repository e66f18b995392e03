"""History hygiene: repairs to earlier turns that servers reject or models misread.

These are rules of the compat shaping stage (``transforms.compat_shaping.RULES``
runs them first), kept in their own module because they are about the shape of
a conversation rather than one server's quirks. Each returns a new body and the
changes it made; none edits a message in place.

- A tool call without a result: servers that render a chat template (vLLM,
  llama.cpp, SGLang) fail or confuse the model when an assistant's
  ``tool_calls`` are not answered. A ``role: "tool"`` message with the text
  ``No result provided`` is inserted for each unanswered call, right before
  the next assistant, user, system or developer turn (as the reference
  implementation does). Calls in the last assistant turn are left alone: the
  caller may be about to send their results.
- An empty assistant turn (no text, no tool calls, no reasoning) is removed:
  some servers answer 400 to an assistant message with neither content nor
  tool calls.
- Reasoning on earlier assistant turns (``reasoning_content``, ``reasoning``,
  ``reasoning_text``): empty values are removed; with
  ``requiresThinkingAsText`` the reasoning moves to the front of the turn's
  text as plain text (no tags, so the model does not learn to imitate them)
  and the fields are removed.
"""

from __future__ import annotations

from typing import Any

from pipeline.compat import Compat
from pipeline.refs import Target
from pipeline.trace import Change, added, changed, removed

STAGE = "compat_shaping"
NO_RESULT_TEXT = "No result provided"
REASONING_FIELDS = ("reasoning_content", "reasoning", "reasoning_text")
REASONING_KEYS = frozenset(REASONING_FIELDS)

Body = dict[str, Any]


def _messages(body: Body) -> list[Any]:
    messages = body.get("messages")
    return messages if isinstance(messages, list) else []


def _call_ids(message: Any) -> list[str]:
    calls = message.get("tool_calls") if message.get("role") == "assistant" else None
    if not isinstance(calls, list):
        return []
    return [call["id"] for call in calls if isinstance(call, dict) and isinstance(call.get("id"), str) and call["id"]]


def _has_text(content: Any) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    return isinstance(content, list) and len(content) > 0


def missing_tool_results(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    """Insert ``No result provided`` for each tool call that no tool message answers.

    >>> body = {"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f"}}]},
    ...                      {"role": "user", "content": "next"}]}
    >>> new, changes = missing_tool_results(body, None, None)
    >>> new["messages"][1], str(changes[0])
    ({'role': 'tool', 'tool_call_id': 'a', 'content': 'No result provided'}, 'messages[1] added: history: tool call a has no result (No result provided)')
    """
    messages = _messages(body)
    if not any(message.get("tool_calls") for message in messages[:-1]):  # the common case: nothing to answer
        return body, []
    shaped: list[Any] = []
    changes: list[Change] = []
    pending: list[str] = []

    def answer_pending() -> None:
        for call_id in pending:
            shaped.append({"role": "tool", "tool_call_id": call_id, "content": NO_RESULT_TEXT})
            changes.append(added(STAGE, f"messages[{len(shaped) - 1}]", f"history: tool call {call_id} has no result", NO_RESULT_TEXT))
        pending.clear()

    for message in messages:
        role = message.get("role")
        if role == "tool":
            answered = message.get("tool_call_id")
            if answered in pending:
                pending.remove(answered)
        elif role in ("assistant", "user", "system", "developer"):
            if pending:
                answer_pending()
            if role == "assistant":
                pending.extend(_call_ids(message))
        shaped.append(message)
    return ({**body, "messages": shaped}, changes) if changes else (body, [])


def empty_assistant_turns(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    """Remove assistant turns that say nothing: no text, no tool calls, no reasoning."""
    messages = _messages(body)
    empty = [index for index, message in enumerate(messages) if message.get("role") == "assistant" and _says_nothing(message)]
    if not empty:
        return body, []
    gone = set(empty)
    changes = [removed(STAGE, f"messages[{index}]", "history: an assistant turn with no text and no tool calls") for index in empty]
    return {**body, "messages": [message for index, message in enumerate(messages) if index not in gone]}, changes


def _says_nothing(message: Any) -> bool:
    return (
        not _has_text(message.get("content"))
        and not message.get("tool_calls")
        and not message.get("function_call")
        and not any(isinstance(message.get(field), str) and message[field].strip() for field in REASONING_FIELDS)
    )


def earlier_reasoning(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    """Empty reasoning fields go; with requiresThinkingAsText, reasoning becomes the turn's leading text."""
    messages = _messages(body)
    shaped = list(messages)
    changes: list[Change] = []
    for index, message in enumerate(messages):
        if message.get("role") != "assistant" or REASONING_KEYS.isdisjoint(message):
            continue
        kept = {key: value for key, value in message.items() if key not in REASONING_FIELDS}
        thinking = [message[f] for f in REASONING_FIELDS if isinstance(message.get(f), str) and message[f].strip()]
        if compat.requires_thinking_as_text and thinking:
            reasoning = "\n\n".join(dict.fromkeys(thinking))  # the same text under two names is said once
            content = message.get("content")
            if isinstance(content, list):
                kept["content"] = [{"type": "text", "text": reasoning}, *content]
            elif isinstance(content, str) and content:
                kept["content"] = f"{reasoning}\n\n{content}"
            else:
                kept["content"] = reasoning
            shaped[index] = kept
            changes.append(
                changed(STAGE, f"messages[{index}].content", "requiresThinkingAsText: true", "earlier reasoning sent as leading text")
            )
            continue
        empty = [f for f in REASONING_FIELDS if f in message and not (isinstance(message[f], str) and message[f].strip())]
        if empty:
            shaped[index] = {key: value for key, value in message.items() if key not in empty}
            changes += [removed(STAGE, f"messages[{index}].{f}", "history: empty reasoning") for f in empty]
    return ({**body, "messages": shaped}, changes) if changes else (body, [])
