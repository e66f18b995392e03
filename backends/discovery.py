"""Discovery: ask a server which models it serves (``GET {baseUrl}/models``).

Rules (SPEC 5): Bearer key; the provider's send policy (caps, TLS), with
its timeouts shortened to 5 s; each ``data[].id`` becomes a model
entry named by its id; ``max_model_len`` (vLLM) or ``meta.n_ctx``
(llama.cpp) becomes ``contextWindow``, else 128000; reasoning is guessed
from the id. No ``maxTokens`` is written: an explicit one would be sent with
every request (and vLLM rejects a limit that leaves no room for the prompt);
the limit shown is the default cut to the window
(``ModelConfig.max_tokens_limit``: 1024 for a 1k model, never 8192). Every failure, whatever raised it, is a ProviderError
(classified by ``backends.http.transport_error``, as for chat requests) for
the caller to turn into a warning; it never stops a run.
"""

from __future__ import annotations

import re
import time

import httpx
import msgspec

from backends.classify import HintContext
from backends.http import Exchange, fetch_body, transport_error
from pipeline.catalog import ProviderEntry
from pipeline.config import ModelConfig
from pipeline.errors import ErrorClass, ProviderError
from pipeline.secrets import Secrets, secrets_in_headers

DISCOVERY_TIMEOUT = 5.0
DEFAULT_CONTEXT_WINDOW = 128000
_REASONING_ID = re.compile(r"r1|reasoning|think|reason", re.IGNORECASE)


class _Meta(msgspec.Struct):
    n_ctx: int | None = None


class _ServedModel(msgspec.Struct):
    id: str
    max_model_len: int | None = None
    meta: _Meta | None = None


class _ModelList(msgspec.Struct):
    data: list[_ServedModel]


_MODEL_LIST = msgspec.json.Decoder(_ModelList)


def models_from_listing(body: bytes) -> list[ModelConfig]:
    """Model entries from a ``/models`` body (raises msgspec errors on other shapes).

    >>> [(m.id, m.context_window, m.reasoning) for m in models_from_listing(
    ...     b'{"data": [{"id": "tiny-model", "max_model_len": 1024}, {"id": "deepseek-r1", "meta": {"n_ctx": 4096}}]}')]
    [('tiny-model', 1024, False), ('deepseek-r1', 4096, True)]
    """
    listing = _MODEL_LIST.decode(body)
    models = []
    for served in listing.data:
        window = served.max_model_len or (served.meta.n_ctx if served.meta else None) or DEFAULT_CONTEXT_WINDOW
        models.append(ModelConfig(id=served.id, reasoning=bool(_REASONING_ID.search(served.id)), context_window=window))
    return models


def models_url(provider: ProviderEntry) -> str:
    return provider.base_url.rstrip("/") + "/models"


def auth_headers(provider: ProviderEntry) -> dict[str, str]:
    headers = dict(provider.headers)
    if provider.api_key and provider.auth_header:
        headers["Authorization"] = f"Bearer {provider.api_key}"
    return headers


def provider_hints(provider: ProviderEntry) -> HintContext:
    return HintContext(
        provider.id,
        provider.base_url,
        provider.id,
        provider.config_path,
        provider.key_source,
        provider.key_env,
        secrets=Secrets({provider.api_key} if provider.api_key else ()) | secrets_in_headers(provider.headers),
    )


async def fetch_from(client: httpx.AsyncClient, provider: ProviderEntry, url: str, timeout: float = DISCOVERY_TIMEOUT) -> bytes:
    """A GET of ``url`` with the provider's key and send policy, its timeouts shortened to ``timeout``.

    Every failure is a ProviderError: an HTTP error status as ``backends.classify``
    classes it, anything else (a custom transport's own exceptions included)
    through ``backends.http.transport_error``, the one mapping chat requests use.
    """
    policy = msgspec.structs.replace(
        provider.policy,
        connect_timeout=min(provider.policy.connect_timeout, timeout),
        read_timeout=min(provider.policy.read_timeout, timeout),
        total_timeout=min(provider.policy.total_timeout, timeout),
    )
    exchange = Exchange(url, provider.id, provider_hints(provider), policy)
    try:
        return await fetch_body(client, "GET", url, list(auth_headers(provider).items()), exchange)
    except ProviderError:
        raise
    except Exception as exc:  # a warning for the caller, never a crash; cancellation is no Exception
        raise transport_error(exc, exchange) from None


async def fetch_models(
    client: httpx.AsyncClient, provider: ProviderEntry, timeout: float = DISCOVERY_TIMEOUT
) -> tuple[list[ModelConfig], float]:
    """The models a provider's server lists, and how long it took (seconds). Every failure is a ProviderError."""
    url = models_url(provider)
    started = time.perf_counter()
    body = await fetch_from(client, provider, url, timeout)
    elapsed = time.perf_counter() - started
    try:
        return models_from_listing(body), elapsed
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        text = body[:200].decode("utf-8", "replace")
        raise ProviderError(
            ErrorClass.FORMAT, f"not a model list ({exc}): {text}", url=url, status=200, secrets=provider_hints(provider).secrets
        ) from None
