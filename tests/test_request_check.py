"""Rule table for ``pipeline.request.check_request``: what a request must be before any stage sees it.

A build checks plain dicts in a few steps each and sends anything else (another Mapping, a str subclass,
a bad value) to a walk that names the first problem's path; these rows pin that both ways give the same
verdict: what is accepted (any Mapping, a str or list subclass), and which path an error names (the
first bad message, whatever comes before or after it).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, NamedTuple

import pytest

from pipeline.errors import RequestError
from pipeline.request import check_request

USER = {"role": "user", "content": "hi"}
TOOL = {"type": "function", "function": {"name": "f"}}


class Text(str):
    pass


class Parts(list[Any]):
    pass


class Accepted(NamedTuple):
    rule: str
    request: Any


ACCEPTED: dict[str, Accepted] = {
    "plain": Accepted("a dict of plain dicts", {"messages": [USER], "tools": [TOOL]}),
    "mapping_request": Accepted("the request may be any Mapping", MappingProxyType({"messages": [USER]})),
    "mapping_messages": Accepted(
        "a message may be any Mapping, and a dict may follow one", {"messages": [MappingProxyType(USER), USER, MappingProxyType(USER)]}
    ),
    "content_kinds": Accepted(
        "content may be a string, a list, null, or absent",
        {
            "messages": [
                USER,
                {"role": "user", "content": [{"type": "text", "text": "x"}]},
                {"role": "assistant", "content": None},
                {"role": "tool"},
            ]
        },
    ),
    "content_subclasses": Accepted(
        "content may be a str or list subclass",
        {"messages": [{"role": "user", "content": Text("hi")}, {"role": "user", "content": Parts()}]},
    ),
    "mapping_tools": Accepted("a tool may be any Mapping", {"messages": [USER], "tools": [MappingProxyType(TOOL), TOOL]}),
    "no_tools": Accepted("tools may be absent or null", {"messages": [USER], "tools": None}),
}


@pytest.mark.parametrize("row", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_accepted_request_is_a_shallow_copy(row: Accepted) -> None:
    body = check_request(row.request)
    assert type(body) is dict
    assert body == dict(row.request)
    assert body is not row.request


class Refused(NamedTuple):
    rule: str
    request: Any
    error: str


ROLES = "system, developer, user, assistant, tool, function"

REFUSED: dict[str, Refused] = {
    "message_not_an_object": Refused(
        "a message that is no object is named by its path",
        {"messages": [USER, "hi"]},
        "request.messages[1]: expected an object with role and content",
    ),
    "first_bad_after_good": Refused(
        "the first bad message is named, after good ones",
        {"messages": [USER, USER, {"role": "robot"}]},
        f"request.messages[2].role: expected one of {ROLES}, found 'robot'",
    ),
    "first_of_two_bad": Refused(
        "of two bad messages, the first is named",
        {"messages": [USER, {"role": "user", "content": 5}, {"role": "robot"}]},
        "request.messages[1].content: expected a string or a list of content parts",
    ),
    "bad_after_a_mapping": Refused(
        "a bad message after one that is a Mapping but no dict is still named",
        {"messages": [MappingProxyType(USER), USER, {"role": None}]},
        f"request.messages[2].role: expected one of {ROLES}, found None",
    ),
    "missing_role": Refused(
        "a message without a role", {"messages": [{"content": "x"}]}, f"request.messages[0].role: expected one of {ROLES}, found None"
    ),
    "role_before_content": Refused(
        "a message with a bad role and bad content: the role is named",
        {"messages": [{"role": "robot", "content": 5}]},
        f"request.messages[0].role: expected one of {ROLES}, found 'robot'",
    ),
    "content_tuple": Refused(
        "content that is a tuple",
        {"messages": [{"role": "user", "content": ("a",)}]},
        "request.messages[0].content: expected a string or a list",
    ),
    "tools_not_a_list": Refused(
        "tools that are no list", {"messages": [USER], "tools": TOOL}, "request.tools: expected a list of tool objects"
    ),
    "tool_not_an_object": Refused(
        "a tool that is no object, after one that is",
        {"messages": [USER], "tools": [TOOL, "f"]},
        "request.tools: expected a list of tool objects",
    ),
}


@pytest.mark.parametrize("row", list(REFUSED.values()), ids=list(REFUSED))
def test_refused_request_names_the_first_problem(row: Refused) -> None:
    with pytest.raises(RequestError) as caught:
        check_request(row.request)
    assert str(caught.value).startswith(row.error), str(caught.value)
