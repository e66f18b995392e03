"""What a run reports to an observer (tracing, metrics): the contract, and the one wrapper that feeds it.

Rules:

1. Telemetry is off unless the caller passes one (``Genesis(telemetry=...)``). Off, a run makes no
   call and no object for it: the session tests one attribute per try, the facade wraps nothing,
   and no event of the answer passes through anything of this module.
2. A run (``Telemetry.start_run``: a chat ``stream``/``run``, an SDK drop-in request, an ``embed``)
   reports each try it sends (``attempt_started`` with the exact wire request, then
   ``attempt_ended`` with its answer or its failure), the first piece of the answer
   (``first_token``), and its own end (``ended``, with what ended it, or None). A retry and a
   failover are each a try; a model skipped while it cools down sends nothing and is no try.
3. What ended a run is one low-cardinality name (``error_type``): the error class of a Genesis
   failure, ``aborted`` for a run the caller cancelled or stopped reading, else the exception's
   class name.
4. Nothing here imports an observability library: an adapter (``pipeline.otel``, the OpenTelemetry
   one) implements ``Telemetry`` and ``RunObserver``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pipeline.events import ReasoningDelta, TextDelta, ToolCallDelta

if TYPE_CHECKING:
    from pipeline.catalog import Catalog
    from pipeline.errors import GenesisError
    from pipeline.events import Completion, Event, Usage
    from pipeline.types import WireRequest

Operation = Literal["chat", "embeddings"]

ABORTED = "aborted"  # pipeline.errors.ErrorClass.ABORTED: the caller cancelled


class RunObserver(Protocol):
    """One run's reports (rule 2). Called from the run's own task, never concurrently."""

    def attempt_started(self, wire: WireRequest, retry: int) -> None: ...

    def attempt_ended(
        self,
        error: GenesisError | None,
        *,
        status: int | None,
        answer: Completion | None = None,
        usage: Usage | None = None,
        response_model: str | None = None,
    ) -> None:
        """``answer``: a chat try's whole answer (None when it failed); ``usage``: an embeddings try's counts;
        ``response_model``: the model the server says answered, when it says."""

    def first_token(self) -> None: ...

    def ended(self, error: BaseException | None) -> None: ...


class Telemetry(Protocol):
    """Makes one ``RunObserver`` per run; the ref and request are the caller's, before any stage."""

    def start_run(self, operation: Operation, ref: str | None, request: Mapping[str, Any], catalog: Catalog) -> RunObserver: ...


_ANSWER_KINDS = (TextDelta, ReasoningDelta, ToolCallDelta)


async def observed(reads: AsyncGenerator[list[Event], None], observer: RunObserver) -> AsyncGenerator[list[Event], None]:
    """``reads`` (a run's events, one list per read) unchanged, with the first answer piece and the run's end
    reported to ``observer``.

    Only the reads up to the first piece of the answer are looked at; after it, they pass as they come.
    ``reads`` is closed, and ``ended`` called once, however the run ends (rule 2)."""
    failure: BaseException | None = None
    try:
        async for events in reads:
            answered = False
            for event in events:
                if type(event) in _ANSWER_KINDS:
                    answered = True
                    break
            if answered:
                observer.first_token()
                yield events
                break
            yield events
        async for events in reads:
            yield events
    except BaseException as error:  # a failure, a cancellation, or the caller closing the stream: each ends the run
        failure = error
        raise
    finally:
        try:
            await reads.aclose()
        finally:
            observer.ended(failure)


def error_type(error: BaseException) -> str:
    """The name of what ended a run or a try (rule 3).

    >>> from pipeline.errors import ErrorClass, ProviderError, UnknownModelError
    >>> error_type(ProviderError(ErrorClass.RATE_LIMIT, "slow down", url="http://h/v1"))
    'rate_limit'
    >>> error_type(UnknownModelError("no model"))
    'unknown_model'
    >>> error_type(GeneratorExit()), error_type(KeyboardInterrupt())
    ('aborted', 'aborted')
    >>> error_type(ValueError("bug"))
    'ValueError'
    """
    from pipeline.errors import GenesisError

    if isinstance(error, GenesisError):
        return str(error.kind)
    if not isinstance(error, Exception):  # GeneratorExit, KeyboardInterrupt, asyncio's and trio's cancellation
        return ABORTED
    return type(error).__qualname__
