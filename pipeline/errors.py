"""Errors a user can act on.

Rule: every error a user can cause (bad config, unknown model, a server that
answers garbage) is a ``GenesisError`` whose ``str()`` is one line saying what
and where, with an optional ``hint`` saying how to fix it. The CLI prints
those without a traceback. Secrets never enter a message: callers pass paths
and variable names, never values.
"""

from __future__ import annotations

from typing import Any


class GenesisError(Exception):
    """Base of every user-facing error: a one-line message and an optional hint."""

    kind: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigIssue:
    """One problem in a config file: the dotted path, and what is wrong there."""

    __slots__ = ("path", "problem")

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem

    def __repr__(self) -> str:
        return f"ConfigIssue({self.path!r}, {self.problem!r})"


class ConfigError(GenesisError):
    """A config that cannot be used; carries every issue found, not only the first."""

    kind = "config"

    def __init__(self, source: str, issues: list[ConfigIssue], *, hint: str | None = None) -> None:
        self.source = source
        self.issues = issues
        if len(issues) == 1:
            message = f"config error in {source}: {issues[0]}"
        else:
            listed = "; ".join(str(issue) for issue in issues)
            message = f"{len(issues)} config errors in {source}: {listed}"
        super().__init__(message, hint=hint)

    def lines(self) -> list[str]:
        """One line per issue, for output that has room for more than one."""
        if len(self.issues) == 1:
            return [self.message]
        return [f"{len(self.issues)} config errors in {self.source}:"] + [f"  {issue}" for issue in self.issues]


class RequestError(GenesisError):
    """The caller's chat request is not usable (not an object, no messages, ...)."""

    kind = "request"


class UnknownModelError(GenesisError):
    """A model ref that resolves to nothing."""

    kind = "unknown_model"


class UnsupportedError(GenesisError):
    """A configured feature this version does not implement yet."""

    kind = "unsupported"


class StageError(GenesisError):
    """A pipeline stage failed, raised, or returned something that is not a Result."""

    kind = "stage"

    def __init__(self, stage: str, message: str, *, hint: str | None = None) -> None:
        self.stage = stage
        super().__init__(f"stage {stage!r}: {message}", hint=hint)


class ProviderError(GenesisError):
    """A request a server did not answer usefully, classified (see ``backends.classify``).

    Carries the class, the HTTP status (None when there was no answer), the
    server's own message, the URL, and the raw body text (truncated) for
    auditing. ``str()`` is one line; the raw body is never part of it.

    Rule: a server may echo the key it was sent, so the message, the raw
    body, the hint and the URL are scrubbed here, once, at construction
    (``pipeline.secrets.scrub``): every ``secrets`` value and its encodings,
    and anything shaped like ``Bearer <token>`` even without secrets. All
    output (stderr, ``--json``, attempts, audit records) takes its text from
    here. The secrets themselves are not kept on the error.

    >>> error = ProviderError("auth", "bad key sk-live-1234 (Bearer sk-live-1234)", url="http://h/v1",
    ...                       status=401, secrets=frozenset({"sk-live-1234"}))
    >>> str(error), error.server_message
    ('auth: bad key *** (Bearer ***) (HTTP 401 from http://h/v1)', 'bad key *** (Bearer ***)')
    """

    def __init__(
        self,
        error_class: str,
        message: str,
        *,
        url: str,
        status: int | None = None,
        hint: str | None = None,
        raw: str = "",
        ref: str = "",
        secrets: frozenset[str] = frozenset(),
    ) -> None:
        from pipeline.secrets import scrub

        message, url, raw = scrub(message, secrets), scrub(url, secrets), scrub(raw, secrets)
        hint = None if hint is None else scrub(hint, secrets)
        self.error_class = error_class
        self.kind = error_class
        self.server_message = message
        self.url = url
        self.status = status
        self.raw = raw
        self.ref = ref
        self.attempts: list[Any] = []  # filled by a run: every attempt before and including this one
        self.retry_after: float | None = None  # seconds, from the answer's Retry-After header (backends.http)
        where = f"HTTP {status} from {url}" if status is not None else url
        prefix = f"{ref}: " if ref else ""
        super().__init__(f"{prefix}{error_class}: {message} ({where})", hint=hint)


def unwrap_or_raise(result: Any) -> Any:
    """The value of a ``Success``; the error of a ``Failure`` is raised.

    >>> from returns.result import Failure, Success
    >>> unwrap_or_raise(Success(1))
    1
    >>> unwrap_or_raise(Failure(RequestError("bad")))
    Traceback (most recent call last):
    ...
    pipeline.errors.RequestError: bad
    """
    from returns.result import Failure

    if isinstance(result, Failure):
        raise result.failure()
    return result.unwrap()
