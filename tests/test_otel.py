"""OpenTelemetry (``pipeline.otel``, ``genesis[otel]``): the spans and metrics of runs, read back from the SDK's
in-memory exporter and reader, against our fault server (tests/servers/fault_server.py).

Each table row names the rule of pipeline/otel.py or pipeline/telemetry.py it pins.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import httpx2
import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pipeline import openai_httpx2
from pipeline.api import Genesis
from pipeline.errors import ErrorClass, GenesisError, ProviderError
from pipeline.events import TextDelta
from pipeline.otel import (
    DURATION_BUCKETS,
    INPUT_MESSAGES,
    OUTPUT_MESSAGES,
    TOKEN_BUCKETS,
    GenAITelemetry,
    provider_name,
    request_attributes,
    server_attributes,
)
from pipeline.telemetry import error_type

KEY = "sk-otel-9d2b/Q+z=7"  # a slash, a plus and an equals sign: its URL encoding differs
HEADER_SECRET = "org-tok-otel-41"  # a configured header's value, from ${ORG}
CALLER_SECRET = "caller-tok-otel-77"  # a key the caller passes as a header
LEAKS = (KEY, quote(KEY, safe=""), json.dumps(KEY)[1:-1], HEADER_SECRET, CALLER_SECRET)


class Exported:
    """The SDK's in-memory span exporter and metric reader, and the adapter that reports to them."""

    def __init__(self, *, capture_content: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = GenAITelemetry(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, capture_content=capture_content
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def run(self) -> ReadableSpan:
        """The one run span: the span no other exported span is the parent of... and that has no exported parent."""
        ids = {span.context.span_id for span in self.spans() if span.context is not None}
        [run] = [span for span in self.spans() if span.parent is None or span.parent.span_id not in ids]
        return run

    def tries(self) -> list[ReadableSpan]:
        run = self.run()
        assert run.context is not None
        children = [span for span in self.spans() if span.parent is not None and span.parent.span_id == run.context.span_id]
        return sorted(children, key=lambda span: span.start_time or 0)

    def metrics(self) -> dict[str, Metric]:
        data = self.reader.get_metrics_data()
        if data is None:
            return {}
        return {metric.name: metric for resource in data.resource_metrics for scope in resource.scope_metrics for metric in scope.metrics}

    def points(self, name: str) -> list[HistogramDataPoint]:
        metric = self.metrics().get(name)
        if metric is None:
            return []
        return [point for point in metric.data.data_points if isinstance(point, HistogramDataPoint)]


def config(server: Any, *, primary: str = "fault/ok", fallbacks: Sequence[str] = (), retries: int = 0, read_timeout: float = 5) -> str:
    return f"""{{
      agents: {{ defaults: {{ model: {{ primary: "{primary}", fallbacks: {json.dumps(list(fallbacks))} }} }} }},
      models: {{ mode: "replace", providers: {{
        fault: {{ baseUrl: "{server.base_url}", apiKey: "{KEY}", maxRetries: {retries}, readTimeoutSeconds: {read_timeout},
                 models: [{{ id: "ok" }}, {{ id: "overloaded" }}, {{ id: "warming-up" }}] }},
        down: {{ baseUrl: "http://127.0.0.1:9/v1", apiKey: "{KEY}", maxRetries: 0, models: [{{ id: "m" }}] }},
        echo: {{ baseUrl: "{server.url}/echo-auth/v1", apiKey: "{KEY}", maxRetries: 0, headers: {{ "X-Org": "${{ORG}}" }} }},
      }} }},
    }}"""


async def no_wait(seconds: float) -> None:
    """Retries do not wait in these tests."""


def genesis(server: Any, exported: Exported, **options: Any) -> Genesis:
    return Genesis.from_config_text(config(server, **options), env={"ORG": HEADER_SECRET}, telemetry=exported.telemetry, sleep=no_wait)


def chat(*, stream: bool = True, **fields: Any) -> dict[str, Any]:
    """A request whose messages no earlier test sent (the fault server's warming-up counts requests by their messages)."""
    request: dict[str, Any] = {"messages": [{"role": "user", "content": f"hi {uuid.uuid4()}"}], "stream": stream, **fields}
    if stream:
        request["stream_options"] = {"include_usage": True}
    return request


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# ---- one span per run, one child span per try (rule 1, 2, 5) --------------------------------------------


@dataclass(frozen=True)
class Runs:
    rule: str
    primary: str
    fallbacks: tuple[str, ...]
    retries: int
    tries: list[tuple[str, int, str | None]]  # (gen_ai.request.model, genesis.attempt.retry, error.type)
    answered_by: tuple[str, int]  # the provider.name and server.port the run span ends with ("fault": the fault server's port)


RUNS = [
    Runs("success: a run span and one try", "fault/ok", (), 0, [("ok", 0, None)], ("fault", 0)),
    Runs(
        "a retry is a try: each its own span, the last one answers",
        "fault/warming-up",
        (),
        2,
        [("warming-up", 0, "overloaded"), ("warming-up", 1, "overloaded"), ("warming-up", 2, None)],
        ("fault", 0),
    ),
    Runs(
        "a failover is a try of the next model",
        "fault/overloaded",
        ("fault/ok",),
        0,
        [("overloaded", 0, "overloaded"), ("ok", 0, None)],
        ("fault", 0),
    ),
    Runs(
        "a failover to another provider: the run span names the provider and server that answered",
        "down/m",
        ("fault/ok",),
        0,
        [("m", 0, "unreachable"), ("ok", 0, None)],
        ("fault", 0),
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize("case", RUNS, ids=[case.rule for case in RUNS])
async def test_a_run_is_a_span_and_each_try_a_child_span(fault_server: Any, case: Runs, anyio_backend: str) -> None:
    exported = Exported()
    async with genesis(fault_server, exported, primary=case.primary, fallbacks=case.fallbacks, retries=case.retries) as g:
        completion = await g.run(None, chat(temperature=0.25, max_tokens=32))
    assert completion.text == "Hello world"
    run, tries = exported.run(), exported.tries()
    asked = case.primary.split("/", 1)[1]
    assert (run.name, run.kind, run.status.status_code) == (f"chat {asked}", SpanKind.CLIENT, StatusCode.UNSET)
    port = fault_server.base_url.rsplit(":", 1)[1].split("/", 1)[0]
    assert attributes(run) | {"gen_ai.response.time_to_first_chunk": 0} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": case.answered_by[0],
        "gen_ai.request.model": asked,
        "gen_ai.request.temperature": 0.25,
        "gen_ai.request.max_tokens": 32,
        "gen_ai.request.stream": True,
        "server.address": "127.0.0.1",
        "server.port": int(port),
        "gen_ai.response.model": "ok" if case.tries[-1][0] == "ok" else case.tries[-1][0],
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": completion.usage.prompt_tokens if completion.usage else -1,
        "gen_ai.usage.output_tokens": completion.usage.completion_tokens if completion.usage else -1,
        "gen_ai.response.time_to_first_chunk": 0,
    }
    assert attributes(run)["gen_ai.response.time_to_first_chunk"] > 0
    seen = [
        (attributes(span)["gen_ai.request.model"], attributes(span)["genesis.attempt.retry"], attributes(span).get("error.type"))
        for span in tries
    ]
    assert seen == case.tries
    for span, (model, _, failed) in zip(tries, case.tries, strict=True):
        assert (span.name, span.kind) == (f"chat {model}", SpanKind.CLIENT)
        assert span.status.status_code == (StatusCode.UNSET if failed is None else StatusCode.ERROR)
        assert attributes(span)["gen_ai.request.temperature"] == 0.25  # the body each try sent
    assert "gen_ai.response.time_to_first_chunk" in attributes(tries[-1])


# ---- error.type: the Genesis error class (rule 4) --------------------------------------------------------

ERRORS = [
    ("fault/unauthorized", "auth"),
    ("fault/overloaded", "overloaded"),
    ("fault/rate-limited", "rate_limit"),
    ("fault/no-such-model", "model_not_found"),
    ("fault/serde-422", "format"),
    ("fault/finish-error", "server_error"),
    ("fault/malformed-chunk", "protocol"),
    ("fault/slow", "timeout"),
    ("down/m", "unreachable"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("ref", "error_class"), ERRORS, ids=[f"{ref} -> {kind}" for ref, kind in ERRORS])
async def test_a_failed_run_has_its_error_class_as_error_type(fault_server: Any, ref: str, error_class: str, anyio_backend: str) -> None:
    exported = Exported()
    async with genesis(fault_server, exported, read_timeout=0.3) as g:
        with pytest.raises(ProviderError) as caught:
            await g.run(ref, chat(), fallbacks=False)
    assert caught.value.error_class == error_class
    run, [tried] = exported.run(), exported.tries()
    for span in (run, tried):
        assert attributes(span)["error.type"] == error_class
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description is not None and f"{error_class}:" in span.status.description
    [duration] = exported.points("gen_ai.client.operation.duration")
    assert dict(duration.attributes or {})["error.type"] == error_class
    assert exported.points("gen_ai.client.token.usage") == []


@pytest.mark.anyio
async def test_each_try_span_has_its_http_status(fault_server: Any, anyio_backend: str) -> None:
    """A try's span carries the status its answer came with: the failed try's and the answering one's."""
    exported = Exported()
    async with genesis(fault_server, exported, primary="fault/overloaded", fallbacks=("fault/ok",)) as g:
        await g.run("fault/overloaded", chat())
    assert [attributes(span).get("http.response.status_code") for span in exported.tries()] == [503, 200]


@pytest.mark.anyio
async def test_a_ref_that_does_not_resolve_is_a_failed_run_with_no_try(fault_server: Any, anyio_backend: str) -> None:
    exported = Exported()
    async with genesis(fault_server, exported) as g:
        with pytest.raises(GenesisError):
            await g.run("nowhere/some-model", chat(), fallbacks=False)
    run = exported.run()
    assert (run.name, attributes(run)["error.type"], run.status.status_code) == ("chat some-model", "unknown_model", StatusCode.ERROR)
    assert exported.tries() == []


@pytest.mark.anyio
async def test_a_stream_cut_mid_way_reports_its_first_chunk_and_its_failure(fault_server: Any, anyio_backend: str) -> None:
    exported = Exported()
    async with genesis(fault_server, exported, retries=2) as g:
        with pytest.raises(ProviderError) as caught:
            await g.run("fault/drop-mid-stream", chat(), fallbacks=False)
    run, [tried] = exported.run(), exported.tries()  # the answer had begun: no retry
    for span in (run, tried):
        assert attributes(span)["error.type"] == caught.value.error_class == "protocol"
        assert attributes(span)["gen_ai.response.time_to_first_chunk"] > 0
    [first_chunk] = exported.points("gen_ai.client.operation.time_to_first_chunk")
    assert first_chunk.count == 1


# ---- cancellation: the run and its open try end as aborted (rule 4) --------------------------------------


@pytest.mark.anyio
async def test_a_cancelled_run_ends_aborted_with_its_try(fault_server: Any, anyio_backend: str) -> None:
    exported = Exported()
    async with genesis(fault_server, exported) as g:
        with anyio.move_on_after(0.3):
            await g.run("fault/slow", chat(), fallbacks=False)
    run, [tried] = exported.run(), exported.tries()
    for span in (run, tried):
        assert (attributes(span)["error.type"], span.status.status_code) == ("aborted", StatusCode.ERROR)
    [duration] = exported.points("gen_ai.client.operation.duration")
    assert dict(duration.attributes or {})["error.type"] == "aborted"


@pytest.mark.anyio
async def test_a_stream_the_caller_stops_reading_ends_aborted(fault_server: Any, anyio_backend: str) -> None:
    exported = Exported()
    async with genesis(fault_server, exported) as g:
        events = g.stream("fault/ok", chat())
        async for event in events:
            if isinstance(event, TextDelta):
                break
        await events.aclose()
    run, [tried] = exported.run(), exported.tries()
    assert attributes(run)["error.type"] == attributes(tried)["error.type"] == "aborted"
    assert attributes(run)["gen_ai.response.time_to_first_chunk"] > 0


# ---- embeddings ------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_embeddings_call_is_a_run_span_with_its_tries(fault_server: Any, anyio_backend: str) -> None:
    exported = Exported()
    async with genesis(fault_server, exported) as g:
        embeddings = await g.embed("fault/ok", {"input": ["one", "two"], "dimensions": 4, "encoding_format": "float"})
    run, [tried] = exported.run(), exported.tries()
    assert (run.name, run.kind, tried.name) == ("embeddings ok", SpanKind.CLIENT, "embeddings ok")
    assert embeddings.usage is not None
    for span in (run, tried):
        found = attributes(span)
        assert found["gen_ai.operation.name"] == "embeddings"
        assert found["gen_ai.embeddings.dimension.count"] == 4
        assert found["gen_ai.request.encoding_formats"] == ("float",)
        assert found["gen_ai.usage.input_tokens"] == embeddings.usage.prompt_tokens == 2
        assert found["gen_ai.response.model"] == "ok"  # the model the server named
        assert "gen_ai.usage.output_tokens" not in found and "gen_ai.response.finish_reasons" not in found
    [tokens] = exported.points("gen_ai.client.token.usage")
    assert (dict(tokens.attributes or {})["gen_ai.token.type"], tokens.sum) == ("input", 2)
    assert exported.points("gen_ai.client.operation.time_to_first_chunk") == []


@pytest.mark.anyio
async def test_a_failed_embeddings_call_has_its_error_type(fault_server: Any, anyio_backend: str) -> None:
    exported = Exported()
    async with genesis(fault_server, exported) as g:
        with pytest.raises(ProviderError) as caught:
            await g.embed("fault/embed-not-json", "one")
    run, [tried] = exported.run(), exported.tries()
    assert attributes(run)["error.type"] == attributes(tried)["error.type"] == caught.value.error_class == "protocol"


# ---- metrics (rule 6) ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_metrics_names_units_buckets_and_attributes(fault_server: Any, anyio_backend: str) -> None:
    exported = Exported()
    async with genesis(fault_server, exported) as g:
        streamed = await g.run("fault/ok", chat())
        await g.run("fault/ok", chat(stream=False))
    metrics = exported.metrics()
    assert {name: metrics[name].unit for name in metrics} == {
        "gen_ai.client.operation.duration": "s",
        "gen_ai.client.token.usage": "{token}",
        "gen_ai.client.operation.time_to_first_chunk": "s",
    }
    port = int(fault_server.base_url.rsplit(":", 1)[1].split("/", 1)[0])
    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "fault",
        "gen_ai.request.model": "ok",
        "gen_ai.response.model": "ok",
        "server.address": "127.0.0.1",
        "server.port": port,
    }
    [duration] = exported.points("gen_ai.client.operation.duration")
    assert (dict(duration.attributes or {}), duration.count, tuple(duration.explicit_bounds)) == (common, 2, DURATION_BUCKETS)
    tokens = {dict(point.attributes or {})["gen_ai.token.type"]: point for point in exported.points("gen_ai.client.token.usage")}
    assert streamed.usage is not None and set(tokens) == {"input", "output"}
    assert dict(tokens["input"].attributes or {}) == common | {"gen_ai.token.type": "input"}
    assert tokens["input"].count == tokens["output"].count == 2
    assert tokens["output"].sum == 2 * streamed.usage.completion_tokens
    assert tuple(tokens["input"].explicit_bounds) == TOKEN_BUCKETS
    [first_chunk] = exported.points("gen_ai.client.operation.time_to_first_chunk")
    assert (dict(first_chunk.attributes or {}), first_chunk.count) == (common, 1)  # the streamed run only


# ---- content only when opted in (rule 7) -----------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("capture", [False, True], ids=["off by default: no prompt or answer text", "opted in: input and output messages"])
async def test_content_is_recorded_only_when_opted_in(fault_server: Any, capture: bool, anyio_backend: str) -> None:
    exported = Exported(capture_content=capture)
    request = chat()
    prompt = request["messages"][0]["content"]
    async with genesis(fault_server, exported) as g:
        await g.run("fault/ok", request)
    everything = json.dumps([attributes(span) for span in exported.spans()], default=str)
    run = attributes(exported.run())
    if not capture:
        assert prompt not in everything and "Hello world" not in everything
        assert INPUT_MESSAGES not in everything and OUTPUT_MESSAGES not in everything
        return
    assert json.loads(run[INPUT_MESSAGES]) == [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
    assert json.loads(run[OUTPUT_MESSAGES]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Hello world"}], "finish_reason": "stop"}
    ]
    assert all(INPUT_MESSAGES not in attributes(span) for span in exported.tries())


# ---- never a secret (rule 8) -----------------------------------------------------------------------------


def exported_text(exported: Exported) -> str:
    """Every name, attribute, event and status text of every span, and every metric point's attributes."""
    pieces: list[Any] = []
    for span in exported.spans():
        pieces += [span.name, attributes(span), span.status.description]
        pieces += [(event.name, dict(event.attributes or {})) for event in span.events]
    for name in exported.metrics():
        pieces += [dict(point.attributes or {}) for point in exported.points(name)]
    return json.dumps(pieces, default=str)


SECRET_RUNS = [
    ("echo/echo-401", ()),
    ("echo/echo-403", ()),
    ("echo/echo-html", ()),
    ("echo/echo-stream", ()),
    ("echo/echo-401", ("echo/ok",)),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("ref", "fallbacks"), SECRET_RUNS, ids=[f"{ref} then {list(fallbacks)}" for ref, fallbacks in SECRET_RUNS])
async def test_no_secret_reaches_any_span_or_metric(fault_server: Any, ref: str, fallbacks: tuple[str, ...], anyio_backend: str) -> None:
    """A server that echoes the key it was sent, with content capture on: the echoed key is scrubbed everywhere."""
    exported = Exported(capture_content=True)
    async with genesis(fault_server, exported, primary=ref, fallbacks=fallbacks) as g:
        try:
            await g.run(None, chat(), headers=[("X-Caller-Token", CALLER_SECRET)])
        except ProviderError:
            pass
    text = exported_text(exported)
    assert exported.tries() and "error.type" in text  # the echoing try was exported
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} in {text[:3000]}"
    assert "Bearer sk" not in text


def sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"


def answer_with(text: str) -> bytes:
    return sse({"choices": [{"index": 0, "delta": {"content": text}}]}, {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})


CONTENT_SECRETS = [
    ("the server repeats the key in its answer", "hi", answer_with(f"your key is {KEY}")),
    ("the caller's prompt holds the key", f"my key is {KEY}", answer_with("ok")),
    (
        "the server puts the key in a tool call's arguments",
        "hi",
        sse(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": json.dumps({"k": KEY})}}]},
                    }
                ]
            },
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        ),
    ),
]


@pytest.mark.parametrize(("rule", "prompt", "body"), CONTENT_SECRETS, ids=[row[0] for row in CONTENT_SECRETS])
def test_captured_content_is_scrubbed_of_the_key(rule: str, prompt: str, body: bytes) -> None:
    exported = Exported(capture_content=True)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body))
    config = f'{{models: {{mode: "replace", providers: {{local: {{baseUrl: "http://h/v1", apiKey: "{KEY}", models: [{{id: "m"}}]}}}}}}}}'
    g = Genesis.from_config_text(config, env={}, telemetry=exported.telemetry, transport=transport)
    g.run_sync("local/m", {"messages": [{"role": "user", "content": prompt}], "stream": True})
    run = attributes(exported.run())
    assert INPUT_MESSAGES in run and OUTPUT_MESSAGES in run  # the content was captured: the key was taken out of it
    text = exported_text(exported)
    assert "***" in text
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} in {text[:3000]}"


def test_stop_sequences_are_scrubbed_of_the_key_without_content_capture() -> None:
    """Stop sequences are request parameters, recorded whatever ``capture_content`` says: so they are scrubbed too."""
    exported = Exported()
    body = sse({"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]})
    transport = httpx.MockTransport(lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body))
    config = f'{{models: {{mode: "replace", providers: {{local: {{baseUrl: "http://h/v1", apiKey: "{KEY}", models: [{{id: "m"}}]}}}}}}}}'
    g = Genesis.from_config_text(config, env={}, telemetry=exported.telemetry, transport=transport)
    g.run_sync("local/m", {"messages": [{"role": "user", "content": "hi"}], "stream": True, "stop": ["END", f"key {KEY}"]})
    assert attributes(exported.run())["gen_ai.request.stop_sequences"] == ("END", "key ***")
    assert [attributes(span)["gen_ai.request.stop_sequences"] for span in exported.tries()] == [("END", "key ***")]
    text = exported_text(exported)
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} in {text[:3000]}"


# ---- the OpenAI SDK drop-in goes through the same hooks --------------------------------------------------


def test_the_sdk_drop_in_sync_gets_a_run_span_and_its_tries(fault_server: Any) -> None:
    exported = Exported()
    g = genesis(fault_server, exported, primary="fault/overloaded", fallbacks=("fault/ok",))
    with openai.OpenAI(
        api_key="sk-sdk", base_url="http://sdk.invalid/v1", http_client=httpx2.Client(transport=openai_httpx2.OpenAITransport(g))
    ) as client:
        answer = client.chat.completions.create(model="fault/overloaded", messages=[{"role": "user", "content": f"hi {uuid.uuid4()}"}])
    assert answer.choices[0].message.content == "Hello world"
    run = exported.run()
    assert (run.name, attributes(run)["gen_ai.response.model"]) == ("chat overloaded", "ok")
    assert [attributes(span).get("error.type") for span in exported.tries()] == ["overloaded", None]


@pytest.mark.anyio
async def test_the_sdk_drop_in_async_stream_gets_a_run_span(fault_server: Any, anyio_backend: str) -> None:
    exported = Exported()
    g = genesis(fault_server, exported)
    client = openai.AsyncOpenAI(
        api_key="sk-sdk",
        base_url="http://sdk.invalid/v1",
        http_client=httpx2.AsyncClient(transport=openai_httpx2.AsyncOpenAITransport(g)),
    )
    stream = await client.chat.completions.create(model="fault/ok", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]) == "Hello world"
    await client.close()
    await g.aclose()
    run, [tried] = exported.run(), exported.tries()
    assert (run.name, attributes(run)["gen_ai.request.stream"], tried.status.status_code) == ("chat ok", True, StatusCode.UNSET)


# ---- in a service: its own providers, its current span ---------------------------------------------------


SYNC_FORMS: list[tuple[str, str]] = [("run_sync", "chat ok"), ("stream_sync", "chat ok"), ("embed_sync", "embeddings ok")]


@pytest.mark.parametrize(("form", "name"), SYNC_FORMS, ids=[form for form, _ in SYNC_FORMS])
def test_the_run_span_of_a_sync_form_is_a_child_of_the_callers_span(fault_server: Any, form: str, name: str) -> None:
    """In a service: the caller's current span is the run span's parent, even where the run's loop is in another thread."""
    exported = Exported()
    g = genesis(fault_server, exported)
    with exported.tracer_provider.get_tracer("service").start_as_current_span("handle request") as request_span:
        if form == "run_sync":
            g.run_sync("fault/ok", chat(stream=False))
        elif form == "stream_sync":
            for _ in g.stream_sync("fault/ok", chat()):
                pass
        else:
            g.embed_sync("fault/ok", "one")
    service = exported.run()
    [run] = exported.tries()
    assert (service.name, run.name) == ("handle request", name)
    assert run.parent is not None and run.parent.span_id == request_span.get_span_context().span_id
    assert run.context is not None
    assert len([span for span in exported.spans() if span.parent is not None and span.parent.span_id == run.context.span_id]) == 1
    if form == "run_sync":  # not streamed: no stream attribute, no time to first chunk
        for span in (run, *exported.spans()):
            assert "gen_ai.request.stream" not in attributes(span) and "gen_ai.response.time_to_first_chunk" not in attributes(span)


# ---- the pure rules, one row each ------------------------------------------------------------------------

PROVIDERS = [
    ("a vendor's own API: the well-known value", "openai", "https://api.openai.com/v1", "openai"),
    ("a well-known value by host, whatever the provider's id", "my-mistral", "https://api.mistral.ai/v1", "mistral_ai"),
    ("a self-hosted vLLM: the Genesis provider id", "vllm", "http://127.0.0.1:8000/v1", "vllm"),
    ("a self-hosted llama.cpp: the Genesis provider id", "llamacpp", "http://gpu-box:8080/v1", "llamacpp"),
    ("a local server named openai is not OpenAI's service", "openai", "http://localhost:8000/v1", "openai"),
]


@pytest.mark.parametrize(("rule", "provider_id", "url", "expected"), PROVIDERS, ids=[row[0] for row in PROVIDERS])
def test_provider_name(rule: str, provider_id: str, url: str, expected: str) -> None:
    assert provider_name(provider_id, url) == expected


SERVERS = [
    ("host and explicit port", "http://10.0.0.5:8000/v1", {"server.address": "10.0.0.5", "server.port": 8000}),
    ("https without a port is 443", "https://api.example.com/v1", {"server.address": "api.example.com", "server.port": 443}),
    ("http without a port is 80", "http://llm.internal/v1", {"server.address": "llm.internal", "server.port": 80}),
    (
        "credentials in the URL are never taken",
        f"https://user:{KEY.replace('/', '')}@h.example/v1",
        {"server.address": "h.example", "server.port": 443},
    ),
    ("a bad port gives nothing", "http://h:99999/v1", {}),
]


@pytest.mark.parametrize(("rule", "url", "expected"), SERVERS, ids=[row[0] for row in SERVERS])
def test_server_attributes(rule: str, url: str, expected: Mapping[str, Any]) -> None:
    assert server_attributes(url) == expected


PARAMETERS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("temperature is a double", "chat", {"temperature": 1}, {"gen_ai.request.temperature": 1}),
    ("max_completion_tokens is max_tokens", "chat", {"max_completion_tokens": 9}, {"gen_ai.request.max_tokens": 9}),
    (
        "top_p, top_k, penalties, seed",
        "chat",
        {"top_p": 0.9, "top_k": 40, "frequency_penalty": 0.1, "presence_penalty": 0.2, "seed": 7},
        {
            "gen_ai.request.top_p": 0.9,
            "gen_ai.request.top_k": 40,
            "gen_ai.request.frequency_penalty": 0.1,
            "gen_ai.request.presence_penalty": 0.2,
            "gen_ai.request.seed": 7,
        },
    ),
    ("stop as a list", "chat", {"stop": ["a", "b"]}, {"gen_ai.request.stop_sequences": ("a", "b")}),
    ("n of 1 is not recorded", "chat", {"n": 1}, {}),
    ("stream false is not recorded", "chat", {"stream": False}, {}),
    ("json_schema is the output type json", "chat", {"response_format": {"type": "json_schema"}}, {"gen_ai.output.type": "json"}),
    ("a value of the wrong type is left out", "chat", {"temperature": "hot", "max_tokens": 1.5, "seed": True, "stop": [1]}, {}),
    (
        "chat fields mean nothing to embeddings",
        "embeddings",
        {"temperature": 0.5, "dimensions": 8},
        {"gen_ai.embeddings.dimension.count": 8},
    ),
]


@pytest.mark.parametrize(("rule", "operation", "body", "expected"), PARAMETERS, ids=[row[0] for row in PARAMETERS])
def test_request_attributes(rule: str, operation: Any, body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert request_attributes(operation, body) == expected


@dataclass
class _Cancelled(BaseException):
    """What anyio's cancellation is to the run: a BaseException that is not an Exception."""

    detail: str = field(default="")


ERROR_TYPES: list[tuple[str, BaseException, str]] = [
    ("a provider error: its class", ProviderError(ErrorClass.CONTEXT_OVERFLOW, "too long", url="http://h/v1"), "context_overflow"),
    ("a cancellation: aborted", _Cancelled(), "aborted"),
    ("the caller closed the stream: aborted", GeneratorExit(), "aborted"),
    ("a bug: the exception's class", KeyError("x"), "KeyError"),
]


@pytest.mark.parametrize(("rule", "error", "expected"), ERROR_TYPES, ids=[row[0] for row in ERROR_TYPES])
def test_error_type(rule: str, error: BaseException, expected: str) -> None:
    assert error_type(error) == expected


# ---- off: nothing is wrapped, nothing is imported --------------------------------------------------------


def test_off_a_run_is_not_wrapped() -> None:
    from backends.session import RunState

    g = Genesis.from_config_text("{}", env={})

    async def events() -> Any:
        yield [TextDelta("x")]

    state, original = RunState(), events()
    assert g.observe_run(None, {}, state, original) is original and state.observer is None


BLOCKER = """
import sys

class NoOpenTelemetry:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoOpenTelemetry())
"""

WITHOUT_THE_EXTRA = """
import json
import httpx

def loaded():
    return sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry")

import pipeline
after_import = loaded()
from pipeline.api import Genesis

SSE = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\\n\\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\\n\\ndata: [DONE]\\n\\n'
answer = lambda request: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=SSE)
g = Genesis.from_config_text('{models: {providers: {local: {baseUrl: "http://h/v1", models: [{id: "m"}]}}}}', env={}, transport=httpx.MockTransport(answer))
text = g.run_sync("local/m", {"messages": [{"role": "user", "content": "x"}]}).text
after_run = loaded()
import pipeline.otel
after_adapter_import = loaded()
try:
    pipeline.otel.GenAITelemetry()
    made = "made"
except ImportError as error:
    made = str(error)
print(json.dumps([after_import, text, after_run, after_adapter_import, made]))
"""


def test_without_the_extra_nothing_from_opentelemetry_is_imported() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCKER + WITHOUT_THE_EXTRA], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    after_import, text, after_run, after_adapter_import, made = json.loads(done.stdout)
    assert (after_import, text, after_run, after_adapter_import) == ([], "hi", [], [])
    assert "pip install 'genesis[otel]'" in made


def test_with_the_extra_installed_a_run_with_telemetry_off_imports_none_of_it() -> None:
    """The row above with OpenTelemetry importable: an import guarded by ``try/except ImportError`` would show here."""
    done = subprocess.run([sys.executable, "-c", "import sys\n" + WITHOUT_THE_EXTRA], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    after_import, text, after_run, after_adapter_import, made = json.loads(done.stdout)
    assert (after_import, text, after_run, after_adapter_import, made) == ([], "hi", [], [], "made")


def test_the_blocker_blocks() -> None:
    """The test above can fail: with the blocker, importing opentelemetry fails."""
    code = BLOCKER + "import opentelemetry.trace"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "No module named 'opentelemetry" in done.stderr


def test_importing_the_adapter_imports_no_opentelemetry_until_one_is_made() -> None:
    code = (
        "import sys, pipeline.otel; print(any(n.split('.')[0] == 'opentelemetry' for n in sys.modules)); "
        "pipeline.otel.GenAITelemetry(); print(any(n.split('.')[0] == 'opentelemetry' for n in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False", "True"]
