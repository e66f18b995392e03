"""The conformance table (tests/conformance/*.json5) run through Genesis's parser and classifier.

Every transcript is what one server sends for one request, read from the server's
own source (or, for the closed-source LM Studio, its issue threads). Each row goes
through the same path a real answer takes (``backends.http`` + ``backends.session``):
- HTTP status >= 400: ``http_error`` (status + body) gives the class and hint;
- ``text/event-stream``: ``StreamParser`` (the whole body at once), else
  ``response_events`` (a plain JSON answer);
- each event that can stand for a failure goes through ``event_failure``; an
  answer that ends without a finish_reason is a protocol error (session rule);
- otherwise ``Aggregator.completion()`` is compared with the expectation.

Streams are also fed one byte at a time: the events must not depend on where the
network split the body. Rows whose expectation needs a feature still being built
carry ``xfail`` in the data and run as strict xfails: they must fail today.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import json5
import pytest

from backends.classify import CHECKED_EVENTS, FAILOVER_CLASSES, HintContext, event_failure, http_error
from backends.stream import Aggregator, StreamParser, response_events
from pipeline.errors import ErrorClass, ProviderError
from pipeline.events import Completion, Event

TABLE = Path(__file__).resolve().parent / "conformance"
URL = "http://127.0.0.1:8000/v1/chat/completions"
SPLIT_LIMIT = 8 * 1024  # streams up to this size are also fed one byte at a time

# What a hint may name, per table file: the provider id Genesis would use, its key variable and
# the context window configured for the model (the windows of the servers' own rows).
PROVIDERS: dict[str, dict[str, Any]] = {
    "vllm": {"key_env": "VLLM_API_KEY", "context_window": 1024},
    "sglang": {"key_env": "SGLANG_API_KEY", "context_window": 4096},
    "llamacpp": {"key_env": None, "context_window": 2048},
    "llamacpp_python": {"key_env": None, "context_window": 2048},
    "ollama": {"key_env": None, "context_window": 4096},
    "lmstudio": {"key_env": None, "context_window": 4096},
    "inferrs": {"key_env": None, "context_window": 4096},
}


@dataclass(frozen=True)
class Transcript:
    table: str  # the file stem: vllm, llamacpp, ...
    server: str
    repo: str
    version: str
    name: str
    cite: tuple[str, ...]
    request: str
    status: int
    content_type: str
    body: bytes
    expect: dict[str, Any]
    xfail: str | None = None
    live: dict[str, Any] | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.table}/{self.name}"

    @property
    def is_sse(self) -> bool:
        return self.status < 400 and self.content_type.startswith("text/event-stream")

    def hint_context(self) -> HintContext:
        provider = PROVIDERS[self.table]
        settings: dict[str, Any] = {
            "provider": self.table,
            "base_url": "http://127.0.0.1:8000/v1",
            "ref": f"{self.table}/model",
            "model_path": f'models.providers.{self.table}.models (id "model")',
            "key_source": "none",
            **provider,
            **self.context,
        }
        return HintContext(**settings)


def load(table: Path = TABLE) -> list[Transcript]:
    rows: list[Transcript] = []
    for path in sorted(table.glob("*.json5")):
        document = json5.loads(path.read_text())
        for row in document["transcripts"]:
            body = row["body"]
            rows.append(
                Transcript(
                    table=path.stem,
                    server=document["server"],
                    repo=document["repo"],
                    version=document["version"],
                    name=row["name"],
                    cite=tuple(row["cite"]),
                    request=row["request"],
                    status=row["status"],
                    content_type=row["content_type"],
                    body=("".join(body) if isinstance(body, list) else body).encode(),
                    expect=row["expect"],
                    xfail=row.get("xfail"),
                    live=row.get("live"),
                    context=row.get("context", {}),
                )
            )
    return rows


TRANSCRIPTS = load()


@dataclass
class Outcome:
    events: list[Event]
    error: ProviderError | None = None
    completion: Completion | None = None


def parse(t: Transcript, pieces: list[bytes] | None = None) -> list[Event]:
    """The answer's events, as ``backends.session.default_events`` makes them."""
    if not t.is_sse:
        return response_events(t.body)
    parser = StreamParser()
    events: list[Event] = []
    for piece in pieces if pieces is not None else [t.body]:
        events += parser.feed(piece)
    return events + parser.close()


def run(t: Transcript) -> Outcome:
    """The transcript through Genesis, as a real answer would go (see the module docstring)."""
    ctx = t.hint_context()
    if t.status >= 400:
        return Outcome([], error=http_error(t.status, t.body, url=URL, ref=ctx.ref, context=ctx))
    events = parse(t)
    answer = Aggregator()
    for event in events:
        if isinstance(event, CHECKED_EVENTS):
            failure = event_failure(event, answer, url=URL, ref=ctx.ref, context=ctx)
            if failure is not None:
                return Outcome(events, error=failure)
        answer.add(event)
    if answer.finish is None:  # backends/session.py: an answer without a finish_reason is a protocol error
        return Outcome(
            events,
            error=ProviderError(ErrorClass.PROTOCOL, "the answer ended without a finish_reason", url=URL, status=t.status, ref=ctx.ref),
        )
    return Outcome(events, completion=answer.completion())


def check_error(t: Transcript, outcome: Outcome) -> None:
    expect = t.expect
    assert outcome.completion is None, f"expected a {expect['error']} error, got an answer"
    error = outcome.error
    assert error is not None
    assert error.error_class == expect["error"], f"class {error.error_class!r} ({error.server_message})"
    assert (error.error_class in FAILOVER_CLASSES) == expect["fallback"], "fallback"
    assert error.status == t.status
    if "message" in expect:
        assert expect["message"] in error.server_message
    if "hint" in expect:
        if expect["hint"] is None:
            assert error.hint is None, error.hint
        else:
            assert error.hint is not None, "no hint"
            for part in expect["hint"]:
                assert part in error.hint, f"{part!r} not in hint {error.hint!r}"


def check_answer(t: Transcript, outcome: Outcome) -> None:
    expect = t.expect
    assert outcome.error is None, f"unexpected {outcome.error.error_class}: {outcome.error.server_message}"
    completion = outcome.completion
    assert completion is not None
    assert completion.text == expect["text"]
    assert completion.reasoning == expect.get("reasoning", "")
    assert completion.finish_reason == expect["finish"]
    if "raw_finish" in expect:
        assert completion.raw_finish_reason == expect["raw_finish"]
    wanted = expect.get("tool_calls", [])
    assert len(completion.tool_calls) == len(wanted), [(c.id, c.name) for c in completion.tool_calls]
    for call, want in zip(completion.tool_calls, wanted, strict=True):
        for key, value in want.items():  # id, name, arguments (raw), parsed (the decoded arguments)
            assert getattr(call, "parsed_arguments" if key == "parsed" else key) == value, key
    if "usage" in expect:
        if expect["usage"] is None:
            assert completion.usage is None
        else:
            assert completion.usage is not None, "no usage"
            for key, value in expect["usage"].items():
                assert getattr(completion.usage, key) == value, key
    if "outputs" in expect:
        outputs = [{"index": o.index, "text": o.text, "finish": o.finish_reason} for o in completion.outputs]
        assert outputs == expect["outputs"]
    if "timings" in expect:
        assert completion.timings is not None and set(expect["timings"]) <= set(completion.timings)


def marks(t: Transcript) -> list[pytest.MarkDecorator]:
    return [pytest.mark.xfail(strict=True, reason=t.xfail)] if t.xfail else []


@pytest.mark.parametrize("t", [pytest.param(t, id=t.id, marks=marks(t)) for t in TRANSCRIPTS])
def test_transcript(t: Transcript) -> None:
    outcome = run(t)
    if "error" in t.expect:
        check_error(t, outcome)
    else:
        check_answer(t, outcome)


@pytest.mark.parametrize("t", [pytest.param(t, id=t.id) for t in TRANSCRIPTS if t.is_sse and len(t.body) <= SPLIT_LIMIT])
def test_stream_split_at_every_byte(t: Transcript) -> None:
    whole = parse(t)
    assert parse(t, [t.body[i : i + 1] for i in range(len(t.body))]) == whole
    assert parse(t, [t.body[:i] for i in (len(t.body) // 2,)] + [t.body[len(t.body) // 2 :]]) == whole


def test_table_rows_are_complete() -> None:
    """Every row names its server's source and what provokes it; ids are unique; every table has a provider."""
    ids = [t.id for t in TRANSCRIPTS]
    assert len(ids) == len(set(ids))
    assert {t.table for t in TRANSCRIPTS} == set(PROVIDERS)
    for t in TRANSCRIPTS:
        assert t.cite and all(c.strip() for c in t.cite), t.id
        assert t.request.strip() and t.repo and t.version, t.id
        assert ("error" in t.expect) != ("text" in t.expect), f"{t.id}: an error or an answer"
        if "error" in t.expect:
            assert isinstance(t.expect["fallback"], bool), t.id
