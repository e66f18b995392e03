"""Errors a user can act on.

Rule: every error a user can cause (bad config, unknown model, a server that
answers garbage) is a ``GenesisError`` whose ``str()`` is one line saying what
and where, with an optional ``hint`` saying how to fix it. The CLI prints
those without a traceback. Secrets never enter a message: callers pass paths
and variable names, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Any, NamedTuple

# ---- the vocabulary: every class of failure, named once ----

EXIT_FAILED = 1  # a request a server failed (any ErrorClass but aborted)
EXIT_USAGE = 2  # the user's config, request or command line (every UserErrorKind)
EXIT_ABORTED = 130  # the caller cancelled: 128 + SIGINT, as shells report Ctrl-C


class ErrorClass(StrEnum):
    """What went wrong with a request sent to a server: the class of every ``ProviderError``.

    Rule: a class is named here and nowhere else; what it means and how a run
    treats it (retried on the same model, handed to the next fallback, the
    CLI's exit code) is ``CLASS_RULES``, read through ``retried``,
    ``fails_over`` and ``exit_code``. A ``StrEnum``: a member equals, prints,
    formats and JSON-encodes as its value, so ``error.error_class ==
    "timeout"`` and ``--json`` output are what they were when the classes
    were plain strings.

    >>> ErrorClass.TIMEOUT == "timeout", f"{ErrorClass.TIMEOUT}", ErrorClass("rate_limit").retried
    (True, 'timeout', True)
    >>> ErrorClass.FORMAT.retried, ErrorClass.FORMAT.fails_over, ErrorClass.ABORTED.exit_code
    (False, False, 130)
    >>> ErrorClass("timout")
    Traceback (most recent call last):
    ...
    ValueError: 'timout' is not an error class; the classes are: unreachable, timeout, auth, rate_limit, overloaded, model_not_found, format, context_overflow, server_error, protocol, aborted, cooldown
    """

    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    AUTH = "auth"
    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    MODEL_NOT_FOUND = "model_not_found"
    FORMAT = "format"
    CONTEXT_OVERFLOW = "context_overflow"
    SERVER_ERROR = "server_error"
    PROTOCOL = "protocol"
    ABORTED = "aborted"
    COOLDOWN = "cooldown"

    @classmethod
    def _missing_(cls, value: object) -> ErrorClass:
        """``ErrorClass("timout")``: a ValueError that lists the classes, not only "not a valid ErrorClass"."""
        names = ", ".join(member.value for member in cls)
        raise ValueError(f"{value!r} is not an error class; the classes are: {names}")

    @property
    def meaning(self) -> str:
        return CLASS_RULES[self].meaning

    @property
    def retried(self) -> bool:
        """Sent again to the same model (after a backoff) while nothing of the answer reached the caller."""
        return CLASS_RULES[self].retried

    @property
    def fails_over(self) -> bool:
        """The next fallback model is tried while nothing of the answer reached the caller."""
        return CLASS_RULES[self].fails_over

    @property
    def exit_code(self) -> int:
        """The CLI's exit status when a run ends with this class."""
        return CLASS_RULES[self].exit_code


class ClassRule(NamedTuple):
    """How a run treats one class: retried, failed over, the CLI's exit code; and what it means."""

    retried: bool
    fails_over: bool
    exit_code: int
    meaning: str


# Retried: the server is away, slow or busy, and may not be on the next try. Failed
# over: another model may well answer; not for a request that any model would refuse
# the same way (format, context_overflow) nor for a caller who stopped (aborted).
CLASS_RULES: Mapping[ErrorClass, ClassRule] = MappingProxyType(
    {
        ErrorClass.UNREACHABLE: ClassRule(
            True, True, EXIT_FAILED, "no connection (refused, DNS, TLS, a proxy), or one closed before the answer began"
        ),
        ErrorClass.TIMEOUT: ClassRule(True, True, EXIT_FAILED, "a connect, idle-read or total deadline passed; HTTP 408"),
        ErrorClass.AUTH: ClassRule(False, True, EXIT_FAILED, "HTTP 401 or 403; a key that cannot be sent"),
        ErrorClass.RATE_LIMIT: ClassRule(True, True, EXIT_FAILED, "HTTP 429"),
        ErrorClass.OVERLOADED: ClassRule(True, True, EXIT_FAILED, "HTTP 5xx: the server failed or is still loading a model"),
        ErrorClass.MODEL_NOT_FOUND: ClassRule(False, True, EXIT_FAILED, "HTTP 404, or a body saying the model is not served"),
        ErrorClass.FORMAT: ClassRule(False, False, EXIT_FAILED, "the server rejected the request itself (400, 422, other 4xx)"),
        ErrorClass.CONTEXT_OVERFLOW: ClassRule(False, False, EXIT_FAILED, "the prompt does not fit the model's context window"),
        ErrorClass.SERVER_ERROR: ClassRule(False, True, EXIT_FAILED, "HTTP 200 whose answer is an error"),
        ErrorClass.PROTOCOL: ClassRule(False, True, EXIT_FAILED, "an answer that breaks HTTP, SSE or the chunk format"),
        ErrorClass.ABORTED: ClassRule(False, False, EXIT_ABORTED, "the caller cancelled the run"),
        ErrorClass.COOLDOWN: ClassRule(False, True, EXIT_FAILED, "not sent: the model failed recently and is cooling down"),
    }
)

RETRY_CLASSES = frozenset(error_class for error_class, rule in CLASS_RULES.items() if rule.retried)
FAILOVER_CLASSES = frozenset(error_class for error_class, rule in CLASS_RULES.items() if rule.fails_over)


class UserErrorKind(StrEnum):
    """What the user (not a server) got wrong: the ``kind`` of every GenesisError but a ProviderError.

    Each ends the CLI with ``EXIT_USAGE``; ``--json`` shows it as ``error.class``.
    """

    ERROR = "error"  # a GenesisError of no narrower kind
    CONFIG = "config"  # a config file that cannot be used
    REQUEST = "request"  # the caller's chat request is not usable
    UNKNOWN_MODEL = "unknown_model"  # a model ref that resolves to nothing
    UNSUPPORTED = "unsupported"  # a configured feature this version does not implement
    STAGE = "stage"  # a pipeline stage failed

    @property
    def exit_code(self) -> int:
        return EXIT_USAGE


# ---- the errors ----


class GenesisError(Exception):
    """Base of every user-facing error: a one-line message and an optional hint."""

    kind: ErrorClass | UserErrorKind = UserErrorKind.ERROR

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

    kind = UserErrorKind.CONFIG

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

    kind = UserErrorKind.REQUEST


class UnknownModelError(GenesisError):
    """A model ref that resolves to nothing."""

    kind = UserErrorKind.UNKNOWN_MODEL


class UnsupportedError(GenesisError):
    """A configured feature this version does not implement yet."""

    kind = UserErrorKind.UNSUPPORTED


class StageError(GenesisError):
    """A pipeline stage failed, raised, or returned something that is not a Result."""

    kind = UserErrorKind.STAGE

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

    The class must be an ``ErrorClass`` (typed so; at run time a string that
    names a class is accepted and converted, any other is a ValueError).

    >>> error = ProviderError(ErrorClass.AUTH, "bad key sk-live-1234 (Bearer sk-live-1234)", url="http://h/v1",
    ...                       status=401, secrets=frozenset({"sk-live-1234"}))
    >>> str(error), error.server_message
    ('auth: bad key *** (Bearer ***) (HTTP 401 from http://h/v1)', 'bad key *** (Bearer ***)')
    """

    def __init__(
        self,
        error_class: ErrorClass,
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

        error_class = ErrorClass(error_class)  # a typo'd string fails here, not in a later comparison
        message, url, raw = scrub(message, secrets), scrub(url, secrets), scrub(raw, secrets)
        hint = None if hint is None else scrub(hint, secrets)
        self.error_class: ErrorClass = error_class
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
    if isinstance(result, _failure_class()):
        error = result.failure()
        if isinstance(error, GenesisError):
            raise with_hint_note(error)
        raise error
    return result.unwrap()


@cache
def _failure_class() -> type[Any]:
    """``returns.result.Failure``, imported on first use (``import pipeline`` stays cheap) and only once: an
    import statement in ``unwrap_or_raise`` costs more than the rest of it, on every build."""
    from returns.result import Failure

    return Failure


def with_hint_note(error: GenesisError) -> GenesisError:
    """``error`` with its hint added as a note (PEP 678), once: a library caller's traceback shows
    the fix, while ``str()`` stays the one line the CLI prints with its hint beside it.

    >>> with_hint_note(RequestError("bad", hint="send an object")).__notes__
    ['hint: send an object']
    """
    note = f"hint: {error.hint}"
    if error.hint and note not in getattr(error, "__notes__", ()):
        error.add_note(note)
    return error
