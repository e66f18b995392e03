"""A sync stream cut short is never a clean end (``pipeline.blocking`` rule 6): one row per way to cut it.

The stream is the fault server's ``endless-tokens`` (a chunk every 20 ms, never an end), so whatever
ends it is the cut, never the server. Rows:

- the real ``openai`` sync client over each transport (``pipeline.openai_httpx2``, ``pipeline.openai_transport``):
  ``client.close()`` while a stream is read; the reader gets a ``ProviderError`` of class ``aborted``
  (also ``exchange.error``), not a truncated stream that looks whole;
- ``Genesis.stream_sync`` closed from another thread while its reader reads: the reader gets ``aborted``;
- a ``BlockingIterator`` on a shared private loop that its owner stops: ``aborted``.

And the rules that stay (each row able to fail): the reader's own ``close()`` leaves the iterator quietly
exhausted, and a stream that ended before a close is whole, with no error.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import httpx2
import openai
import pytest

from pipeline import openai_httpx2, openai_transport
from pipeline.api import Genesis
from pipeline.blocking import BlockingIterator, PrivateLoop
from pipeline.errors import ErrorClass, ProviderError
from pipeline.events import Event, TextDelta

HI = {"messages": [{"role": "user", "content": "hi"}]}
ENDLESS = "fault/endless-tokens"


def fault_genesis(fault_server: Any) -> Genesis:
    text = (
        f'{{models: {{providers: {{fault: {{baseUrl: "{fault_server.base_url}", apiKey: "fault-secret", maxRetries: 0,'
        f' models: [{{id: "endless-tokens"}}, {{id: "ok"}}]}}}}}}}}'
    )
    return Genesis.from_config_text(text, env={})


def loop_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "genesis-sync")


# ---- the OpenAI SDK's sync client, closed while a stream is read ----


def sdk_client(library: str, genesis: Genesis) -> tuple[openai.OpenAI, openai_transport.OpenAITransport | openai_httpx2.OpenAITransport]:
    transport: openai_transport.OpenAITransport | openai_httpx2.OpenAITransport
    if library == "httpx2":
        transport = openai_httpx2.OpenAITransport(genesis)
        http: Any = httpx2.Client(transport=transport)
    else:
        transport = openai_transport.OpenAITransport(genesis)
        http = httpx.Client(transport=transport)
    return openai.OpenAI(api_key="sk-sdk", base_url="http://sdk.invalid/v1", http_client=http), transport


@pytest.mark.parametrize("library", ["httpx2", "httpx"])
def test_closing_the_sdk_client_mid_stream_is_aborted(fault_server: Any, library: str) -> None:
    before = loop_threads()
    client, transport = sdk_client(library, fault_genesis(fault_server))
    stream = client.chat.completions.create(model=ENDLESS, messages=[{"role": "user", "content": "hi"}], stream=True)
    chunks = iter(stream)
    next(chunks)
    client.close()  # stops the transport's loop under the stream
    with pytest.raises(ProviderError) as caught:
        for _ in chunks:
            pass
    assert caught.value.error_class == ErrorClass.ABORTED and "closed while this answer" in caught.value.server_message
    exchange = transport.last_exchange
    assert exchange is not None and exchange.error is caught.value
    assert loop_threads() == before


@pytest.mark.parametrize("library", ["httpx2", "httpx"])
def test_a_stream_read_to_its_end_before_the_close_is_whole(fault_server: Any, library: str) -> None:
    client, _ = sdk_client(library, fault_genesis(fault_server))
    stream = client.chat.completions.create(model="fault/ok", messages=[{"role": "user", "content": "hi"}], stream=True)
    texts = [choice.delta.content or "" for chunk in stream for choice in chunk.choices]
    client.close()
    assert "".join(texts) == "Hello world"


# ---- stream_sync and BlockingIterator ----


@dataclass
class Reader:
    """Reads an iterator to its end in a thread of its own; ``outcome`` says how it ended."""

    iterator: Any
    started: threading.Event = field(default_factory=threading.Event)
    count: int = 0
    outcome: BaseException | str | None = None

    def run(self) -> None:
        try:
            for _ in self.iterator:
                self.count += 1
                self.started.set()
            self.outcome = "clean end"
        except BaseException as error:
            self.outcome = error
        finally:
            self.started.set()


def read_in_a_thread(iterator: Any, cut: Callable[[], None]) -> Reader:
    """Start a reader, cut the stream once it has read an item, and wait for the reader to end."""
    reader = Reader(iterator)
    thread = threading.Thread(target=reader.run)
    thread.start()
    assert reader.started.wait(30), "the reader never got an item"
    cut()
    thread.join(30)
    assert not thread.is_alive(), "the reader still waits after the cut"
    return reader


def test_stream_sync_closed_from_another_thread_is_aborted(fault_server: Any) -> None:
    events = fault_genesis(fault_server).stream_sync(ENDLESS, HI)
    reader = read_in_a_thread(events, events.close)
    assert isinstance(reader.outcome, ProviderError) and reader.outcome.error_class == ErrorClass.ABORTED, reader.outcome
    assert reader.count >= 1 and loop_threads() == 0


def test_stream_sync_closed_by_its_reader_is_exhausted_quietly(fault_server: Any) -> None:
    events = fault_genesis(fault_server).stream_sync(ENDLESS, HI)
    assert isinstance(next(events), Event)
    events.close()
    assert list(events) == [] and loop_threads() == 0


async def numbers() -> AsyncGenerator[int, None]:
    number = 0
    while True:
        number += 1
        yield number
        await anyio.sleep(0.01)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_an_iterator_on_a_shared_loop_stopped_under_it_is_aborted(backend: str) -> None:
    loop = PrivateLoop(backend)
    items: BlockingIterator[int] = BlockingIterator(numbers, loop=loop, backend=backend, refusal=("shared", "async for"))
    reader = read_in_a_thread(items, loop.stop)
    assert isinstance(reader.outcome, ProviderError) and reader.outcome.error_class == ErrorClass.ABORTED, reader.outcome
    items.close()  # a stopped loop takes no calls: closing afterwards is a no-op, not a RuntimeError


async def three() -> AsyncGenerator[TextDelta, None]:
    for text in "abc":
        yield TextDelta(text)


def test_an_iterator_whose_generator_ended_before_its_loop_stopped_is_whole() -> None:
    loop = PrivateLoop("asyncio")
    items: BlockingIterator[TextDelta] = BlockingIterator(three, loop=loop)
    try:
        assert [item.text for item in items] == ["a", "b", "c"]
    finally:
        loop.stop()
