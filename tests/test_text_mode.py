"""``genesis infer model run`` in text mode (no ``--json``): what reaches stdout and stderr (issue 11, "Why" 9).

Rules (pipeline/commands/infer.py, README "Sending, streaming, errors"): stdout holds the answer
alone: its text, or, when a choice has no text, its tool calls as ``name(arguments)``. Reasoning
goes to stderr on a line marked ``[reasoning]``, with or without text (stdout stays pipeable, and
``2>/dev/null`` hides it). A choice with no text, reasoning or tool call says ``[no text]`` on
stderr: an answer is never silence. Each row runs streamed and not streamed, through the whole
CLI, with ``send`` replaced (config ``pipeline.stages``) by a replay of the row's answer.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest

from pipeline.answer import SendRecord
from pipeline.cli import main
from pipeline.commands.infer import text_pieces
from pipeline.events import Completion, Output, ToolCall
from pipeline.types import WireRequest

WEATHER = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}


class Answer(NamedTuple):
    content: str | None
    reasoning: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    finish: str = "stop"


ANSWERS: dict[str, Answer] = {
    "reasoning-only": Answer(None, "Thinking it over."),
    "tool-only": Answer(None, tool_calls=(WEATHER,), finish="tool_calls"),
    "reasoning-and-tool": Answer(None, "Need the weather.", (WEATHER,), "tool_calls"),
    "text-and-reasoning": Answer("Hello.", "The user greets me."),
    "text-and-tool": Answer("Let me check.", tool_calls=(WEATHER,), finish="tool_calls"),
    "empty": Answer(None, finish="length"),
}


def _sse(answer: Answer) -> bytes:
    deltas: list[dict[str, Any]] = []
    if answer.reasoning:
        deltas.append({"reasoning_content": answer.reasoning})
    if answer.content:
        deltas.append({"content": answer.content})
    deltas += [{"tool_calls": [call]} for call in answer.tool_calls]
    chunks = [{"choices": [{"index": 0, "delta": delta}]} for delta in deltas]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": answer.finish}]})
    return b"".join(b"data: " + msgspec.json.encode(chunk) + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"


def _whole(answer: Answer) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if answer.reasoning:
        message["reasoning_content"] = answer.reasoning
    if answer.tool_calls:
        message["tool_calls"] = [{key: value for key, value in call.items() if key != "index"} for call in answer.tool_calls]
    return msgspec.json.encode({"choices": [{"index": 0, "message": message, "finish_reason": answer.finish}]})


async def replay(client: Any, wire: WireRequest, hints: Any, record: SendRecord) -> AsyncGenerator[bytes, None]:
    """The ``send`` stage: the answer named by the request's model, streamed as the request asks."""
    body = msgspec.json.decode(wire.body)
    answer = ANSWERS[body["model"]]
    record.status = 200
    if body.get("stream"):
        record.content_type = "text/event-stream"
        yield _sse(answer)
    else:
        record.content_type = "application/json"
        yield _whole(answer)


class Row(NamedTuple):
    rule: str
    model: str
    out: str
    err_lines: list[str]  # stderr before the status line


ROWS: dict[str, Row] = {
    "reasoning_only": Row(
        "no text: the reasoning, marked, on stderr; stdout empty", "reasoning-only", "", ["[reasoning] Thinking it over."]
    ),
    "tool_only": Row("no text: each tool call as name(arguments) on stdout", "tool-only", 'get_weather({"city": "Paris"})\n', []),
    "reasoning_and_tool": Row(
        "no text: the reasoning on stderr and the tool call on stdout",
        "reasoning-and-tool",
        'get_weather({"city": "Paris"})\n',
        ["[reasoning] Need the weather."],
    ),
    "text_and_reasoning": Row(
        "with text: the reasoning is still shown, on stderr; stdout is the text alone",
        "text-and-reasoning",
        "Hello.\n",
        ["[reasoning] The user greets me."],
    ),
    "text_and_tool": Row("with text: the text alone on stdout (the calls are in --json)", "text-and-tool", "Let me check.\n", []),
    "empty": Row("no text, reasoning or tool call: [no text] on stderr, never silence", "empty", "", ["[no text]"]),
}

MODELS = ", ".join(f'{{id: "{name}"}}' for name in ANSWERS)
CONFIG = (
    f'{{models: {{mode: "replace", providers: {{r: {{baseUrl: "http://127.0.0.1:9/v1", maxRetries: 0, models: [{MODELS}]}}}}}}, '
    'pipeline: {stages: [{use: "tests.test_text_mode:replay", replace: "send"}]}}'
)


@pytest.fixture(autouse=True)
def plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("row", ROWS.values(), ids=list(ROWS))
def test_text_mode_shows_every_kind_of_answer(row: Row, stream: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "genesis.json5"
    config.write_text(CONFIG)
    args = ["infer", "model", "run", "--config", str(config), "--model", f"r/{row.model}", "--prompt", "hi"]
    code = main(args + ([] if stream else ["--no-stream"]))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out == row.out, row.rule
    *before, status = err.splitlines()
    assert before == row.err_lines, row.rule
    assert status.startswith(f"genesis: r/{row.model} · ")


def test_no_text_marks_each_empty_choice_of_several() -> None:
    completion = Completion(
        "A",
        "stop",
        "stop",
        outputs=(
            Output(0, "A", "stop", "stop"),
            Output(1, "", "length", "length"),
            Output(2, "", "tool_use", "tool_calls", tool_calls=(ToolCall("c", "f", "{}"),)),
        ),
    )
    assert text_pieces(completion, streamed=False) == [
        ("stdout", "--- choice 0 ---\n"),
        ("stdout", "A"),
        ("stdout", "\n"),
        ("stdout", "--- choice 1 ---\n"),
        ("stderr", "[no text]\n"),
        ("stdout", "--- choice 2 ---\n"),
        ("stdout", "f({})\n"),
    ]
