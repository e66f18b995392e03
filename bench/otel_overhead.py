"""What OpenTelemetry (``pipeline.otel``) adds to a run, off and on.

Run: ``.venv/bin/python bench/otel_overhead.py``. Each run streams an answer of N content events over an
``httpx.MockTransport`` (one event per read), as ``bench/per_read_cost.py``'s ``mock`` path does, three ways:
telemetry off (``Genesis()``), and on (``GenAITelemetry`` over the SDK's ``TracerProvider`` with a
``SimpleSpanProcessor`` into an in-memory exporter, and a ``MeterProvider`` with an in-memory reader: the
SDK's own cost is counted, as a service pays it). Shown, for 20 and 60 reads:

- Python bytecodes per run (``sys.settrace`` opcode events; deterministic), and the difference per read;
- wall-clock microseconds per run, the median of ``--repeat`` runs (noisy on a shared machine).

No test asserts a number.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from per_read_cost import PROMPT, Meter, config, frames

from pipeline.api import Genesis


def telemetry() -> Any:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from pipeline.otel import GenAITelemetry

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    return GenAITelemetry(tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]))


def genesis(reads: int, on: bool) -> Genesis:
    pieces = frames(reads)

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return Genesis.from_config_text(
        config("http://local.invalid/v1"), env={}, transport=httpx.MockTransport(handler), telemetry=telemetry() if on else None
    )


async def one_run(g: Genesis, meter: Meter | None) -> None:
    if meter is None:
        async for _ in g.stream("local/m", PROMPT):
            pass
        return
    with meter:
        async for _ in g.stream("local/m", PROMPT):
            pass


def bytecodes(reads: int, on: bool) -> int:
    async def main() -> int:
        async with genesis(reads, on) as g:
            await one_run(g, None)  # warm: imports, the client, discovery
            meter = Meter()
            await one_run(g, meter)
            return meter.total

    return asyncio.run(main())


def microseconds(reads: int, on: bool, repeat: int) -> float:
    async def main() -> float:
        async with genesis(reads, on) as g:
            await one_run(g, None)
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                await one_run(g, None)
                times.append(time.perf_counter() - start)
            return statistics.median(times) * 1e6

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=200)
    options = parser.parse_args()
    counts = {(reads, on): bytecodes(reads, on) for reads in (20, 60) for on in (False, True)}
    for on in (False, True):
        label = "on " if on else "off"
        per_read = (counts[(60, on)] - counts[(20, on)]) / 40
        print(f"telemetry {label}: {counts[(20, on)]} / {counts[(60, on)]} bytecodes per run (20 / 60 reads), {per_read:.1f} per read")
    print(f"telemetry on adds {counts[(20, True)] - counts[(20, False)]} bytecodes to a run of 20 reads")
    for reads in (20, 60):
        off, on = microseconds(reads, False, options.repeat), microseconds(reads, True, options.repeat)
        print(f"{reads} reads: {off:.0f} us per run off, {on:.0f} us on (+{on - off:.0f} us, median of {options.repeat})")


if __name__ == "__main__":
    main()
