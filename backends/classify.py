"""Classifying failures, and the hints that come with them. Pure: no I/O.

The classes, and whether each is retried or failed over, are
``pipeline.errors.ErrorClass`` (SPEC 7). Here, which class an answer gets:

| class | when |
|---|---|
| auth | 401, 403 |
| timeout | 408 |
| rate_limit | 429 |
| overloaded | 500, 502, 503 (and other 5xx) |
| model_not_found | 404 (an unknown model, or a route the server lacks: ``ROUTE_RULES``), or a body that says the model is unknown or not loaded (``MODEL_RULES``) |
| format | 400, 422, other 4xx; a 5xx that is really a rejected request (``FORMAT_RULES``) |
| context_overflow | the prompt does not fit the context window (``OVERFLOW_RULES``) |
| server_error | HTTP 200 whose answer is an error (inferrs' finish_reason "error", an error object in the stream) |
| protocol | a malformed chunk, an unknown finish reason |

Failures below HTTP (no connection, a broken one) are classed by
``backends.http.transport_error``. A fallback is tried only while nothing of
the answer has reached the caller.
Error bodies are parsed defensively: OpenAI-shaped ``{"error": {...}}``,
vLLM's ``{"error": "Unauthorized"}``, SGLang's top-level ``{"object": "error",
"message": ...}``, FastAPI's ``{"detail": ...}``, or plain text (inferrs' 422
serde messages). The message, ``type``, ``code`` and ``param`` are all kept:
servers say the same thing in different fields.

What each server says, and where in its source it says it, is the conformance
table in ``tests/conformance/``; every rule below names the server it is for,
and every rule has a transcript there that needs it.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

import msgspec

from backends.stream import FINISH_REASONS, Aggregator
from pipeline.embeddings import NO_ROUTE_HINT
from pipeline.errors import FAILOVER_CLASSES as FAILOVER_CLASSES  # defined once, beside ErrorClass
from pipeline.errors import ErrorClass, ProviderError
from pipeline.events import Finish, ServerError, StreamFault
from pipeline.secrets import Secrets

_STATUS_CLASSES = {
    401: ErrorClass.AUTH,
    403: ErrorClass.AUTH,
    404: ErrorClass.MODEL_NOT_FOUND,
    408: ErrorClass.TIMEOUT,
    429: ErrorClass.RATE_LIMIT,
    400: ErrorClass.FORMAT,
    422: ErrorClass.FORMAT,
}
_TOKEN_LIMIT_PARAMS = ("max_tokens", "max_completion_tokens")
RAW_LIMIT = 2000


class ErrorInfo(NamedTuple):
    """What an error body or an in-stream error object says: the message and the fields beside it."""

    message: str
    param: str | None = None
    type: str | None = None
    code: str | None = None


class Rule(NamedTuple):
    """One way a server words something.

    ``field`` is where to look: ``message`` is a regular expression searched
    case-insensitively; ``type``, ``code`` and ``param`` must equal ``match``.
    ``server`` says who words it so (the conformance table has the source).
    """

    server: str
    field: Literal["message", "type", "code", "param"]
    match: str

    def matches(self, info: ErrorInfo) -> bool:
        if self.field == "message":
            return _pattern(self.match).search(info.message) is not None
        return bool(getattr(info, self.field) == self.match)


# The prompt does not fit the context window. Never a fallback: another model
# gets the same prompt, and the fix is the prompt (or max_tokens).
OVERFLOW_RULES: tuple[Rule, ...] = (
    # vLLM renderers/params.py (_token_len_check, _text_len_check); OpenAI; llama-cpp-python
    # server/errors.py (context_length_exceeded); SGLang's input+max_new_tokens check; inferrs
    # server.rs (prompt_too_long_error); Ollama's embed path ("exceeds maximum context length").
    Rule("vLLM, OpenAI, llama-cpp-python, SGLang, inferrs", "message", r"maximum context length"),
    Rule("vLLM", "param", "input_tokens"),
    Rule("vLLM", "param", "input_text"),
    Rule("OpenAI, llama-cpp-python", "code", "context_length_exceeded"),
    Rule("OpenAI", "message", r"context length exceeded|context_length_exceeded"),
    Rule("Anthropic-style proxies", "message", r"prompt is too long"),
    # llama.cpp tools/server: format_error_response(ERROR_TYPE_EXCEED_CONTEXT_SIZE), the current
    # "request (N tokens) exceeds the available context size (M tokens)", the older "the request
    # exceeds the available context size. try increasing ...", and "input (N tokens) is larger
    # than the max context size (M tokens)".
    Rule("llama.cpp", "type", "exceed_context_size_error"),
    Rule("llama.cpp", "message", r"exceeds the available context size"),
    Rule("llama.cpp", "message", r"is larger than the max context size"),
    # SGLang managers/tokenizer_manager.py (_validate_one_request).
    Rule("SGLang", "message", r"is longer than the model's context length"),
    # Ollama llm/llama_server.go: "the prompt is longer than the context length currently available".
    Rule("Ollama", "message", r"prompt is longer than the context length"),
    # LM Studio (closed source; its bug tracker): "The number of tokens to keep from the initial
    # prompt is greater than the context length", "Trying to keep the first N tokens when context
    # the overflows", "Input does not fit in context length".
    Rule("LM Studio", "message", r"greater than the context length"),
    Rule("LM Studio", "message", r"when context the overflows"),
    Rule("LM Studio", "message", r"does not fit in context length"),
)

# The model is not served (unknown id, nothing loaded) although the status is not 404.
# A fallback may serve it.
MODEL_RULES: tuple[Rule, ...] = (
    # LM Studio 0.3.3x+ answers 400 "Invalid model identifier" with code model_not_found;
    # llama-cpp-python server/errors.py (model_not_found formatter) answers 400 too.
    Rule("LM Studio, llama-cpp-python", "code", "model_not_found"),
    # llama.cpp router mode, server-models.cpp (router_validate_model): 400 "model 'x' not found".
    Rule("llama.cpp (router)", "message", r"^model '.*' not found$"),
    # LM Studio with no model loaded: 400 "No models loaded. Please load a model ...".
    Rule("LM Studio", "message", r"^no models loaded"),
)

# A 5xx that is a rejected request, not a struggling server: retrying or waiting
# changes nothing, so it is a format error (no fallback; the hint says what to change).
FORMAT_RULES: tuple[Rule, ...] = (
    # llama.cpp server-common.cpp (oaicompat_chat_params_parse) throws runtime_error -> 500.
    Rule("llama.cpp", "message", r"(tools|tool_choice) param requires --jinja flag"),
    # llama-cpp-python: its RouteErrorHandler (server/errors.py) turns FastAPI's request
    # validation error into a 500 "internal_server_error" whose message is the pydantic list.
    Rule("llama-cpp-python", "message", r"^\d+ validation errors?:"),
)

# The statuses each table may refine; any other status keeps its own class (an overflow
# wording in a 503 is still an overloaded server, a 500 naming model_not_found still a crash).
_OVERFLOW_STATUSES = frozenset({400, 413, 422})
_FORMAT_RULE_STATUSES = frozenset({500})
_MODEL_RULE_STATUSES = frozenset({400, 404})


@functools.cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


class ErrorBody(msgspec.Struct):
    error: Any = None
    detail: Any = None
    message: Any = None
    type: Any = None
    code: Any = None
    param: Any = None


_ERROR_BODY = msgspec.json.Decoder(ErrorBody)


def _text(value: Any) -> str | None:
    """A string field as a string; a number (``"code": 400``) as its digits; anything else None."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def error_info(body: bytes) -> ErrorInfo:
    """The server's message and the fields beside it, from any error body shape.

    >>> error_info(b'{"error": {"message": "bad", "param": "max_tokens", "type": "BadRequestError", "code": 400}}')
    ErrorInfo(message='bad', param='max_tokens', type='BadRequestError', code='400')
    >>> error_info(b'{"object": "error", "message": "too long", "type": "BadRequestError", "param": null, "code": 400}')
    ErrorInfo(message='too long', param=None, type='BadRequestError', code='400')
    >>> error_info(b'{"error":"Unauthorized"}')
    ErrorInfo(message='Unauthorized', param=None, type=None, code=None)
    >>> error_info(b"Failed to deserialize the JSON body: invalid type")
    ErrorInfo(message='Failed to deserialize the JSON body: invalid type', param=None, type=None, code=None)
    """
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = _ERROR_BODY.decode(body)
    except (ValueError, RecursionError):  # not an error object; also invalid UTF-8 in a string, nesting too deep
        return ErrorInfo(_one_line(text) or "(empty body)")
    outer_type, outer_code, outer_param = _text(parsed.type), _text(parsed.code), _text(parsed.param)
    for candidate in (parsed.error, parsed.detail, parsed.message):
        if isinstance(candidate, str) and candidate:
            return ErrorInfo(_one_line(candidate), outer_param, outer_type, outer_code)
        if isinstance(candidate, dict):
            message = candidate.get("message") or candidate.get("msg") or candidate.get("detail")
            if message:
                return ErrorInfo(
                    _one_line(str(message)),
                    _text(candidate.get("param")) or outer_param,
                    _text(candidate.get("type")) or outer_type,
                    _text(candidate.get("code")) or outer_code,
                )
        if isinstance(candidate, list) and candidate:  # FastAPI validation errors
            first = candidate[0]
            if isinstance(first, dict) and "msg" in first:
                location = ".".join(str(part) for part in first.get("loc", ()))
                return ErrorInfo(
                    _one_line(f"{location}: {first['msg']}" if location else str(first["msg"])), outer_param, outer_type, outer_code
                )
    return ErrorInfo(_one_line(text) or "(empty body)", outer_param, outer_type, outer_code)


def server_message(body: bytes) -> tuple[str, str | None]:
    """The server's message and the offending parameter, from any error body shape.

    >>> server_message(b'{"error": {"message": "bad", "param": "max_tokens"}}')
    ('bad', 'max_tokens')
    >>> server_message(b'{"error":"Unauthorized"}')
    ('Unauthorized', None)
    >>> server_message(b"Failed to deserialize the JSON body: invalid type")
    ('Failed to deserialize the JSON body: invalid type', None)
    """
    info = error_info(body)
    return info.message, info.param


def _one_line(text: str, limit: int = 500) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def class_of_status(status: int) -> ErrorClass:
    """The class an HTTP status alone implies.

    >>> " ".join(class_of_status(s) for s in (401, 404, 422, 429, 503, 418))
    'auth model_not_found format rate_limit overloaded format'
    """
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    return ErrorClass.OVERLOADED if status >= 500 else ErrorClass.FORMAT


def is_context_overflow(message: str, param: str | None = None, *, type: str | None = None, code: str | None = None) -> bool:
    """A prompt that does not fit, by any server's wording (``OVERFLOW_RULES``).

    A too-large ``max_tokens`` is a format error: vLLM names the context length in
    that message too (param ``max_tokens``), but the fix is the request's limit.

    >>> is_context_overflow("request (13529 tokens) exceeds the available context size (2048 tokens), try increasing it")
    True
    >>> is_context_overflow("anything", type="exceed_context_size_error")
    True
    >>> is_context_overflow("This model's maximum context length is 1024 tokens ...", "max_tokens")
    False
    """
    return _overflow(ErrorInfo(message, param, type, code))


def _overflow(info: ErrorInfo) -> bool:
    if info.param in _TOKEN_LIMIT_PARAMS:
        return False
    return any(rule.matches(info) for rule in OVERFLOW_RULES)


def class_of(status: int, info: ErrorInfo) -> ErrorClass:
    """The class of an HTTP error: the body's words where a rule knows them, else the status."""
    if status in _OVERFLOW_STATUSES and _overflow(info):
        return ErrorClass.CONTEXT_OVERFLOW
    if status in _MODEL_RULE_STATUSES and any(rule.matches(info) for rule in MODEL_RULES):
        return ErrorClass.MODEL_NOT_FOUND
    if status in _FORMAT_RULE_STATUSES and any(rule.matches(info) for rule in FORMAT_RULES):
        return ErrorClass.FORMAT
    return class_of_status(status)


def http_error(status: int, body: bytes, *, url: str, ref: str, context: HintContext) -> ProviderError:
    info = error_info(body)
    error_class = class_of(status, info)
    return ProviderError(
        error_class,
        info.message,
        url=url,
        status=status,
        ref=ref,
        raw=body[:RAW_LIMIT].decode("utf-8", "replace"),
        hint=missing_route_hint(status, body, url) or hint_for(error_class, info.message, context),
        secrets=context.secrets,
    )


class HintContext(msgspec.Struct, frozen=True):
    """What a hint may name: the provider's config path and URL, the model, its key's source.

    ``key_source`` is where the key in use comes from, as the catalog says it:
    ``config models.providers.<id>.apiKey``, ``env <VAR>``, ``profile <auth file>`` or ``none``.
    """

    provider: str
    base_url: str
    ref: str
    model_path: str
    key_source: str = "none"
    key_env: str | None = None
    context_window: int | None = None
    secrets: Secrets = Secrets()  # scrubbed from every server text (pipeline.secrets); its repr hides them


class HintRule(NamedTuple):
    """A server message that has a known fix: ``pattern`` (regex, case-insensitive) -> ``hint``.

    ``hint`` may name ``{model_path}``; ``server`` says who sends the message.
    """

    server: str
    pattern: str
    hint: str


_STRING_CONTENT = "set compat.requiresStringContent: true on the model ({model_path}.compat)"
_DEVELOPER_ROLE = "set compat.supportsDeveloperRole: false on the model ({model_path}.compat)"
_NO_TOOLS = "the server rejects tools: try compat.supportsTools: false on the model ({model_path}.compat)"

HINT_RULES: tuple[HintRule, ...] = (
    HintRule("inferrs (older builds)", r"invalid type: sequence, expected a string", _STRING_CONTENT),
    HintRule("inferrs", r"unknown variant [`']developer[`']", _DEVELOPER_ROLE),
    # llama-cpp-python's pydantic list: every role alternative refused 'developer'.
    HintRule("llama-cpp-python", r"'input': 'developer'", _DEVELOPER_ROLE),
    HintRule("vLLM", r"tool choice requires|tool-call-parser|enable-auto-tool-choice", _NO_TOOLS),
    HintRule("llama.cpp", r"(tools|tool_choice) param requires --jinja", _NO_TOOLS),
    HintRule("Ollama", r"does not support tools", _NO_TOOLS),
    HintRule("any", r"tool.*(not supported|unsupported)", _NO_TOOLS),
)


class RouteRule(NamedTuple):
    """A path Genesis calls that a server may lack: ``path`` ends the request URL's path -> ``hint``.

    ``hint`` may name ``{url}`` (the request's); ``server`` says whose missing route it explains.
    """

    server: str
    path: str
    hint: str


# FastAPI's (Starlette's) answer to a path no route matches: 404 and exactly this body
# (starlette/exceptions.py: an HTTPException's detail defaults to the status phrase; fastapi/
# exception_handlers.py: http_exception_handler -> JSONResponse {"detail": ...}, compact).
# The FastAPI servers answer so before any model is looked up: vLLM and SGLang (a wrong path;
# vLLM also a route it registered only for another task), llama-cpp-python (a wrong path). The
# others word a missing route otherwise and keep the unknown-model hint: llama.cpp {"error":
# {"message": "File Not Found", "type": "not_found_error"}} (cpp-httplib's error handler),
# Ollama text "404 page not found" (gin), inferrs an empty 404 (axum). An unknown model on
# vLLM is a 404 that says so ("The model `x` does not exist.") and is not this body.
NO_ROUTE_BODY = re.compile(rb'\s*\{\s*"detail"\s*:\s*"Not Found"\s*\}\s*')  # case as Starlette writes it

# vLLM registers the chat routes only for a generating model and /v1/embeddings only for a
# pooling one (vllm/entrypoints/launchers/api_server/routers.py: register_api_routers): its model
# is listed on /v1/models, and the route is what is missing. Every other FastAPI server has both
# routes always, so there the same 404 means the baseUrl's path is wrong; the hints say both.
_NO_CHAT_ROUTE = (
    "the server has no chat route at {url}: a bare 404 Not Found from its web framework means a"
    " path it does not serve, not an unknown model. A vLLM started with --runner pooling serves embeddings only: serve a"
    " generating model for chat, or call its embeddings (genesis infer embedding create); otherwise check that baseUrl"
    " ends in the server's API prefix, usually /v1"
)

ROUTE_RULES: tuple[RouteRule, ...] = (
    RouteRule("vLLM --runner pooling; any FastAPI server under a wrong baseUrl", "/chat/completions", _NO_CHAT_ROUTE),
    # pipeline.embeddings rule 5 (its hint, one text for both paths that reach it).
    RouteRule("vLLM serving a generating model", "/embeddings", NO_ROUTE_HINT),
)


def missing_route_hint(status: int, body: bytes, url: str) -> str | None:
    """The hint of the ``ROUTE_RULES`` row whose path ``url`` ends in, when the answer is a bare no-route 404.

    >>> missing_route_hint(404, b'{"detail":"Not Found"}', "http://h/v1/chat/completions")[:55]
    'the server has no chat route at http://h/v1/chat/comple'
    >>> missing_route_hint(404, b'{"error":{"message":"The model `m` does not exist."}}', "http://h/v1/chat/completions") is None
    True
    """
    if status != 404 or NO_ROUTE_BODY.fullmatch(body) is None:
        return None
    path = urlsplit(url).path
    for rule in ROUTE_RULES:
        if path.endswith(rule.path):
            return rule.hint.format(url=url)
    return None


def hint_for(error_class: ErrorClass, message: str, ctx: HintContext) -> str | None:
    for rule in HINT_RULES:
        if _pattern(rule.pattern).search(message, 0, RAW_LIMIT):  # bounded: "tool.*x" is quadratic on a huge hostile message
            return rule.hint.format(model_path=ctx.model_path)
    if error_class is ErrorClass.UNREACHABLE:
        return f"the server is not running or not on that host/port; check it with: curl {ctx.base_url.rstrip('/')}/models"
    if error_class is ErrorClass.AUTH:
        return auth_hint(ctx)
    if error_class is ErrorClass.MODEL_NOT_FOUND:
        return f"the server does not serve this model id; curl {ctx.base_url.rstrip('/')}/models lists the ones it does"
    if error_class is ErrorClass.TIMEOUT:
        return f"the server did not answer in time; raise models.providers.{ctx.provider}.timeoutSeconds if it is just slow"
    if error_class is ErrorClass.CONTEXT_OVERFLOW:
        window = f" of {ctx.context_window} tokens" if ctx.context_window else ""
        return f"the prompt does not fit the model's context window{window}: shorten it or lower max_tokens"
    if error_class is ErrorClass.RATE_LIMIT:
        return "the server is rate limiting: retry later or add agents.defaults.model.fallbacks"
    return None


def auth_hint(ctx: HintContext) -> str:
    """What to change, named where the key in use really comes from (never the key itself).

    The config's apiKey wins over the provider's variable (SPEC 10, key sources), so a
    hint to set the variable while apiKey is set would change nothing.

    >>> ctx = HintContext("llamacpp", "http://h/v1", "llamacpp/m", "p", "config models.providers.llamacpp.apiKey", "LLAMACPP_API_KEY")
    >>> auth_hint(ctx)
    "the server refused the key from the config (models.providers.llamacpp.apiKey): set it to the server's key (its --api-key); LLAMACPP_API_KEY is not used while apiKey is set"
    """
    config_key = f"models.providers.{ctx.provider}.apiKey"
    source = ctx.key_source
    if source.startswith("config "):
        path = source.removeprefix("config ")
        unused = f"; {ctx.key_env} is not used while apiKey is set" if ctx.key_env else ""
        return f"the server refused the key from the config ({path}): set it to the server's key (its --api-key){unused}"
    if source.startswith("env "):
        variable = source.removeprefix("env ")
        return f"the server refused the key from the environment variable {variable}: set {variable} to the server's key (its --api-key), or set {config_key}"
    if source.startswith("profile "):
        file = source.removeprefix("profile ")
        first = f"{ctx.key_env} or {config_key}" if ctx.key_env else config_key
        return (
            f"the server refused the key from the auth profile for {ctx.provider} ({file}): store the server's key (its --api-key)"
            f" with `genesis auth set {ctx.provider}`, or set {first} (a key there comes first)"
        )
    if source == "none":
        where = f"set {config_key}" + (f" (or {ctx.key_env})" if ctx.key_env else "")
        return f"no key is sent and the server requires one: {where} to the server's key (its --api-key)"
    return f"the server refused the key from {source}: replace it there with the server's key (its --api-key), or set {config_key}"


# Event kinds that can stand for a failure; every other kind is passed without a call.
CHECKED_EVENTS = (ServerError, StreamFault, Finish)


def event_failure(event: object, answer: Aggregator, *, url: str, ref: str, context: HintContext) -> ProviderError | None:
    """The error an event stands for, if any: an error object, a protocol fault, or a finish that is not a completion."""
    if isinstance(event, ServerError):
        info = ErrorInfo(event.message, event.param, event.type, event.code)
        error_class = ErrorClass.CONTEXT_OVERFLOW if _overflow(info) else ErrorClass.SERVER_ERROR
        return ProviderError(
            error_class,
            event.message,
            url=url,
            status=200,
            ref=ref,
            hint=hint_for(error_class, event.message, context),
            secrets=context.secrets,
        )
    if isinstance(event, StreamFault):
        return ProviderError(ErrorClass.PROTOCOL, event.message, url=url, status=200, ref=ref, secrets=context.secrets)
    if isinstance(event, Finish) and event.reason not in FINISH_REASONS:
        if event.reason == "error":
            said = _one_line(answer.text[-300:]) or "(no message)"
            error_class = ErrorClass.CONTEXT_OVERFLOW if is_context_overflow(said) else ErrorClass.SERVER_ERROR
            return ProviderError(
                error_class,
                f"the server reported an error: {said}",
                url=url,
                status=200,
                ref=ref,
                hint=hint_for(error_class, said, context),
                secrets=context.secrets,
            )
        return ProviderError(
            ErrorClass.PROTOCOL, f"unknown finish_reason {event.reason!r}", url=url, status=200, ref=ref, secrets=context.secrets
        )
    return None
