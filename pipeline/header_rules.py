"""What may go into an HTTP header, checked before anything is built or sent.

Rules:
- A name is one or more RFC 9110 ``tchar``: letters, digits and
  ``!#$%&'*+-.^_`|~``. No spaces, colons, line breaks or anything else.
- A value holds tab, space and visible ASCII. Never CR, LF, NUL, another
  control character (C0, DEL, C1), a lone surrogate, or a character
  outside ASCII: those split a request, get it rejected, or make the HTTP
  layer raise (httpx encodes a str header value as ASCII, so even the
  latin-1 that RFC 9110 tolerates as obs-text would fail at send time).
- A problem says what and where (``contains a line break (U+000A) at
  position 33``; positions count from 1) and never quotes the value, which
  may be a key. A value whose only fault is a trailing line break (a key
  pasted from a file or ``echo``) gets a hint to strip it.
"""

from __future__ import annotations

import re

import msgspec

from pipeline.errors import ConfigError, ConfigIssue, RequestError
from pipeline.jsontext import shown

_TCHAR = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_TCHAR = re.compile(r"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
_NOT_VALUE_CHAR = re.compile(r"[^\t\x20-\x7e]")

STRIP_HINT = "strip the trailing line break (a key saved by echo or an editor often ends with one)"


class HeaderProblem(msgspec.Struct, frozen=True):
    """What is wrong, without the offending text, and how to fix it when we know."""

    problem: str
    hint: str | None = None

    def __str__(self) -> str:
        return f"{self.problem}; {self.hint}" if self.hint else self.problem


def describe_char(char: str) -> str:
    """A character named by its kind and code point, never shown itself.

    >>> describe_char("\\n"), describe_char("\\x00"), describe_char("\\u20ac")
    ('a line break (U+000A)', 'a NUL (U+0000)', 'a character outside ASCII (U+20AC)')
    """
    code = ord(char)
    point = f"U+{code:04X}"
    if char in "\r\n":
        return f"a line break ({point})"
    if code == 0:
        return f"a NUL ({point})"
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return f"a control character ({point})"
    if 0xD800 <= code <= 0xDFFF:
        return f"a lone surrogate ({point})"
    if code > 0x7F:
        return f"a character outside ASCII ({point})"
    return f"the character {point}"


def name_problem(name: str) -> HeaderProblem | None:
    """Why ``name`` cannot be a header name, or None.

    >>> name_problem("X-Api-Key") is None
    True
    >>> str(name_problem("X Key"))
    "is not a valid header name: the character U+0020 at position 2 is not allowed (a name is letters, digits and !#$%&'*+-.^_`|~)"
    """
    if not name:
        return HeaderProblem("is an empty header name")
    if _TCHAR.fullmatch(name):
        return None
    bad = _NOT_TCHAR.search(name)
    assert bad is not None
    return HeaderProblem(
        f"is not a valid header name: {describe_char(bad.group())} at position {bad.start() + 1} is not allowed"
        " (a name is letters, digits and !#$%&'*+-.^_`|~)"
    )


def value_problem(value: str) -> HeaderProblem | None:
    """Why ``value`` cannot be a header value, or None; the value itself is never in the text.

    >>> value_problem("Bearer abc") is None, value_problem("tab\\tok") is None
    (True, True)
    >>> str(value_problem("sk-123\\n"))
    'contains a line break (U+000A) at position 7; strip the trailing line break (a key saved by echo or an editor often ends with one)'
    """
    bad = _NOT_VALUE_CHAR.search(value)
    if bad is None:
        return None
    trailing_only = value[-1:] in ("\n", "\r") and _NOT_VALUE_CHAR.search(value.rstrip("\r\n")) is None
    return HeaderProblem(
        f"contains {describe_char(bad.group())} at position {bad.start() + 1}",
        STRIP_HINT if trailing_only else None,
    )


def caller_header_error(name: str, value: str, source: str) -> RequestError | None:
    """A header the caller passed that HTTP cannot carry, as a RequestError naming ``source``.

    >>> print(caller_header_error("X-Trace", "a\\nb", "--header"))
    --header X-Trace: the value contains a line break (U+000A) at position 2
    >>> caller_header_error("X-Trace", "ok", "--header") is None
    True
    """
    bad_name = name_problem(name)
    if bad_name is not None:
        return RequestError(f'{source}: "{shown(name, 60)}" {bad_name.problem}')
    bad_value = value_problem(value)
    if bad_value is not None:
        return RequestError(f"{source} {shown(name, 60)}: the value {bad_value.problem}", hint=bad_value.hint)
    return None


def key_error(key: str, key_source: str, config_source: str) -> ConfigError | None:
    """A key that cannot go into ``Authorization``: from the environment or the config, never quoted.

    >>> print(key_error("sk-1\\n", "env VLLM_API_KEY", "genesis.json"))
    config error in the environment: the key from VLLM_API_KEY contains a line break (U+000A) at position 5
    """
    problem = value_problem(key)
    if problem is None:
        return None
    if key_source.startswith("env "):
        issue = ConfigIssue("", f"the key from {key_source[4:]} {problem.problem}")
        return ConfigError("the environment", [issue], hint=problem.hint)
    if key_source.startswith("profile "):  # an auth profile handed to Genesis() directly; the file's are checked when read
        return ConfigError(key_source[8:], [ConfigIssue("", f"the key {problem.problem}")], hint=problem.hint)
    path = key_source.removeprefix("config ")
    return ConfigError(config_source, [ConfigIssue(path, f"the key {problem.problem}")], hint=problem.hint)
