"""Classifying failures, and the hints that come with them. Pure: no I/O.

Classes (SPEC 7) and whether a fallback model is tried after them:

| class | when | fallback |
|---|---|---|
| unreachable | connection refused, DNS, host unreachable | yes |
| timeout | connect/read timeout, HTTP 408 | yes |
| auth | 401, 403 | yes |
| rate_limit | 429 | yes |
| overloaded | 500, 502, 503 (and other 5xx) | yes |
| model_not_found | 404 | yes |
| format | 400, 422, other 4xx | no |
| context_overflow | the prompt does not fit the context window | no |
| server_error | HTTP 200 whose answer is an error (inferrs' finish_reason "error", an error object in the stream) | yes |
| protocol | garbage: a malformed chunk, a connection dropped mid-answer, an unknown finish reason | yes |
| aborted | the caller cancelled | no |

A fallback is tried only while nothing of the answer has reached the caller.
Error bodies are parsed defensively: OpenAI-shaped ``{"error": {...}}``,
vLLM's ``{"error": "Unauthorized"}``, FastAPI's ``{"detail": ...}``, or
plain text (inferrs' 422 serde messages).
"""

from __future__ import annotations

from typing import Any

import msgspec

from backends.events import Finish, ServerError, StreamFault
from backends.stream import FINISH_REASONS, Aggregator
from pipeline.errors import ProviderError
from pipeline.secrets import Secrets

FAILOVER_CLASSES = frozenset({"unreachable", "timeout", "auth", "rate_limit", "overloaded", "model_not_found", "server_error", "protocol"})

_STATUS_CLASSES = {401: "auth", 403: "auth", 404: "model_not_found", 408: "timeout", 429: "rate_limit", 400: "format", 422: "format"}
_OVERFLOW_PHRASES = ("maximum context length", "context length exceeded", "prompt is too long", "context_length_exceeded")
_TOKEN_LIMIT_PARAMS = ("max_tokens", "max_completion_tokens")
RAW_LIMIT = 2000


class ErrorBody(msgspec.Struct):
    error: Any = None
    detail: Any = None
    message: Any = None


_ERROR_BODY = msgspec.json.Decoder(ErrorBody)


def server_message(body: bytes) -> tuple[str, str | None]:
    """The server's message and the offending parameter, from any error body shape.

    >>> server_message(b'{"error": {"message": "bad", "param": "max_tokens"}}')
    ('bad', 'max_tokens')
    >>> server_message(b'{"error":"Unauthorized"}')
    ('Unauthorized', None)
    >>> server_message(b"Failed to deserialize the JSON body: invalid type")
    ('Failed to deserialize the JSON body: invalid type', None)
    """
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = _ERROR_BODY.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return (_one_line(text) or "(empty body)"), None
    for candidate in (parsed.error, parsed.detail, parsed.message):
        if isinstance(candidate, str) and candidate:
            return _one_line(candidate), None
        if isinstance(candidate, dict):
            message = candidate.get("message") or candidate.get("msg") or candidate.get("detail")
            param = candidate.get("param")
            if message:
                return _one_line(str(message)), param if isinstance(param, str) else None
        if isinstance(candidate, list) and candidate:  # FastAPI validation errors
            first = candidate[0]
            if isinstance(first, dict) and "msg" in first:
                location = ".".join(str(part) for part in first.get("loc", ()))
                return _one_line(f"{location}: {first['msg']}" if location else str(first["msg"])), None
    return (_one_line(text) or "(empty body)"), None


def _one_line(text: str, limit: int = 500) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def class_of_status(status: int) -> str:
    """The class an HTTP status alone implies.

    >>> [class_of_status(s) for s in (401, 404, 422, 429, 503, 418)]
    ['auth', 'model_not_found', 'format', 'rate_limit', 'overloaded', 'format']
    """
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    return "overloaded" if status >= 500 else "format"


def is_context_overflow(message: str, param: str | None) -> bool:
    """A prompt that does not fit. A too-large ``max_tokens`` is a format error: vLLM names
    the context length in that message too, but the fix is the request's limit."""
    if param in _TOKEN_LIMIT_PARAMS:
        return False
    lowered = message.lower()
    return param == "input_tokens" or any(phrase in lowered for phrase in _OVERFLOW_PHRASES)


def http_error(status: int, body: bytes, *, url: str, ref: str, context: "HintContext") -> ProviderError:
    message, param = server_message(body)
    error_class = "context_overflow" if status in (400, 413, 422) and is_context_overflow(message, param) else class_of_status(status)
    return ProviderError(
        error_class, message, url=url, status=status, ref=ref, raw=body[:RAW_LIMIT].decode("utf-8", "replace"),
        hint=hint_for(error_class, message, context), secrets=context.secrets,
    )


class HintContext(msgspec.Struct, frozen=True):
    """What a hint may name: the provider's config path and URL, the model, its key's source."""

    provider: str
    base_url: str
    ref: str
    model_path: str
    key_source: str = "none"
    key_env: str | None = None
    context_window: int | None = None
    secrets: Secrets = Secrets()  # scrubbed from every server text (pipeline.secrets); its repr hides them


def hint_for(error_class: str, message: str, ctx: HintContext) -> str | None:
    lowered = message.lower()
    if "invalid type: sequence, expected a string" in lowered:
        return f"set compat.requiresStringContent: true on the model ({ctx.model_path}.compat)"
    if "unknown variant `developer`" in lowered or "unknown variant 'developer'" in lowered:
        return f"set compat.supportsDeveloperRole: false on the model ({ctx.model_path}.compat)"
    if ("tool choice requires" in lowered or "tool-call-parser" in lowered or "enable-auto-tool-choice" in lowered
            or ("tool" in lowered and ("not supported" in lowered or "unsupported" in lowered))):
        return f"the server rejects tools: try compat.supportsTools: false on the model ({ctx.model_path}.compat)"
    if error_class == "unreachable":
        return f"the server is not running or not on that host/port; check it with: curl {ctx.base_url.rstrip('/')}/models"
    if error_class == "auth":
        where = f"set {ctx.key_env} to the server's --api-key" if ctx.key_env else "set the server's key"
        return f"{where} or models.providers.{ctx.provider}.apiKey (the key in use comes from: {ctx.key_source})"
    if error_class == "model_not_found":
        return f"the server does not serve this model id; curl {ctx.base_url.rstrip('/')}/models lists the ones it does"
    if error_class == "timeout":
        return f"the server did not answer in time; raise models.providers.{ctx.provider}.timeoutSeconds if it is just slow"
    if error_class == "context_overflow":
        window = f" of {ctx.context_window} tokens" if ctx.context_window else ""
        return f"the prompt does not fit the model's context window{window}: shorten it or lower max_tokens"
    if error_class == "rate_limit":
        return "the server is rate limiting: retry later or add agents.defaults.model.fallbacks"
    return None


# Event kinds that can stand for a failure; every other kind is passed without a call.
CHECKED_EVENTS = (ServerError, StreamFault, Finish)


def event_failure(event: object, answer: Aggregator, *, url: str, ref: str, context: HintContext) -> ProviderError | None:
    """The error an event stands for, if any: an error object, a protocol fault, or a finish that is not a completion."""
    if isinstance(event, ServerError):
        error_class = "context_overflow" if is_context_overflow(event.message, event.param) else "server_error"
        return ProviderError(error_class, event.message, url=url, status=200, ref=ref, hint=hint_for(error_class, event.message, context), secrets=context.secrets)
    if isinstance(event, StreamFault):
        return ProviderError("protocol", event.message, url=url, status=200, ref=ref, secrets=context.secrets)
    if isinstance(event, Finish) and event.reason not in FINISH_REASONS:
        if event.reason == "error":
            said = _one_line(answer.text[-300:]) or "(no message)"
            error_class = "context_overflow" if is_context_overflow(said, None) else "server_error"
            return ProviderError(error_class, f"the server reported an error: {said}", url=url, status=200, ref=ref,
                                 hint=hint_for(error_class, said, context), secrets=context.secrets)
        return ProviderError("protocol", f"unknown finish_reason {event.reason!r}", url=url, status=200, ref=ref, secrets=context.secrets)
    return None
