"""Retries, cooldown, held usage and honest attempt records (SPEC 10; backends/retry.py, backends/session.py).

Most rows run the real session over a scripted ``send`` stage (what each try
yields, and the error it ends in), so no test waits: the sleep, the clock and
the jitter are injected and the computed delays are asserted. A few rows run
over the fault server to pin the same rules on real HTTP.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import httpx
import pytest

from backends.retry import BACKOFF_CAP, COOLDOWN_MAX, MAX_RETRY_AFTER, RETRY_CLASSES, Cooldowns, backoff_delay, cooldown_seconds
from pipeline.api import Genesis
from pipeline.errors import ErrorClass, ProviderError
from pipeline.events import Attempt, AttemptFailed, Event, Finish, TextDelta, Timings, Usage
from tests.replay import sse_of

PROMPT = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
OK: Sequence[Event] = (TextDelta("Hello"), Finish("stop"), Usage(3, 1, 4))


# ---- the pure rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry", "draw", "retry_after", "expected"),
    [
        (1, 0.5, None, 0.25),  # full jitter: a share of the first ceiling, 0.5 s
        (2, 0.5, None, 0.5),  # the ceiling doubles per retry
        (3, 1.0, None, 2.0),
        (1, 0.0, None, 0.0),  # full jitter reaches down to zero
        (10, 1.0, None, BACKOFF_CAP),  # the ceiling is capped
        (50, 0.5, None, BACKOFF_CAP / 2),
        (1, 0.5, 3.0, 3.0),  # Retry-After wins over the backoff, smaller or larger
        (4, 0.9, 0.1, 0.1),
        (1, 0.5, 3600.0, MAX_RETRY_AFTER),  # capped again, whatever http.py did
        (1, 0.5, -5.0, 0.25),  # a nonsense Retry-After is ignored
        (1, 0.5, float("nan"), 0.25),
        (1, 0.5, float("inf"), 0.25),
        (1, 7.0, None, 0.5),  # a draw outside [0, 1) cannot leave the bounds
        (1, -1.0, None, 0.0),
    ],
)
def test_backoff_delay(retry: int, draw: float, retry_after: float | None, expected: float) -> None:
    assert backoff_delay(retry, draw, retry_after=retry_after) == expected


def test_jitter_stays_within_bounds_with_a_seeded_random() -> None:
    draws = random.Random(20261123)
    for retry in range(1, 12):
        ceiling = min(BACKOFF_CAP, 0.5 * 2 ** (retry - 1))
        delays = [backoff_delay(retry, draws.random()) for _ in range(200)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling * 0.9 and min(delays) < ceiling * 0.1  # spread over the whole range


@pytest.mark.parametrize(
    ("failures", "retry_after", "expected"),
    [
        (1, None, 30.0),
        (2, None, 60.0),
        (4, None, 240.0),
        (5, None, COOLDOWN_MAX),
        (99, None, COOLDOWN_MAX),
        (1, 90.0, 90.0),
        (3, 90.0, 120.0),
        (1, 10_000.0, COOLDOWN_MAX),
        (1, float("inf"), 30.0),
    ],
)
def test_cooldown_seconds(failures: int, retry_after: float | None, expected: float) -> None:
    assert cooldown_seconds(failures, retry_after) == expected


def test_concurrent_failures_of_one_outage_count_once() -> None:
    now = [1.0]
    cooldowns = Cooldowns(lambda: now[0])
    key = ("p", "m")
    assert cooldowns.failed(key, started=0.0, error_class=ErrorClass.OVERLOADED) == 30.0  # until 31
    now[0] = 2.0
    assert cooldowns.failed(key, started=0.5, error_class=ErrorClass.OVERLOADED) == 29.0  # began before the failure above
    now[0] = 40.0
    assert cooldowns.failed(key, started=35.0, error_class=ErrorClass.OVERLOADED) == 60.0  # a new failure: doubled


# ---- the session over a scripted send --------------------------------------------------------

CONFIG = """{{
  agents: {{ defaults: {{ model: {{ primary: "a/m1", fallbacks: [{fallbacks}] }} }} }},
  models: {{ providers: {{
    a: {{ baseUrl: "http://a.invalid/v1", {a_extra} models: [{{ id: "m1" }}] }},
    b: {{ baseUrl: "http://b.invalid/v1", {b_extra} models: [{{ id: "m2" }}] }},
  }} }},
}}"""


def failure(error_class: str, *, status: int | None = 503, retry_after: float | None = None) -> ProviderError:
    error = ProviderError(ErrorClass(error_class), f"{error_class} happened", url="http://x.invalid/v1/chat/completions", status=status)
    error.retry_after = retry_after
    return error


Step = tuple[Sequence[Event], ProviderError | None]


class Script:
    """The ``send`` stage for these rows: per model, each try plays the next step (its events as the SSE
    chunks a server would send, through the real parse_stream; then an error or the end)."""

    def __init__(self, **steps: Sequence[Step]) -> None:
        self.steps = {model: list(plays) for model, plays in steps.items()}
        self.sent: list[str] = []

    def __call__(self, client: Any, wire: Any, hints: Any, timing: Any) -> AsyncIterator[bytes]:
        self.sent.append(wire.model)
        events, error = self.steps[wire.model].pop(0)
        timing.status = 200 if error is None else error.status
        timing.content_type = "text/event-stream"
        return self._play(list(events), error)

    @staticmethod
    async def _play(events: list[Event], error: ProviderError | None) -> AsyncIterator[bytes]:
        if events:
            yield sse_of(events)
        if error is not None:
            raise error


class Harness:
    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, *, fallbacks: str = '"b/m2"', a_extra: str = "", b_extra: str = "", draw: float = 0.5
    ) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.genesis = Genesis.from_config_text(
            CONFIG.format(fallbacks=fallbacks, a_extra=a_extra, b_extra=b_extra),
            env={},
            sleep=self.sleep,
            clock=lambda: self.now,
            random=lambda: draw,
        )
        self.monkeypatch = monkeypatch

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def script(self, **steps: Sequence[Step]) -> Script:
        script = Script(**steps)
        self.genesis.pipeline = self.genesis.pipeline.replace("send", script)
        return script

    async def run(self, **options: Any) -> Any:
        return await self.genesis.run("a/m1", PROMPT, **options)

    async def fails(self, **options: Any) -> ProviderError:
        with pytest.raises(ProviderError) as caught:
            await self.run(**options)
        return caught.value


def summary(attempts: Sequence[Attempt]) -> list[tuple[str, str | None, int, int | None]]:
    return [(a.model, a.error_class, a.retry, a.delay_ms) for a in attempts]


pytestmark = pytest.mark.anyio


async def test_retryable_failures_are_retried_with_backoff_then_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch)
    script = h.script(m1=[((), failure("overloaded")), ((), failure("overloaded")), (OK, None)])
    completion = await h.run()
    assert script.sent == ["m1", "m1", "m1"] and h.sleeps == [0.25, 0.5]
    assert summary(completion.attempts) == [("m1", "overloaded", 0, 250), ("m1", "overloaded", 1, 500), ("m1", None, 2, None)]
    assert completion.model == "m1" and completion.text == "Hello"


@pytest.mark.parametrize("error_class", sorted(RETRY_CLASSES))
async def test_each_retry_class_is_retried(monkeypatch: pytest.MonkeyPatch, error_class: str) -> None:
    h = Harness(monkeypatch)
    script = h.script(m1=[((), failure(error_class)), (OK, None)])
    await h.run()
    assert script.sent == ["m1", "m1"] and len(h.sleeps) == 1


@pytest.mark.parametrize("error_class", ["format", "auth", "context_overflow", "model_not_found", "server_error", "protocol"])
async def test_other_classes_are_not_retried(monkeypatch: pytest.MonkeyPatch, error_class: str) -> None:
    h = Harness(monkeypatch)
    script = h.script(m1=[((), failure(error_class, status=400))], m2=[(OK, None)])
    try:
        await h.run()
    except ProviderError:
        pass  # format and context_overflow end the run; the others fail over
    assert script.sent.count("m1") == 1 and h.sleeps == []


@pytest.mark.parametrize(
    ("retry_after", "slept"),
    [(3.0, 3.0), (0.0, 0.0), (3600.0, MAX_RETRY_AFTER)],
)
async def test_retry_after_wins_over_backoff_and_is_capped(monkeypatch: pytest.MonkeyPatch, retry_after: float, slept: float) -> None:
    h = Harness(monkeypatch)
    h.script(m1=[((), failure("rate_limit", status=429, retry_after=retry_after)), (OK, None)])
    completion = await h.run()
    assert h.sleeps == [slept] and completion.attempts[0].delay_ms == round(slept * 1000)


async def test_seeded_jitter_is_the_delay_slept(monkeypatch: pytest.MonkeyPatch) -> None:
    draws, expected_draws = random.Random(7), random.Random(7)
    h = Harness(monkeypatch, a_extra="maxRetries: 5,")
    h.genesis.random = draws.random
    h.script(m1=[((), failure("timeout"))] * 5 + [(OK, None)])
    await h.run()
    assert h.sleeps == [backoff_delay(n, expected_draws.random()) for n in range(1, 6)]
    assert all(0 <= s <= min(BACKOFF_CAP, 0.5 * 2**n) for n, s in enumerate(h.sleeps))


async def test_max_retries_zero_turns_retries_off(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch, a_extra="maxRetries: 0,")
    script = h.script(m1=[((), failure("overloaded"))], m2=[(OK, None)])
    completion = await h.run()
    assert script.sent == ["m1", "m2"] and h.sleeps == []
    assert summary(completion.attempts) == [("m1", "overloaded", 0, None), ("m2", None, 0, None)]


async def test_max_retries_is_per_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch, a_extra="maxRetries: 1,", b_extra="maxRetries: 3,")
    script = h.script(m1=[((), failure("overloaded"))] * 2, m2=[((), failure("overloaded"))] * 4)
    error = await h.fails()
    assert script.sent == ["m1"] * 2 + ["m2"] * 4
    assert [(a.model, a.retry) for a in error.attempts] == [("m1", 0), ("m1", 1), ("m2", 0), ("m2", 1), ("m2", 2), ("m2", 3)]


async def test_retries_run_out_then_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch)
    events: list[Any] = []
    h.script(m1=[((), failure("unreachable", status=None))] * 3, m2=[(OK, None)])
    completion = await h.run(on_event=events.append)
    assert summary(completion.attempts) == [
        ("m1", "unreachable", 0, 250),
        ("m1", "unreachable", 1, 500),
        ("m1", "unreachable", 2, None),
        ("m2", None, 0, None),
    ]
    assert [e.attempt for e in events if isinstance(e, AttemptFailed)] == list(completion.attempts[:3])


async def test_no_retry_once_the_answer_began(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch)
    script = h.script(m1=[([TextDelta("Hel")], failure("timeout", status=None))], m2=[(OK, None)])
    error = await h.fails()
    assert script.sent == ["m1"] and h.sleeps == []
    assert summary(error.attempts) == [("m1", "timeout", 0, None)]


async def test_cancel_during_backoff_sleep_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch)
    script = h.script(m1=[((), failure("overloaded"))] * 3)
    records: list[Any] = []
    with anyio.CancelScope() as scope:

        async def cancelled_sleep(seconds: float) -> None:
            scope.cancel()
            await anyio.sleep(seconds)

        h.genesis.sleep = cancelled_sleep
        await h.run(audit=records.append)
    assert scope.cancelled_caught and script.sent == ["m1"] and len(records) == 1


# ---- cooldown --------------------------------------------------------------------------------


async def test_a_failing_model_cools_down_and_comes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch)
    script = h.script(m1=[((), failure("overloaded"))] * 3 + [(OK, None)], m2=[(OK, None)] * 3)
    await h.run()  # m1: three tries, then m2
    records: list[Any] = []
    second = await h.run(audit=records.append)
    assert script.sent == ["m1"] * 3 + ["m2", "m2"]
    assert (
        second.attempts[0].error_class == "cooldown" and second.attempts[0].model == "m1" and "30 s" in (second.attempts[0].message or "")
    )
    assert (records[0].error_class, records[0].request) == ("cooldown", None)  # audited, nothing sent
    h.now += 29
    await h.run()
    assert script.sent[-1] == "m2"
    h.now += 2  # 31 s after the failure
    assert (await h.run()).model == "m1"


async def test_cooldown_doubles_on_repeated_failure_and_resets_on_success(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch, a_extra="maxRetries: 0,", fallbacks="")
    h.script(m1=[((), failure("overloaded"))] * 2 + [(OK, None)] + [((), failure("overloaded"))])
    await h.fails()
    cooldowns = h.genesis.cooldowns
    assert cooldowns.remaining(("a", "m1")) == 30
    h.now += 31
    await h.fails()
    assert cooldowns.remaining(("a", "m1")) == 60
    h.now += 61
    await h.run()
    assert cooldowns.remaining(("a", "m1")) is None
    await h.fails()
    assert cooldowns.remaining(("a", "m1")) == 30


async def test_every_candidate_cooling_down_tries_the_one_back_first(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch, a_extra="maxRetries: 0,", b_extra="maxRetries: 0,")
    script = h.script(m1=[((), failure("overloaded"))], m2=[((), failure("overloaded")), (OK, None)])
    await h.fails()  # m1 and m2 fail at t=1000: both cool down until 1030
    h.now += 1
    h.genesis.cooldowns.failed(("a", "m1"), started=h.now, error_class=ErrorClass.OVERLOADED)  # m1 failed again: until 1061
    completion = await h.run()
    assert script.sent == ["m1", "m2", "m2"]
    assert summary(completion.attempts) == [("m1", "cooldown", 0, None), ("m2", "cooldown", 0, None), ("m2", None, 0, None)]


async def test_a_skipped_model_whose_fallbacks_fail_reports_every_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch, a_extra="maxRetries: 0,")
    h.script(m1=[((), failure("overloaded"))], m2=[(OK, None), ((), failure("format", status=400))])
    await h.run()
    error = await h.fails()
    assert [(a.model, a.error_class) for a in error.attempts] == [("m1", "cooldown"), ("m2", "format")]


async def test_non_retryable_failures_do_not_cool_down(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch)
    h.script(m1=[((), failure("auth", status=401)), (OK, None)], m2=[(OK, None)])
    await h.run()
    assert h.genesis.cooldowns.remaining(("a", "m1")) is None and (await h.run()).model == "m1"


# ---- what reaches the caller -----------------------------------------------------------------


async def collect(g: Genesis) -> list[Any]:
    return [event async for event in g.stream("a/m1", PROMPT)]


async def test_a_failed_attempts_usage_and_finish_never_reach_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch, a_extra="maxRetries: 0,")
    h.script(m1=[([Usage(100, 0, 100), Finish("stop")], failure("protocol", status=None))], m2=[(OK, None)])
    events = await collect(h.genesis)
    assert [e for e in events if isinstance(e, (Usage, Finish))] == [Finish("stop"), Usage(3, 1, 4)]


async def test_usage_and_timings_come_after_the_answer_is_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch)
    timings = Timings({"prompt_ms": 12.5, "predicted_per_second": 40.0})
    h.script(m1=[([Usage(3, 1, 4), timings, TextDelta("Hi"), Finish("stop")], None)] * 2)
    assert [type(e).__name__ for e in await collect(h.genesis)] == ["TextDelta", "Usage", "Timings", "Finish"]
    completion = await h.run()
    assert completion.timings == timings.values and completion.usage == Usage(3, 1, 4)


async def test_an_unresolvable_fallback_keeps_the_earlier_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch, fallbacks='"nope/x"', a_extra="maxRetries: 0,")
    h.script(m1=[((), failure("overloaded"))])
    error = await h.fails()
    assert error.error_class == "overloaded"
    assert [(a.provider, a.model, a.error_class) for a in error.attempts] == [("a", "m1", "overloaded"), ("nope", "x", "unknown_model")]


async def test_an_unresolvable_fallback_between_two_is_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(monkeypatch, fallbacks='"nope/x", "b/m2"', a_extra="maxRetries: 0,")
    h.script(m1=[((), failure("overloaded"))], m2=[(OK, None)])
    completion = await h.run()
    assert [(a.model, a.error_class) for a in completion.attempts] == [("m1", "overloaded"), ("x", "unknown_model"), ("m2", None)]


# ---- discovery ---------------------------------------------------------------------------------


async def test_discovery_never_raises_and_warns_scrubbed_one_line() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.port == 8000:
            raise RuntimeError("unexpected\nfailure with vllm-secret-key inside")
        if request.url.port == 30000:
            raise ExceptionGroup("nested", [ValueError("sglang-secret-key")])
        return httpx.Response(200, json={"data": [{"id": "found-model"}]})

    env = {"VLLM_API_KEY": "vllm-secret-key", "SGLANG_API_KEY": "sglang-secret-key", "OLLAMA_API_KEY": "x"}
    g = Genesis.from_config_text("{}", env=env, transport=httpx.MockTransport(answer))
    warnings: list[str] = []
    g.warn = warnings.append
    async with g:
        await g.discover()
    assert len(warnings) == 2 and all("\n" not in w for w in warnings)
    assert not any("secret-key" in w for w in warnings) and any("vllm" in w for w in warnings)
    entry = g.catalog.providers["ollama"].find("found-model")
    assert entry is not None and entry.origin == "discovered"


# ---- the same rules over HTTP (fault server) -----------------------------------------------------


def fault_genesis(fault_server: Any, sleeps: list[float], *, retries: int = 2, fallbacks: str = "") -> Genesis:
    text = f"""{{
      agents: {{ defaults: {{ model: {{ primary: "fault/ok", fallbacks: [{fallbacks}] }} }} }},
      models: {{ providers: {{ fault: {{ baseUrl: "{fault_server.base_url}", maxRetries: {retries}, models: [{{ id: "ok" }}] }} }} }},
    }}"""

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return Genesis.from_config_text(text, env={}, sleep=sleep, random=lambda: 1.0)


def prompt(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "stream": True}


async def test_a_server_loading_its_model_is_waited_for(fault_server: Any, anyio_backend: str) -> None:
    sleeps: list[float] = []
    async with fault_genesis(fault_server, sleeps) as g:
        completion = await g.run("fault/warming-up", prompt(f"warm up ({anyio_backend})"))
    assert completion.text == "Hello world" and sleeps == [0.5, 1.0]
    assert [(a.error_class, a.status, a.message) for a in completion.attempts[:2]] == [("overloaded", 503, "Loading model")] * 2


async def test_loading_retries_exhausted_then_cooldown(fault_server: Any) -> None:
    sleeps: list[float] = []
    records: list[Any] = []
    async with fault_genesis(fault_server, sleeps, fallbacks='"fault/ok"') as g:
        first = await g.run("fault/loading", PROMPT, audit=records.append)
        second = await g.run("fault/loading", PROMPT, audit=records.append)
    assert [(a.model, a.error_class, a.retry) for a in first.attempts] == [
        ("loading", "overloaded", 0),
        ("loading", "overloaded", 1),
        ("loading", "overloaded", 2),
        ("ok", None, 0),
    ]
    assert [(a.model, a.error_class) for a in second.attempts] == [("loading", "cooldown"), ("ok", None)]
    assert [(r.model, r.retry, r.status) for r in records] == [
        ("loading", 0, 503),
        ("loading", 1, 503),
        ("loading", 2, 503),
        ("ok", 0, 200),
        ("loading", 0, None),
        ("ok", 0, 200),
    ]
    assert records[0].delay_ms == 500 and json.loads(records[0].request.body)["model"] == "loading"


async def test_usage_of_a_failed_stream_is_not_passed_on(fault_server: Any) -> None:
    sleeps: list[float] = []
    async with fault_genesis(fault_server, sleeps, fallbacks='"fault/ok"') as g:
        events = [event async for event in g.stream("fault/usage-then-error", PROMPT)]
    assert sum(isinstance(e, Usage) for e in events) == 1
    assert [a.error_class for a in (e.attempt for e in events if isinstance(e, AttemptFailed))] == ["server_error"]


async def test_a_rate_limited_model_is_retried_then_handed_over(fault_server: Any) -> None:
    sleeps: list[float] = []
    async with fault_genesis(fault_server, sleeps, retries=1, fallbacks='"fault/ok"') as g:
        completion = await g.run("fault/rate-limited", PROMPT)
    assert [(a.model, a.error_class, a.status, a.retry) for a in completion.attempts] == [
        ("rate-limited", "rate_limit", 429, 0),
        ("rate-limited", "rate_limit", 429, 1),
        ("ok", None, 200, 0),
    ]
    assert len(sleeps) == 1  # the delay itself: Retry-After (1 s) once backends.http reads the header, else the backoff
