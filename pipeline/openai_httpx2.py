"""The OpenAI SDK drop-in for ``httpx2``, the HTTP library the SDK itself uses (``openai>=3``).

``openai.OpenAI(http_client=httpx2.Client(transport=OpenAITransport(genesis)))``; the rules are
``pipeline.openai_transport``'s. Imports httpx2: only import this module where the SDK is installed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx2

from pipeline.openai_transport import AsyncBody, Exchange, SyncBody, _Options, open_async, open_sync

__all__ = ["AsyncOpenAITransport", "Exchange", "OpenAITransport"]


class AsyncOpenAITransport(_Options, httpx2.AsyncBaseTransport):
    """For ``openai.AsyncOpenAI(http_client=httpx2.AsyncClient(transport=AsyncOpenAITransport(genesis)))``."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        head, body = await open_async(self, request.method, request.url.path, await request.aread())
        return httpx2.Response(head.status, headers=list(head.headers), stream=_AsyncStream(body), request=request)

    async def aclose(self) -> None:
        """Nothing to close: the Genesis, and its HTTP client, are the caller's (``pipeline.openai_transport``)."""


class OpenAITransport(_Options, httpx2.BaseTransport):
    """For ``openai.OpenAI(http_client=httpx2.Client(transport=OpenAITransport(genesis)))``: each request on a private loop."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        head, body = open_sync(self, request.method, request.url.path, request.read())
        return httpx2.Response(head.status, headers=list(head.headers), stream=_SyncStream(body), request=request)

    def close(self) -> None:
        self.close_private_loop()


class _AsyncStream(httpx2.AsyncByteStream):
    def __init__(self, body: AsyncBody) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for piece in self._body:
            yield piece

    async def aclose(self) -> None:
        await self._body.aclose()


class _SyncStream(httpx2.SyncByteStream):
    def __init__(self, body: SyncBody) -> None:
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        yield from self._body

    def close(self) -> None:
        self._body.close()
