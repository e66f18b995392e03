"""One run: build, send, check each event, fail over when it should.

Rules:
- The candidates are the requested model (or the primary), then
  ``agents.defaults.model.fallbacks`` in order (skipping the requested one).
- A candidate that fails with a class in ``FAILOVER_CLASSES`` before any of
  its answer reached the caller hands over to the next; every attempt is
  recorded (provider, model, class, message) and audited.
- Once text, reasoning or a tool call has been yielded, an error ends the
  run: a fallback would repeat an answer the caller already has.
- A stream that ends without a finish_reason is a protocol error.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from backends.audit import AuditRecord, make_record
from backends.classify import CHECKED_EVENTS, FAILOVER_CLASSES, HintContext, event_failure
from backends.events import Attempt, AttemptFailed, Event, ReasoningDelta, TextDelta, ToolCallDelta
from backends.http import Timing, send_events
from backends.stream import Aggregator
from pipeline.errors import GenesisError, ProviderError
from pipeline.refs import Target, normalize_ref
from pipeline.secrets import Secrets, secrets_in_headers
from pipeline.wire import encode_wire
from pipeline.errors import unwrap_or_raise

if TYPE_CHECKING:
    from pipeline.api import Genesis

_ANSWER_EVENTS = (TextDelta, ReasoningDelta, ToolCallDelta)


class RunState:
    """What a run learned: its attempts, the target that answered, and the answer so far."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.target: Target | None = None
        self.aggregator = Aggregator()


def candidates(genesis: Genesis, model: str | None, use_fallbacks: bool) -> list[str | None]:
    chain: list[str | None] = [model]
    if use_fallbacks:
        first = normalize_ref(model) if model else genesis.catalog.primary
        chain += [ref for ref in genesis.catalog.fallbacks if normalize_ref(ref) != first]
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
    genesis: Genesis,
    model: str | None,
    request: Mapping[str, Any],
    state: RunState,
    *,
    headers: Sequence[tuple[str, str]] = (),
    audit: Callable[[AuditRecord], None] | None = None,
    use_fallbacks: bool = True,
) -> AsyncGenerator[Event, None]:
    client = genesis.client()
    chain = candidates(genesis, model, use_fallbacks)
    for position, candidate in enumerate(chain):
        last = position == len(chain) - 1
        shaped = genesis.shape(candidate, request, headers=headers)
        try:
            ctx = unwrap_or_raise(shaped)
            wire = encode_wire(ctx)
        except GenesisError as error:
            if position == 0:
                raise
            attempt = Attempt(provider="", model=candidate or "", ok=False, error_class=error.kind, message=str(error))
            state.attempts.append(attempt)
            if last:
                raise
            yield AttemptFailed(attempt)
            continue
        target = ctx.require_target("send")
        hints = hints_for(target, Secrets(ctx.catalog.secrets) | secrets_in_headers(wire.headers, wire.secret_headers))
        state.target, state.aggregator = target, Aggregator()
        timing = Timing()
        answered = False
        aggregator = state.aggregator
        try:
            async for events in send_events(client, wire, hints, timing):
                for event in events:
                    kind = type(event)
                    if kind in CHECKED_EVENTS:
                        failure = event_failure(event, aggregator, url=wire.url, ref=wire.ref, context=hints)
                        if failure is not None:
                            raise failure
                    elif kind in _ANSWER_EVENTS:
                        answered = True
                    aggregator.add(event)
                    yield event
            if aggregator.finish is None:
                raise ProviderError("protocol", "the answer ended without a finish_reason", url=wire.url, status=timing.status, ref=wire.ref)
        except ProviderError as error:
            attempt = Attempt(wire.provider, wire.model, ok=False, error_class=error.error_class, message=error.server_message, status=error.status)
            state.attempts.append(attempt)
            if audit is not None:
                audit(make_record(wire, ok=False, status=error.status, error_class=error.error_class, message=error.server_message, timing=timing.as_ms()))
            if answered or last or error.error_class not in FAILOVER_CLASSES:
                error.attempts = list(state.attempts)
                raise
            yield AttemptFailed(attempt)
            continue
        state.attempts.append(Attempt(wire.provider, wire.model, ok=True, status=timing.status))
        if audit is not None:
            audit(make_record(wire, ok=True, status=timing.status, finish_reason=aggregator.finish, usage=aggregator.usage, timing=timing.as_ms()))
        return

