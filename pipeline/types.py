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

    def require_target(self, stage: str) -> Target:
        """The resolved model, or an error saying the stage runs too early."""
        if self.target is None:
            from pipeline.errors import StageError

            raise StageError(stage, "needs a resolved model; the resolve_ref stage must run before it")
        return self.target


Stage: TypeAlias = "Callable[[Context], Result[Context, GenesisError]]"

REDACTED = "***"


class WireRequest(msgspec.Struct, frozen=True):
    """The exact HTTP request: what the audit log, a snapshot and the socket all see.

    ``body`` is encoded once, by the runner. ``secret_headers`` holds the
    lower-cased names whose values are redacted whenever the request is shown.
    The last fields are metadata for sending, not part of the request bytes.
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
    timeout_seconds: float | None = None
    policy: SendPolicy = DEFAULT_POLICY

    def redacted_headers(self) -> Headers:
        """Headers as they may be shown: secret values become ``***`` (``Bearer ***`` for bearer auth)."""
        if not self.secret_headers:
            return self.headers
        return tuple(
            (name, _redact(value) if name.lower() in self.secret_headers else value) for name, value in self.headers
        )

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
