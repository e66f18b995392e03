"""Events go up one list per read (issue 12), and the CLI's loop is the one ``Genesis.run_sync`` uses.

Rules pinned here (each row names its rule):
- The session hands each read's events up as one list (``backends.session.run_events``): a read of
  several answer pieces is one list, a read of none adds nothing, and Usage, Timings and Finish are
  held to the end, where they go up as one list.
- An event that ends a try (a server error in the stream) goes up after the answer pieces before it
  in the same read: the caller sees what it would see had they come a read earlier (split
  invariance), and a run that has answered is not retried.
- The CLI's runs (``genesis run``, ``genesis models list``) start their event loop through
  ``backends.eventloop.run``: uvloop on asyncio when it is installed, asyncio's own loop with
  ``GENESIS_UVLOOP=0``.

No row times anything.
"""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import httpx
import pytest

from backends.session import RunState, run_events
from pipeline.api import Genesis
from pipeline.errors import ProviderError
from pipeline.events import Event, Finish, TextDelta, Usage

CONFIG = '{models: {mode: "replace", providers: {local: {baseUrl: "http://local.invalid/v1", models: [{id: "m"}]}}}}'
PROMPT = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


def sse(*payloads: dict[str, Any] | str) -> bytes:
    return b"".join(b"data: " + (p if isinstance(p, str) else json.dumps(p)).encode() + b"\n\n" for p in payloads)


def text(content: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": content}}]}


STOP = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
USAGE = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
SERVER_ERROR = {"error": {"message": "the engine died"}}


def genesis_over(reads: list[bytes]) -> tuple[Genesis, list[int]]:
    """A Genesis whose server answers every request with ``reads``, one body read each; the list counts requests."""
    sent: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(1)

        async def body() -> AsyncIterator[bytes]:
            for read in reads:
                yield read

        return httpx.Response(200, headers=[("content-type", "text/event-stream")], content=body())

    return Genesis.from_config_text(CONFIG, env={}, transport=httpx.MockTransport(handler)), sent


def shape(events: list[Event]) -> list[str]:
    """Each event as its kind, with the text of a text piece."""
    return [f"text {event.text}" if isinstance(event, TextDelta) else type(event).__name__ for event in events]


class ListsRow(NamedTuple):
    rule: str
    reads: list[bytes]
    lists: list[list[str]]


LIST_ROWS = [
    ListsRow(
        "one read, one answer piece: one list of one event",
        [sse(text("a")), sse(text("b")), sse(STOP, USAGE, "[DONE]")],
        [["text a"], ["text b"], ["Finish", "Usage"]],
    ),
    ListsRow(
        "one read of several answer pieces: one list, in order",
        [sse(text("a"), text("b"), text("c")), sse(STOP, "[DONE]")],
        [["text a", "text b", "text c"], ["Finish"]],
    ),
    ListsRow(
        "a read of answer pieces and held events: the pieces go up at once, the held ones at the end",
        [sse(text("a"), STOP, USAGE), sse("[DONE]")],
        [["text a"], ["Finish", "Usage"]],
    ),
    ListsRow(
        "a read with no event adds no list",
        [b": keep-alive\n\n", sse(text("a")), b"\n", sse(STOP, "[DONE]")],
        [["text a"], ["Finish"]],
    ),
]


@pytest.mark.parametrize("row", LIST_ROWS, ids=[row.rule for row in LIST_ROWS])
@pytest.mark.anyio
async def test_the_session_hands_each_reads_events_up_as_one_list(row: ListsRow) -> None:
    genesis, _ = genesis_over(row.reads)
    async with genesis:
        lists = [shape(events) async for events in run_events(genesis, "local/m", PROMPT, RunState())]
    assert lists == row.lists


@pytest.mark.anyio
async def test_genesis_stream_takes_the_lists_apart_one_event_at_a_time() -> None:
    genesis, _ = genesis_over([sse(text("a"), text("b")), sse(STOP, USAGE, "[DONE]")])
    async with genesis:
        events = [event async for event in genesis.stream("local/m", PROMPT)]
    assert shape(events) == ["text a", "text b", "Finish", "Usage"]
    assert isinstance(events[2], Finish) and isinstance(events[3], Usage)


class FailureRow(NamedTuple):
    rule: str
    reads: list[bytes]


FAILURE_ROWS = [
    FailureRow("a server error after answer pieces in the same read: the pieces first", [sse(text("a"), text("b"), SERVER_ERROR)]),
    FailureRow("the same events, the error in a read of its own", [sse(text("a"), text("b")), sse(SERVER_ERROR)]),
    FailureRow("the same events, one read each", [sse(text("a")), sse(text("b")), sse(SERVER_ERROR)]),
]


@pytest.mark.parametrize("row", FAILURE_ROWS, ids=[row.rule for row in FAILURE_ROWS])
@pytest.mark.anyio
async def test_a_failure_goes_up_after_the_answer_pieces_before_it_whatever_the_reads(row: FailureRow) -> None:
    genesis, sent = genesis_over(row.reads)
    seen: list[Event] = []
    async with genesis:
        with pytest.raises(ProviderError) as caught:
            async for event in genesis.stream("local/m", PROMPT):
                seen.append(event)
    assert shape(seen) == ["text a", "text b"]
    assert "the engine died" in str(caught.value)
    assert len(sent) == 1  # the caller has part of the answer: never retried


class AnsweredRow(NamedTuple):
    rule: str
    reads: list[bytes]
    seen: list[str]  # what the caller had when the last read timed out
    requests: int  # 1: not retried (part of the answer went up); 3: the try and its two retries


ANSWERED_ROWS = [
    AnsweredRow("a piece after a held event in the same read has answered: not retried", [sse(USAGE, text("a"))], ["text a"], 1),
    AnsweredRow("a piece before a held event in the same read has answered: not retried", [sse(text("a"), USAGE)], ["text a"], 1),
    AnsweredRow("a read of held events only has not answered: retried", [sse(USAGE)], ["AttemptFailed", "AttemptFailed"], 3),
]


@pytest.mark.parametrize("row", ANSWERED_ROWS, ids=[row.rule for row in ANSWERED_ROWS])
@pytest.mark.anyio
async def test_a_read_with_an_answer_piece_in_it_has_answered_wherever_the_piece_is(row: AnsweredRow) -> None:
    """A read timeout after the reads is retried only if no answer piece went up (the session's rule)."""
    sent: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(1)

        async def body() -> AsyncIterator[bytes]:
            for read in row.reads:
                yield read
            raise httpx.ReadTimeout("scripted: no more data", request=request)

        return httpx.Response(200, headers=[("content-type", "text/event-stream")], content=body())

    genesis = Genesis.from_config_text(CONFIG, env={}, transport=httpx.MockTransport(handler), sleep=_no_sleep)
    seen: list[Event] = []
    async with genesis:
        with pytest.raises(ProviderError) as caught:
            async for event in genesis.stream("local/m", PROMPT):
                seen.append(event)
    assert caught.value.error_class == "timeout"
    assert shape(seen) == row.seen
    assert len(sent) == row.requests


async def _no_sleep(seconds: float) -> None:
    return None


# ---- the CLI's event loop ----


class LoopRow(NamedTuple):
    rule: str
    command: str  # "run" (pipeline.commands.infer.run_infer) or "models list" (pipeline.commands.models.run_list)
    environ: dict[str, str]
    on_uvloop: bool


LOOP_ROWS = [
    LoopRow("genesis run runs on uvloop when it is installed", "run", {}, True),
    LoopRow("genesis run keeps asyncio's own loop with GENESIS_UVLOOP=0", "run", {"GENESIS_UVLOOP": "0"}, False),
    LoopRow("genesis models list runs on uvloop when it is installed", "models list", {}, True),
    LoopRow("genesis models list keeps asyncio's own loop with GENESIS_UVLOOP=0", "models list", {"GENESIS_UVLOOP": "0"}, False),
]


class _Seen(Exception):
    """Raised by the stand-in once it has seen the loop: the command goes no further."""


def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize("row", LOOP_ROWS, ids=[row.rule for row in LOOP_ROWS])
def test_the_cli_starts_its_loop_as_genesis_run_sync_does(row: LoopRow, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")  # scripts/setup installs genesis[fast]; without it there is nothing to pin
    from pipeline.commands import infer, models

    monkeypatch.delenv("GENESIS_UVLOOP", raising=False)
    for name, value in row.environ.items():
        monkeypatch.setenv(name, value)
    loops: list[str] = []

    async def run_stand_in(args: Any, progress: Any) -> int:
        loops.append(_loop_module())
        return 0

    class GenesisStandIn:
        warn: Any = None

        async def __aenter__(self) -> GenesisStandIn:
            return self

        async def __aexit__(self, *exc_info: object) -> None:
            return None

        async def discover(self) -> None:
            loops.append(_loop_module())
            raise _Seen

    if row.command == "run":
        monkeypatch.setattr(infer, "_run", run_stand_in)
        assert infer.run_infer(types.SimpleNamespace()) == 0
    else:
        monkeypatch.setattr(models, "load_genesis", lambda args: GenesisStandIn())
        with pytest.raises(_Seen):
            models.run_list(types.SimpleNamespace(provider=None))
    assert len(loops) == 1
    assert loops[0].startswith("uvloop") is row.on_uvloop
