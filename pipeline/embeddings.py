"""Embeddings (``POST /v1/embeddings``): the request, how the stages apply, and the answer. No I/O.

The shapes are the servers' own: vLLM's ``EmbeddingCompletionRequest``/``EmbeddingResponse``
(vllm-project/vllm ``vllm/entrypoints/pooling/embed/protocol.py``) and llama.cpp's
``format_embeddings_response_oaicompat`` (ggml-org/llama.cpp ``tools/server/server-common.cpp``):
a body ``{"model", "input", ...}`` where ``input`` is a string, a list of strings, a list of token
ids or a list of those; an answer ``{"data": [{"index", "embedding": [floats]}], "model", "usage":
{"prompt_tokens", "total_tokens"}}`` (llama.cpp: no ``id``; vLLM: ``id`` and ``created`` too).

Rules:

1. The request is checked before any stage runs: ``input`` present and not empty (no empty
   string: vLLM and OpenAI refuse one), no ``stream`` (an embeddings answer is one JSON
   object), ``encoding_format`` only ``"float"`` (the vectors are decoded as JSON numbers;
   base64 is each server's own byte layout), ``dimensions`` a positive integer. Every other
   field goes through as given (``user``, vLLM's ``truncate_prompt_tokens``, ...).
2. Of the pipeline's request-side stages, ``resolve_ref`` and ``attach_headers`` run (the
   pipeline's own, so a replaced one applies); every other one shapes chat requests
   (defaults such as ``max_tokens``, compat flags about messages and tools, custom stages
   written for ``messages``) and is not run: the trace says so, one line per stage.
3. The wire request goes to ``<baseUrl>/embeddings``, never streamed, its body encoded once.
4. The answer is hostile until decoded: one msgspec decoder (built once) into Structs that
   hold only what is used; then one vector per input, indices exactly 0..n-1 (put in input
   order), every vector the same non-zero length (the ``dimensions`` asked for, if any: a server
   that ignores it must not pass off vectors of another size); a number beyond float range is
   refused by the decoder (JSON has no NaN or infinity). Anything else is a
   ``ProviderError`` of class ``protocol`` saying what is wrong, never a traceback.
5. A 404 whose body is a web framework's bare ``{"detail": "Not Found"}`` is a server with no
   ``/v1/embeddings`` route, not an unknown model: vLLM registers it only when the model runs
   with the pooling runner (vllm-project/vllm ``vllm/entrypoints/launchers/api_server/routers.py``:
   the pooling routers for pooling tasks, the chat ones for ``generate``). The class stays
   ``model_not_found`` (no model of that server serves embeddings); the hint says how to serve them.
   The rule is one row of ``backends.classify.ROUTE_RULES`` (beside the chat route's), which every
   answer of the send stage passes through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeAlias

import msgspec
from returns.result import Failure, Result, Success

from pipeline.errors import ErrorClass, GenesisError, ProviderError, RequestError
from pipeline.events import Attempt, Usage
from pipeline.trace import Change, removed
from pipeline.types import Context, WireRequest

EmbeddingInput: TypeAlias = "Mapping[str, Any] | str | Sequence[str]"

EMBEDDING_STAGES = frozenset({"resolve_ref", "attach_headers"})
SKIPPED_RULE = "not run for an embeddings request: it shapes chat requests"
EMBEDDINGS_PATH = "/embeddings"

NOT_EMBEDDINGS_HINT = (
    "the server did not answer as /v1/embeddings does; is the model served for embeddings"
    " (llama.cpp: --embeddings --pooling mean; vLLM: --runner pooling)?"
)
NO_ROUTE_HINT = (
    "the server has no /v1/embeddings route (it answered a bare 404 Not Found, not an unknown model): a vLLM serving"
    " a generating model has none; serve embeddings with vLLM --runner pooling (--convert embed for a generative model),"
    " or llama.cpp --embeddings; otherwise check that baseUrl ends in the server's API prefix, usually /v1"
)
IGNORED_DIMENSIONS_HINT = "this server or model ignores dimensions (llama.cpp does): leave it out, or use a model that supports it"

_ENCODER = msgspec.json.Encoder()


# ---- the request ----


def embedding_body(request: EmbeddingInput) -> tuple[dict[str, Any], int]:
    """The request body (a new dict) and how many vectors it asks for; a RequestError if unusable (rule 1).

    >>> embedding_body("hi")
    ({'input': 'hi'}, 1)
    >>> embedding_body(["a", "b"])
    ({'input': ['a', 'b']}, 2)
    >>> embedding_body({"input": [[1, 2], [3]], "dimensions": 8})
    ({'input': [[1, 2], [3]], 'dimensions': 8}, 2)
    >>> embedding_body({"input": ["a", ""]})
    Traceback (most recent call last):
    ...
    pipeline.errors.RequestError: input[1] is an empty string; servers refuse to embed nothing
    """
    if isinstance(request, str):
        body: dict[str, Any] = {"input": request}
    elif isinstance(request, Mapping):
        body = dict(request)
    elif isinstance(request, Sequence):
        body = {"input": list(request)}
    else:
        raise RequestError(f"an embeddings request is a string, a list of strings or an object with input, not {type(request).__name__}")
    if "input" not in body:
        raise RequestError("the embeddings request has no input", hint='give "input": a string or a list of strings')
    count = input_count(body["input"])
    if body.get("stream") not in (None, False):
        raise RequestError("stream: an embeddings answer is one JSON object, never streamed", hint='leave "stream" out')
    body.pop("stream", None)
    encoding = body.get("encoding_format")
    if encoding not in (None, "float"):
        raise RequestError(
            f"encoding_format {encoding!r} is not supported: the vectors are decoded as JSON numbers",
            hint='leave encoding_format out, or set it to "float"',
        )
    dimensions = body.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or dimensions < 1):
        raise RequestError(f"dimensions must be a positive integer, not {dimensions!r}")
    return body, count


def input_count(value: Any) -> int:
    if isinstance(value, str):
        if not value:
            raise RequestError("input is an empty string; servers refuse to embed nothing")
        return 1
    if not isinstance(value, list) or not value:
        raise RequestError("input must be a string or a non-empty list (of strings, of token ids, or of token-id lists)")
    if all(_is_token(item) for item in value):
        return 1  # one input given as token ids
    for position, item in enumerate(value):
        if isinstance(item, str):
            if not item:
                raise RequestError(f"input[{position}] is an empty string; servers refuse to embed nothing")
        elif not (isinstance(item, list) and item and all(_is_token(token) for token in item)):
            raise RequestError(f"input[{position}] must be a non-empty string or a non-empty list of token ids (integers)")
    return len(value)


def _is_token(value: Any) -> bool:
    return type(value) is int and value >= 0


class StageList(Protocol):
    """What an embeddings build needs of a ``pipeline.runner.Pipeline`` (a Protocol: the core does not import the runner)."""

    @property
    def request_stages(self) -> tuple[Any, ...]: ...

    def remove(self, anchor: str) -> StageList: ...

    def run(self, ctx: Context) -> Result[Context, GenesisError]: ...


def build_embedding(
    pipeline: StageList,
    catalog: Any,
    request: EmbeddingInput,
    *,
    ref: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> Result[WireRequest, GenesisError]:
    """The exact wire request for an embeddings request (rules 1 to 3)."""
    try:
        body, _ = embedding_body(request)
    except GenesisError as error:
        return Failure(error)
    kept, skipped = _embedding_stages(pipeline)
    ctx = Context(catalog=catalog, request=body, body=body, ref=ref, caller_headers=tuple(headers), trace=skipped)
    return kept.run(ctx).bind(_encode)


_last_reduced: tuple[StageList, StageList, tuple[Change, ...]] | None = None  # (pipeline, reduced, skipped): one Genesis, one reduction


def _embedding_stages(pipeline: StageList) -> tuple[StageList, tuple[Change, ...]]:
    """``pipeline`` without the chat-only request stages, and a trace line for each left out; the last
    pipeline's reduction is kept (a pipeline is immutable), so a run of embed calls reduces it once."""
    global _last_reduced
    last = _last_reduced
    if last is not None and last[0] is pipeline:
        return last[1], last[2]
    kept = pipeline
    skipped: list[Change] = []
    for stage in pipeline.request_stages:
        if stage.name not in EMBEDDING_STAGES:
            kept = kept.remove(stage.name)
            skipped.append(removed(stage.name, "(stage)", SKIPPED_RULE))
    _last_reduced = (pipeline, kept, tuple(skipped))
    return kept, tuple(skipped)


def _encode(ctx: Context) -> Result[WireRequest, GenesisError]:
    target = ctx.target
    if target is None:
        return Failure(RequestError("no model was resolved; the resolve_ref stage must run for an embeddings request"))
    try:
        body = _ENCODER.encode(ctx.body)
    except (TypeError, ValueError, OverflowError) as exc:
        return Failure(RequestError(f"the embeddings request cannot be encoded as JSON: {exc}"))
    return Success(
        WireRequest(
            method="POST",
            url=target.provider.base_url.rstrip("/") + EMBEDDINGS_PATH,
            headers=ctx.headers,
            body=body,
            secret_headers=ctx.secret_headers,
            provider=target.provider.id,
            model=target.model.config.id,
            ref=target.ref,
            stream=False,
            policy=target.provider.policy,
            context=ctx,
        )
    )


# ---- the answer ----


class Embeddings(msgspec.Struct, frozen=True, omit_defaults=True):
    """The vectors, one per input in input order, and where they came from."""

    vectors: list[list[float]]
    provider: str
    model: str  # the configured model id the request went to
    ref: str
    server_model: str | None = None  # the model the server says answered, when it says
    usage: Usage | None = None
    attempts: tuple[Attempt, ...] = ()

    @property
    def dimensions(self) -> int:
        return len(self.vectors[0]) if self.vectors else 0


class _Item(msgspec.Struct):
    index: int
    embedding: list[float]


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    total_tokens: int = 0


class _Answer(msgspec.Struct):
    data: list[_Item]
    model: str | None = None
    usage: _Usage | None = None


_DECODER = msgspec.json.Decoder(_Answer)


def decode_embeddings(body: bytes, wire: WireRequest, *, count: int, status: int | None = 200) -> Embeddings:
    """The vectors of a 200 answer, checked (rule 4); a ProviderError of class ``protocol`` otherwise.

    >>> wire = WireRequest("POST", "http://h/v1/embeddings", (), b"", provider="p", model="m", ref="p/m")
    >>> decode_embeddings(b'{"data":[{"index":0,"embedding":[0.5,1]}],"usage":{"prompt_tokens":2,"total_tokens":2}}', wire, count=1).vectors
    [[0.5, 1.0]]
    >>> decode_embeddings(b'{"data":[]}', wire, count=1)
    Traceback (most recent call last):
    ...
    pipeline.errors.ProviderError: p/m: protocol: the embeddings answer has 0 vectors for 1 input (HTTP 200 from http://h/v1/embeddings)
    """

    def unusable(problem: str, hint: str = NOT_EMBEDDINGS_HINT) -> ProviderError:
        return ProviderError(
            ErrorClass.PROTOCOL,
            problem,
            url=wire.url,
            status=status,
            ref=wire.ref,
            raw=body[:500].decode("utf-8", "replace"),
            hint=hint,
        )

    try:
        answer = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise unusable(f"the embeddings answer is not usable: {exc}") from None
    except msgspec.DecodeError as exc:
        raise unusable(f"the embeddings answer is not JSON: {exc}") from None
    items = answer.data
    if len(items) != count:
        inputs = "input" if count == 1 else "inputs"
        raise unusable(f"the embeddings answer has {len(items)} vectors for {count} {inputs}")
    by_index = sorted(items, key=lambda item: item.index)
    if [item.index for item in by_index] != list(range(count)):
        raise unusable(f"the embeddings answer's indices are {[item.index for item in items]}, not 0 to {count - 1} once each")
    width = len(by_index[0].embedding)
    for item in by_index:
        if not item.embedding or len(item.embedding) != width:
            raise unusable(f"vector {item.index} has {len(item.embedding)} numbers; vector 0 has {width} (they must be equal and not 0)")
    asked = None if wire.context is None else wire.context.body.get("dimensions")
    if asked is not None and width != asked:
        raise unusable(f"the vectors have {width} numbers; the request asked for dimensions {asked}", IGNORED_DIMENSIONS_HINT)
    usage = None if answer.usage is None else Usage(prompt_tokens=answer.usage.prompt_tokens, total_tokens=answer.usage.total_tokens)
    return Embeddings(
        vectors=[item.embedding for item in by_index],
        provider=wire.provider,
        model=wire.model,
        ref=wire.ref,
        server_model=answer.model,
        usage=usage,
    )
