"""OpenTelemetry for Genesis runs (``genesis[otel]``): GenAI spans and metrics by the semantic conventions.

Follows the OpenTelemetry GenAI semantic conventions v1.41.0 (open-telemetry/semantic-conventions:
docs/gen-ai/gen-ai-spans.md, docs/gen-ai/gen-ai-metrics.md, model/gen-ai/registry.yaml; the last
release before they moved to a repository of their own, unchanged there since). ``GenAITelemetry``
implements ``pipeline.telemetry.Telemetry``. Rules:

1. One span per run (what the caller asked for: a chat ``stream``/``run``, an SDK drop-in request,
   an ``embed``) and one child span per try it sent (a retry and a failover are each a try). Both are
   named ``{gen_ai.operation.name} {gen_ai.request.model}`` and of kind CLIENT (the model runs in
   another process, reached over HTTP). The run span's parent is the caller's current span.
2. ``gen_ai.operation.name`` is ``chat`` or ``embeddings``. ``gen_ai.provider.name`` (the name that
   replaced the deprecated ``gen_ai.system``) is the conventions' well-known value for a vendor's own
   API (by its host: ``api.openai.com`` is ``openai``, ...); a self-hosted server (vLLM, llama.cpp,
   SGLang, Ollama, ...) has none, so it is the Genesis provider id (``vllm``, ``llamacpp``, ...), a
   custom value as the conventions allow. ``openai`` is never used for a server that only speaks
   OpenAI's protocol: that value means OpenAI's own service.
3. The request parameters go under the conventions' names (``gen_ai.request.temperature``,
   ``max_tokens``, ``top_p``, ``top_k``, ``frequency_penalty``, ``presence_penalty``, ``seed``,
   ``stop_sequences``, ``choice.count`` when not 1, ``stream`` when streamed, ``gen_ai.output.type``
   from ``response_format``; for embeddings ``gen_ai.embeddings.dimension.count`` and
   ``gen_ai.request.encoding_formats``): a try's from the body it sent, the run's from the caller's
   request. A value of the wrong type is left out, never converted.
4. A failed try or run has ``error.type`` = its Genesis error class (``timeout``, ``rate_limit``, ...;
   ``pipeline.telemetry.error_type``), span status ERROR, and as the status description the error's
   one line with every secret scrubbed. A cancelled run, or one the caller stopped reading, is
   ``aborted``; a try it left open ends with it.
5. The run span carries the answer of the try that answered: ``gen_ai.response.model`` (the model the
   server names, for embeddings; for chat, the model that try was sent to: chunks' ``model`` field is
   not read), ``gen_ai.response.finish_reasons`` (one per choice), ``gen_ai.usage.*``;
   ``gen_ai.response.time_to_first_chunk`` for a streamed chat, from the run's start.
6. Metrics, once per run, with the conventions' bucket advice: ``gen_ai.client.operation.duration``
   (s), ``gen_ai.client.token.usage`` ({token}; input and output, when the server reported usage) and
   ``gen_ai.client.operation.time_to_first_chunk`` (s; streamed chat only), the conventions' client
   metric for the first piece of the answer (``time_to_first_token`` is only a server metric there).
7. No prompt or answer text unless ``capture_content=True``: then ``gen_ai.input.messages`` and
   ``gen_ai.output.messages`` on the run span, JSON strings in the conventions' message schema.
8. Every text a server sent or a request carried is scrubbed (``pipeline.secrets.scrub``) of the
   configured secrets and the keys the request's headers carry before it reaches a span; a URL
   gives only its host and port.
9. ``opentelemetry`` is imported when a ``GenAITelemetry`` is made, never when this module is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pipeline.secrets import Secrets, scrub, secrets_in_headers
from pipeline.telemetry import ABORTED, Operation, error_type
from pipeline.version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from pipeline.catalog import Catalog
    from pipeline.errors import GenesisError
    from pipeline.events import Completion, Usage
    from pipeline.refs import Target
    from pipeline.types import WireRequest

SEMCONV_VERSION = "1.41.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ_TOKENS = "gen_ai.usage.cache_read.input_tokens"
CACHE_CREATION_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
REASONING_TOKENS = "gen_ai.usage.reasoning.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOKEN_TYPE = "gen_ai.token.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
HTTP_STATUS = "http.response.status_code"
RETRY = "genesis.attempt.retry"  # 0 for a model's first try in the run, n for its n-th retry

# gen-ai-metrics.md: "SHOULD be specified with ExplicitBucketBoundaries of ..."
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)

# The conventions' well-known gen_ai.provider.name values, by the host of a vendor's own API (rule 2).
WELL_KNOWN_PROVIDERS: dict[str, str] = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "api.deepseek.com": "deepseek",
    "api.groq.com": "groq",
    "api.mistral.ai": "mistral_ai",
    "api.x.ai": "x_ai",
    "api.perplexity.ai": "perplexity",
    "api.cohere.com": "cohere",
    "api.cohere.ai": "cohere",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "aiplatform.googleapis.com": "gcp.vertex_ai",
}

# Request field -> (attribute, the types its value must have) (rule 3). bool is never a number here.
_FLOAT = (int, float)
CHAT_PARAMETERS: tuple[tuple[str, str, tuple[type, ...]], ...] = (
    ("temperature", "gen_ai.request.temperature", _FLOAT),
    ("max_tokens", "gen_ai.request.max_tokens", (int,)),
    ("max_completion_tokens", "gen_ai.request.max_tokens", (int,)),
    ("top_p", "gen_ai.request.top_p", _FLOAT),
    ("top_k", "gen_ai.request.top_k", _FLOAT),
    ("frequency_penalty", "gen_ai.request.frequency_penalty", _FLOAT),
    ("presence_penalty", "gen_ai.request.presence_penalty", _FLOAT),
    ("seed", "gen_ai.request.seed", (int,)),
)
EMBEDDINGS_PARAMETERS: tuple[tuple[str, str, tuple[type, ...]], ...] = (("dimensions", "gen_ai.embeddings.dimension.count", (int,)),)
OUTPUT_TYPES = {"text": "text", "json_object": "json", "json_schema": "json"}


def provider_name(provider_id: str, url: str) -> str:
    """``gen_ai.provider.name`` for a provider reached at ``url`` (rule 2).

    >>> provider_name("openai", "https://api.openai.com/v1"), provider_name("vllm", "http://127.0.0.1:8000/v1")
    ('openai', 'vllm')
    >>> provider_name("openai", "http://127.0.0.1:8000/v1")  # a local server under the name "openai" is not OpenAI
    'openai'
    """
    host = (urlsplit(url).hostname or "").lower()
    return WELL_KNOWN_PROVIDERS.get(host, provider_id)


def server_attributes(url: str) -> dict[str, Any]:
    """``server.address`` and ``server.port`` of ``url``: never its user, password, path or query (rule 8).

    >>> server_attributes("https://user:sk-1@api.example.com/v1")
    {'server.address': 'api.example.com', 'server.port': 443}
    >>> server_attributes("http://[::1]:8080/v1"), server_attributes("not a url")
    ({'server.address': '::1', 'server.port': 8080}, {})
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return {}
    if not parts.hostname:
        return {}
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    port = port if port is not None else default
    return {SERVER_ADDRESS: parts.hostname} | ({} if port is None else {SERVER_PORT: port})


def request_attributes(operation: Operation, body: Mapping[str, Any], clean: Callable[[str], str] = str) -> dict[str, Any]:
    """The request parameters of ``body`` under the conventions' names (rule 3); the caller's free text
    (stop sequences) passed through ``clean`` (the run's scrub, rule 8).

    >>> request_attributes("chat", {"temperature": 0.2, "max_tokens": 64, "stop": "END", "n": 2, "stream": True, "seed": True})
    {'gen_ai.request.temperature': 0.2, 'gen_ai.request.max_tokens': 64, 'gen_ai.request.stop_sequences': ('END',), 'gen_ai.request.choice.count': 2, 'gen_ai.request.stream': True}
    >>> request_attributes("embeddings", {"dimensions": 256, "encoding_format": "float"})
    {'gen_ai.embeddings.dimension.count': 256, 'gen_ai.request.encoding_formats': ('float',)}
    """
    found: dict[str, Any] = {}
    for field, attribute, kinds in CHAT_PARAMETERS if operation == "chat" else EMBEDDINGS_PARAMETERS:
        value = body.get(field)
        if isinstance(value, kinds) and not isinstance(value, bool):
            found[attribute] = value
    if operation == "embeddings":
        encoding = body.get("encoding_format")
        if isinstance(encoding, str):
            found["gen_ai.request.encoding_formats"] = (encoding,)
        return found
    stop = body.get("stop")
    if isinstance(stop, str):
        found["gen_ai.request.stop_sequences"] = (clean(stop),)
    elif isinstance(stop, list) and stop and all(isinstance(item, str) for item in stop):
        found["gen_ai.request.stop_sequences"] = tuple(clean(item) for item in stop)
    choices = body.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices != 1:
        found["gen_ai.request.choice.count"] = choices
    if body.get("stream") is True:
        found["gen_ai.request.stream"] = True
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") in OUTPUT_TYPES:
        found["gen_ai.output.type"] = OUTPUT_TYPES[response_format["type"]]
    return found


def usage_attributes(usage: Usage | None) -> dict[str, int]:
    """``gen_ai.usage.*``; cached and reasoning counts only when the server reported them (they are part of the totals).

    >>> from pipeline.events import Usage
    >>> usage_attributes(Usage(prompt_tokens=12, completion_tokens=5, cached_tokens=4))
    {'gen_ai.usage.input_tokens': 12, 'gen_ai.usage.output_tokens': 5, 'gen_ai.usage.cache_read.input_tokens': 4}
    """
    if usage is None:
        return {}
    found = {INPUT_TOKENS: usage.prompt_tokens, OUTPUT_TOKENS: usage.completion_tokens}
    for attribute, count in (
        (CACHE_READ_TOKENS, usage.cached_tokens),
        (CACHE_CREATION_TOKENS, usage.cache_write_tokens),
        (REASONING_TOKENS, usage.reasoning_tokens),
    ):
        if count:
            found[attribute] = count
    return found


def span_name(operation: str, model: str | None) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``; the operation alone when the model is not known.

    >>> span_name("chat", "tiny-model"), span_name("embeddings", None)
    ('chat tiny-model', 'embeddings')
    """
    return f"{operation} {model}" if model else operation


# ---- opt-in content (rule 7): the conventions' input and output message schema ----


def input_messages(messages: Any) -> list[dict[str, Any]]:
    """Chat messages (OpenAI's shape) as the conventions' input messages; what is not a message is left out.

    >>> input_messages([{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c1", "content": "17C"}])
    [{'role': 'user', 'parts': [{'type': 'text', 'content': 'hi'}]}, {'role': 'tool', 'parts': [{'type': 'tool_call_response', 'id': 'c1', 'response': '17C'}]}]
    """
    if not isinstance(messages, list):
        return []
    converted = []
    for message in messages:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            continue
        role, content = message["role"], message.get("content")
        if role == "tool":
            parts: list[dict[str, Any]] = [{"type": "tool_call_response", "id": message.get("tool_call_id"), "response": content}]
        else:
            parts = _content_parts(content)
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, Mapping) else None
                if isinstance(function, Mapping):
                    parts.append(
                        {"type": "tool_call", "id": call.get("id"), "name": function.get("name"), "arguments": function.get("arguments")}
                    )
        converted.append({"role": role, "parts": parts})
    return converted


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            parts.append({"type": "text", "content": part.get("text")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            parts.append({"type": "uri", "modality": "image", "uri": url})
        elif isinstance(kind, str):
            parts.append({"type": kind})
    return parts


def output_messages(answer: Completion) -> list[dict[str, Any]]:
    """Each choice of an answer as one output message (reasoning, text, tool calls).

    >>> from pipeline.events import Completion
    >>> output_messages(Completion("4", "stop", "stop", reasoning="2+2"))
    [{'role': 'assistant', 'parts': [{'type': 'reasoning', 'content': '2+2'}, {'type': 'text', 'content': '4'}], 'finish_reason': 'stop'}]
    """
    from pipeline.events import Output

    outputs = answer.outputs or (
        Output(0, answer.text, answer.finish_reason, answer.raw_finish_reason, answer.reasoning, answer.tool_calls),
    )
    messages = []
    for output in outputs:
        parts: list[dict[str, Any]] = []
        if output.reasoning:
            parts.append({"type": "reasoning", "content": output.reasoning})
        if output.text:
            parts.append({"type": "text", "content": output.text})
        for call in output.tool_calls:
            parts.append({"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.arguments})
        messages.append({"role": "assistant", "parts": parts, "finish_reason": output.raw_finish_reason})
    return messages


# ---- the adapter ----


class GenAITelemetry:
    """``Genesis(..., telemetry=GenAITelemetry())``: spans and metrics of every run, by the GenAI conventions.

    ``tracer_provider`` and ``meter_provider``: a service's own; by default the global ones
    (``opentelemetry.trace.set_tracer_provider``). ``capture_content``: record the prompt and the
    answer on the run span (off by default: they may hold personal data)."""

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        capture_content: bool = False,
    ) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError as error:  # rule 9: the extra is needed only here
            raise ImportError("OpenTelemetry is not installed: pip install 'genesis[otel]'") from error
        self.capture_content = capture_content
        self.tracer = trace.get_tracer("genesis", __version__, tracer_provider, schema_url=SCHEMA_URL)
        meter = metrics.get_meter("genesis", __version__, meter_provider, schema_url=SCHEMA_URL)
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk, measured from when the client issues the generation request.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def start_run(self, operation: Operation, ref: str | None, request: Mapping[str, Any], catalog: Catalog) -> _Run:
        return _Run(self, operation, ref, request, catalog)


class _Try:
    __slots__ = ("span", "started", "wire")

    def __init__(self, span: Span, wire: WireRequest) -> None:
        self.span, self.wire, self.started = span, wire, time.perf_counter()


class _Run:
    """One run's span, its tries' spans, and its metrics (``pipeline.telemetry.RunObserver``)."""

    def __init__(
        self, telemetry: GenAITelemetry, operation: Operation, ref: str | None, request: Mapping[str, Any], catalog: Catalog
    ) -> None:
        from opentelemetry.trace import SpanKind

        self._telemetry, self._operation, self._request = telemetry, operation, request
        self._streamed = operation == "chat" and request.get("stream") is True  # time to first chunk: streamed chats only
        self._secrets = Secrets(catalog.secrets)
        self._started = time.perf_counter()
        self._first_chunk: float | None = None
        self._try: _Try | None = None
        self._answer: dict[str, Any] = {}  # the attributes of the try that answered (rule 5)
        self._completion: Completion | None = None
        self._usage: Usage | None = None
        resolved = _resolved(catalog, ref)
        self._model = _requested_model(resolved, ref)
        # Set at creation, for sampling (gen-ai-spans.md): operation, provider, model, server.
        self._target: dict[str, Any] = {OPERATION: operation}
        if resolved is not None:
            provider = resolved.provider
            self._target |= {PROVIDER: provider_name(provider.id, provider.base_url), **server_attributes(provider.base_url)}
        if self._model:
            self._target[REQUEST_MODEL] = self._model
        attributes = self._target | request_attributes(operation, request, self._clean)
        self.span = telemetry.tracer.start_span(span_name(operation, self._model), kind=SpanKind.CLIENT, attributes=attributes)

    def attempt_started(self, wire: WireRequest, retry: int) -> None:
        from opentelemetry.trace import SpanKind, set_span_in_context

        self._secrets = self._secrets | secrets_in_headers(wire.headers, wire.secret_headers)
        target = {OPERATION: self._operation, PROVIDER: provider_name(wire.provider, wire.url), **server_attributes(wire.url)}
        # A failover moves the run to another provider and server: the run span names the last one tried.
        self._target = self._target | {key: value for key, value in target.items() if key != OPERATION}
        self.span.set_attributes(self._target)
        body = wire.context.body if wire.context is not None else {}
        attributes = target | {REQUEST_MODEL: wire.model, RETRY: retry} | request_attributes(self._operation, body, self._clean)
        span = self._telemetry.tracer.start_span(
            span_name(self._operation, wire.model), context=set_span_in_context(self.span), kind=SpanKind.CLIENT, attributes=attributes
        )
        self._try = _Try(span, wire)

    def attempt_ended(
        self,
        error: GenesisError | None,
        *,
        status: int | None,
        answer: Completion | None = None,
        usage: Usage | None = None,
        response_model: str | None = None,
    ) -> None:
        tried, self._try = self._try, None
        if tried is None:
            return
        span = tried.span
        if status is not None:
            span.set_attribute(HTTP_STATUS, status)
        if error is not None:
            self._fail(span, error)
        else:
            self._completion, self._usage = answer, usage if answer is None else answer.usage
            counts = usage_attributes(self._usage)
            if self._operation == "embeddings":  # the embeddings span has input tokens only (gen-ai-spans.md)
                counts = {key: value for key, value in counts.items() if key == INPUT_TOKENS}
            self._answer = {RESPONSE_MODEL: self._clean(response_model or tried.wire.model)} | counts
            if answer is not None:
                self._answer[FINISH_REASONS] = tuple(self._clean(reason) for reason in _finish_reasons(answer))
            span.set_attributes(self._answer)
        span.end()

    def first_token(self) -> None:
        if not self._streamed:
            return
        now = time.perf_counter()
        if self._first_chunk is None:
            self._first_chunk = now - self._started
        if self._try is not None:
            self._try.span.set_attribute(TIME_TO_FIRST_CHUNK, now - self._try.started)

    def ended(self, error: BaseException | None) -> None:
        if self._try is not None:  # cancelled, closed or broken mid-try: the try ends with the run
            self._end_open_try(error)
        span = self.span
        span.set_attributes(self._answer)
        if self._first_chunk is not None:
            span.set_attribute(TIME_TO_FIRST_CHUNK, self._first_chunk)
        if self._telemetry.capture_content:
            self._record_content(span)
        if error is not None:
            self._fail(span, error)
        span.end()
        self._record_metrics(error)

    def _end_open_try(self, error: BaseException | None) -> None:
        tried, self._try = self._try, None
        assert tried is not None
        if error is not None:
            self._fail(tried.span, error)
        tried.span.end()

    def _fail(self, span: Span, error: BaseException) -> None:
        from opentelemetry.trace import Status, StatusCode

        from pipeline.errors import GenesisError

        kind = error_type(error)
        if kind == ABORTED and not isinstance(error, GenesisError):
            description = "aborted: the caller cancelled the run or stopped reading it"
        else:
            description = self._clean(" ".join(str(error).split()) or kind)
        span.set_attribute(ERROR_TYPE, kind)
        span.set_status(Status(StatusCode.ERROR, description))

    def _record_content(self, span: Span) -> None:
        import msgspec

        if self._operation == "chat":
            span.set_attribute(INPUT_MESSAGES, self._clean(msgspec.json.encode(input_messages(self._request.get("messages"))).decode()))
        if self._completion is not None:
            span.set_attribute(OUTPUT_MESSAGES, self._clean(msgspec.json.encode(output_messages(self._completion)).decode()))

    def _record_metrics(self, error: BaseException | None) -> None:
        telemetry = self._telemetry
        attributes = dict(self._target) | ({RESPONSE_MODEL: self._answer[RESPONSE_MODEL]} if RESPONSE_MODEL in self._answer else {})
        telemetry.duration.record(
            time.perf_counter() - self._started, attributes | ({} if error is None else {ERROR_TYPE: error_type(error)})
        )
        if self._usage is not None:
            telemetry.tokens.record(self._usage.prompt_tokens, attributes | {TOKEN_TYPE: "input"})
            if self._operation == "chat":
                telemetry.tokens.record(self._usage.completion_tokens, attributes | {TOKEN_TYPE: "output"})
        if self._first_chunk is not None:
            telemetry.first_chunk.record(self._first_chunk, attributes)

    def _clean(self, text: str) -> str:
        return scrub(text, self._secrets)


def _finish_reasons(answer: Completion) -> tuple[str, ...]:
    return tuple(output.raw_finish_reason for output in answer.outputs) or (answer.raw_finish_reason,)


def _requested_model(resolved: Target | None, ref: str | None) -> str | None:
    """The model id the caller asked for: the resolved one, else the ref's model part as written."""
    from pipeline.ref_syntax import split_ref

    if resolved is not None:
        return resolved.model.config.id
    if not ref:
        return None
    parts = split_ref(ref)
    return parts[1] if parts else ref


def _resolved(catalog: Catalog, ref: str | None) -> Target | None:
    """What ``ref`` resolves to (the primary model for None); None when it does not (the run then fails on it)."""
    from pipeline.errors import GenesisError
    from pipeline.refs import resolve

    try:
        return resolve(catalog, ref)
    except GenesisError:
        return None
