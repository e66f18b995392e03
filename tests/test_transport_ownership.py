"""The OpenAI SDK transports close only what they made (``pipeline.openai_transport``, ``pipeline.openai_httpx2``).

One row per transport (sync and async, over httpx2 and httpx), each with the real ``openai`` client
closed the SDK's way (``client.close()``, ``async with``). The caller's ``Genesis`` is built on an
injected HTTP transport that counts its closes, so a transport that closes the Genesis's client (or the
loop-local copy's, which wraps the same injected transport) is seen:

- after the SDK client is closed, the injected transport was never closed, the Genesis's own HTTP
  client (made before the SDK's first request) is still open, and the Genesis still answers a request.
"""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import msgspec
import openai
import pytest

from pipeline import openai_httpx2, openai_transport
from pipeline.api import Genesis

ANSWER = msgspec.json.encode(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
    }
)
HI = {"messages": [{"role": "user", "content": "hi"}], "stream": False}


class CountingTransport(httpx.AsyncBaseTransport):
    """The caller's own transport: answers every request with ``ANSWER`` and counts its closes."""

    def __init__(self) -> None:
        self.requests = 0
        self.closes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return httpx.Response(200, headers={"content-type": "application/json"}, content=ANSWER)

    async def aclose(self) -> None:
        self.closes += 1


def callers_genesis() -> tuple[Genesis, CountingTransport]:
    injected = CountingTransport()
    text = '{models: {providers: {vllm: {baseUrl: "http://vllm.invalid/v1", apiKey: "k", maxRetries: 0, models: [{id: "m"}]}}}}'
    return Genesis.from_config_text(text, env={}, transport=injected), injected


def sdk_http(library: str, *, sync: bool, genesis: Genesis) -> Any:
    """An HTTP client of ``library`` for the SDK, on the matching Genesis transport."""
    module: Any = openai_httpx2 if library == "httpx2" else openai_transport
    http: Any = httpx2 if library == "httpx2" else httpx
    if sync:
        return http.Client(transport=module.OpenAITransport(genesis))
    return http.AsyncClient(transport=module.AsyncOpenAITransport(genesis))


def still_usable(genesis: Genesis, injected: CountingTransport, callers_client: Any) -> None:
    assert injected.closes == 0, "the transport closed the caller's injected HTTP transport"
    assert not callers_client.is_closed and genesis.client() is callers_client, "the transport closed the caller's Genesis"
    assert genesis.run_sync("vllm/m", HI).text == "Hello"


@pytest.mark.parametrize("library", ["httpx2", "httpx"])
def test_the_sync_transport_leaves_the_callers_genesis_open(library: str) -> None:
    genesis, injected = callers_genesis()
    callers_client = genesis.client()
    with openai.OpenAI(
        api_key="sk-sdk", base_url="http://sdk.invalid/v1", http_client=sdk_http(library, sync=True, genesis=genesis)
    ) as sdk:
        assert (
            sdk.chat.completions.create(model="vllm/m", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content == "Hello"
        )
    assert injected.requests == 1
    still_usable(genesis, injected, callers_client)


@pytest.mark.anyio
@pytest.mark.parametrize("library", ["httpx2", "httpx"])
async def test_the_async_transport_leaves_the_callers_genesis_open(anyio_backend: str, library: str) -> None:
    genesis, injected = callers_genesis()
    callers_client = genesis.client()
    http = sdk_http(library, sync=False, genesis=genesis)
    async with openai.AsyncOpenAI(api_key="sk-sdk", base_url="http://sdk.invalid/v1", http_client=http) as sdk:
        answer = await sdk.chat.completions.create(model="vllm/m", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content == "Hello"
    assert injected.closes == 0 and not callers_client.is_closed and genesis.client() is callers_client
    assert (await genesis.run("vllm/m", HI)).text == "Hello"
    await genesis.aclose()  # the caller's to close
    assert injected.closes == 1 and callers_client.is_closed


EMBEDDING = msgspec.json.encode(
    {"object": "list", "model": "m", "data": [{"index": 0, "embedding": [0.6, 0.8]}], "usage": {"prompt_tokens": 1, "total_tokens": 1}}
)


class CountingAnswers(CountingTransport):
    """``CountingTransport`` that answers a chat or an embeddings request as its path asks."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        body = EMBEDDING if request.url.path.endswith("/embeddings") else ANSWER
        return httpx.Response(200, headers={"content-type": "application/json"}, content=body)


def _run_sync(genesis: Genesis) -> object:
    return genesis.run_sync("vllm/m", HI).text


def _stream_sync(genesis: Genesis) -> object:
    with genesis.stream_sync("vllm/m", HI) as events:
        return [type(event).__name__ for event in events]


def _embed_sync(genesis: Genesis) -> object:
    return genesis.embed_sync("vllm/m", "hi").vectors


# One row per sync form of the facade: each runs on a copy of the Genesis in a private loop, whose HTTP client
# is closed when the call ends; the caller's injected transport is lent to that client, never closed with it.
SYNC_FORMS = {"run_sync": _run_sync, "stream_sync": _stream_sync, "embed_sync": _embed_sync}


@pytest.mark.parametrize("form", list(SYNC_FORMS.values()), ids=list(SYNC_FORMS))
def test_a_sync_call_leaves_the_callers_injected_transport_open(form: Any) -> None:
    injected = CountingAnswers()
    text = '{models: {providers: {vllm: {baseUrl: "http://vllm.invalid/v1", apiKey: "k", maxRetries: 0, models: [{id: "m"}]}}}}'
    genesis = Genesis.from_config_text(text, env={}, transport=injected)
    assert form(genesis) and form(genesis)
    assert injected.requests == 2
    assert injected.closes == 0, "a sync call closed the caller's injected HTTP transport"
