"""Sending an embeddings request (built by ``pipeline.embeddings``) and reading its whole answer.

Rules:

1. The bytes go out through the pipeline's own ``send`` stage, so its bounds (timeouts, the
   total deadline, ``maxResponseBytes``), its error classes and hints, and a replaced ``send``
   (a test's recorded replay) apply as they do to chat. The answer is one JSON object: its
   pieces are joined, then decoded once (``pipeline.embeddings.decode_embeddings``).
2. A failure of a class that is retried (``RETRY_CLASSES``) is retried on the same model with
   the same backoff as chat, up to the provider's ``maxRetries``. There is no failover to
   ``agents.defaults.model.fallbacks``: those are chat models, and vectors from another model
   live in another space, so mixing them would be silently wrong.
3. Every attempt, failed or not, goes to the audit hook as the same ``AuditRecord`` chat
   attempts make (the exact request, secrets redacted; status, class, usage, timing).
4. A server without an embeddings route gets the hint that says how to serve them
   (``pipeline.embeddings`` rule 5).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import msgspec

from backends.audit import AuditRecord, make_record
from backends.http import Timing
from backends.retry import RETRY_CLASSES, backoff_delay
from backends.session import failed_try, hints_for
from pipeline.embeddings import Embeddings, decode_embeddings, input_count
from pipeline.errors import ProviderError, RequestError
from pipeline.events import Attempt
from pipeline.secrets import Secrets, secrets_in_headers
from pipeline.types import WireRequest

if TYPE_CHECKING:
    from pipeline.telemetry import RunObserver


async def fetch_embeddings(
    host: Any, wire: WireRequest, *, audit: Callable[[AuditRecord], None] | None = None, observer: RunObserver | None = None
) -> Embeddings:
    """Send ``wire`` (an embeddings request) with ``host``'s client and ``send`` stage; the checked vectors.
    ``observer`` (telemetry, ``pipeline.telemetry``) is told of each try's start and end."""
    if wire.target is None or wire.context is None:
        raise RequestError("this wire request was not built by Genesis.build_embedding: it has no resolved target")
    count = input_count(wire.context.body.get("input"))
    client = host.client()
    hints = hints_for(wire.target, Secrets(host.catalog.secrets) | secrets_in_headers(wire.headers, wire.secret_headers))
    retries = max(wire.policy.max_retries, 0)
    attempts: list[Attempt] = []
    for retry in range(retries + 1):
        timing = Timing()
        if observer is not None:
            observer.attempt_started(wire, retry)
        try:
            body = await _whole(host.pipeline.send(client, wire, hints, timing))
            embeddings = decode_embeddings(body, wire, count=count, status=timing.status)
        except ProviderError as failure:
            if observer is not None:
                observer.attempt_ended(failure, status=timing.status)
            retried = failure.error_class in RETRY_CLASSES and retry < retries
            delay = backoff_delay(retry + 1, host.random(), retry_after=failure.retry_after) if retried else None
            delay_ms = None if delay is None else round(delay * 1000)
            attempts.append(failed_try(wire, failure, retry=retry, delay_ms=delay_ms, timing=timing, audit=audit))
            if delay is None:
                failure.attempts = list(attempts)
                raise
            await host.sleep(delay)
            continue
        if observer is not None:
            observer.attempt_ended(None, status=timing.status, usage=embeddings.usage, response_model=embeddings.server_model)
        attempts.append(Attempt(wire.provider, wire.model, ok=True, status=timing.status, retry=retry))
        if audit is not None:
            audit(make_record(wire, ok=True, retry=retry, status=timing.status, usage=embeddings.usage, timing=timing.as_ms()))
        return msgspec.structs.replace(embeddings, attempts=tuple(attempts))
    raise AssertionError("unreachable: the last try returns or raises")


async def _whole(pieces: AsyncIterator[bytes]) -> bytes:
    async with aclosing(pieces) as reading:  # type: ignore[type-var]
        return b"".join([piece async for piece in reading])
