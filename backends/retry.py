"""When to try a model again: backoff between retries, cooldown between runs. No I/O.

Rules (SPEC 10):
- Retried, on the same model: ``RETRY_CLASSES``, the classes whose
  ``ErrorClass.retried`` is set (the server is away, slow or busy:
  unreachable, timeout, 429, 5xx, and 503 while a server loads a model).
  Any other class (format, auth, context_overflow, ...) would fail the same way.
- Backoff before retry ``n`` (1 = the first retry): full jitter, a uniform draw
  in ``[0, min(BACKOFF_CAP, BACKOFF_BASE * BACKOFF_FACTOR ** (n - 1)))``, so
  many clients that failed together do not come back together.
- A server's ``Retry-After`` wins over the backoff (it knows when it will be
  ready), capped at ``MAX_RETRY_AFTER`` whatever the caller already capped.
- Cooldown: a model whose retries ran out with a retryable class is skipped by
  later runs for ``COOLDOWN_BASE`` seconds, doubling with each further failure
  up to ``COOLDOWN_MAX`` (and at least as long as a Retry-After asked, within
  that cap). A success forgets it. Failures of attempts that started before the
  last recorded failure (concurrent runs that hit the same outage) count once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pipeline.errors import RETRY_CLASSES as RETRY_CLASSES  # defined once, beside ErrorClass
from pipeline.errors import ErrorClass

BACKOFF_BASE = 0.5
BACKOFF_FACTOR = 2.0
BACKOFF_CAP = 8.0
MAX_RETRY_AFTER = 60.0

COOLDOWN_BASE = 30.0
COOLDOWN_MAX = 300.0


def backoff_delay(retry: int, draw: float, *, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``retry``; ``draw`` is a random number in [0, 1).

    >>> backoff_delay(1, 0.5), backoff_delay(3, 0.5), backoff_delay(10, 0.5)
    (0.25, 1.0, 4.0)
    >>> backoff_delay(1, 0.5, retry_after=3), backoff_delay(1, 0.5, retry_after=3600)
    (3.0, 60.0)
    """
    if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
        return float(min(retry_after, MAX_RETRY_AFTER))
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * BACKOFF_FACTOR ** max(retry - 1, 0))
    return ceiling * min(max(draw, 0.0), 1.0)


def cooldown_seconds(failures: int, retry_after: float | None = None) -> float:
    """How long a model that failed ``failures`` runs in a row is skipped.

    >>> [cooldown_seconds(n) for n in (1, 2, 3, 5, 20)]
    [30.0, 60.0, 120.0, 300.0, 300.0]
    >>> cooldown_seconds(1, retry_after=90), cooldown_seconds(1, retry_after=10_000)
    (90.0, 300.0)
    """
    length = min(COOLDOWN_MAX, COOLDOWN_BASE * 2.0 ** min(max(failures - 1, 0), 32))
    if retry_after is not None and math.isfinite(retry_after) and retry_after > length:
        length = min(retry_after, COOLDOWN_MAX)
    return float(length)


class _Cooling:
    __slots__ = ("failures", "last_class", "last_failure", "until")

    def __init__(self) -> None:
        self.failures = 0
        self.until = 0.0
        self.last_failure = -math.inf
        self.last_class: ErrorClass | None = None


class Cooldowns:
    """Which models are cooling down, per ``(provider, model)``; the clock is injected.

    >>> now = [100.0]
    >>> c = Cooldowns(lambda: now[0])
    >>> c.remaining(("p", "m")) is None
    True
    >>> c.failed(("p", "m"), started=100.0, error_class=ErrorClass.OVERLOADED)
    30.0
    >>> c.remaining(("p", "m")), c.describe(("p", "m"))
    (30.0, 'cooling down for 30 s more after 1 failed run (last: overloaded)')
    >>> now[0] = 131.0; c.remaining(("p", "m")) is None
    True
    >>> c.failed(("p", "m"), started=131.0, error_class=ErrorClass.TIMEOUT)
    60.0
    >>> c.succeeded(("p", "m")); c.remaining(("p", "m")) is None
    True
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._models: dict[tuple[str, str], _Cooling] = {}

    def remaining(self, key: tuple[str, str]) -> float | None:
        """Seconds until the model may be tried again; None when it is not cooling down."""
        cooling = self._models.get(key)
        if cooling is None:
            return None
        left = cooling.until - self.clock()
        return left if left > 0 else None

    def until(self, key: tuple[str, str]) -> float:
        cooling = self._models.get(key)
        return cooling.until if cooling is not None else -math.inf

    def failed(self, key: tuple[str, str], *, started: float, error_class: ErrorClass, retry_after: float | None = None) -> float:
        """Record a run whose tries of the model (begun at ``started``) all failed; the cooldown in force, in seconds."""
        now = self.clock()
        cooling = self._models.setdefault(key, _Cooling())
        if started <= cooling.last_failure:  # the same outage, already counted by a run that overlapped this one
            return max(cooling.until - now, 0.0)
        cooling.failures += 1
        cooling.until = max(cooling.until, now + cooldown_seconds(cooling.failures, retry_after))
        cooling.last_failure = now
        cooling.last_class = error_class
        return cooling.until - now

    def succeeded(self, key: tuple[str, str]) -> None:
        self._models.pop(key, None)

    def describe(self, key: tuple[str, str]) -> str:
        """One line for a skip: how long it still cools down, and why."""
        cooling = self._models.get(key)
        left = self.remaining(key)
        if cooling is None or left is None:
            return "not cooling down"
        runs = "run" if cooling.failures == 1 else "runs"
        return f"cooling down for {math.ceil(left):g} s more after {cooling.failures} failed {runs} (last: {cooling.last_class})"
