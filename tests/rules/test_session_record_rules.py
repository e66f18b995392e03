"""Rule table for what a run records and hands on (``backends.session``), beside test_session_rules.py.

- send's note of each try in ``Completion.answer_trace``: which model, which try,
  the status (or "no response"), the timings it has (or "no timings"), how it ended.
- the audit record of each attempt: an answer, a failed try, a cooldown skip.
- the facts of the config that each error's hint names (``hints_for``): the
  model's context window, where the model is configured, where the key comes from.
- how an answer is read: an empty body still goes through parse_stream (picked
  by the content type), and an answer-side step is never fed an empty list.
- every attempt's fields, as recorded and as yielded (AttemptFailed), for the
  kinds test_session_rules.py counts only by model and class: a fallback that
  does not resolve, a cooldown skip, the last candidate's failure.
- the caller's headers on every try; no Timings event means no timings; a key
  or a secret header the server echoes never reaches the error.
- ``default_events`` (the probe's reader): the default send and parse_stream.

Like test_session_rules.py, rows go through ``Genesis.run`` over an
``httpx.MockTransport`` (real sender, parser and classifier), except the step
row, which plugs a stage in with ``Pipeline.insert_after``. No row asserts a
duration: the note rows check where the timings go and what they are called.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, NamedTuple

import httpx
import msgspec
import pytest

from backends.audit import AuditRecord
from backends.http import Timing
from backends.session import default_events, hints_for
from pipeline.answer import AnswerStep, SendRecord
from pipeline.api import Genesis
from pipeline.errors import ProviderError, StageError
from pipeline.events import Attempt, AttemptFailed, Completion, Event, Finish, TextDelta
from pipeline.types import Context
from tests.rules.test_session_rules import REFUSED, Reply, World, attempts, ok, sse, status, stream

pytestmark = pytest.mark.anyio

MS = r"\d+(\.\d+)? ms"  # a duration, whatever it is

# --- send's note of each try ---------------------------------------------------------------------


class NoteRow(NamedTuple):
    rule: str
    script: dict[str, list[Reply]]
    a_extra: str
    notes: list[str]  # regular expressions, one per send note, in order


NOTE_ROWS: list[NoteRow] = [
    NoteRow(
        "an answered try: the model, try 1, its status, its timings by name, answered",
        {"m1": [ok()]},
        "",
        [rf"a/m1 try 1: HTTP 200, first byte {MS}, total {MS}; answered"],
    ),
    NoteRow(
        "a retried try says (retry), and a failed one its class",
        {"m1": [status(503), ok()]},
        "",
        [rf"a/m1 try 1: HTTP 503, total {MS}; failed: overloaded", r"a/m1 try 2 \(retry\): HTTP 200, .*; answered"],
    ),
    NoteRow(
        "a try that got no response says so, and that it has no timings",
        {"m1": [REFUSED], "m2": [ok()]},
        "maxRetries: 0,",
        [r"a/m1 try 1: no response, no timings; failed: unreachable", r"b/m2 try 1: HTTP 200, .*; answered"],
    ),
]


@pytest.mark.parametrize("row", NOTE_ROWS, ids=[row.rule for row in NOTE_ROWS])
async def test_send_note_rule(row: NoteRow) -> None:
    world = World(row.script, a_extra=row.a_extra)
    completion = await world.outcome()
    assert isinstance(completion, Completion)
    notes = [note.note for note in completion.answer_trace if note.stage == "send"]
    assert len(notes) == len(row.notes), notes
    for note, pattern in zip(notes, row.notes, strict=True):
        assert re.fullmatch(pattern, note), (note, pattern)


# --- the audit record of each attempt ------------------------------------------------------------

# The fields of a record a row states (time, timing and the request's body vary or are pinned elsewhere).
AuditFields = tuple[
    str, bool, bool, int, int | None, int | None, str | None, str | None
]  # model, ok, sent, retry, delay_ms, status, class, finish


def fields(record: AuditRecord) -> AuditFields:
    return (
        record.model,
        record.ok,
        record.request is not None,
        record.retry,
        record.delay_ms,
        record.status,
        record.error_class,
        record.finish_reason,
    )


class AuditRow(NamedTuple):
    rule: str
    runs: list[dict[str, list[Reply]]]  # one script per run of the same Genesis
    a_extra: str
    records: list[AuditFields]  # of the last run
    b_extra: str = ""


AUDIT_ROWS: list[AuditRow] = [
    AuditRow(
        "an answer is audited as ok, sent, with its status and finish_reason",
        [{"m1": [ok()]}],
        "",
        [("m1", True, True, 0, None, 200, None, "stop")],
    ),
    AuditRow(
        "a failed try that is retried is audited as not ok, with its class and the backoff it waits (250 ms: the first backoff at the injected draw 0.5)",
        [{"m1": [status(503), ok()]}],
        "",
        [("m1", False, True, 0, 250, 503, "overloaded", None), ("m1", True, True, 1, None, 200, None, "stop")],
    ),
    AuditRow(
        "a cooldown skip is audited as not ok and not sent",
        [{"m1": [status(503)], "m2": [ok()]}, {"m2": [ok()]}],
        "maxRetries: 0,",
        [("m1", False, False, 0, None, None, "cooldown", None), ("m2", True, True, 0, None, 200, None, "stop")],
    ),
    AuditRow(
        "when every candidate cools down, the one back first is tried, and audited too",
        [{"m1": [status(503)], "m2": [status(503)]}, {"m1": [ok()]}],
        "maxRetries: 0,",
        [
            ("m1", False, False, 0, None, None, "cooldown", None),
            ("m2", False, False, 0, None, None, "cooldown", None),
            ("m1", True, True, 0, None, 200, None, "stop"),
        ],
        "maxRetries: 0,",
    ),
]


@pytest.mark.parametrize("row", AUDIT_ROWS, ids=[row.rule for row in AUDIT_ROWS])
async def test_audit_rule(row: AuditRow) -> None:
    world = World({}, a_extra=row.a_extra, b_extra=row.b_extra)
    records: list[AuditRecord] = []
    for script in row.runs:
        world.add(script)
        records.clear()
        try:
            await world.genesis.run("a/m1", {"messages": [{"role": "user", "content": "hi"}]}, audit=records.append)
        except ProviderError:
            pass  # an earlier run that fails only sets the scene (cooldowns)
    assert [fields(record) for record in records] == row.records
    assert all(record.usage is not None for record in records if record.ok)  # the answer's usage goes with it
    assert all(record.message for record in records if not record.ok)  # and a failure or a skip says why
    assert all("total_ms" in record.timing for record in records if record.request is not None)  # a sent try has its timings


# --- what the config says, in an error's hint ----------------------------------------------------

HINT_CONFIG = """{{
  models: {{ providers: {{
    {provider}: {{ baseUrl: "http://h.invalid/v1", maxRetries: 0, {extra} models: [{{ id: "m", {model_extra} }}] }},
  }} }},
}}"""


class HintRow(NamedTuple):
    rule: str
    provider: str
    extra: str
    model_extra: str
    env: dict[str, str]
    reply: Reply
    error_class: str
    hint: str


HINT_ROWS: list[HintRow] = [
    HintRow(
        "a context overflow names the model's context window",
        "p",
        "",
        "contextWindow: 4096,",
        {},
        status(400, "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens."),
        "context_overflow",
        "the prompt does not fit the model's context window of 4096 tokens: shorten it or lower max_tokens",
    ),
    HintRow(
        "a hint about a model's compat names where the model is configured",
        "p",
        "",
        "",
        {},
        status(400, "1 validation error: {'type': 'literal_error', 'input': 'developer'}"),
        "format",
        'set compat.supportsDeveloperRole: false on the model (models.providers.p.models (id "m").compat)',
    ),
    HintRow(
        "a refused key from the config names it, and the built-in provider's variable it overrides",
        "llamacpp",
        'apiKey: "sk-config-key",',
        "",
        {"LLAMACPP_API_KEY": "sk-env-key"},
        status(401, "invalid api key"),
        "auth",
        "the server refused the key from the config (models.providers.llamacpp.apiKey): set it to the server's key"
        " (its --api-key); LLAMACPP_API_KEY is not used while apiKey is set",
    ),
    HintRow(
        "a refused key from the environment names the variable",
        "llamacpp",
        "",
        "",
        {"LLAMACPP_API_KEY": "sk-env-key"},
        status(401, "invalid api key"),
        "auth",
        "the server refused the key from the environment variable LLAMACPP_API_KEY: set LLAMACPP_API_KEY to the"
        " server's key (its --api-key), or set models.providers.llamacpp.apiKey",
    ),
]


@pytest.mark.parametrize("row", HINT_ROWS, ids=[row.rule for row in HINT_ROWS])
async def test_hint_rule(row: HintRow) -> None:
    reply = row.reply
    genesis = Genesis.from_config_text(
        HINT_CONFIG.format(provider=row.provider, extra=row.extra, model_extra=row.model_extra),
        env=row.env,
        transport=httpx.MockTransport(reply.response),
        sleep=_no_sleep,
    )
    with pytest.raises(ProviderError) as caught:
        await genesis.run(f"{row.provider}/m", {"messages": [{"role": "user", "content": "hi"}]})
    assert (caught.value.error_class, caught.value.hint) == (row.error_class, row.hint)


async def _no_sleep(seconds: float) -> None:
    return None


# --- how an answer is read -----------------------------------------------------------------------


class EmptyRow(NamedTuple):
    rule: str
    content_type: str
    error_class: str
    message: str


EMPTY_ROWS: list[EmptyRow] = [
    EmptyRow("an empty event stream ends without a finish_reason", "text/event-stream", "protocol", "without a finish_reason"),
    EmptyRow("an empty JSON answer is read as one JSON answer: malformed", "application/json", "protocol", "malformed response"),
]


@pytest.mark.parametrize("row", EMPTY_ROWS, ids=[row.rule for row in EMPTY_ROWS])
async def test_an_empty_body_still_goes_through_parse_stream(row: EmptyRow) -> None:
    world = World({"m1": [Reply(body=b"", headers=(("content-type", row.content_type),))]}, fallbacks="")
    outcome = await world.outcome()
    assert isinstance(outcome, ProviderError)
    assert (outcome.error_class, attempts(outcome)) == (row.error_class, [("m1", row.error_class, 0)])
    assert row.message in outcome.server_message


class _Recording:
    """An answer-side step that passes every event on and records the size of each list it is fed."""

    def __init__(self, fed: list[int]) -> None:
        self.fed = fed

    def feed(self, events: Sequence[Event]) -> Sequence[Event]:
        self.fed.append(len(events))
        return events

    def finish(self) -> Sequence[Event]:
        return ()

    def notes(self) -> tuple[str, ...]:
        return ()


async def test_an_answer_side_step_is_never_fed_an_empty_list() -> None:
    """Rule: a step gets the events of each read that gave some, and what parse_stream still held at the end."""
    body = b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n: ping\n\ndata: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    world = World({"m1": [stream(body)]})
    fed: list[int] = []

    def recording(ctx: Context) -> AnswerStep | None:
        return _Recording(fed)

    world.genesis.pipeline = world.genesis.pipeline.insert_after("parse_stream", "recording", recording)
    completion = await world.outcome()
    assert isinstance(completion, Completion) and completion.text == "Hi"
    assert fed and 0 not in fed, fed


# --- every attempt, as recorded and as yielded ---------------------------------------------------

# provider, model, ok, class, a piece of its message (None: no message)
AttemptFields = tuple[str, str, bool, str | None, str | None]


class AttemptRow(NamedTuple):
    rule: str
    runs: list[dict[str, list[Reply]]]  # one script per run of the same Genesis; the last one is checked
    fallbacks: str
    a_extra: str
    b_extra: str
    attempts: list[AttemptFields]  # of the last run
    yielded: int  # how many of them were yielded as AttemptFailed while the run went on


ATTEMPT_ROWS: list[AttemptRow] = [
    AttemptRow(
        "a fallback ref that does not resolve is a failed attempt named by its ref, with the resolve error's text",
        [{"m1": [status(503)], "m2": [ok()]}],
        '"nope/x", "b/m2"',
        "maxRetries: 0,",
        "",
        [
            ("a", "m1", False, "overloaded", "scripted"),
            ("nope", "x", False, "unknown_model", "nope/x"),
            ("b", "m2", True, None, None),
        ],
        2,
    ),
    AttemptRow(
        "a fallback without a slash that does not resolve has no provider, and the ref as its model",
        [{"m1": [status(503)], "m2": [ok()]}],
        '"ghost", "b/m2"',
        "maxRetries: 0,",
        "",
        [
            ("a", "m1", False, "overloaded", "scripted"),
            ("", "ghost", False, "unknown_model", "ghost"),
            ("b", "m2", True, None, None),
        ],
        2,
    ),
    AttemptRow(
        "a cooldown skip is a failed attempt of its provider and model that says how long",
        [{"m1": [status(503)], "m2": [ok()]}, {"m2": [ok()]}],
        '"b/m2"',
        "maxRetries: 0,",
        "",
        [("a", "m1", False, "cooldown", "30 s"), ("b", "m2", True, None, None)],
        1,
    ),
    AttemptRow(
        "when the last candidate fails too, its attempt ends the run: raised, not yielded",
        [{"m1": [status(503)], "m2": [status(503)]}],
        '"b/m2"',
        "maxRetries: 0,",
        "maxRetries: 0,",
        [("a", "m1", False, "overloaded", "scripted"), ("b", "m2", False, "overloaded", "scripted")],
        1,
    ),
]


@pytest.mark.parametrize("row", ATTEMPT_ROWS, ids=[row.rule for row in ATTEMPT_ROWS])
async def test_attempt_rule(row: AttemptRow) -> None:
    world = World({}, fallbacks=row.fallbacks, a_extra=row.a_extra, b_extra=row.b_extra)
    yielded: list[Attempt] = []
    for script in row.runs:
        world.add(script)
        yielded.clear()
        try:
            outcome: Completion | ProviderError = await world.genesis.run(
                "a/m1", {"messages": [{"role": "user", "content": "hi"}]}, on_event=lambda e: _collect(e, yielded)
            )
        except ProviderError as error:
            outcome = error
    recorded = list(outcome.attempts)
    assert [(a.provider, a.model, a.ok, a.error_class) for a in recorded] == [row_attempt[:4] for row_attempt in row.attempts]
    for attempt, (*_, message) in zip(recorded, row.attempts, strict=True):
        assert (attempt.message is None) if message is None else (message in (attempt.message or "")), attempt
    assert yielded == recorded[: row.yielded]


def _collect(event: Event, into: list[Attempt]) -> None:
    if isinstance(event, AttemptFailed):
        into.append(event.attempt)


# --- what the caller passes on, and what an answer without timings has ----------------------------


async def test_the_callers_headers_reach_every_try() -> None:
    seen: list[str | None] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("x-trace"))
        return (status(503) if len(seen) == 1 else ok()).response(request)

    genesis = Genesis.from_config_text(
        HINT_CONFIG.replace("maxRetries: 0", "maxRetries: 1").format(provider="p", extra="", model_extra=""),
        env={},
        transport=httpx.MockTransport(server),
        sleep=_no_sleep,
    )
    await genesis.run("p/m", {"messages": [{"role": "user", "content": "hi"}]}, headers=[("X-Trace", "t-1")])
    assert seen == ["t-1", "t-1"]


async def test_an_answer_without_timings_has_none() -> None:
    completion = await World({"m1": [ok()]}).outcome()
    assert isinstance(completion, Completion) and completion.timings is None


# --- secrets: a server that echoes the key never gets it into the error --------------------------

KEY = "sk-config-key-0123456789"


@pytest.mark.parametrize(
    "reply",
    [status(400, f"bad request for key {KEY}"), stream(sse({"error": {"message": f"key {KEY} is over quota"}}))],
    ids=["in an HTTP error body", "in an in-stream error"],
)
async def test_a_key_the_server_echoes_is_hidden_in_the_error(reply: Reply) -> None:
    genesis = Genesis.from_config_text(
        HINT_CONFIG.format(provider="p", extra=f'apiKey: "{KEY}",', model_extra=""),
        env={},
        transport=httpx.MockTransport(reply.response),
        sleep=_no_sleep,
    )
    with pytest.raises(ProviderError) as caught:
        await genesis.run("p/m", {"messages": [{"role": "user", "content": "hi"}]})
    assert KEY not in str(caught.value) and KEY not in caught.value.server_message and KEY not in repr(caught.value)


async def test_a_header_that_holds_a_secret_is_hidden_whole_in_an_echo() -> None:
    """Rule (pipeline.secrets.secrets_in_headers): a header marked secret (its value holds a known secret) is hidden whole."""
    genesis = Genesis.from_config_text(
        HINT_CONFIG.format(provider="p", extra=f'apiKey: "{KEY}", headers: {{ "X-Org": "org-{KEY}" }},', model_extra=""),
        env={},
        transport=httpx.MockTransport(status(400, f"unknown organisation org-{KEY}").response),
        sleep=_no_sleep,
    )
    with pytest.raises(ProviderError) as caught:
        await genesis.run("p/m", {"messages": [{"role": "user", "content": "hi"}]})
    assert "org-" not in caught.value.server_message and KEY not in str(caught.value), caught.value.server_message


# --- outside a run: the default send and parse_stream, one list of events per read -----------------


async def test_default_events_reads_an_answer_with_the_default_send_and_parse_stream() -> None:
    """``default_events`` (``backends.probe``'s reader): the same reading loop as a run, with the default stages, no run rules."""
    async with Genesis.from_config_text(
        HINT_CONFIG.format(provider="p", extra="", model_extra=""), env={}, transport=httpx.MockTransport(ok("Hi").response)
    ) as genesis:
        wire = genesis.build("p/m", {"messages": [{"role": "user", "content": "hi"}], "stream": True})
        assert wire.target is not None
        timing = Timing()
        reads = [events async for events in default_events(genesis.client(), wire, hints_for(wire.target), timing)]
    events = [event for events in reads for event in events]
    assert all(reads)  # no read gives an empty list
    assert [event for event in events if isinstance(event, TextDelta)] == [TextDelta("Hi")]
    assert [event.reason for event in events if isinstance(event, Finish)] == ["stop"]
    assert (timing.status, timing.content_type) == (200, "text/event-stream")


async def test_default_events_raises_a_server_failure_as_a_provider_error() -> None:
    async with Genesis.from_config_text(
        HINT_CONFIG.format(provider="p", extra="", model_extra=""),
        env={},
        transport=httpx.MockTransport(status(404, "no such model").response),
    ) as genesis:
        wire = genesis.build("p/m", {"messages": [{"role": "user", "content": "hi"}]})
        assert wire.target is not None
        with pytest.raises(ProviderError) as caught:
            async for _ in default_events(genesis.client(), wire, hints_for(wire.target), Timing()):
                pass
    assert (caught.value.error_class, caught.value.hint) == (
        "model_not_found",
        "the server does not serve this model id; curl http://h.invalid/v1/models lists the ones it does",
    )


# --- what a failure says: where it happened ----------------------------------------------------


class FailureRow(NamedTuple):
    rule: str
    reply: Reply
    error_class: str
    message: str  # the server message, whole
    status: int | None


FAILURE_ROWS: list[FailureRow] = [
    FailureRow(
        "an in-stream error names the request's URL and ref, with the stream's status",
        stream(sse({"error": {"message": "boom"}})),
        "server_error",
        "boom",
        200,
    ),
    FailureRow(
        "an answer that ends without a finish_reason is a protocol error, with its URL, ref and status",
        stream(sse({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}, "[DONE]")),
        "protocol",
        "the answer ended without a finish_reason",
        200,
    ),
]


@pytest.mark.parametrize("row", FAILURE_ROWS, ids=[row.rule for row in FAILURE_ROWS])
async def test_failure_rule(row: FailureRow) -> None:
    outcome = await World({"m1": [row.reply]}, fallbacks="").outcome()
    assert isinstance(outcome, ProviderError)
    assert (outcome.error_class, outcome.server_message, outcome.status, outcome.url, outcome.ref) == (
        row.error_class,
        row.message,
        row.status,
        "http://a.invalid/v1/chat/completions",
        "a/m1",
    )


# --- a wire request the session did not build as usual --------------------------------------------


class _Rebuilt(Genesis):
    """A Genesis whose builds are changed by ``change`` before the session runs them."""

    change: Any = None

    def build_result(self, model: str | None, request: Mapping[str, Any], *, headers: Sequence[tuple[str, str]] = ()) -> Any:
        return super().build_result(model, request, headers=headers).map(self.change)


def _rebuilt(change: Any) -> _Rebuilt:
    genesis = _Rebuilt.from_config_text(
        HINT_CONFIG.format(provider="p", extra="", model_extra=""), env={}, transport=httpx.MockTransport(ok().response)
    )
    assert isinstance(genesis, _Rebuilt)
    genesis.change = change
    return genesis


async def test_a_wire_request_without_a_target_cannot_be_run() -> None:
    """A hand-made WireRequest (no context, so no resolved target) is refused before anything is sent."""
    genesis = _rebuilt(lambda wire: msgspec.structs.replace(wire, context=None))
    with pytest.raises(StageError) as caught:
        await genesis.run("p/m", {"messages": [{"role": "user", "content": "hi"}]})
    assert (caught.value.stage, str(caught.value)) == (
        "resolve_ref",
        "stage 'resolve_ref': the wire request has no resolved model; build it with Genesis.build",
    )


async def test_the_timings_a_server_sends_are_the_completions() -> None:
    timings = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "timings": {"predicted_ms": 12.5, "prompt_n": 3}}
    body = sse({"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}, timings, "[DONE]")
    completion = await World({"m1": [stream(body)]}).outcome()
    assert isinstance(completion, Completion)
    assert completion.timings is not None and completion.timings.get("predicted_ms") == 12.5


class SilentRow(NamedTuple):
    rule: str
    content_type: str
    message: str  # a piece of the server message


SILENT_ROWS: list[SilentRow] = [
    SilentRow("a send that gives no bytes at all, for an event stream: no finish_reason", "text/event-stream", "without a finish_reason"),
    SilentRow("a send that gives no bytes at all, for a JSON answer: malformed", "application/json", "malformed response"),
]


@pytest.mark.parametrize("row", SILENT_ROWS, ids=[row.rule for row in SILENT_ROWS])
async def test_a_send_that_gives_no_bytes_still_goes_through_parse_stream(row: SilentRow) -> None:
    """Rule: parse_stream is picked by the content type even when no read came (a replaced send may give nothing)."""

    async def silent(client: Any, wire: Any, hints: Any, record: SendRecord) -> AsyncGenerator[bytes, None]:
        record.status, record.content_type = 200, row.content_type
        return
        yield b""  # an async generator that yields nothing

    world = World({}, fallbacks="")
    world.genesis.pipeline = world.genesis.pipeline.replace("send", silent)
    outcome = await world.outcome()
    assert isinstance(outcome, ProviderError) and outcome.error_class == "protocol"
    assert row.message in outcome.server_message, outcome.server_message
