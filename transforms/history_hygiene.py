"""History hygiene: repairs to earlier turns that servers reject or models misread.

These are the first rule of the compat shaping stage (``transforms.compat_shaping.RULES``
runs ``history_hygiene`` first), kept in their own module because they are about the
shape of a conversation rather than one server's quirks. The three rules below run
in one walk over the messages (a build pays for one walk, not three), each as if it
ran over the previous one's output; the walk returns a new body and the changes, or
the body itself when the history needs nothing. No message is edited in place.

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
# The turns before which an unanswered tool call gets its "No result provided" result.
_TURNS = ("assistant", "user", "system", "developer")

Body = dict[str, Any]


def _messages(body: Body) -> list[Any]:
    messages = body.get("messages")
    return messages if isinstance(messages, list) else []


def _call_ids(message: Any) -> list[str]:
    """The ids of an assistant turn's tool calls (its caller passes only assistant turns)."""
    calls = message.get("tool_calls")
    if not isinstance(calls, list):
        return []
    return [call["id"] for call in calls if isinstance(call, dict) and isinstance(call.get("id"), str) and call["id"]]


def history_hygiene(body: Body, compat: Compat, target: Target) -> tuple[Body, list[Change]]:
    """The three history rules in one walk over the messages, as if each ran over the previous one's output.

    Rules, in order (a trace entry names the message where that rule found it):
    1. a tool call without a result gets ``No result provided`` before the next assistant, user,
       system or developer turn;
    2. an assistant turn that says nothing (no text, no tool calls, no reasoning) is removed;
    3. earlier reasoning: empty reasoning fields go; with requiresThinkingAsText, the reasoning
       becomes the turn's leading text.
    The trace lists rule 1's changes, then rule 2's, then rule 3's; a path names the message as
    the rule saw it (rule 2 after rule 1's insertions, rule 3 after rule 2's removals). A body
    whose history needs nothing is returned as it is.

    >>> body = {"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f"}}]},
    ...                      {"role": "user", "content": "next"}]}
    >>> new, changes = history_hygiene(body, None, None)
    >>> new["messages"][1], str(changes[0])
    ({'role': 'tool', 'tool_call_id': 'a', 'content': 'No result provided'}, 'messages[1] added: history: tool call a has no result (No result provided)')
    """
    messages = _messages(body)
    shaped: list[Any] = []
    answered: list[Change] = []  # rule 1
    dropped: list[Change] = []  # rule 2
    cleaned: list[Change] = []  # rule 3
    pending: list[str] = []
    # Where rule 2 sees a message (its index in rule 1's output) is len(shaped) + len(dropped); where
    # rule 3 sees it (after rule 2's removals) is len(shaped).
    for message in messages:
        role = message.get("role")
        if pending:
            if role == "tool":
                call_id = message.get("tool_call_id")
                if call_id in pending:
                    pending.remove(call_id)
            elif role in _TURNS:
                for call_id in pending:
                    at = len(shaped) + len(dropped)
                    answered.append(added(STAGE, f"messages[{at}]", f"history: tool call {call_id} has no result", NO_RESULT_TEXT))
                    shaped.append({"role": "tool", "tool_call_id": call_id, "content": NO_RESULT_TEXT})
                pending.clear()
        if role == "assistant":
            if message.get("tool_calls"):
                pending.extend(_call_ids(message))
            elif _says_nothing(message):
                at = len(shaped) + len(dropped)
                dropped.append(removed(STAGE, f"messages[{at}]", "history: an assistant turn with no text and no tool calls"))
                continue
            if not REASONING_KEYS.isdisjoint(message):
                message = _earlier_reasoning(message, compat, f"messages[{len(shaped)}]", cleaned)
        shaped.append(message)
    if not (answered or dropped or cleaned):
        return body, []
    return {**body, "messages": shaped}, answered + dropped + cleaned


def _says_nothing(message: Any) -> bool:
    """An assistant turn with no text (a blank string, an empty list or none), no function call and no
    reasoning; its caller has seen that it has no tool calls. (Plain tests in a row, no helper call and no
    generator: a build asks this of every assistant turn.)"""
    content = message.get("content")
    if (isinstance(content, str) and content.strip()) or (isinstance(content, list) and len(content) > 0):
        return False
    if message.get("function_call"):
        return False
    for field in REASONING_FIELDS:
        value = message.get(field)
        if isinstance(value, str) and value.strip():
            return False
    return True


def _earlier_reasoning(message: Any, compat: Compat, at: str, changes: list[Change]) -> Any:
    """An assistant turn with its reasoning cleaned (rule 3), its changes appended; the turn itself when it needs none."""
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
        changes.append(changed(STAGE, f"{at}.content", "requiresThinkingAsText: true", "earlier reasoning sent as leading text"))
        return kept
    empty = [f for f in REASONING_FIELDS if f in message and not (isinstance(message[f], str) and message[f].strip())]
    if not empty:
        return message
    changes += [removed(STAGE, f"{at}.{f}", "history: empty reasoning") for f in empty]
    return {key: value for key, value in message.items() if key not in empty}
