"""One run: build, send, check each event, retry, cool down, fail over.

Rules:
- The candidates are the requested model (or the primary), then
  ``agents.defaults.model.fallbacks`` in order (skipping the requested one).
- A try that fails with a class in ``RETRY_CLASSES`` (``backends.retry``) before
  any of its answer reached the caller is sent again to the same model, up to
  the provider's ``maxRetries``, after a backoff (a server's Retry-After wins).
  The wire request is built once per model and re-sent as it is.
- A model whose retries ran out with a retryable class cools down: later runs of
  the same owner (one ``Genesis``) skip it, as an attempt of class ``cooldown``,
  until the cooldown ends. When nothing could be sent because every candidate
  that resolves is cooling down, the one whose cooldown ends first is tried.
- A model that fails with a class in ``FAILOVER_CLASSES`` hands over to the next
  candidate; a fallback ref that does not resolve is an attempt too, and when
  it is the last one the run ends with the last server failure.
- Once text, reasoning or a tool call has been yielded, an error ends the run:
  a retry or a fallback would repeat an answer the caller already has.
- Usage, Timings and Finish are held until the attempt's answer is complete, so
  nothing of a failed attempt but its answer's beginning reaches the caller.
- Every try, retry and skip is an ``Attempt``, audited as it ends. Each failed or
  skipped one is yielded as ``AttemptFailed`` as it is recorded, unless the run
  ends right there; a run that fails raises a ProviderError carrying them all.
- A stream that ends without a finish_reason is a protocol error.
- Cancellation, during a send or a backoff sleep, propagates untouched.
- Each try goes through the pipeline's last stages (``host.pipeline``): ``send``
  gives the answer's bytes, one piece per read, ``parse_stream`` turns each into
  events and, only when an answer-side stage has a step for this request, the
  steps transform them (``Pipeline.answer_chain``, one per try) before the rules
  above see them.
- Events go up one list per read, never one ``yield`` per event: a read's list
  is checked by the rules above in one call and handed straight up through each
  layer (the try's reads, the retries, the run); the caller (``Genesis.stream``)
  takes them apart. An event that ends the try goes up after the events before
  it in the same read, as it would had they come a read earlier. A step that fails is a StageError: the run ends, it is never
  retried or failed over as a server fault.
- What send, parse_stream and each answer-side step did on the try that answered
  is the completion's ``answer_trace``; each failed try is noted by send.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Protocol, cast

from backends.audit import AuditRecord, make_record
from backends.classify import CHECKED_EVENTS, FAILOVER_CLASSES, HintContext, event_failure
from backends.http import Timing, send
from backends.retry import RETRY_CLASSES, Cooldowns, backoff_delay
from backends.stream import Aggregator, parse_stream
from pipeline.answer import ParseStream, Send, StreamParse
from pipeline.errors import ErrorClass, GenesisError, ProviderError, StageError, unwrap_or_raise
from pipeline.events import Attempt, AttemptFailed, Event, Finish, ReasoningDelta, StageNote, TextDelta, Timings, ToolCallDelta, Usage
from pipeline.refs import Target, normalize_ref, split_ref
from pipeline.secrets import Secrets, secrets_in_headers
from pipeline.types import WireRequest

if TYPE_CHECKING:
    from returns.result import Result

    from pipeline.catalog import Catalog
    from pipeline.telemetry import RunObserver
    from pipeline.types import Context

_ANSWER_EVENTS = (TextDelta, ReasoningDelta, ToolCallDelta)
_HELD_EVENTS = (Usage, Timings, Finish)

Audit = Callable[[AuditRecord], None]


class AnswerChain(Protocol):
    """One try's answer-side steps (``pipeline.runner.AnswerChain``): each call guarded, a bad step a StageError."""

    def feed(self, events: list[Event]) -> list[Event]: ...

    def finish(self) -> list[Event]: ...

    def notes(self) -> tuple[StageNote, ...]: ...


class AnswerSide(Protocol):
    """The pipeline's stages a run calls (``pipeline.runner.Pipeline``): send, parse_stream, the answer-side steps."""

    @property
    def send(self) -> Send: ...

    @property
    def parse_stream(self) -> ParseStream: ...

    def answer_chain(self, ctx: Context) -> AnswerChain | None: ...


class RunHost(Protocol):
    """What a run needs from its owner (``pipeline.api.Genesis``): the catalog, the
    stages, one HTTP client, the cooldown table, and the injectable sleep and randomness."""

    cooldowns: Cooldowns
    sleep: Callable[[float], Awaitable[None]]
    random: Callable[[], float]

    @property
    def catalog(self) -> Catalog: ...

    @property
    def pipeline(self) -> AnswerSide: ...

    def client(self) -> Any: ...

    def build_result(
        self, model: str | None, request: Mapping[str, Any], *, headers: Sequence[tuple[str, str]] = ()
    ) -> Result[WireRequest, GenesisError]: ...


class RunState:
    """What a run learned: its attempts, the target that answered, and the answer so far."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.target: Target | None = None
        self.aggregator = Aggregator()
        self.timings: dict[str, float] | None = None
        self.answered = False  # text, reasoning or a tool call reached the caller
        self.answer_trace: list[StageNote] = []  # send's note of every try; parse_stream's and the steps' of the one that answered
        self.try_notes: tuple[StageNote, ...] = ()  # parse_stream's and the steps' notes of the current try, once it ended
        self.observer: RunObserver | None = None  # telemetry (pipeline.telemetry): told of each try's start and end; None: off


def candidates(catalog: Catalog, model: str | None, use_fallbacks: bool) -> list[str | None]:
    chain: list[str | None] = [model]
    if use_fallbacks:
        first = normalize_ref(model) if model else catalog.primary
        chain += [ref for ref in catalog.fallbacks if normalize_ref(ref) != first]
    return chain


def hints_for(target: Target, secrets: Secrets = Secrets()) -> HintContext:
    provider, model = target.provider, target.model
    window = model.config.context_window if isinstance(model.config.context_window, int) else None
    return HintContext(
        provider=provider.id,
        base_url=provider.base_url,
        ref=target.ref,
        model_path=f'{provider.config_path}.models (id "{model.config.id}")',
        key_source=provider.key_source,
        key_env=provider.key_env,
        context_window=window,
        secrets=secrets,
    )


async def run_events(
    host: RunHost,
    model: str | None,
    request: Mapping[str, Any],
    state: RunState,
    *,
    headers: Sequence[tuple[str, str]] = (),
    audit: Audit | None = None,
    use_fallbacks: bool = True,
) -> AsyncGenerator[list[Event], None]:
    """The run, one list of events per read (and one per attempt that failed or was skipped), as the rules above say."""
    client = host.client()
    chain = candidates(host.catalog, model, use_fallbacks)
    cooling: list[tuple[WireRequest, Target]] = []
    last_error: ProviderError | None = None
    for position, candidate in enumerate(chain):
        final = position == len(chain) - 1
        try:
            wire = unwrap_or_raise(host.build_result(candidate, request, headers=headers))
        except GenesisError as error:
            if position == 0:
                raise
            provider, model_id = split_ref(candidate or "") or ("", candidate or "")
            attempt = Attempt(provider, model_id, ok=False, error_class=error.kind, message=str(error))
            state.attempts.append(attempt)
            yield [AttemptFailed(attempt)]
            continue
        target = _target_of(wire)
        key = (wire.provider, wire.model)
        if host.cooldowns.remaining(key) is not None:
            message = host.cooldowns.describe(key)
            attempt = Attempt(wire.provider, wire.model, ok=False, error_class=ErrorClass.COOLDOWN, message=message)
            state.attempts.append(attempt)
            if audit is not None:
                audit(make_record(wire, sent=False, ok=False, error_class=ErrorClass.COOLDOWN, message=message))
            cooling.append((wire, target))
            yield [AttemptFailed(attempt)]
            continue
        failure: ProviderError | None = None
        try:
            async with aclosing(_tries(host, client, wire, target, state, audit)) as tries:
                async for events in tries:
                    yield events
            return
        except ProviderError as error:
            if state.answered or final or error.error_class not in FAILOVER_CLASSES:
                raise
            failure = error
        last_error = failure
        yield [AttemptFailed(state.attempts[-1])]
    if last_error is not None:
        last_error.attempts = list(state.attempts)
        raise last_error
    # Nothing was sent: every candidate that resolves is cooling down. Failing
    # without a request would help no one; the one that comes back first is tried.
    wire, target = min(cooling, key=lambda pair: host.cooldowns.until((pair[0].provider, pair[0].model)))
    async with aclosing(_tries(host, client, wire, target, state, audit)) as tries:
        async for events in tries:
            yield events


async def _tries(
    host: RunHost, client: Any, wire: WireRequest, target: Target, state: RunState, audit: Audit | None
) -> AsyncGenerator[list[Event], None]:
    """One model: the first try and its retries, one list of events per read; ends in success or raises the last
    failure (with every attempt)."""
    key = (wire.provider, wire.model)
    # Every secret this request could meet: configured ones, and keys the caller passed as headers.
    hints = hints_for(target, Secrets(host.catalog.secrets) | secrets_in_headers(wire.headers, wire.secret_headers))
    started = host.cooldowns.clock()
    retries = max(wire.policy.max_retries, 0)
    observer = state.observer
    pipeline = host.pipeline
    for retry in range(retries + 1):
        timing = Timing()
        state.target, state.aggregator, state.try_notes = target, Aggregator(), ()
        checks = _Checks(wire, hints, timing, state)
        failure: ProviderError | None = None
        if observer is not None:
            observer.attempt_started(wire, retry)
        try:
            chain = None if wire.context is None else pipeline.answer_chain(wire.context)
            reads = _reads(pipeline.send(client, wire, hints, timing), pipeline.parse_stream, timing, chain, state, checks)
            async with aclosing(reads):
                async for events in reads:
                    yield events
        except ProviderError as error:
            failure = error
        if observer is not None:  # a try cancelled or closed mid-way is ended by the run's own end (pipeline.telemetry)
            observer.attempt_ended(failure, status=timing.status, answer=None if failure else state.aggregator.completion())
        state.answer_trace.append(_send_note(wire, retry, timing, failure))
        if failure is None:
            state.answer_trace += state.try_notes
            host.cooldowns.succeeded(key)
            state.attempts.append(Attempt(wire.provider, wire.model, ok=True, status=timing.status, retry=retry))
            if audit is not None:
                aggregator = state.aggregator
                audit(
                    make_record(
                        wire,
                        ok=True,
                        retry=retry,
                        status=timing.status,
                        finish_reason=aggregator.finish,
                        usage=aggregator.usage,
                        timing=timing.as_ms(),
                    )
                )
            held = checks.held
            for event in held:
                if isinstance(event, Timings):
                    state.timings = event.values
            if held:
                yield held
            return
        retryable = failure.error_class in RETRY_CLASSES and not state.answered
        delay = backoff_delay(retry + 1, host.random(), retry_after=failure.retry_after) if retryable and retry < retries else None
        delay_ms = None if delay is None else round(delay * 1000)
        attempt = failed_try(wire, failure, retry=retry, delay_ms=delay_ms, timing=timing, audit=audit)
        state.attempts.append(attempt)
        if delay is None:
            if retryable:
                host.cooldowns.failed(key, started=started, error_class=failure.error_class, retry_after=failure.retry_after)
            failure.attempts = list(state.attempts)
            raise failure
        yield [AttemptFailed(attempt)]
        await host.sleep(delay)


def failed_try(
    wire: WireRequest, failure: ProviderError, *, retry: int, delay_ms: int | None, timing: Timing, audit: Audit | None
) -> Attempt:
    """A failed try's attempt, and its audit record when there is a hook: the one record every
    request kind (chat here, embeddings in ``backends.embeddings``) makes of a try that failed."""
    if audit is not None:
        audit(
            make_record(
                wire,
                ok=False,
                retry=retry,
                delay_ms=delay_ms,
                status=failure.status,
                error_class=failure.error_class,
                message=failure.server_message,
                timing=timing.as_ms(),
            )
        )
    return Attempt(
        wire.provider,
        wire.model,
        ok=False,
        error_class=failure.error_class,
        message=failure.server_message,
        status=failure.status,
        retry=retry,
        delay_ms=delay_ms,
    )


class _Checks:
    """One try's rules on each read's events: a failure an event stands for is raised, the answer so far is
    aggregated, text, reasoning and tool calls go up at once, Usage, Timings and Finish are held."""

    __slots__ = ("aggregator", "failure", "held", "hints", "state", "timing", "wire")

    def __init__(self, wire: WireRequest, hints: HintContext, timing: Timing, state: RunState) -> None:
        self.wire, self.hints, self.timing, self.state = wire, hints, timing, state
        self.aggregator = state.aggregator
        self.held: list[Event] = []
        # A failure found after events of the same read: those go up first (as they would one read
        # earlier: split invariance), then the read after them raises it.
        self.failure: ProviderError | None = None

    def passed(self, events: list[Event]) -> list[Event]:
        """The events of one read (not empty) that go up now; the held ones are kept, a failure noted in ``failure``
        (the events before it go up, the reader raises it after them)."""
        aggregator = self.aggregator
        for event in events:  # the common read: text, reasoning or tool-call pieces only, all of which go up
            if type(event) not in _ANSWER_EVENTS:
                return self._sorted(events, event)
            aggregator.add(event)
        self.state.answered = True
        return events

    def _sorted(self, events: list[Event], first_other: Event) -> list[Event]:
        """``passed`` from the first event that is not an answer piece on (the ones before it are added already)."""
        aggregator, wire, state = self.aggregator, self.wire, self.state
        position = next(index for index, event in enumerate(events) if event is first_other)
        going_up = events[:position]
        if going_up:
            state.answered = True
        for event in events[position:]:
            kind = type(event)
            if kind in CHECKED_EVENTS:
                failure = event_failure(event, aggregator, url=wire.url, ref=wire.ref, context=self.hints)
                if failure is not None:
                    self.failure = failure
                    return going_up
            aggregator.add(event)
            if kind in _HELD_EVENTS:
                self.held.append(event)
                continue
            if kind in _ANSWER_EVENTS:
                state.answered = True
            going_up.append(event)
        return going_up

    def ended(self) -> None:
        """The answer's end: one without a finish_reason is a protocol error."""
        if self.aggregator.finish is None:
            raise ProviderError(
                ErrorClass.PROTOCOL,
                "the answer ended without a finish_reason",
                url=self.wire.url,
                status=self.timing.status,
                ref=self.wire.ref,
            )


async def _reads(
    sent: AsyncIterator[bytes],
    parse: ParseStream,
    timing: Timing,
    chain: AnswerChain | None,
    state: RunState | None,
    checks: _Checks | None = None,
) -> AsyncGenerator[list[Event], None]:
    """send's bytes through parse_stream (and the answer-side steps, when there are any), one list of events per read.

    ``state`` (a run's) receives the try's parse_stream and answer-side notes; None outside a run.
    ``checks`` (a run's try) applies the run's rules to each read's events before they go up; a failure
    is raised once the events before it, in the same read, have gone up.

    Reading stops at the answer's end (``data: [DONE]``); ``sent`` is closed at once, whatever ends the try.
    """
    parser: StreamParse | None = None
    # send is an async generator (typed as an iterator): closed here, at once, whatever ends the try.
    stream = cast(AsyncGenerator[bytes, None], sent)
    async with aclosing(stream):
        async for piece in stream:
            if parser is None:  # the response head has come: its content type picks the parser
                parser = parse(timing.content_type)
            events = parser.feed(piece)
            if events:
                if chain is not None:
                    events = chain.feed(events)
                if checks is not None and events:
                    events = checks.passed(events)
                    if checks.failure is not None:  # the events before it go up first
                        if events:
                            yield events
                        raise checks.failure
                if events:
                    yield events
            if parser.done:  # [DONE] ends the answer: whatever the server does with the connection after it is not waited for
                break
    if parser is None:
        parser = parse(timing.content_type)
    events = parser.close()
    if chain is not None:
        events = (chain.feed(events) if events else events) + chain.finish()
    if state is not None:
        state.try_notes = tuple(StageNote("parse_stream", note) for note in parser.notes()) + (() if chain is None else chain.notes())
    if checks is not None and events:
        events = checks.passed(events)
    if events:
        yield events
    if checks is not None:
        if checks.failure is not None:
            raise checks.failure
        checks.ended()


def default_events(client: Any, wire: WireRequest, hints: HintContext, timing: Timing) -> AsyncGenerator[list[Event], None]:
    """The default ``send`` then the default ``parse_stream``, outside a run (``backends.probe``): one list of events per read.

    A run goes through its own pipeline's send and parse_stream instead (replaced or not), through the same reading loop.
    """
    return _reads(send(client, wire, hints, timing), parse_stream, timing, None, None)


def _send_note(wire: WireRequest, retry: int, timing: Timing, failure: ProviderError | None) -> StageNote:
    """send's line for one try: which model, which try, the status, the timings, and how it ended."""
    ms = timing.as_ms()
    status = "no response" if timing.status is None else f"HTTP {timing.status}"
    marks = ", ".join(f"{name.removesuffix('_ms').replace('_', ' ')} {value:g} ms" for name, value in ms.items() if value is not None)
    outcome = "answered" if failure is None else f"failed: {failure.error_class}"
    return StageNote(
        "send", f"{wire.provider}/{wire.model} try {retry + 1}{' (retry)' if retry else ''}: {status}, {marks or 'no timings'}; {outcome}"
    )


def _target_of(wire: WireRequest) -> Target:
    target = wire.target
    if target is None:  # a pipeline's build always sets it; a hand-made WireRequest cannot be run
        raise StageError("resolve_ref", "the wire request has no resolved model; build it with Genesis.build")
    return target
