"""Rule table for the session (``backends.session``): retries, failover and cooldown.

Each row names the rule of the session's module docstring (or of
``backends.retry`` / ``backends.classify``'s class table) it pins, scripts what
each server answers to each request, and states the requests sent, the
attempts recorded and the outcome. Rows run through the public API only
(``Genesis.run`` and ``Genesis.stream``) over an ``httpx.MockTransport``: real
HTTP answers (status, headers, SSE bodies) go through the real sender, parser
and classifier, and nothing here names a session internal, so the rows hold
however the session is structured inside. Sleep, clock and jitter are injected:
no row waits, and the backoff each retry slept is asserted.

Two providers: ``a`` serves ``m1`` (the primary), ``b`` serves ``m2`` (the
fallback); both keep the default ``maxRetries`` (2) unless a row says otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from pipeline.api import Genesis
from pipeline.errors import ProviderError
from pipeline.events import AttemptFailed, Completion, Event, Finish, TextDelta, Timings, Usage

pytestmark = pytest.mark.anyio

CONFIG = """{{
  agents: {{ defaults: {{ model: {{ primary: "a/m1", fallbacks: [{fallbacks}] }} }} }},
  models: {{ providers: {{
    a: {{ baseUrl: "http://a.invalid/v1", {a_extra} models: [{{ id: "m1" }}] }},
    b: {{ baseUrl: "http://b.invalid/v1", {b_extra} models: [{{ id: "m2" }}] }},
  }} }},
}}"""


def sse(*payloads: dict[str, Any] | str) -> bytes:
    return b"".join(b"data: " + (p if isinstance(p, str) else json.dumps(p)).encode() + b"\n\n" for p in payloads)


def delta(content: str | None = None, finish: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


USAGE = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, or (``raise_``) a transport failure instead of an answer."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    raise_: type[Exception] | None = None

    def response(self, request: httpx.Request) -> httpx.Response:
        if self.raise_ is not None:
            raise self.raise_("scripted failure", request=request)  # type: ignore[call-arg]
        return httpx.Response(self.status, headers=list(self.headers), content=self.body, request=request)


def ok(text: str = "Hello", finish: str = "stop") -> Reply:
    return Reply(body=sse(delta(text), delta(finish=finish), USAGE, "[DONE]"), headers=(("content-type", "text/event-stream"),))


def stream(body: bytes) -> Reply:
    return Reply(body=body, headers=(("content-type", "text/event-stream"),))


def status(code: int, message: str = "scripted", headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(code, json.dumps({"error": {"message": message}}).encode(), (("content-type", "application/json"), *headers))


REFUSED = Reply(raise_=httpx.ConnectError)
READ_TIMEOUT = Reply(raise_=httpx.ReadTimeout)
BROKEN = Reply(raise_=httpx.RemoteProtocolError)


@dataclass
class Servers:
    """The MockTransport's handler: each model answers its requests from its own script, in order."""

    script: dict[str, list[Reply]]
    sent: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        model = json.loads(request.content)["model"]
        self.sent.append(model)
        replies = self.script.get(model, [])
        assert replies, f"no scripted reply left for {model}"
        return replies.pop(0).response(request)


class World:
    """One Genesis over scripted servers, with the sleeps it asked for and a clock the test moves."""

    def __init__(self, script: dict[str, list[Reply]], *, fallbacks: str = '"b/m2"', a_extra: str = "", b_extra: str = "") -> None:
        self.servers = Servers({model: list(replies) for model, replies in script.items()})
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.genesis = Genesis.from_config_text(
            CONFIG.format(fallbacks=fallbacks, a_extra=a_extra, b_extra=b_extra),
            env={},
            transport=httpx.MockTransport(self.servers),
            sleep=self._sleep,
            clock=lambda: self.now,
            random=lambda: 0.5,
        )

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def add(self, script: dict[str, list[Reply]]) -> None:
        for model, replies in script.items():
            self.servers.script.setdefault(model, []).extend(replies)

    async def outcome(self, model: str | None = "a/m1", **options: Any) -> Completion | ProviderError:
        request: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], **options.pop("request", {})}
        try:
            return await self.genesis.run(model, request, **options)
        except ProviderError as error:
            return error


AttemptRow = tuple[str, str | None, int]  # model, class (None: it answered), retry number


def attempts(outcome: Completion | ProviderError) -> list[AttemptRow]:
    return [(a.model, a.error_class, a.retry) for a in outcome.attempts]


def result(outcome: Completion | ProviderError) -> tuple[str, str]:
    if isinstance(outcome, ProviderError):
        return ("error", outcome.error_class)
    return ("answer", outcome.text)


@dataclass(frozen=True)
class Row:
    rule: str
    script: dict[str, list[Reply]]
    sent: list[str]
    attempts: list[AttemptRow]
    outcome: tuple[str, str]
    sleeps: list[float] = field(default_factory=list)
    model: str | None = "a/m1"
    options: dict[str, Any] = field(default_factory=dict)
    fallbacks: str = '"b/m2"'
    a_extra: str = ""
    b_extra: str = ""


ROWS: list[Row] = [
    # --- success, and the candidates ---
    Row("the first try answers", {"m1": [ok()]}, ["m1"], [("m1", None, 0)], ("answer", "Hello")),
    Row("no model asked: the primary", {"m1": [ok()]}, ["m1"], [("m1", None, 0)], ("answer", "Hello"), model=None),
    Row(
        "a requested fallback is not tried twice",
        {"m2": [status(503)] * 3},
        ["m2"] * 3,
        [("m2", "overloaded", 0), ("m2", "overloaded", 1), ("m2", "overloaded", 2)],
        ("error", "overloaded"),
        sleeps=[0.25, 0.5],
        model="b/m2",
    ),
    Row(
        "the primary is not a fallback of another requested model",
        {"m2": [status(401)]},
        ["m2"],
        [("m2", "auth", 0)],
        ("error", "auth"),
        model="b/m2",
    ),
    Row("finish length is an answer, not a failure", {"m1": [ok("cut", "length")]}, ["m1"], [("m1", None, 0)], ("answer", "cut")),
    # --- retries (RETRY_CLASSES: unreachable, timeout, rate_limit, overloaded) ---
    Row(
        "a 503 is retried on the same model",
        {"m1": [status(503), ok()]},
        ["m1", "m1"],
        [("m1", "overloaded", 0), ("m1", None, 1)],
        ("answer", "Hello"),
        [0.25],
    ),
    Row(
        "a 500 is retried",
        {"m1": [status(500), ok()]},
        ["m1", "m1"],
        [("m1", "overloaded", 0), ("m1", None, 1)],
        ("answer", "Hello"),
        [0.25],
    ),
    Row(
        "a 429 is retried",
        {"m1": [status(429), ok()]},
        ["m1", "m1"],
        [("m1", "rate_limit", 0), ("m1", None, 1)],
        ("answer", "Hello"),
        [0.25],
    ),
    Row(
        "a 408 is retried", {"m1": [status(408), ok()]}, ["m1", "m1"], [("m1", "timeout", 0), ("m1", None, 1)], ("answer", "Hello"), [0.25]
    ),
    Row(
        "a refused connection is retried",
        {"m1": [REFUSED, ok()]},
        ["m1", "m1"],
        [("m1", "unreachable", 0), ("m1", None, 1)],
        ("answer", "Hello"),
        [0.25],
    ),
    Row(
        "a read timeout is retried",
        {"m1": [READ_TIMEOUT, ok()]},
        ["m1", "m1"],
        [("m1", "timeout", 0), ("m1", None, 1)],
        ("answer", "Hello"),
        [0.25],
    ),
    Row(
        "backoff doubles per retry (full jitter, draw 0.5)",
        {"m1": [status(503), status(503), ok()]},
        ["m1"] * 3,
        [("m1", "overloaded", 0), ("m1", "overloaded", 1), ("m1", None, 2)],
        ("answer", "Hello"),
        [0.25, 0.5],
    ),
    Row(
        "Retry-After wins over the backoff",
        {"m1": [status(429, headers=(("retry-after", "3"),)), ok()]},
        ["m1", "m1"],
        [("m1", "rate_limit", 0), ("m1", None, 1)],
        ("answer", "Hello"),
        [3.0],
    ),
    Row(
        "Retry-After is capped at 60 s",
        {"m1": [status(503, headers=(("retry-after", "3600"),)), ok()]},
        ["m1", "m1"],
        [("m1", "overloaded", 0), ("m1", None, 1)],
        ("answer", "Hello"),
        [60.0],
    ),
    Row(
        "maxRetries bounds the tries of one model, then the fallback",
        {"m1": [status(503)] * 2, "m2": [ok("B")]},
        ["m1", "m1", "m2"],
        [("m1", "overloaded", 0), ("m1", "overloaded", 1), ("m2", None, 0)],
        ("answer", "B"),
        [0.25],
        a_extra="maxRetries: 1,",
    ),
    Row(
        "maxRetries 0 turns retries off",
        {"m1": [status(503)], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "overloaded", 0), ("m2", None, 0)],
        ("answer", "B"),
        a_extra="maxRetries: 0,",
    ),
    Row(
        "maxRetries is per provider",
        {"m1": [status(503)], "m2": [status(503)] * 2},
        ["m1", "m2", "m2"],
        [("m1", "overloaded", 0), ("m2", "overloaded", 0), ("m2", "overloaded", 1)],
        ("error", "overloaded"),
        [0.25],
        a_extra="maxRetries: 0,",
        b_extra="maxRetries: 1,",
    ),
    Row(
        "a broken connection is protocol: not retried, handed over",
        {"m1": [BROKEN], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "protocol", 0), ("m2", None, 0)],
        ("answer", "B"),
    ),
    # --- failover by class (FAILOVER_CLASSES) ---
    Row(
        "auth is not retried but handed over",
        {"m1": [status(401)], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "auth", 0), ("m2", None, 0)],
        ("answer", "B"),
    ),
    Row(
        "403 is auth: handed over",
        {"m1": [status(403)], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "auth", 0), ("m2", None, 0)],
        ("answer", "B"),
    ),
    Row(
        "model_not_found is handed over",
        {"m1": [status(404)], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "model_not_found", 0), ("m2", None, 0)],
        ("answer", "B"),
    ),
    Row(
        "format ends the run: another model gets the same request",
        {"m1": [status(400)]},
        ["m1"],
        [("m1", "format", 0)],
        ("error", "format"),
    ),
    Row("422 is format: the run ends", {"m1": [status(422)]}, ["m1"], [("m1", "format", 0)], ("error", "format")),
    Row(
        "'prompt is too long' is context_overflow: the run ends, no fallback",
        {"m1": [status(400, "prompt is too long: 9000 tokens > 8192 maximum")]},
        ["m1"],
        [("m1", "context_overflow", 0)],
        ("error", "context_overflow"),
    ),
    Row(
        "retries run out, then the fallback",
        {"m1": [REFUSED] * 3, "m2": [ok("B")]},
        ["m1"] * 3 + ["m2"],
        [("m1", "unreachable", 0), ("m1", "unreachable", 1), ("m1", "unreachable", 2), ("m2", None, 0)],
        ("answer", "B"),
        [0.25, 0.5],
    ),
    Row(
        "the last candidate's failure ends the run, every attempt kept",
        {"m1": [status(401)], "m2": [status(404)]},
        ["m1", "m2"],
        [("m1", "auth", 0), ("m2", "model_not_found", 0)],
        ("error", "model_not_found"),
    ),
    Row(
        "fallbacks off: the requested model only",
        {"m1": [status(401)]},
        ["m1"],
        [("m1", "auth", 0)],
        ("error", "auth"),
        options={"fallbacks": False},
    ),
    Row(
        "no fallbacks configured: the primary only",
        {"m1": [status(401)]},
        ["m1"],
        [("m1", "auth", 0)],
        ("error", "auth"),
        fallbacks="",
    ),
    Row(
        "an unresolvable fallback is an attempt, and the next one is tried",
        {"m1": [status(401)], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "auth", 0), ("x", "unknown_model", 0), ("m2", None, 0)],
        ("answer", "B"),
        fallbacks='"nope/x", "b/m2"',
    ),
    Row(
        "an unresolvable last fallback: the run ends with the last server failure",
        {"m1": [status(401)]},
        ["m1"],
        [("m1", "auth", 0), ("x", "unknown_model", 0)],
        ("error", "auth"),
        fallbacks='"nope/x"',
    ),
    Row(
        "a hostile error body is classified by its status, never a Python error",
        {"m1": [Reply(401, b'{"error": {"message": "bad \xff key"}}', (("content-type", "application/json"),))], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "auth", 0), ("m2", None, 0)],
        ("answer", "B"),
    ),
    # --- failures inside a 200 answer ---
    Row(
        "an in-stream error before any text: server_error, not retried, handed over",
        {"m1": [stream(sse({"error": {"message": "boom"}}))], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "server_error", 0), ("m2", None, 0)],
        ("answer", "B"),
    ),
    Row(
        "an in-stream error after text ends the run: the caller has the beginning",
        {"m1": [stream(sse(delta("Hel"), {"error": {"message": "boom"}}))], "m2": [ok("B")]},
        ["m1"],
        [("m1", "server_error", 0)],
        ("error", "server_error"),
    ),
    Row(
        "an in-stream overflow is not handed over",
        {"m1": [stream(sse({"error": {"message": "prompt is too long"}}))], "m2": [ok("B")]},
        ["m1"],
        [("m1", "context_overflow", 0)],
        ("error", "context_overflow"),
    ),
    Row(
        "llama.cpp's error: frame before text is handed over",
        {"m1": [stream(b'error: {"code": 500, "message": "slot unavailable"}\n\n')], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "server_error", 0), ("m2", None, 0)],
        ("answer", "B"),
    ),
    Row(
        "finish_reason error (inferrs) before text is handed over",
        {"m1": [stream(sse(delta(finish="error"), "[DONE]"))], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "server_error", 0), ("m2", None, 0)],
        ("answer", "B"),
    ),
    Row(
        "finish_reason error after text ends the run",
        {"m1": [stream(sse(delta("oops"), delta(finish="error"), "[DONE]"))], "m2": [ok("B")]},
        ["m1"],
        [("m1", "server_error", 0)],
        ("error", "server_error"),
    ),
    Row(
        "a malformed chunk before text is protocol: handed over, not retried",
        {"m1": [stream(b"data: {bad\n\n")], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "protocol", 0), ("m2", None, 0)],
        ("answer", "B"),
    ),
    Row(
        "a stream that ends without a finish_reason is protocol",
        {"m1": [stream(sse("[DONE]"))], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "protocol", 0), ("m2", None, 0)],
        ("answer", "B"),
    ),
    Row(
        "text without a finish_reason ends the run as protocol",
        {"m1": [stream(sse(delta("Hel"), "[DONE]"))], "m2": [ok("B")]},
        ["m1"],
        [("m1", "protocol", 0)],
        ("error", "protocol"),
    ),
    Row(
        "an unknown finish_reason before text is protocol: handed over",
        {"m1": [stream(sse(delta(finish="eos"), "[DONE]"))], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "protocol", 0), ("m2", None, 0)],
        ("answer", "B"),
    ),
    Row(
        "a usage chunk is not an answer: an error after it still hands over",
        {"m1": [stream(sse(USAGE, {"error": {"message": "boom"}}))], "m2": [ok("B")]},
        ["m1", "m2"],
        [("m1", "server_error", 0), ("m2", None, 0)],
        ("answer", "B"),
    ),
    Row(
        "reasoning reached the caller: an error after it ends the run",
        {"m1": [stream(sse({"choices": [{"delta": {"reasoning_content": "hmm"}}]}, {"error": {"message": "boom"}}))], "m2": [ok("B")]},
        ["m1"],
        [("m1", "server_error", 0)],
        ("error", "server_error"),
    ),
    Row(
        "a tool call reached the caller: an error after it ends the run",
        {
            "m1": [
                stream(sse({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}]}}]}, "data: {bad"))
            ],
            "m2": [ok("B")],
        },
        ["m1"],
        [("m1", "protocol", 0)],
        ("error", "protocol"),
    ),
    Row(
        "a plain JSON answer to a non-streamed request",
        {
            "m1": [
                Reply(
                    body=b'{"choices":[{"message":{"content":"whole"},"finish_reason":"stop"}]}',
                    headers=(("content-type", "application/json"),),
                )
            ]
        },
        ["m1"],
        [("m1", None, 0)],
        ("answer", "whole"),
        options={"request": {"stream": False}},
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.rule for row in ROWS])
async def test_session_rule(row: Row) -> None:
    world = World(row.script, fallbacks=row.fallbacks, a_extra=row.a_extra, b_extra=row.b_extra)
    outcome = await world.outcome(row.model, **row.options)
    assert (world.servers.sent, attempts(outcome), result(outcome), world.sleeps) == (row.sent, row.attempts, row.outcome, row.sleeps)


# --- what reaches the caller ----------------------------------------------------------------------


async def events_of(world: World, model: str = "a/m1") -> list[Event]:
    return [event async for event in world.genesis.stream(model, {"messages": [{"role": "user", "content": "hi"}]})]


async def test_each_failed_attempt_is_yielded_as_it_is_recorded() -> None:
    world = World({"m1": [status(503), status(401)], "m2": [ok("B")]})
    events = await events_of(world)
    failed = [(e.attempt.model, e.attempt.error_class, e.attempt.retry, e.attempt.delay_ms) for e in events if isinstance(e, AttemptFailed)]
    assert failed == [("m1", "overloaded", 0, 250), ("m1", "auth", 1, None)]
    assert [type(e).__name__ for e in events] == ["AttemptFailed", "AttemptFailed", "TextDelta", "Finish", "Usage"]


async def test_the_attempt_that_ends_the_run_is_raised_not_yielded() -> None:
    world = World({"m1": [status(401)], "m2": [status(400)]})
    seen: list[Event] = []
    with pytest.raises(ProviderError) as caught:
        async for event in world.genesis.stream("a/m1", {"messages": [{"role": "user", "content": "hi"}]}):
            seen.append(event)
    assert [e.attempt.model for e in seen if isinstance(e, AttemptFailed)] == ["m1"]
    assert [(a.model, a.error_class) for a in caught.value.attempts] == [("m1", "auth"), ("m2", "format")]


async def test_usage_and_finish_of_a_failed_attempt_never_reach_the_caller() -> None:
    failed = stream(sse({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 0, "total_tokens": 100}}, delta(finish="eos")))
    world = World({"m1": [failed], "m2": [ok("B")]})
    events = await events_of(world)
    assert [e for e in events if isinstance(e, (Usage, Finish))] == [Finish("stop"), Usage(3, 1, 4)]


async def test_usage_timings_and_finish_are_held_until_the_answer_is_complete() -> None:
    """Held events keep their order among themselves, and come after every answer event."""
    body = sse(
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}, "timings": {"prompt_ms": 1.5}},
        delta("Hi"),
        delta(finish="stop"),
        delta(" there"),
        "[DONE]",
    )
    world = World({"m1": [stream(body)]})
    events = await events_of(world)
    assert events == [TextDelta("Hi"), TextDelta(" there"), Usage(3, 1, 4), Timings({"prompt_ms": 1.5}), Finish("stop")]


async def test_the_error_that_ends_a_run_after_text_carries_the_attempts() -> None:
    world = World({"m1": [stream(sse(delta("Hel"), {"error": {"message": "boom"}}))]})
    seen: list[Event] = []
    with pytest.raises(ProviderError) as caught:
        async for event in world.genesis.stream("a/m1", {"messages": [{"role": "user", "content": "hi"}]}):
            seen.append(event)
    assert seen == [TextDelta("Hel")] and caught.value.server_message == "boom"
    assert [(a.model, a.error_class) for a in caught.value.attempts] == [("m1", "server_error")]


# --- cooldown (backends.retry): rules that need several runs of one Genesis ------------------------


@dataclass(frozen=True)
class Run:
    """One run of a cooldown sequence: the clock advance before it, the replies it adds, what it must do."""

    advance: float
    script: dict[str, list[Reply]]
    sent: list[str]
    attempts: list[AttemptRow]
    outcome: tuple[str, str]


# (rule, runs, provider options)
COOLDOWN_ROWS: list[tuple[str, list[Run], str, str]] = [
    (
        "retries run out with a retryable class: later runs skip the model for 30 s",
        [
            Run(0, {"m1": [status(503)], "m2": [ok("B")]}, ["m1", "m2"], [("m1", "overloaded", 0), ("m2", None, 0)], ("answer", "B")),
            Run(0, {"m2": [ok("B")]}, ["m2"], [("m1", "cooldown", 0), ("m2", None, 0)], ("answer", "B")),
            Run(29, {"m2": [ok("B")]}, ["m2"], [("m1", "cooldown", 0), ("m2", None, 0)], ("answer", "B")),
            Run(1.5, {"m1": [ok("A")]}, ["m1"], [("m1", None, 0)], ("answer", "A")),
        ],
        "maxRetries: 0,",
        "",
    ),
    (
        "a failure that is not retryable does not cool down",
        [
            Run(0, {"m1": [status(401)], "m2": [ok("B")]}, ["m1", "m2"], [("m1", "auth", 0), ("m2", None, 0)], ("answer", "B")),
            Run(0, {"m1": [ok("A")]}, ["m1"], [("m1", None, 0)], ("answer", "A")),
        ],
        "",
        "",
    ),
    (
        "an in-stream server_error does not cool down",
        [
            Run(
                0,
                {"m1": [stream(sse({"error": {"message": "boom"}}))], "m2": [ok("B")]},
                ["m1", "m2"],
                [("m1", "server_error", 0), ("m2", None, 0)],
                ("answer", "B"),
            ),
            Run(0, {"m1": [ok("A")]}, ["m1"], [("m1", None, 0)], ("answer", "A")),
        ],
        "",
        "",
    ),
    (
        "the cooldown doubles with each further failed run",
        [
            Run(0, {"m1": [status(503)], "m2": [ok("B")]}, ["m1", "m2"], [("m1", "overloaded", 0), ("m2", None, 0)], ("answer", "B")),
            Run(31, {"m1": [status(503)], "m2": [ok("B")]}, ["m1", "m2"], [("m1", "overloaded", 0), ("m2", None, 0)], ("answer", "B")),
            Run(59, {"m2": [ok("B")]}, ["m2"], [("m1", "cooldown", 0), ("m2", None, 0)], ("answer", "B")),
            Run(2, {"m1": [ok("A")]}, ["m1"], [("m1", None, 0)], ("answer", "A")),
        ],
        "maxRetries: 0,",
        "",
    ),
    (
        "a success forgets the failures: the next cooldown is 30 s again",
        [
            Run(0, {"m1": [status(503)], "m2": [ok("B")]}, ["m1", "m2"], [("m1", "overloaded", 0), ("m2", None, 0)], ("answer", "B")),
            Run(31, {"m1": [ok("A")]}, ["m1"], [("m1", None, 0)], ("answer", "A")),
            Run(0, {"m1": [status(503)], "m2": [ok("B")]}, ["m1", "m2"], [("m1", "overloaded", 0), ("m2", None, 0)], ("answer", "B")),
            Run(31, {"m1": [ok("A")]}, ["m1"], [("m1", None, 0)], ("answer", "A")),
        ],
        "maxRetries: 0,",
        "",
    ),
    (
        "a Retry-After longer than the cooldown lengthens it",
        [
            Run(
                0,
                {"m1": [status(429, headers=(("retry-after", "45"),))], "m2": [ok("B")]},
                ["m1", "m2"],
                [("m1", "rate_limit", 0), ("m2", None, 0)],
                ("answer", "B"),
            ),
            Run(40, {"m2": [ok("B")]}, ["m2"], [("m1", "cooldown", 0), ("m2", None, 0)], ("answer", "B")),
            Run(6, {"m1": [ok("A")]}, ["m1"], [("m1", None, 0)], ("answer", "A")),
        ],
        "maxRetries: 0,",
        "",
    ),
    (
        "every candidate cooling down: the one whose cooldown ends first is tried",
        [
            Run(
                0,
                {"m1": [status(503)], "m2": [status(503)]},
                ["m1", "m2"],
                [("m1", "overloaded", 0), ("m2", "overloaded", 0)],
                ("error", "overloaded"),
            ),
            Run(
                31,
                {"m1": [status(503)], "m2": [status(503)]},
                ["m1", "m2"],
                [("m1", "overloaded", 0), ("m2", "overloaded", 0)],
                ("error", "overloaded"),
            ),
            Run(
                31,
                {"m1": [ok("A")]},
                ["m1"],
                [("m1", "cooldown", 0), ("m2", "cooldown", 0), ("m1", None, 0)],
                ("answer", "A"),
            ),
        ],
        "maxRetries: 0,",
        "maxRetries: 0,",
    ),
    (
        "a skipped model whose fallback fails reports every attempt",
        [
            Run(0, {"m1": [status(503)], "m2": [ok("B")]}, ["m1", "m2"], [("m1", "overloaded", 0), ("m2", None, 0)], ("answer", "B")),
            Run(0, {"m2": [status(400)]}, ["m2"], [("m1", "cooldown", 0), ("m2", "format", 0)], ("error", "format")),
        ],
        "maxRetries: 0,",
        "",
    ),
]


@pytest.mark.parametrize(("rule", "runs", "a_extra", "b_extra"), COOLDOWN_ROWS, ids=[row[0] for row in COOLDOWN_ROWS])
async def test_cooldown_rule(rule: str, runs: list[Run], a_extra: str, b_extra: str) -> None:
    world = World({}, a_extra=a_extra, b_extra=b_extra)
    for number, run in enumerate(runs):
        world.now += run.advance
        world.add(run.script)
        sent_before = len(world.servers.sent)
        outcome = await world.outcome()
        assert (world.servers.sent[sent_before:], attempts(outcome), result(outcome)) == (run.sent, run.attempts, run.outcome), number


async def test_a_skip_says_how_long_and_why() -> None:
    world = World({"m1": [status(503)], "m2": [ok("B"), ok("B")]}, a_extra="maxRetries: 0,")
    await world.outcome()
    world.now += 10
    outcome = await world.outcome()
    assert isinstance(outcome, Completion)
    assert outcome.attempts[0].message == "cooling down for 20 s more after 1 failed run (last: overloaded)"
