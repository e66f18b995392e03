"""The values that flow through the pipeline.

Rule: everything here is immutable. A stage receives a ``Context`` and
returns a new one (``msgspec.structs.replace``); the body dict it holds is
never edited in place: a stage that changes a field builds a new dict, and a
changed message is a new dict inside a new list. The caller's request stays
as the caller passed it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import msgspec

from pipeline.policy import DEFAULT_POLICY, SendPolicy
from pipeline.trace import Change

if TYPE_CHECKING:
    from returns.result import Result

    from pipeline.catalog import Catalog
    from pipeline.errors import GenesisError
    from pipeline.refs import Target

Headers: TypeAlias = tuple[tuple[str, str], ...]


class Context(msgspec.Struct, frozen=True):
    catalog: Catalog
    request: Mapping[str, Any]
    body: dict[str, Any]
    ref: str | None = None
    caller_headers: Headers = ()
    target: Target | None = None
    headers: Headers = ()
    secret_headers: frozenset[str] = frozenset()
    trace: tuple[Change, ...] = ()

    def updated(self, changes: list[Change] | tuple[Change, ...], **fields: Any) -> Context:
        """A new context with ``fields`` replaced and ``changes`` appended to the trace."""
        return msgspec.structs.replace(self, trace=self.trace + tuple(changes), **fields)

    def __repr__(self) -> str:
        return _context_repr(self)

    def __rich_repr__(self) -> Any:
        yield _context_repr(self)


def missing_target(stage: str) -> GenesisError:
    """The error of a stage that needs the resolved model and runs before resolve_ref (returned as a Failure)."""
    from pipeline.errors import StageError

    return StageError(stage, "needs a resolved model; the resolve_ref stage must run before it")


Stage: TypeAlias = "Callable[[Context], Result[Context, GenesisError]]"

REDACTED = "***"


class WireRequest(msgspec.Struct, frozen=True):
    """The exact HTTP request: what the audit log, a snapshot and the socket all see.

    ``body`` is encoded once, by the runner. ``secret_headers`` holds the
    lower-cased names whose values are redacted whenever the request is shown.
    The last fields are metadata for sending, not part of the request bytes:
    ``context`` is the shaped Context it was encoded from (its ``trace`` and
    ``target`` are at hand as properties; the answer-side stages get it). None of
    them is in the body, the audit record or repr(), so no secret the context
    holds is ever shown through the wire request.
    """

    method: str
    url: str
    headers: Headers
    body: bytes
    secret_headers: frozenset[str] = frozenset()
    provider: str = ""
    model: str = ""
    ref: str = ""
    stream: bool = False
    policy: SendPolicy = DEFAULT_POLICY
    context: Context | None = None

    @property
    def trace(self) -> tuple[Change, ...]:
        """What each request-side stage changed, and why (empty for a request not built by a pipeline)."""
        return () if self.context is None else self.context.trace

    @property
    def target(self) -> Target | None:
        """The resolved provider and model the request goes to."""
        return None if self.context is None else self.context.target

    def redacted_headers(self) -> Headers:
        """Headers as they may be shown: secret values become ``***`` (``Bearer ***`` for bearer auth)."""
        if not self.secret_headers:
            return self.headers
        return tuple((name, _redact(value) if name.lower() in self.secret_headers else value) for name, value in self.headers)

    def __repr__(self) -> str:
        return _wire_repr(self)

    def __rich_repr__(self) -> Any:
        yield _wire_repr(self)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


def _redact(value: str) -> str:
    scheme, space, _ = value.partition(" ")
    if space and scheme.lower() in ("bearer", "basic", "token"):
        return f"{scheme} {REDACTED}"
    return REDACTED


# Reprs. Rule: an object that holds a key never shows it, in repr(), str() or
# rich: headers appear as ``redacted_headers()`` shows them, the catalog by
# its own redacted repr, and the whole text is scrubbed once more with every
# secret the object knows of.

_BODY_SHOWN = 500


def _shown_body(body: bytes) -> str:
    if len(body) <= _BODY_SHOWN:
        return repr(body)
    return f"{body[:_BODY_SHOWN]!r}... ({len(body)} bytes)"


def _wire_repr(wire: WireRequest) -> str:
    from pipeline.secrets import secrets_in_headers, struct_repr

    shown = [
        ("method", wire.method),
        ("url", wire.url),
        ("headers", wire.redacted_headers()),
        ("provider", wire.provider),
        ("model", wire.model),
        ("ref", wire.ref),
        ("stream", wire.stream),
    ]
    fields = struct_repr(wire, shown, secrets_in_headers(wire.headers, wire.secret_headers))
    return f"{fields[:-1]}, body={_shown_body(wire.body)})"


def _context_repr(ctx: Context) -> str:
    from pipeline.secrets import is_secret_name, secrets_in_headers, struct_repr

    secret_names = ctx.secret_headers

    def redacted(headers: Headers) -> Headers:
        return tuple((name, _redact(value) if name.lower() in secret_names or is_secret_name(name) else value) for name, value in headers)

    known = ctx.catalog.secrets | secrets_in_headers(ctx.headers, secret_names) | secrets_in_headers(ctx.caller_headers, secret_names)
    catalog = f"<Catalog from {ctx.catalog.source!r}: {', '.join(ctx.catalog.providers)}>"
    shown = [
        ("ref", ctx.ref),
        ("target", ctx.target),
        ("headers", redacted(ctx.headers)),
        ("caller_headers", redacted(ctx.caller_headers)),
        ("body", ctx.body),
        ("request", ctx.request),
        ("trace", ctx.trace),
        ("catalog", _Shown(catalog)),
    ]
    return struct_repr(ctx, shown, known)


class _Shown(str):
    """A string shown as-is in a repr (no quotes)."""

    def __repr__(self) -> str:
        return str(self)
