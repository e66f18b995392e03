"""The official OpenAI Python SDK in each benchmark (peer).

openai 3.x sends through ``httpx2`` (its own httpx fork), so the in-process mock is
``httpx2.MockTransport``; it answers at once and hands the recorded bytes over in the
same pieces every library gets.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import workload as W
from openai import AsyncOpenAI, OpenAI

NAME = "openai"
LABEL = "openai"
IMPORT_STMT = "from openai import AsyncOpenAI"


def version() -> str:
    return openai.__version__


class Side:
    def __init__(self) -> None:
        self.t_sent = 0.0
        self.last_body = b""
        self.pieces: list[bytes] = []

        def build_handler(request: httpx2.Request) -> httpx2.Response:
            self.t_sent = time.perf_counter()
            self.last_body = request.content
            return httpx2.Response(200, headers=W.SSE_HEADERS, content=W.EMPTY_STREAM)

        def call_handler(request: httpx2.Request) -> httpx2.Response:
            request.read()
            return httpx2.Response(200, headers=W.JSON_HEADERS, content=W.COMPLETION_BODY)

        def sync_stream_handler(request: httpx2.Request) -> httpx2.Response:
            request.read()
            return httpx2.Response(200, headers=W.SSE_HEADERS, content=iter(self.pieces))

        async def apieces() -> AsyncIterator[bytes]:
            for p in self.pieces:
                yield p

        def async_stream_handler(request: httpx2.Request) -> httpx2.Response:
            request.read()
            return httpx2.Response(200, headers=W.SSE_HEADERS, content=apieces())

        common: dict[str, Any] = {"base_url": W.MOCK_BASE_URL, "api_key": W.API_KEY, "max_retries": 0}
        self.build_client = OpenAI(**common, http_client=httpx2.Client(transport=httpx2.MockTransport(build_handler)))
        self.call_client = AsyncOpenAI(**common, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(call_handler)))
        self.sync_stream_client = OpenAI(**common, http_client=httpx2.Client(transport=httpx2.MockTransport(sync_stream_handler)))
        self.async_stream_client = AsyncOpenAI(
            **common, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(async_stream_handler))
        )

    # -- 1. request build ----------------------------------------------------------------
    def build_once(self) -> float:
        """``chat.completions.create`` up to the moment the transport gets the request."""
        t0 = time.perf_counter()
        stream = self.build_client.chat.completions.create(model=W.MODEL, messages=W.MESSAGES, tools=W.TOOLS, stream=True)
        elapsed = self.t_sent - t0
        stream.close()
        return elapsed

    def built_body(self) -> bytes:
        self.build_once()
        return self.last_body

    async def call_once(self) -> float:
        t0 = time.perf_counter()
        completion = await self.call_client.chat.completions.create(model=W.MODEL, messages=W.MESSAGES, tools=W.TOOLS)
        elapsed = time.perf_counter() - t0
        assert completion.choices[0].message.content == "Hello!"
        return elapsed

    # -- 2. stream parse -----------------------------------------------------------------
    def stream_paths(self) -> dict[str, Any]:
        return {
            "AsyncOpenAI stream": self.stream_async,
            "OpenAI stream (sync)": self.stream_sync,
            "AsyncOpenAI stream, a read per event": lambda pieces: self.stream_async(W.per_event(pieces)),
        }

    def loopback_paths(self, base_url: str) -> dict[str, Any]:
        """The recording from the loopback server, through the SDK's default HTTP client (httpx2)."""
        self.loopback = AsyncOpenAI(base_url=base_url, api_key=W.API_KEY, max_retries=0, timeout=120.0)
        return {"AsyncOpenAI stream over loopback TCP": lambda pieces: self.stream_async(pieces, self.loopback)}

    def stream_sync(self, pieces: list[bytes]) -> tuple[float, float, list]:
        self.pieces = pieces
        out: list = []
        append = out.append
        t0 = time.perf_counter()
        stream = self.sync_stream_client.chat.completions.create(
            model=W.MODEL, messages=W.SHORT_MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        t_last = t0
        for chunk in stream:
            append(chunk)
            t_last = time.perf_counter()
        t_end = time.perf_counter()
        return t_end - t0, t_end - t_last, out

    async def stream_async(self, pieces: list[bytes], client: Any = None) -> tuple[float, float, list]:
        self.pieces = pieces
        out: list = []
        append = out.append
        t0 = time.perf_counter()
        stream = await (client or self.async_stream_client).chat.completions.create(
            model=W.MODEL, messages=W.SHORT_MESSAGES, stream=True, stream_options={"include_usage": True}
        )
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
        # The SDK's own default HTTP client (httpx2, limits 1000 connections / 100 keep-alive).
        self.live = AsyncOpenAI(base_url=base_url, api_key=W.API_KEY, max_retries=0, timeout=120.0)

    async def one_stream(self) -> str:
        parts: list[str] = []
        stream = await self.live.chat.completions.create(
            model=W.MODEL, messages=W.SHORT_MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    async def concurrency_close(self) -> None:
        await self.live.close()

    async def aclose(self) -> None:
        self.build_client.close()
        self.sync_stream_client.close()
        await self.call_client.close()
        await self.async_stream_client.close()
        if getattr(self, "loopback", None) is not None:
            await self.loopback.close()
