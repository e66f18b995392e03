"""The OpenAI SDK, unmodified, through Genesis (pipeline.openai_transport) to the real vLLM and llama.cpp servers.

Both servers check their key (``test-key``, or the suite's vLLM key); the SDK is given another one, so
an answer at all shows that the config's key, not the SDK's, reached the server. A dead provider comes
first in the failover chain: it fails before any byte, and the real server answers. The tiny models'
text is random, so the rules are on structure: the SDK's types, the finish reason, usage, the trace,
the attempts and the audit records.
"""

from __future__ import annotations

from typing import Any

import httpx
import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from backends.audit import AuditRecord
from pipeline import openai_httpx2, openai_transport
from pipeline.api import Genesis
from pipeline.openai_transport import Exchange
from tests.conftest import LLAMACPP_KEY, VLLM_KEY

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello, how are you?"}]
SDK_KEY = "sk-the-sdks-own-key-never-sent"
SERVERS = [
    pytest.param("vllm", marks=pytest.mark.vllm, id="vllm"),
    pytest.param("llamacpp", marks=pytest.mark.llamacpp, id="llamacpp"),
]


def configured(server: str, url: str) -> Genesis:
    """``dead/tiny-model`` (nothing listens) first, the real server as its fallback."""
    key = VLLM_KEY if server == "vllm" else LLAMACPP_KEY
    text = f"""{{
      agents: {{ defaults: {{ model: {{ primary: "dead/tiny-model", fallbacks: ["{server}/tiny-model"] }} }} }},
      models: {{ providers: {{
        {server}: {{ baseUrl: "{url}", apiKey: "{key}", models: [{{ id: "tiny-model", contextWindow: 1024 }}] }},
        dead: {{ baseUrl: "http://127.0.0.1:9/v1", timeoutSeconds: 3, maxRetries: 0, models: [{{ id: "tiny-model" }}] }},
      }} }},
    }}"""
    return Genesis.from_config_text(text, env={})


@pytest.fixture
def server_url(request: pytest.FixtureRequest) -> str:
    name = request.node.callspec.params["server"]
    return str(request.getfixturevalue("vllm_url" if name == "vllm" else "llamacpp_url"))


def recorded(exchange: Exchange | None, audited: list[AuditRecord], server: str) -> None:
    """The exchange and the audit say: the dead provider failed, the real server answered; the trace is there."""
    assert exchange is not None and exchange.error is None and exchange.wire is not None
    assert exchange.wire.provider == server and exchange.status == 200
    assert [(attempt.provider, attempt.ok) for attempt in exchange.attempts] == [("dead", False), (server, True)]
    assert exchange.attempts[0].error_class == "unreachable"
    assert any(change.stage == "resolve_ref" for change in exchange.trace)
    assert [(record.provider, record.ok) for record in audited] == [("dead", False), (server, True)]
    assert exchange.completion is not None and exchange.completion.finish_reason in ("stop", "length")


@pytest.mark.parametrize("library", ["httpx2", "httpx"])
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("server", SERVERS)
def test_the_sync_sdk(server: str, server_url: str, stream: bool, library: str) -> None:
    audited: list[AuditRecord] = []
    genesis = configured(server, server_url)
    transport: Any
    if library == "httpx2":
        transport = openai_httpx2.OpenAITransport(genesis, audit=audited.append)
        http: Any = httpx2.Client(transport=transport)
    else:
        transport = openai_transport.OpenAITransport(genesis, audit=audited.append)
        http = httpx.Client(transport=transport)
    client = openai.OpenAI(api_key=SDK_KEY, base_url="http://sdk.invalid/v1", http_client=http)
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="dead/tiny-model", messages=HI, max_tokens=8, temperature=0, stream=True, stream_options={"include_usage": True}
            )
        )
        finishes = [choice.finish_reason for chunk in chunks for choice in chunk.choices if choice.finish_reason]
        usage = chunks[-1].usage
        assert finishes in (["stop"], ["length"]) and usage is not None and usage.completion_tokens > 0
    else:
        answer = client.chat.completions.create(model="dead/tiny-model", messages=HI, max_tokens=8, temperature=0)
        assert answer.object == "chat.completion" and answer.choices[0].finish_reason in ("stop", "length")
        assert answer.usage is not None and answer.usage.completion_tokens > 0
    recorded(transport.last_exchange, audited, server)
    client.close()


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("server", SERVERS)
async def test_the_async_sdk(server: str, server_url: str, stream: bool) -> None:
    audited: list[AuditRecord] = []
    genesis = configured(server, server_url)
    transport = openai_httpx2.AsyncOpenAITransport(genesis, audit=audited.append)
    client = openai.AsyncOpenAI(api_key=SDK_KEY, base_url="http://sdk.invalid/v1", http_client=httpx2.AsyncClient(transport=transport))
    if stream:
        events = await client.chat.completions.create(model="dead/tiny-model", messages=HI, max_tokens=8, temperature=0, stream=True)
        chunks = [chunk async for chunk in events]
        assert [choice.finish_reason for chunk in chunks for choice in chunk.choices if choice.finish_reason] in (["stop"], ["length"])
        assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    else:
        answer = await client.chat.completions.create(model="dead/tiny-model", messages=HI, max_tokens=8, temperature=0)
        assert answer.choices[0].finish_reason in ("stop", "length") and answer.usage is not None
    recorded(transport.last_exchange, audited, server)
    await client.close()  # closes the transport, which closes the Genesis's client


@pytest.mark.vllm
def test_a_model_the_server_does_not_serve_is_the_sdks_not_found(vllm_url: str) -> None:
    server = "vllm"  # (llama.cpp answers any model name with the one it loaded)
    genesis = configured(server, vllm_url)
    transport = openai_httpx2.OpenAITransport(genesis, fallbacks=False)
    client = openai.OpenAI(api_key=SDK_KEY, base_url="http://sdk.invalid/v1", http_client=httpx2.Client(transport=transport))
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model=f"{server}/no-such-model", messages=HI, max_tokens=4)
    assert caught.value.code == "model_not_found" and caught.value.type == "genesis_error"
    assert transport.last_exchange is not None and [attempt.status for attempt in transport.last_exchange.attempts] == [404]
