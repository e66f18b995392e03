"""``genesis infer model run``: the --json document, failure records, text mode, cost.

The CLI runs in-process (``pipeline.cli.main``) against the fault server; the
pure pieces (document, text_pieces, status_line, run_cost) have rule rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.commands.infer import document, status_line, text_pieces
from pipeline.config import Cost
from pipeline.cost import run_cost
from pipeline.events import Attempt, Completion, Output, ToolCall, Usage


def config(base_url: str, *, cost: str = "", fallbacks: str = "") -> str:
    return f"""{{
      agents: {{ defaults: {{ model: {{ primary: "fault/ok", fallbacks: [{fallbacks}] }} }} }},
      models: {{ mode: "replace", providers: {{
        fault: {{ baseUrl: "{base_url}", apiKey: "fault-secret", maxRetries: 0,
                  models: [{{ id: "ok", contextWindow: 1024 {cost} }}] }},
      }} }},
    }}"""


class Cli:
    def __init__(self, fault_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], **options: Any) -> None:
        self.path = tmp_path / "genesis.json5"
        self.path.write_text(config(fault_server.base_url, **options))
        self.capsys = capsys

    def __call__(self, model: str, *args: str) -> tuple[int, str, str]:
        code = main(["infer", "model", "run", "--config", str(self.path), "--model", model, "--prompt", "hi", *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, model: str, *args: str) -> tuple[int, dict[str, Any]]:
        code, out, _ = self(model, "--json", *args)
        return code, json.loads(out)


@pytest.fixture
def cli(fault_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(fault_server, tmp_path, capsys)


def keys(value: Any, where: str = "") -> list[str]:
    """Every object key in a JSON document, with its path (not inside ``parsedArguments``:
    a tool's arguments are the model's own, passed on as it wrote them)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append(f"{where}.{key}")
            if key != "parsedArguments":
                found += keys(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += keys(item, f"{where}[{index}]")
    return found


# ---- --json: one key style, one shape ----------------------------------------------------------


@pytest.mark.parametrize("model", ["fault/ok", "fault/tool-stream", "fault/reasoning", "fault/drop-mid-stream", "fault/serde-422"])
def test_json_keys_are_camel_case_everywhere(cli: Cli, model: str) -> None:
    _, doc = cli.json(model)
    snake = [key for key in keys(doc) if "_" in key.rpartition(".")[2]]
    assert snake == []


def test_json_shape_of_an_answer(cli: Cli) -> None:
    code, doc = cli.json("fault/tool-stream")
    assert code == 0
    assert list(doc) == ["ok", "capability", "provider", "model", "attempts", "outputs", "usage", "finishReason"]
    [output] = doc["outputs"]
    assert output == {
        "index": 0,
        "text": "",
        "reasoning": "",
        "finishReason": "tool_use",
        "toolCalls": [
            {
                "id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
                "parsedArguments": {"city": "Paris"},
                "argumentsError": None,
            }
        ],
    }
    assert doc["usage"] == {"promptTokens": 12, "completionTokens": 2, "totalTokens": 14, "cachedTokens": 0, "contextWindow": 1024}
    assert doc["attempts"] == [{"provider": "fault", "model": "tool-stream", "ok": True, "status": 200}]


def test_json_cost_and_status_line_cost(fault_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(fault_server, tmp_path, capsys, cost=", cost: { input: 2, output: 10, cacheRead: 0.5, cacheWrite: 0 }")
    _, doc = cli.json("fault/ok")
    assert doc["cost"] == pytest.approx((12 * 2 + 2 * 10) / 1e6)
    _, _, err = cli("fault/ok")
    assert "· $0.000044 ·" in err.splitlines()[-1]


def test_no_cost_key_for_a_model_without_prices(cli: Cli) -> None:
    _, doc = cli.json("fault/ok")
    assert "cost" not in doc


# ---- failures: the attempts and what had arrived -------------------------------------------------


def test_json_failure_keeps_the_text_that_streamed(cli: Cli) -> None:
    code, doc = cli.json("fault/drop-mid-stream")
    assert code == 1 and doc["ok"] is False and doc["error"]["class"] == "protocol"
    assert doc["partial"] == {"text": "Hello world", "reasoning": ""}
    assert doc["attempts"] == [
        {"provider": "fault", "model": "drop-mid-stream", "ok": False, "class": "protocol", "message": doc["attempts"][0]["message"]}
    ]


def test_json_failure_without_an_answer_has_no_partial(cli: Cli) -> None:
    _, doc = cli.json("fault/serde-422")
    assert "partial" not in doc


def test_an_unresolvable_fallback_still_shows_the_earlier_attempt(
    fault_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(fault_server, tmp_path, capsys, fallbacks='"nope/x"')
    code, doc = cli.json("fault/overloaded")
    assert code == 1 and doc["error"]["class"] == "overloaded"
    assert [(a["model"], a["class"]) for a in doc["attempts"]] == [("overloaded", "overloaded"), ("x", "unknown_model")]


# ---- text mode -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_a_tool_call_only_answer_prints_the_call(cli: Cli, stream: bool) -> None:
    code, out, _ = cli("fault/tool-stream", *([] if stream else ["--no-stream"]))
    assert code == 0 and out == 'get_weather({"city": "Paris"})\n'


@pytest.mark.parametrize("stream", [True, False])
def test_a_reasoning_only_answer_prints_the_reasoning_marked_on_stderr(cli: Cli, stream: bool) -> None:
    code, out, err = cli("fault/reasoning-only", *([] if stream else ["--no-stream"]))
    assert code == 0 and out == ""
    assert "[reasoning] Thinking it over.\n" in err


def test_reasoning_goes_to_stderr_and_text_to_stdout(cli: Cli) -> None:
    _, out, err = cli("fault/reasoning")
    assert out == "Hello world\n"
    assert err.splitlines()[0] == "[reasoning] Let me think. The user greets me."


def call(name: str, arguments: str) -> ToolCall:
    return ToolCall(f"id-{name}", name, arguments)


TWO_CHOICES = Completion(
    "A",
    "stop",
    "stop",
    outputs=(
        Output(0, "A", "stop", "stop"),
        Output(1, "", "tool_use", "tool_calls", reasoning="why", tool_calls=(call("f", "{}"),)),
    ),
)


@pytest.mark.parametrize(
    ("completion", "streamed", "pieces"),
    [
        # text ends in a newline, whether it streamed or not
        (Completion("hi", "stop", "stop"), False, [("stdout", "hi"), ("stdout", "\n")]),
        (Completion("hi", "stop", "stop"), True, [("stdout", "\n")]),
        (Completion("hi\n", "stop", "stop"), True, []),
        # tool calls print only when there is no text
        (
            Completion("", "tool_use", "tool_calls", tool_calls=(call("f", '{"a": 1}'), call("g", ""))),
            True,
            [("stdout", 'f({"a": 1})\n'), ("stdout", "g()\n")],
        ),
        (Completion("see", "tool_use", "tool_calls", tool_calls=(call("f", "{}"),)), False, [("stdout", "see"), ("stdout", "\n")]),
        # reasoning: marked, on stderr, unless it already streamed
        (Completion("", "stop", "stop", reasoning="hmm"), False, [("stderr", "[reasoning] hmm\n")]),
        (Completion("", "stop", "stop", reasoning="hmm"), True, []),
        # several choices: each under its header
        (
            TWO_CHOICES,
            False,
            [
                ("stdout", "--- choice 0 ---\n"),
                ("stdout", "A"),
                ("stdout", "\n"),
                ("stdout", "--- choice 1 ---\n"),
                ("stderr", "[reasoning] why\n"),
                ("stdout", "f({})\n"),
            ],
        ),
    ],
)
def test_text_pieces(completion: Completion, streamed: bool, pieces: list[tuple[str, str]]) -> None:
    assert text_pieces(completion, streamed=streamed) == pieces


# ---- the document and the status line, rule rows ----------------------------------------------------


def test_document_has_one_output_per_choice() -> None:
    doc = document(TWO_CHOICES, None)
    assert [(o["index"], o["text"], o["finishReason"], len(o["toolCalls"])) for o in doc["outputs"]] == [
        (0, "A", "stop", 0),
        (1, "", "tool_use", 1),
    ]


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (Usage(10, 5, 15), {"promptTokens": 10, "completionTokens": 5, "totalTokens": 15, "cachedTokens": 0, "contextWindow": 64}),
        (
            Usage(10, 5, 15, cached_tokens=4, reasoning_tokens=3),
            {"promptTokens": 10, "completionTokens": 5, "totalTokens": 15, "cachedTokens": 4, "reasoningTokens": 3, "contextWindow": 64},
        ),
        (
            Usage(10, 5, 15, cache_write_tokens=6),
            {"promptTokens": 10, "completionTokens": 5, "totalTokens": 15, "cachedTokens": 0, "cacheWriteTokens": 6, "contextWindow": 64},
        ),
    ],
)
def test_document_usage(usage: Usage, expected: dict[str, Any]) -> None:
    assert document(Completion("", "stop", "stop", usage=usage), 64)["usage"] == expected


def test_document_cost_timings_and_attempts() -> None:
    attempts = (
        Attempt("p", "m", ok=False, error_class="overloaded", message="Loading model", status=503, delay_ms=250),
        Attempt("p", "m", ok=True, status=200, retry=1),
    )
    timings = {"prompt_ms": 1.5, "predicted_per_second": 40.0}
    doc = document(Completion("", "stop", "stop", cost=0.5, timings=timings, attempts=attempts), None)
    assert (doc["cost"], doc["timings"]) == (0.5, {"promptMs": 1.5, "predictedPerSecond": 40.0})  # the server's keys, camelCase
    assert doc["attempts"] == [
        {"provider": "p", "model": "m", "ok": False, "class": "overloaded", "message": "Loading model", "status": 503, "delayMs": 250},
        {"provider": "p", "model": "m", "ok": True, "status": 200, "retry": 1},
    ]
    assert "cost" not in document(Completion("", "stop", "stop"), None) and "timings" not in document(Completion("", "stop", "stop"), None)


@pytest.mark.parametrize(
    ("cost", "part"),
    [(0.000123, "· $0.000123 ·"), (1.5, "· $1.500000 ·"), (None, None)],
)
def test_status_line_cost(cost: float | None, part: str | None) -> None:
    line = status_line(Completion("", "stop", "stop", usage=Usage(1, 1, 2), provider="p", model="m", cost=cost), None)
    assert (part in line) if part else ("$" not in line)


# ---- cost (SPEC 10) ---------------------------------------------------------------------------------

PRICES = Cost(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75)


@pytest.mark.parametrize(
    ("price", "counts", "expected"),
    [
        (PRICES, dict(prompt=1_000_000, completion=0), 3.0),  # input per million
        (PRICES, dict(prompt=0, completion=1_000_000), 15.0),  # output per million
        (PRICES, dict(prompt=1_000_000, cached=1_000_000, completion=0), 0.3),  # cached prompt tokens at cacheRead
        (PRICES, dict(prompt=1000, cached=400, completion=200), (600 * 3 + 400 * 0.3 + 200 * 15) / 1e6),
        (PRICES, dict(prompt=0, completion=0, cache_write=1_000_000), 3.75),  # cache writes at cacheWrite
        (PRICES, dict(prompt=100, cached=500, completion=0), 100 * 0.3 / 1e6),  # cached never exceeds the prompt
        (PRICES, dict(prompt=-5, completion=-5, cached=-5, cache_write=-5), 0.0),  # a hostile count is no refund
        (Cost(), dict(prompt=1000, completion=1000), None),  # no prices: no cost
        (Cost(output=1.0), dict(prompt=1000, completion=1000), 0.001),  # one price is enough
    ],
)
def test_run_cost(price: Cost, counts: dict[str, int], expected: float | None) -> None:
    result = run_cost(price, **counts)
    assert result == (None if expected is None else pytest.approx(expected))
