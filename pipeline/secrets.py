"""Keeping keys out of everything we print. Pure: no I/O.

Anything a server sends may repeat what we sent it: a 401 page that says
``invalid key: Bearer sk-...``, a proxy's HTML error page dumping the
request headers, an in-stream error object. Every text that came from a
server is passed through ``scrub`` before it reaches an error, a log line,
an audit record or the terminal; every object that holds a key has a
``repr`` that does not show it.

Rules of ``scrub``:
- Rule 1: every configured secret of at least ``MIN_SECRET_LENGTH``
  characters is replaced by ``***``, longest first, and so are the forms a
  server might echo it in: URL-encoded, JSON-escaped, and base64 (the
  stretch of any base64 text, e.g. ``Basic <base64 of user:key>``, that
  only the key determines).
- Rule 2: a secret shorter than ``MIN_SECRET_LENGTH`` is not replaced by
  value: a one-letter key would turn every "a" of a message into ``***``.
  Rule 3 still catches it wherever it is echoed as a credential.
- Rule 3: whatever the secrets, anything shaped like a credential is
  replaced: ``Bearer <token>``, ``Basic <token>``, and the value of an
  ``Authorization``, ``Proxy-Authorization``, ``api-key``, ``api_key`` or
  ``x-api-key`` echo (``name: value``, ``name=value``, ``"name": "value"``).
  The scheme and the name stay, so the message still says what was wrong.
  A few words that describe a credential rather than being one
  (``Bearer token``, ``Basic auth``, ``Basic realm=``) are left alone.
- Rule 4: a secret cut off by a truncated echo (its first
  ``TAIL_MIN_LENGTH`` or more characters at the very end of the text, maybe
  followed by ``...``) is replaced too. Fewer give nothing away, and
  replacing them would eat ordinary words that happen to begin a key.
- Scrubbing is idempotent: ``***`` is never expanded again.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "***"
MIN_SECRET_LENGTH = 4
TAIL_MIN_LENGTH = 6
SECRET_NAME_PARTS = ("auth", "key", "token", "secret", "cookie", "password", "credential")

# Words that follow "Bearer"/"Basic" or a header name in prose, not credentials.
_PROSE = r"(?:token|tokens|auth|authentication|authorization|scheme|header|credentials?|realm|required|missing|none|null|undefined)\b"
_CREDENTIAL_CHARS = r"[^\s\"'<>,;&)\]}]+"
_PATTERN = re.compile(
    rf"(?P<scheme>\b(?:bearer|basic)(?:[ \t]+|%20|\+))(?!{_PROSE}){_CREDENTIAL_CHARS}"
    rf"|(?P<header>\b(?:proxy-)?authorization|\b(?:x-)?api[-_]key)"
    rf"(?P<sep>[\"']?[ \t]*[:=][ \t]*[\"']?)(?!(?:bearer|basic)(?:[ \t]|%20|\+)|{_PROSE}){_CREDENTIAL_CHARS}",
    re.IGNORECASE,
)
_ELLIPSES = ("...", "\u2026")
_SCHEMES = ("bearer", "basic", "token")


class Secrets(frozenset[str]):
    """A set of secret values whose ``repr`` never shows them.

    >>> Secrets({"sk-1", "sk-2"})
    Secrets(<2 hidden>)
    >>> Secrets({"sk-1"}) | {"sk-2"}
    Secrets(<2 hidden>)
    """

    def __repr__(self) -> str:
        return f"Secrets(<{len(self)} hidden>)"

    __str__ = __repr__

    def __rich_repr__(self) -> Iterable[Any]:
        yield f"<{len(self)} hidden>"

    def __or__(self, other: Iterable[str]) -> Secrets:  # type: ignore[override]
        return Secrets(frozenset.union(self, other))


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret and every echoed credential replaced by ``***``.

    >>> scrub("invalid key sk-live-1234 (Authorization: Bearer sk-live-1234)", {"sk-live-1234"})
    'invalid key *** (Authorization: Bearer ***)'
    >>> scrub("you sent Bearer abc.def and x-api-key: k9", ())
    'you sent Bearer *** and x-api-key: ***'
    >>> scrub('{"api_key": "s3cr3t-v", "note": "Basic auth is off"}')
    '{"api_key": "***", "note": "Basic auth is off"}'
    >>> scrub("key=a%2Fb%2Bc9 and a/b+c9", {"a/b+c9"})
    'key=*** and ***'
    >>> scrub("a key of one letter: k", {"k"})  # Rule 2: too short to replace by value
    'a key of one letter: k'
    >>> scrub("the key begins sk-live-12...", {"sk-live-1234"})  # Rule 4: cut off by truncation
    'the key begins ***...'
    >>> scrub("Missing Bearer token")
    'Missing Bearer token'
    """
    if not text:
        return text
    known = _known_forms(secrets if isinstance(secrets, frozenset) else frozenset(secrets))
    if known is not None:
        pattern, forms = known
        text = _scrub_tail(pattern.sub(REDACTED, text), forms)
    return _PATTERN.sub(_redact_match, text)


def secrets_in_headers(headers: Iterable[tuple[str, str]] | Mapping[str, str], secret_names: Iterable[str] = ()) -> Secrets:
    """The secret values in headers: those named in ``secret_names`` or whose name says secret.

    A value with an auth scheme (``Bearer sk-1``) gives its credential, so that
    an echo still reads ``Bearer ***``.

    >>> sorted(secrets_in_headers({"Authorization": "Bearer sk-1", "X-Trace": "t1", "X-Org": "o-9"}, {"x-org"}))
    ['o-9', 'sk-1']
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    named = {name.lower() for name in secret_names}
    found: set[str] = set()
    for name, value in pairs:
        if value and (name.lower() in named or is_secret_name(name)):
            scheme, space, credential = value.partition(" ")
            schemed = bool(space) and scheme.lower() in _SCHEMES and bool(credential.strip())
            found.add(credential.strip() if schemed else value)
    return Secrets(found)


def is_secret_name(name: str) -> bool:
    """Whether a header (or field) name says its value is secret.

    >>> is_secret_name("X-Api-Key"), is_secret_name("Authorization"), is_secret_name("X-Trace")
    (True, True, False)
    """
    lowered = name.lower()
    for part in SECRET_NAME_PARTS:  # noqa: SIM110 (a loop, not any() over a generator: every build asks this of each header)
        if part in lowered:
            return True
    return False


def hidden_header_values(headers: Mapping[str, str]) -> dict[str, str]:
    """Configured headers for a ``repr``: the names, never the values.

    A configured header's value may come from the environment (``${ORG_TOKEN}``)
    under a harmless name; a config or catalog object alone cannot tell, so it
    shows none. A WireRequest, which knows its secret headers, shows the rest.

    >>> hidden_header_values({"X-Api-Key": "k", "X-Trace": "t"})
    {'X-Api-Key': '***', 'X-Trace': '***'}
    """
    return {name: REDACTED for name in headers}


def struct_repr(obj: Any, shown: Iterable[tuple[str, Any]], secrets: Iterable[str] = ()) -> str:
    """``Name(field=value, ...)`` from already-redacted fields, scrubbed once more as a safety net."""
    fields = ", ".join(f"{name}={value!r}" for name, value in shown)
    return scrub(f"{type(obj).__name__}({fields})", secrets)


def _redact_match(match: re.Match[str]) -> str:
    if match.group("scheme") is not None:
        return match.group("scheme") + REDACTED
    return match.group("header") + match.group("sep") + REDACTED


@lru_cache(maxsize=64)
def _known_forms(secrets: frozenset[str]) -> tuple[re.Pattern[str], tuple[str, ...]] | None:
    """Every form of every secret long enough to replace, longest first, and one pattern matching any of them.

    The pattern ignores case: a server may print ``%2f`` for ``%2F``, and
    hiding a key's case variant too costs nothing.
    """
    forms = {form for secret in secrets if len(secret) >= MIN_SECRET_LENGTH for form in _encodings(secret)}
    forms = {form for form in forms if len(form) >= MIN_SECRET_LENGTH}
    if not forms:
        return None
    ordered = tuple(sorted(forms, key=lambda form: (-len(form), form)))
    return re.compile("|".join(re.escape(form) for form in ordered), re.IGNORECASE), ordered


def _encodings(secret: str) -> set[str]:
    """The secret as a server might echo it: raw, URL-encoded, JSON-escaped, inside base64."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}
    escaped = json.dumps(secret)[1:-1]
    forms.update({escaped, escaped.replace("/", "\\/"), json.dumps(secret, ensure_ascii=False)[1:-1]})
    forms.update(_base64_cores(secret.encode("utf-8")))
    return forms


def _base64_cores(raw: bytes) -> set[str]:
    """For each alignment of ``raw`` inside a longer byte string, the base64 characters only ``raw`` decides.

    ``base64("user:" + key)`` contains one of these whatever the user name is.
    """
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
        start = 4 if offset else 0  # the first group mixes in the bytes before the secret
        whole_groups = (offset + len(raw)) // 3
        core = encoded[start : whole_groups * 4]  # the last, partial group mixes in the bytes after it
        if len(core) >= 8:
            cores.add(core)
    return cores


def _scrub_tail(text: str, forms: tuple[str, ...]) -> str:
    """Rule 4: a secret's first characters (at least MIN_SECRET_LENGTH) ending the text."""
    body, ellipsis = text, ""
    for mark in _ELLIPSES:
        if text.endswith(mark):
            body, ellipsis = text[: -len(mark)], mark
            break
    for form in forms:
        for length in range(len(form) - 1, TAIL_MIN_LENGTH - 1, -1):
            if body.endswith(form[:length]):
                return body[:-length] + REDACTED + ellipsis
    return text
