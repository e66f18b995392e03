"""The OpenAI SDK drop-in (pipeline.openai_transport): the real ``openai`` package, unmodified, over Genesis.

Offline: the replay sender (tests/replay.py) plays the servers' answers, the fault server
(tests/servers/fault_server.py) where the headers that reach a socket matter. Every rule runs on the
SDK's own client through each transport it takes: httpx2 (the SDK's own library) and httpx, sync and
async (async ones on asyncio and trio). The real servers are in tests/test_openai_sdk_live.py.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import httpx2
import msgspec
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from returns.result import Result, Success

from backends.audit import AuditRecord
from pipeline import openai_httpx2, openai_transport
from pipeline.api import Genesis
from pipeline.errors import ErrorClass, GenesisError, ProviderError
from pipeline.events import Finish, ReasoningDelta, TextDelta, ToolCallDelta
from pipeline.openai_transport import Exchange
from pipeline.trace import added
from pipeline.types import Context
from tests.replay import JSON, SSE, Recording, Replay, sse_of

HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
SDK_KEY = "sk-sdk-only-0000"
CONFIG_KEY = "sk-config-1111"
STREAM = sse_of([TextDelta("Hello"), TextDelta(" world"), Finish("stop")], done=True)
WHOLE = msgspec.json.encode(
    {
        "id": "chatcmpl-replay",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello world"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
)
ROLE_ONLY = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
BROKEN = ProviderError(ErrorClass.UNREACHABLE, "the connection closed mid-answer", url="http://a.invalid/v1/chat/completions")


def configured(*recordings: Recording, fallbacks: bool = True, key: str | None = CONFIG_KEY) -> tuple[Genesis, Replay]:
    """Two providers (``a`` with ``CONFIG_KEY``, ``b``), ``b/m`` the fallback of ``a/m``; no retries. Replayed."""
    auth = f'apiKey: "{key}",' if key is not None else ""
    text = f"""{{
      agents: {{ defaults: {{ model: {{ primary: "a/m", fallbacks: [{'"b/m"' if fallbacks else ""}] }} }} }},
      models: {{ providers: {{
        a: {{ baseUrl: "http://a.invalid/v1", {auth} maxRetries: 0, models: [{{ id: "m" }}] }},
        b: {{ baseUrl: "http://b.invalid/v1", apiKey: "sk-b-2222", maxRetries: 0, models: [{{ id: "m" }}] }},
      }} }},
    }}"""
    genesis = Genesis.from_config_text(text, env={})
    replay = Replay(*recordings)
    genesis.pipeline = genesis.pipeline.replace("send", replay)
    return genesis, replay


# ---- the four ways the SDK takes a transport ----

Transport = openai_transport.OpenAITransport | openai_httpx2.OpenAITransport
AsyncTransport = openai_transport.AsyncOpenAITransport | openai_httpx2.AsyncOpenAITransport


OPENED: list[openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_sync_clients() -> Iterator[None]:
    """Each sync client closes at the end of its test: that stops its transport's loop and thread."""
    yield
    while OPENED:
        OPENED.pop().close()


def sync_client(library: str, genesis: Genesis, **options: Any) -> tuple[openai.OpenAI, Transport]:
    transport: Transport
    if library == "httpx2":
        transport = openai_httpx2.OpenAITransport(genesis, **options)
        http: Any = httpx2.Client(transport=transport)
    else:
        transport = openai_transport.OpenAITransport(genesis, **options)
        http = httpx.Client(transport=transport)
    client = openai.OpenAI(api_key=SDK_KEY, base_url="http://sdk.invalid/v1", http_client=http)
    OPENED.append(client)
    return client, transport


def async_client(library: str, genesis: Genesis, **options: Any) -> tuple[openai.AsyncOpenAI, AsyncTransport]:
    transport: AsyncTransport
    if library == "httpx2":
        transport = openai_httpx2.AsyncOpenAITransport(genesis, **options)
        http: Any = httpx2.AsyncClient(transport=transport)
    else:
        transport = openai_transport.AsyncOpenAITransport(genesis, **options)
        http = httpx.AsyncClient(transport=transport)
    return openai.AsyncOpenAI(api_key=SDK_KEY, base_url="http://sdk.invalid/v1", http_client=http), transport


LIBRARIES = ["httpx2", "httpx"]


# ---- what reaches the SDK: the server's bytes, unchanged, and only those of the try that answered ----


@dataclass(frozen=True)
class Passage:
    """One rule of what the SDK reads: the tries' answers, and the bytes the SDK must get."""

    rule: str
    recordings: tuple[Recording, ...]
    stream: bool
    expected: bytes
    tries: int


PASSAGES = [
    Passage("a streamed answer reaches the SDK byte for byte", (Recording.sse(STREAM, piece_size=7),), True, STREAM, 1),
    Passage("a whole JSON answer reaches the SDK byte for byte", (Recording.whole(WHOLE),), False, WHOLE, 1),
    Passage(
        "a try that fails before any byte is failed over; the SDK gets the fallback's answer",
        (Recording(503, "text/plain", (b"Service Unavailable",)), Recording.sse(STREAM)),
        True,
        STREAM,
        2,
    ),
    Passage(
        "a try that breaks after bytes but before any answer is failed over; its bytes never reach the SDK",
        (Recording(200, SSE, (ROLE_ONLY,), error=BROKEN), Recording.sse(STREAM, piece_size=5)),
        True,
        STREAM,
        2,
    ),
    Passage(
        "a reasoning stream reaches the SDK as sent",
        (Recording.sse(sse_of([ReasoningDelta("think"), TextDelta("ok"), Finish("stop")], done=True)),),
        True,
        sse_of([ReasoningDelta("think"), TextDelta("ok"), Finish("stop")], done=True),
        1,
    ),
]


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("case", PASSAGES, ids=[case.rule for case in PASSAGES])
def test_what_the_sdk_reads_sync(case: Passage, library: str) -> None:
    genesis, replay = configured(*case.recordings)
    client, transport = sync_client(library, genesis)
    with client.chat.completions.with_streaming_response.create(model="a/m", messages=HI, stream=case.stream) as response:
        assert response.status_code == 200
        assert b"".join(response.iter_bytes()) == case.expected
    assert len(replay.sent) == case.tries
    exchange = transport.last_exchange
    assert exchange is not None and exchange.error is None and len(exchange.attempts) == case.tries


@pytest.mark.anyio
@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("case", PASSAGES, ids=[case.rule for case in PASSAGES])
async def test_what_the_sdk_reads_async(case: Passage, library: str) -> None:
    genesis, replay = configured(*case.recordings)
    client, transport = async_client(library, genesis)
    async with client.chat.completions.with_streaming_response.create(model="a/m", messages=HI, stream=case.stream) as response:
        assert response.status_code == 200
        assert b"".join([piece async for piece in response.iter_bytes()]) == case.expected
    assert len(replay.sent) == case.tries
    exchange = transport.last_exchange
    assert exchange is not None and exchange.error is None and len(exchange.attempts) == case.tries
    await client.close()


# ---- the SDK's own types and streaming keep working ----


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_sdks_types_sync(library: str) -> None:
    genesis, _ = configured(Recording.whole(WHOLE), Recording.sse(STREAM, piece_size=3))
    client, _ = sync_client(library, genesis)
    whole = client.chat.completions.create(model="a/m", messages=HI)
    assert (whole.id, whole.choices[0].message.content, whole.usage and whole.usage.total_tokens) == ("chatcmpl-replay", "Hello world", 5)
    chunks = list(client.chat.completions.create(model="a/m", messages=HI, stream=True))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == "Hello world"
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"


@pytest.mark.anyio
@pytest.mark.parametrize("library", LIBRARIES)
async def test_the_sdks_types_async(library: str) -> None:
    call = ToolCallDelta(index=0, id="call_1", name="get_weather", arguments='{"city":"Oslo"}')
    genesis, _ = configured(Recording.sse(sse_of([call, Finish("tool_calls")], done=True), piece_size=11))
    client, _ = async_client(library, genesis)
    stream = await client.chat.completions.create(model="a/m", messages=HI, stream=True)
    calls = [tool for chunk in [chunk async for chunk in stream] if chunk.choices for tool in chunk.choices[0].delta.tool_calls or []]
    assert [(tool.id, tool.function and tool.function.name) for tool in calls] == [("call_1", "get_weather")]
    await client.close()


# ---- Genesis's failures, as the SDK's errors ----


def stage_that_raises(ctx: Context) -> Result[Context, GenesisError]:
    raise RuntimeError("boom")


@dataclass(frozen=True)
class Failure:
    """One rule of the error mapping: what happened, and the SDK error, status and code it becomes."""

    rule: str
    model: str
    recordings: tuple[Recording, ...]
    error: type[openai.APIStatusError]
    status: int
    code: str
    sent: int


FAILURES = [
    Failure("an unknown ref is a 404 unknown_model; nothing is sent", "nowhere/m", (), openai.NotFoundError, 404, "unknown_model", 0),
    Failure(
        "a server's 401 is the SDK's AuthenticationError", "a/m", (Recording(401, JSON, (b'{"error":"Unauthorized"}',)),),
        openai.AuthenticationError, 401, "auth", 1,
    ),
    Failure(
        "a server's 429 is the SDK's RateLimitError, not retried by the SDK", "a/m", (Recording(429, JSON, (b'{"error":"slow down"}',)),),
        openai.RateLimitError, 429, "rate_limit", 1,
    ),
    Failure(
        "a request the server rejects is a BadRequestError", "a/m", (Recording(400, JSON, (b'{"error":"bad field"}',)),),
        openai.BadRequestError, 400, "format", 1,
    ),
    Failure(
        "an overloaded server is a 503, not retried by the SDK (Genesis retried)", "a/m", (Recording(503, "text/plain", (b"busy",)),),
        openai.InternalServerError, 503, "overloaded", 1,
    ),
    Failure(
        "a 200 that breaks before any answer is a 502 unreachable", "a/m", (Recording(200, SSE, (ROLE_ONLY,), error=BROKEN),),
        openai.InternalServerError, 502, "unreachable", 1,
    ),
]  # fmt: skip


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("case", FAILURES, ids=[case.rule for case in FAILURES])
def test_a_genesis_failure_is_the_sdks_error(case: Failure, library: str) -> None:
    genesis, replay = configured(*case.recordings, fallbacks=False)
    client, transport = sync_client(library, genesis)
    with pytest.raises(case.error) as caught:
        client.chat.completions.create(model=case.model, messages=HI)
    error = caught.value
    exchange = transport.last_exchange
    assert exchange is not None and exchange.error is not None
    assert (error.status_code, error.code, error.type) == (case.status, case.code, "genesis_error")
    assert str(exchange.error) in error.message and isinstance(error.body, dict) and error.body["hint"] == exchange.error.hint
    assert len(replay.sent) == case.sent  # the SDK did not send again: x-should-retry: false


@pytest.mark.anyio
@pytest.mark.parametrize("case", FAILURES, ids=[case.rule for case in FAILURES])
async def test_a_genesis_failure_is_the_sdks_error_async(case: Failure) -> None:
    genesis, replay = configured(*case.recordings, fallbacks=False)
    client, _ = async_client("httpx2", genesis)
    with pytest.raises(case.error) as caught:
        await client.chat.completions.create(model=case.model, messages=HI, stream=True)
    assert (caught.value.status_code, caught.value.code, len(replay.sent)) == (case.status, case.code, case.sent)
    await client.close()


def test_a_failing_stage_is_a_500_naming_it() -> None:
    genesis, replay = configured(Recording.sse(STREAM))
    genesis.pipeline = genesis.pipeline.insert_before("send", "my_stage", stage_that_raises)
    client, _ = sync_client("httpx2", genesis)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="a/m", messages=HI)
    assert (caught.value.status_code, caught.value.code, replay.sent) == (500, "stage", [])
    assert "my_stage" in caught.value.message


@pytest.mark.parametrize("library", LIBRARIES)
def test_another_route_is_refused_and_nothing_is_sent(library: str) -> None:
    genesis, replay = configured()
    client, _ = sync_client(library, genesis)
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.list()
    assert (caught.value.code, replay.sent) == ("unsupported_route", [])
    assert "GET /v1/models" in caught.value.message


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_failure_after_the_answer_began_is_raised_from_the_stream(library: str) -> None:
    genesis, replay = configured(Recording(200, SSE, (sse_of([TextDelta("Hel")]),), error=BROKEN), Recording.sse(STREAM))
    client, _ = sync_client(library, genesis)
    stream = client.chat.completions.create(model="a/m", messages=HI, stream=True)
    texts: list[str] = []
    with pytest.raises(ProviderError) as caught:
        for chunk in stream:
            texts += [choice.delta.content or "" for choice in chunk.choices]
    assert (texts, caught.value.error_class, len(replay.sent)) == (["Hel"], "unreachable", 1)  # never failed over


@pytest.mark.anyio
async def test_a_failure_after_the_answer_began_is_raised_from_the_stream_async() -> None:
    genesis, replay = configured(Recording(200, SSE, (sse_of([TextDelta("Hel")]),), error=BROKEN), Recording.sse(STREAM))
    client, _ = async_client("httpx", genesis)
    stream = await client.chat.completions.create(model="a/m", messages=HI, stream=True)
    texts: list[str] = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in stream:
            texts += [choice.delta.content or "" for choice in chunk.choices]
    assert (texts, caught.value.error_class, len(replay.sent)) == (["Hel"], "unreachable", 1)
    await client.close()


@pytest.mark.anyio
async def test_the_sync_transport_inside_an_event_loop_answers_with_the_refusal() -> None:
    genesis, replay = configured(Recording.sse(STREAM))
    client, _ = sync_client("httpx2", genesis)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="a/m", messages=HI)
    assert (caught.value.code, replay.sent) == ("error", [])
    assert "AsyncOpenAI" in str(caught.value.body)


# ---- the pipeline runs: custom stages, the trace, the audit hook ----


def tag_stage(ctx: Context) -> Result[Context, GenesisError]:
    import msgspec.structs

    change = added("tag", "user", "every SDK request is tagged")
    return Success(msgspec.structs.replace(ctx, body={**ctx.body, "user": "tagged"}, trace=(*ctx.trace, change)))


@pytest.mark.parametrize("library", LIBRARIES)
def test_every_stage_the_trace_and_the_audit_run(library: str) -> None:
    genesis, replay = configured(Recording(503, "text/plain", (b"busy",)), Recording.sse(STREAM))
    genesis.pipeline = genesis.pipeline.insert_before("send", "tag", tag_stage)
    audited: list[AuditRecord] = []
    seen: list[Exchange] = []
    client, transport = sync_client(library, genesis, audit=audited.append, on_exchange=seen.append)
    chunks = list(client.chat.completions.create(model="a/m", messages=HI, stream=True, temperature=0.5))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == "Hello world"
    [exchange] = seen
    assert exchange is transport.last_exchange and exchange.ref == "a/m"
    assert exchange.wire is not None and exchange.wire.provider == "b"  # the fallback answered
    body = msgspec.json.decode(replay.sent[-1].body)
    assert (body["model"], body["user"], body["temperature"]) == ("m", "tagged", 0.5)  # the ref resolved; the SDK's fields kept
    assert [(change.stage, change.field) for change in exchange.trace if change.stage == "tag"] == [("tag", "user")]
    assert [(attempt.provider, attempt.ok) for attempt in exchange.attempts] == [("a", False), ("b", True)]
    assert [record.ok for record in audited] == [False, True]
    assert exchange.completion is not None and exchange.completion.text == "Hello world"
    assert any(note.stage == "send" for note in exchange.answer_trace)


# ---- secrets: the SDK's key never reaches a server; the config decides the Authorization ----


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize(
    ("key", "authorization"),
    [(CONFIG_KEY, f"Bearer {CONFIG_KEY}"), (None, None)],
    ids=["the config's key is sent, not the SDK's", "no configured key: no Authorization at all"],
)
def test_the_sdks_key_is_never_sent(fault_server: Any, library: str, key: str | None, authorization: str | None) -> None:
    auth = f'apiKey: "{key}",' if key is not None else ""
    text = f'{{models: {{providers: {{fault: {{baseUrl: "{fault_server.base_url}", {auth} models: [{{id: "ok"}}]}}}}}}}}'
    client, _ = sync_client(library, Genesis.from_config_text(text, env={}))
    answer = client.chat.completions.create(model="fault/ok", messages=HI)
    assert answer.choices[0].message.content == "Hello world"
    headers = fault_server.requests[-1]["headers"]
    assert headers.get("authorization") == authorization
    assert SDK_KEY not in repr(fault_server.requests[-1])
    assert not any(name.startswith("x-stainless") for name in headers)  # none of the SDK's headers are forwarded


@pytest.mark.anyio
async def test_the_sdks_key_is_never_sent_async(fault_server: Any) -> None:
    text = f'{{models: {{providers: {{fault: {{baseUrl: "{fault_server.base_url}", apiKey: "{CONFIG_KEY}", models: [{{id: "ok"}}]}}}}}}}}'
    genesis = Genesis.from_config_text(text, env={})
    client, _ = async_client("httpx2", genesis)
    stream = await client.chat.completions.create(model="fault/ok", messages=HI, stream=True)
    assert "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]) == "Hello world"
    assert fault_server.requests[-1]["headers"].get("authorization") == f"Bearer {CONFIG_KEY}"
    assert SDK_KEY not in repr(fault_server.requests[-1])
    await client.close()
    await genesis.aclose()


# ---- imports stay lazy ----


def test_importing_genesis_imports_no_sdk() -> None:
    code = "import sys, pipeline, pipeline.api, pipeline.openai_transport; print('openai' in sys.modules, 'httpx2' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


# ---- the sync transports' private loop: one per transport, its connections reused, stopped on close ----


def loop_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "genesis-sync")


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_sync_transport_keeps_one_loop_until_closed(library: str) -> None:
    before = loop_threads()
    genesis, _ = configured(Recording.sse(STREAM), Recording.whole(WHOLE), Recording.sse(STREAM))
    client, _ = sync_client(library, genesis)
    assert loop_threads() == before  # nothing starts before the first request
    list(client.chat.completions.create(model="a/m", messages=HI, stream=True))
    client.chat.completions.create(model="a/m", messages=HI)
    with client.chat.completions.create(model="a/m", messages=HI, stream=True) as stream:
        next(iter(stream))  # left after the first chunk: the response closes, the loop stays
    assert loop_threads() == before + 1
    client.close()
    assert loop_threads() == before


def test_a_sync_transport_dropped_unclosed_stops_its_loop() -> None:
    before = loop_threads()
    genesis, _ = configured(Recording.sse(STREAM))
    transport = openai_httpx2.OpenAITransport(genesis)
    client = openai.OpenAI(api_key=SDK_KEY, base_url="http://sdk.invalid/v1", http_client=httpx2.Client(transport=transport))
    client.chat.completions.create(model="a/m", messages=HI)
    assert loop_threads() == before + 1
    del client, transport
    gc.collect()
    assert loop_threads() == before


def test_the_sync_transport_reuses_its_connection(fault_server: Any) -> None:
    """``breaks-after-first`` answers the first request of a connection and fails every later one on it:
    the second request fails only if it went over the first one's connection."""
    text = f'{{models: {{providers: {{fault: {{baseUrl: "{fault_server.base_url}", maxRetries: 0, models: [{{id: "breaks-after-first"}}]}}}}}}}}'
    client, _ = sync_client("httpx2", Genesis.from_config_text(text, env={}))
    assert client.chat.completions.create(model="fault/breaks-after-first", messages=HI).choices[0].finish_reason == "stop"
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="fault/breaks-after-first", messages=HI)


@pytest.mark.anyio
async def test_concurrent_requests_each_get_their_own_answer() -> None:
    first = sse_of([TextDelta("first"), Finish("stop")], done=True)
    second = sse_of([TextDelta("second"), Finish("stop")], done=True)
    genesis, _ = configured(Recording.sse(first, piece_size=4), Recording.sse(second, piece_size=4))
    client, _ = async_client("httpx2", genesis)
    bodies: list[bytes] = []

    async def one() -> None:
        async with client.chat.completions.with_streaming_response.create(model="a/m", messages=HI, stream=True) as response:
            bodies.append(b"".join([piece async for piece in response.iter_bytes()]))

    async with anyio.create_task_group() as group:
        group.start_soon(one)
        group.start_soon(one)
    assert sorted(bodies) == sorted([first, second])
    await client.close()
