"""Probing servers: is it up (``status --probe``), and what does it accept (``models probe``).

``models probe`` sends a handful of tiny requests, each a baseline that
works plus one feature, and reads the answers into compat flags. The probes
are data (``PROBES``); each says which flag it decides and what an accepted
or rejected answer means. A ``format`` rejection (400/422) counts as "the
server does not take this". So does a 500 when the baseline, sent again
right after, still works: the feature alone broke the server
(llama-cpp-python answers 500 to content arrays and the developer role).
Any other failure makes the probe inconclusive and the flag is left out of
the suggestion.

Every detail string that may hold server text (an error message, a
``/health`` body) is scrubbed (``pipeline.secrets.scrub``) with the
provider's key and header secrets plus any the caller passes: a server may
echo the key it was sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import anyio
import httpx
import msgspec

from backends.classify import HintContext
from backends.discovery import fetch_from, fetch_models, provider_hints
from backends.http import Timing
from backends.session import default_events
from pipeline.catalog import ProviderEntry
from pipeline.errors import ErrorClass, ProviderError
from pipeline.events import Usage
from pipeline.secrets import Secrets, scrub
from pipeline.types import WireRequest

PROBE_TIMEOUT = 3.0
HEALTH_DETAIL_LIMIT = 200
_ENCODER = msgspec.json.Encoder()


class Reachability(msgspec.Struct, frozen=True, omit_defaults=True):
    """What one GET said: ``ok``, ``n/a`` (no such endpoint), or the ErrorClass of its failure."""

    state: ErrorClass | Literal["ok", "n/a"]
    latency_ms: float | None = None
    status: int | None = None
    detail: str | None = None


def known_secrets(provider: ProviderEntry, secrets: frozenset[str] = frozenset()) -> Secrets:
    """The provider's own key and secret header values, and ``secrets`` (a catalog's)."""
    return provider_hints(provider).secrets | secrets


async def check_models(client: httpx.AsyncClient, provider: ProviderEntry, secrets: frozenset[str] = frozenset()) -> Reachability:
    started = time.perf_counter()
    try:
        models, elapsed = await fetch_models(client, provider, timeout=PROBE_TIMEOUT)
    except ProviderError as error:
        detail = scrub(error.server_message, known_secrets(provider, secrets))
        return Reachability(error.error_class, _ms(time.perf_counter() - started), error.status, detail)
    return Reachability("ok", _ms(elapsed), 200, f"{len(models)} model(s)")


def health_url(provider: ProviderEntry) -> str:
    """``/health`` lives at the server root, beside ``/v1``."""
    base = provider.base_url.rstrip("/")
    return (base[: -len("/v1")] if base.endswith("/v1") else base) + "/health"


async def check_health(client: httpx.AsyncClient, provider: ProviderEntry, secrets: frozenset[str] = frozenset()) -> Reachability:
    """GET /health: ok on any 2xx, n/a on 404/405, else the failure's class (classified as discovery's are)."""
    started = time.perf_counter()
    try:
        await fetch_from(client, provider, health_url(provider), timeout=PROBE_TIMEOUT)
    except ProviderError as error:
        latency = _ms(time.perf_counter() - started)
        if error.status in (404, 405):
            return Reachability("n/a", latency, error.status, "the server has no /health")
        detail = scrub(error.server_message[:HEALTH_DETAIL_LIMIT], known_secrets(provider, secrets))
        return Reachability(error.error_class, latency, error.status, detail)
    return Reachability("ok", _ms(time.perf_counter() - started), 200)


async def probe_provider(
    client: httpx.AsyncClient, provider: ProviderEntry, secrets: frozenset[str] = frozenset()
) -> tuple[Reachability, Reachability]:
    results: dict[str, Reachability] = {}

    async def models() -> None:
        results["models"] = await check_models(client, provider, secrets)

    async def health() -> None:
        results["health"] = await check_health(client, provider, secrets)

    async with anyio.create_task_group() as group:
        group.start_soon(models)
        group.start_soon(health)
    return results["models"], results["health"]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


# ---- what a server accepts ----

Body = dict[str, Any]
_TOOL = {"type": "function", "function": {"name": "ping", "description": "Reply pong.", "parameters": {"type": "object", "properties": {}}}}


class Probe(msgspec.Struct, frozen=True):
    name: str
    flag: str
    shape: Callable[[Body], Body]
    accepted: Any
    rejected: Any
    needs_usage: bool = False  # accepted only counts when the stream reported usage


def _with_content_parts(body: Body) -> Body:
    return {**body, "messages": [{"role": "user", "content": [{"type": "text", "text": "Say"}, {"type": "text", "text": "hi"}]}]}


def _with_developer(body: Body) -> Body:
    return {**body, "messages": [{"role": "developer", "content": "Be brief."}, *body["messages"]]}


def _with_tools(body: Body) -> Body:
    return {**body, "tools": [_TOOL], "tool_choice": "auto"}


def _with_stream_usage(body: Body) -> Body:
    return {**body, "stream": True, "stream_options": {"include_usage": True}}


def _with_max_completion_tokens(body: Body) -> Body:
    return {("max_completion_tokens" if key == "max_tokens" else key): value for key, value in body.items()}


PROBES: tuple[Probe, ...] = (
    Probe("content-part arrays", "requiresStringContent", _with_content_parts, False, True),
    Probe("the developer role", "supportsDeveloperRole", _with_developer, True, False),
    Probe("tools", "supportsTools", _with_tools, True, False),
    Probe("stream_options.include_usage", "supportsUsageInStreaming", _with_stream_usage, True, False, needs_usage=True),
    Probe("max_completion_tokens", "maxTokensField", _with_max_completion_tokens, None, "max_tokens"),
)


class ProbeResult(msgspec.Struct, frozen=True, omit_defaults=True):
    name: str
    flag: str
    outcome: str  # accepted, rejected, inconclusive
    value: Any = None
    detail: str | None = None


async def _attempt(client: httpx.AsyncClient, wire: WireRequest, hints: HintContext) -> tuple[bool, Usage | None]:
    usage: Usage | None = None
    async for events in default_events(client, wire, hints, Timing()):
        for event in events:
            if isinstance(event, Usage):
                usage = event
    return True, usage


async def probe_compat(client: httpx.AsyncClient, wire: WireRequest, hints: HintContext) -> tuple[ProviderError | None, list[ProbeResult]]:
    """Try each probe on top of a baseline request; the baseline failing stops the probe."""
    baseline: Body = {"model": wire.model, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 1, "stream": False}

    def variant(body: Body) -> WireRequest:
        return msgspec.structs.replace(
            wire,
            body=_ENCODER.encode(body),
            stream=body.get("stream") is True,
            policy=msgspec.structs.replace(wire.policy, read_timeout=min(wire.policy.read_timeout, 30.0)),
        )

    try:
        await _attempt(client, variant(baseline), hints)
    except ProviderError as error:
        return error, []
    results: list[ProbeResult] = []
    for probe in PROBES:
        try:
            _, usage = await _attempt(client, variant(probe.shape(baseline)), hints)
        except ProviderError as error:
            said = scrub(error.server_message, hints.secrets)
            if error.error_class in (ErrorClass.FORMAT, ErrorClass.CONTEXT_OVERFLOW):
                results.append(ProbeResult(probe.name, probe.flag, "rejected", probe.rejected, f"{error.status}: {said}"))
            elif error.status == 500 and await _still_works(client, variant(baseline), hints):
                detail = f"500 to this feature while the baseline still works: {said}"
                results.append(ProbeResult(probe.name, probe.flag, "rejected", probe.rejected, detail))
            else:
                results.append(ProbeResult(probe.name, probe.flag, "inconclusive", None, f"{error.error_class}: {said}"))
            continue
        if probe.needs_usage and usage is None:
            results.append(ProbeResult(probe.name, probe.flag, "rejected", probe.rejected, "accepted, but the stream carried no usage"))
        else:
            results.append(ProbeResult(probe.name, probe.flag, "accepted", probe.accepted))
    return None, results


async def _still_works(client: httpx.AsyncClient, baseline: WireRequest, hints: HintContext) -> bool:
    try:
        await _attempt(client, baseline, hints)
    except ProviderError:
        return False
    return True


def compat_block(results: list[ProbeResult]) -> str:
    """The suggested ``compat`` block as JSON5, each flag with the evidence for it.

    >>> print(compat_block([ProbeResult("tools", "supportsTools", "rejected", False, "400: no tools")]))
    compat: {
      supportsTools: false,  // tools: rejected (400: no tools)
    }
    """
    lines = ["compat: {"]
    for result in results:
        if result.value is None:
            continue
        value = msgspec.json.encode(result.value).decode()
        evidence = result.outcome + (f" ({result.detail})" if result.detail else "")
        lines.append(f"  {result.flag}: {value},  // {result.name}: {evidence}")
    lines.append("}")
    return "\n".join(lines)
