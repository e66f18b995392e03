"""LiteLLM (``hosted_vllm`` provider) in each benchmark (peer).

Facts that shape this module:
- Importing litellm fetches a model cost map from the internet unless
  ``LITELLM_LOCAL_MODEL_COST_MAP=True``; the harness sets it before any import (and
  for the cold-start subprocesses), so nothing leaves the machine.
- The ``hosted_vllm`` provider goes through LiteLLM's own HTTP handler and ignores a
  ``client=AsyncOpenAI(...)`` argument; the mock is injected as LiteLLM's own
  ``HTTPHandler(client=httpx.Client(transport=...))`` /
  ``AsyncHTTPHandler(transport=...)`` (plain httpx).
- Calls with ``tools`` need the ``mcp`` package installed.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx
import litellm
import workload as W
from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler, HTTPHandler

NAME = "litellm"
LABEL = "litellm"
IMPORT_STMT = "import litellm"

litellm.suppress_debug_info = True


def version() -> str:
    from importlib.metadata import version as v

    return v("litellm")


class Side:
    def __init__(self) -> None:
        self.t_sent = 0.0
        self.last_body = b""
        self.pieces: list[bytes] = []

        def build_handler(request: httpx.Request) -> httpx.Response:
            self.t_sent = time.perf_counter()
            self.last_body = request.content
            return httpx.Response(200, headers=W.SSE_HEADERS, content=W.EMPTY_STREAM)

        def call_handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, headers=W.JSON_HEADERS, content=W.COMPLETION_BODY)

        async def apieces() -> AsyncIterator[bytes]:
            for p in self.pieces:
                yield p

        def stream_handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, headers=W.SSE_HEADERS, content=apieces())

        self.build_client = HTTPHandler(client=httpx.Client(transport=httpx.MockTransport(build_handler)))
        self.call_client = AsyncHTTPHandler(transport=httpx.MockTransport(call_handler))
        self.stream_client = AsyncHTTPHandler(transport=httpx.MockTransport(stream_handler))
        self.common: dict[str, Any] = {"model": W.LITELLM_MODEL, "api_base": W.MOCK_BASE_URL, "api_key": W.API_KEY}

    # -- 1. request build ----------------------------------------------------------------
    def build_once(self) -> float:
        """``litellm.completion`` up to the moment the transport gets the request."""
        t0 = time.perf_counter()
        litellm.completion(**self.common, messages=W.MESSAGES, tools=W.TOOLS, stream=True, client=self.build_client)
        return self.t_sent - t0

    def built_body(self) -> bytes:
        self.build_once()
        return self.last_body

    async def call_once(self) -> float:
        t0 = time.perf_counter()
        response = await litellm.acompletion(**self.common, messages=W.MESSAGES, tools=W.TOOLS, client=self.call_client)
        elapsed = time.perf_counter() - t0
        assert response.choices[0].message.content == "Hello!"
        return elapsed

    # -- 2. stream parse -----------------------------------------------------------------
    def stream_paths(self) -> dict[str, Any]:
        return {
            "acompletion stream": self.stream_async,
            "acompletion stream, a read per event": lambda pieces: self.stream_async(W.per_event(pieces)),
        }

    def loopback_paths(self, base_url: str) -> dict[str, Any]:
        """The recording from the loopback server, through LiteLLM's default client for the provider."""
        where = {"model": W.LITELLM_MODEL, "api_base": base_url, "api_key": W.API_KEY, "timeout": 120.0}
        return {"acompletion stream over loopback TCP": lambda pieces: self.stream_async(pieces, where)}

    async def stream_async(self, pieces: list[bytes], where: dict[str, Any] | None = None) -> tuple[float, float, list]:
        self.pieces = pieces
        out: list = []
        append = out.append
        how = {**self.common, "client": self.stream_client} if where is None else where
        t0 = time.perf_counter()
        stream = await litellm.acompletion(**how, messages=W.SHORT_MESSAGES, stream=True, stream_options={"include_usage": True})
        t_last = t0
        async for chunk in stream:
            append(chunk)
            t_last = time.perf_counter()
        t_end = time.perf_counter()
        return t_end - t0, t_end - t_last, out

    def summarize(self, chunks: list) -> W.StreamSummary:
        return W.summarize_openai_like(chunks)

    # -- 4. concurrency ------------------------------------------------------------------
    async def concurrency_open(self, base_url: str) -> None:
        # LiteLLM's own default client for the provider (cached per provider; aiohttp-backed
        # httpx transport by default).
        self.live_kw: dict[str, Any] = {"model": W.LITELLM_MODEL, "api_base": base_url, "api_key": W.API_KEY, "timeout": 120.0}

    async def one_stream(self) -> str:
        parts: list[str] = []
        stream = await litellm.acompletion(**self.live_kw, messages=W.SHORT_MESSAGES, stream=True, stream_options={"include_usage": True})
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    async def concurrency_close(self) -> None:
        pass

    async def aclose(self) -> None:
        self.build_client.close()
        await self.call_client.close()
        await self.stream_client.close()
