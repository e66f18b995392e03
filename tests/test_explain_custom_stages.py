"""``--explain`` shows every stage's changes, custom ones included (issue 11, "Why" 6).

A config-loaded stage is listed under its ``use`` name (``module:function``), which the stage
itself cannot know: the README's ``add_seed`` records its change as ``add_seed``, and the trace
once showed the stage as "no changes" while the body gained ``"seed": 7``. Rules (pipeline/runner.py
``_attributed``): every change recorded during a custom stage's step is the stage's, under its
name in the pipeline; a stage that recorded nothing gets the differences of the body and headers
recorded for it; the trace only grows. Each row runs twice: the stage declared in the config
(``pipeline.stages[]``, through ``genesis wire --explain``) and inserted from code
(``Pipeline.insert_after``, through ``Genesis.build``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import pytest
from returns.result import Failure, Result, Success

from pipeline.api import Genesis
from pipeline.cli import main
from pipeline.errors import GenesisError, StageError
from pipeline.runner import Pipeline
from pipeline.trace import added, render_trace
from pipeline.types import Context

MODULE = "tests.test_explain_custom_stages"
PROVIDER = '{models: {mode: "replace", providers: {p: {baseUrl: "http://127.0.0.1:9/v1", models: [{id: "m"}]}}}, agents: {defaults: {model: {primary: "p/m"}}}'
TRACE_VALUE = "trace-value-4711"


# ---- the stages (importable by the config as tests.test_explain_custom_stages:<name>) ----


def add_seed(ctx: Context) -> Result[Context, GenesisError]:
    """The README's stage: records its change under the name it was given in code."""
    return Success(ctx.updated([added("add_seed", "seed", "reproducible runs")], body={**ctx.body, "seed": 7}))


def add_seed_silently(ctx: Context) -> Result[Context, GenesisError]:
    return Success(ctx.updated([], body={**ctx.body, "seed": 7}))


def shout_silently(ctx: Context) -> Result[Context, GenesisError]:
    messages = [{**message, "content": str(message["content"]).upper()} for message in ctx.body["messages"]]
    return Success(ctx.updated([], body={**ctx.body, "messages": messages}))


def drop_stream_silently(ctx: Context) -> Result[Context, GenesisError]:
    return Success(ctx.updated([], body={key: value for key, value in ctx.body.items() if key != "stream"}))


def add_header_silently(ctx: Context) -> Result[Context, GenesisError]:
    return Success(ctx.updated([], headers=(*ctx.headers, ("X-Trace", TRACE_VALUE))))


def record_one_drop_another(ctx: Context) -> Result[Context, GenesisError]:
    body = {key: value for key, value in ctx.body.items() if key != "stream"}
    return Success(ctx.updated([added("mine", "seed", "reproducible runs")], body={**body, "seed": 7}))


def rewrite_history(ctx: Context) -> Result[Context, GenesisError]:
    """Replaces the whole trace with its own change: the earlier stages' entries must survive."""
    return Success(msgspec.structs.replace(ctx, trace=(added("x", "seed", "mine alone"),), body={**ctx.body, "seed": 7}))


def change_nothing(ctx: Context) -> Result[Context, GenesisError]:
    return Success(ctx.updated([], body=dict(ctx.body)))


class Row(NamedTuple):
    rule: str
    stage: Callable[[Context], Result[Context, GenesisError]]
    lines: list[str]  # what --explain prints under the stage's name


ROWS: dict[str, Row] = {
    "recorded_under_another_name": Row(
        "a change the stage recorded under a name of its own is listed under the stage's name in the pipeline",
        add_seed,
        ["  + seed added: reproducible runs"],
    ),
    "nothing_recorded_field_added": Row(
        "a stage that recorded nothing: an added field is recorded for it, with its value",
        add_seed_silently,
        ["  + seed added: set by a custom stage that recorded no rule (7)"],
    ),
    "nothing_recorded_nested_change": Row(
        "a stage that recorded nothing: a changed value is recorded at its innermost path, before -> after",
        shout_silently,
        ['  ~ messages[0].content changed: set by a custom stage that recorded no rule ("hi" -> "HI")'],
    ),
    "nothing_recorded_field_dropped": Row(
        "a stage that recorded nothing: a dropped field is recorded as dropped",
        drop_stream_silently,
        ["  - stream removed: dropped by a custom stage that recorded no rule (was true)"],
    ),
    "nothing_recorded_header_added": Row(
        "a stage that recorded nothing: a header it added is recorded, its value never shown",
        add_header_silently,
        ["  + header X-Trace added: set by a custom stage that recorded no rule"],
    ),
    "recorded_some_dropped_silently": Row(
        "a stage that recorded some changes keeps them, and a drop it did not record is recorded for it",
        record_one_drop_another,
        ["  + seed added: reproducible runs", "  - stream removed: dropped by a custom stage that recorded no rule"],
    ),
    "history_rewritten": Row(
        "the trace only grows: a stage that replaced it keeps its own entry, the earlier stages keep theirs",
        rewrite_history,
        ["  + seed added: mine alone"],
    ),
    "no_difference": Row(
        "a stage whose result equals its input changed nothing, and says so",
        change_nothing,
        [],
    ),
}


def section(lines: list[str], name: str) -> list[str]:
    """The lines --explain prints for one stage: its heading's entries, [] for "<name>: no changes"."""
    if f"{name}: no changes" in lines:
        return []
    start = lines.index(f"{name}:") + 1
    end = next((index for index in range(start, len(lines)) if not lines[index].startswith("  ")), len(lines))
    return lines[start:end]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("GENESIS_CONFIG_PATH", "VLLM_API_KEY", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def config_with(tmp_path: Path, function: str) -> str:
    path = tmp_path / "genesis.json5"
    path.write_text(PROVIDER + f', pipeline: {{stages: [{{use: "{MODULE}:{function}", after: "apply_defaults"}}]}}}}')
    return str(path)


@pytest.mark.parametrize("row", ROWS.values(), ids=list(ROWS))
def test_a_config_declared_stage_is_explained_under_its_use_name(row: Row, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_with(tmp_path, row.stage.__name__)
    assert main(["wire", "--config", config, "--prompt", "hi", "--explain"]) == 0
    out, err = capsys.readouterr()
    explained = out.split("# what each stage did\n")[1].splitlines()
    assert section(explained, f"{MODULE}:{row.stage.__name__}") == row.lines, row.rule
    assert section(explained, "resolve_ref") == ["  + model added: resolved p/m"]  # earlier stages keep theirs
    assert TRACE_VALUE not in out + err


@pytest.mark.parametrize("row", ROWS.values(), ids=list(ROWS))
def test_a_code_inserted_stage_is_explained_under_its_name(row: Row) -> None:
    pipeline = Pipeline().insert_after("apply_defaults", "mine", row.stage)
    genesis = Genesis.from_config_text(PROVIDER + "}", env={}, pipeline=pipeline)
    wire = genesis.build(None, {"messages": [{"role": "user", "content": "hi"}], "stream": True})
    explained = render_trace(wire.trace, tuple(stage.name for stage in genesis.pipeline.request_stages))
    assert section(explained, "mine") == row.lines, row.rule
    assert all(change.stage in genesis.pipeline.names for change in wire.trace)
    assert section(explained, "resolve_ref") == ["  + model added: resolved p/m"]


def test_json_explain_names_the_config_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_with(tmp_path, "add_seed")
    assert main(["wire", "--config", config, "--prompt", "hi", "--explain", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    [change] = [change for change in document["trace"] if change["field"] == "seed"]
    assert change == {"stage": f"{MODULE}:add_seed", "action": "added", "field": "seed", "rule": "reproducible runs"}
    assert document["body"]["seed"] == 7


def test_infer_explain_lists_the_config_stage(fault_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "genesis.json5"
    path.write_text(
        f'{{models: {{mode: "replace", providers: {{fault: {{baseUrl: "{fault_server.base_url}", maxRetries: 0, models: [{{id: "ok"}}]}}}}}}, '
        f'pipeline: {{stages: [{{use: "{MODULE}:add_seed_silently", after: "apply_defaults"}}]}}}}'
    )
    code = main(["infer", "model", "run", "--config", str(path), "--model", "fault/ok", "--prompt", "hi", "--explain"])
    _, err = capsys.readouterr()
    assert code == 0, err
    explained = err.split("# what each stage did\n")[1].splitlines()
    assert section(explained, f"{MODULE}:add_seed_silently") == ["  + seed added: set by a custom stage that recorded no rule (7)"]


@pytest.mark.parametrize(
    ("rule", "order", "lines"),
    [
        ("a stage in the order with changes lists them", ("a",), ["a:", "  + seed added: r"]),
        (
            "a change naming a stage not in the order is still shown, after the listed ones",
            ("b",),
            ["b: no changes", "a:", "  + seed added: r"],
        ),
    ],
    ids=["listed", "unlisted"],
)
def test_render_trace_never_drops_a_change(rule: str, order: tuple[str, ...], lines: list[str]) -> None:
    assert render_trace((added("a", "seed", "r"),), order) == lines, rule


def body_as_list(ctx: Context) -> Result[Context, GenesisError]:
    return Success(ctx.updated([], body=["not", "an", "object"]))


def headers_as_strings(ctx: Context) -> Result[Context, GenesisError]:
    return Success(ctx.updated([], headers=("X-Trace: 1",)))


@pytest.mark.parametrize("stage", [body_as_list, headers_as_strings], ids=["body-list", "headers-strings"])
def test_a_malformed_result_is_a_stage_error_not_a_crash(stage: Callable[[Context], Result[Context, GenesisError]]) -> None:
    genesis = Genesis.from_config_text(PROVIDER + "}", env={}, pipeline=Pipeline().insert_after("apply_defaults", "mine", stage))
    result = genesis.build_result(None, {"messages": [{"role": "user", "content": "hi"}]})
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, StageError) and "mine" in str(error) and "malformed" in str(error)


KEY_IN_BODY = "sk-a-configured-key-that-must-never-show-0123456789"


def put_the_key_in_the_body(ctx: Context) -> Result[Context, GenesisError]:
    return Success(ctx.updated([], body={**ctx.body, "user": KEY_IN_BODY, "metadata": {"api_key": "an-unconfigured-secret"}}))


def test_a_key_a_silent_stage_puts_in_the_body_is_never_shown_in_the_trace() -> None:
    """Rule: the differences recorded for a silent stage are scrubbed of every configured secret and of
    anything that reads as a credential before they are cut short, so not even a key's start shows."""
    config = PROVIDER.replace('baseUrl: "http://127.0.0.1:9/v1",', f'baseUrl: "http://127.0.0.1:9/v1", apiKey: "{KEY_IN_BODY}",') + "}"
    genesis = Genesis.from_config_text(config, env={}, pipeline=Pipeline().insert_after("apply_defaults", "mine", put_the_key_in_the_body))
    wire = genesis.build(None, {"messages": [{"role": "user", "content": "hi"}]})
    shown = [str(change) for change in wire.trace if change.stage == "mine"]
    assert shown == [
        'user added: set by a custom stage that recorded no rule ("***")',
        'metadata added: set by a custom stage that recorded no rule ({"api_key":"***"})',
    ]
    assert not any(KEY_IN_BODY[:8] in line or "an-unconfigured" in line for line in shown)
