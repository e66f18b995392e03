"""The caller's chat request: checking its shape, and building one from a prompt.

The request is an OpenAI-style chat completion body: ``messages`` plus any
other field (``tools``, ``tool_choice``, ``max_tokens``, ``service_tier``, ...).
Only what the stages rely on is checked; unknown fields pass through to the
stages, which decide what the server gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import RequestError

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_CONTENT_TYPES = (str, list)
_PLAIN_CONTENT = frozenset((str, list, type(None)))
_BAD_TOOLS = "request.tools: expected a list of tool objects"


def check_request(request: Any) -> dict[str, Any]:
    """A shallow copy of a usable request, or a RequestError naming the path.

    >>> check_request({"messages": [{"role": "user", "content": "hi"}]})["messages"][0]["role"]
    'user'
    >>> check_request({"messages": []})
    Traceback (most recent call last):
    ...
    pipeline.errors.RequestError: request.messages: expected a non-empty list of messages
    """
    # ``type(x) is dict`` first: a dict is the common case, and an isinstance against the Mapping ABC is
    # a Python-level call; any other Mapping is still accepted.
    if type(request) is not dict and not isinstance(request, Mapping):
        raise RequestError(f"request: expected a JSON object, found {type(request).__name__}")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("request.messages: expected a non-empty list of messages")
    # A build pays for this loop: plain dicts with plain values pass in a few steps each; anything else
    # (a message that is another Mapping, a str subclass, a bad value) sends the whole list, once, to the
    # walk that names the first problem's path.
    for message in messages:
        if type(message) is not dict or message.get("role") not in _ROLES or type(message.get("content")) not in _PLAIN_CONTENT:
            _raise_first_problem(messages)
            break
    tools = request.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise RequestError(_BAD_TOOLS)
        for tool in tools:
            if type(tool) is not dict and not isinstance(tool, Mapping):
                raise RequestError(_BAD_TOOLS)
    return dict(request)


def _raise_first_problem(messages: list[Any]) -> None:
    """The first malformed message, as a RequestError naming its path and what is wrong with it; returns
    when there is none (every message a Mapping with a known role and a string, list or null content)."""
    for index, message in enumerate(messages):
        at = f"request.messages[{index}]"
        if not isinstance(message, Mapping):
            raise RequestError(f"{at}: expected an object with role and content")
        role = message.get("role")
        if role not in _ROLES:
            raise RequestError(f"{at}.role: expected one of {', '.join(_ROLES)}, found {role!r}")
        content = message.get("content")
        if content is not None and not isinstance(content, _CONTENT_TYPES):
            raise RequestError(f"{at}.content: expected a string or a list of content parts")


def prompt_request(
    prompt: str,
    *,
    system: str | None = None,
    max_tokens: int | None = None,
    stream: bool = True,
) -> dict[str, Any]:
    """The request the CLI sends for ``--prompt`` (and ``--system``, ``--max-tokens``).

    >>> prompt_request("hi", system="be brief", max_tokens=5)
    {'messages': [{'role': 'system', 'content': 'be brief'}, {'role': 'user', 'content': 'hi'}], 'stream': True, 'max_tokens': 5}
    """
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": prompt})
    request: dict[str, Any] = {"messages": messages, "stream": stream}
    if max_tokens is not None:
        request["max_tokens"] = max_tokens
    return request
