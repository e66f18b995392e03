"""``genesis infer model run`` with a config-declared answer-side stage, and ``--explain`` of all seven stages.

In-process CLI (``pipeline.cli.main``) against the fault server; the stage module is ``tests.stage_examples``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main

SEVEN = ("resolve_ref", "apply_defaults", "compat_shaping", "strip_native_only", "attach_headers", "send", "parse_stream")


def config(base_url: str, stages: str) -> str:
    return f"""{{
      models: {{ mode: "replace", providers: {{
        fault: {{ baseUrl: "{base_url}", apiKey: "fault-secret", maxRetries: 0, models: [{{ id: "ok" }}] }},
      }} }},
      pipeline: {{ stages: [{stages}] }},
    }}"""


def run(fault_server: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], stages: str, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "genesis.json5"
    path.write_text(config(fault_server.base_url, stages))
    code = main(["infer", "model", "run", "--config", str(path), "--model", "fault/ok", "--prompt", "hi", *args])
    out, err = capsys.readouterr()
    return code, out, err


SHOUT = '{ use: "tests.stage_examples:shout", after: "parse_stream" }'


def test_a_config_declared_answer_side_stage_runs_in_infer_model_run(fault_server: Any, tmp_path: Path, capsys: Any) -> None:
    code, out, _ = run(fault_server, tmp_path, capsys, SHOUT)
    assert (code, out) == (0, "HELLO WORLD\n")


def test_explain_shows_what_each_of_the_seven_stages_and_the_answer_side_did(fault_server: Any, tmp_path: Path, capsys: Any) -> None:
    code, out, err = run(fault_server, tmp_path, capsys, SHOUT, "--explain")
    assert code == 0 and out == "HELLO WORLD\n"
    explained = err.split("# what each stage did\n")[1].splitlines()
    headings = [line.rsplit(":", 1)[0] for line in explained if not line.startswith(" ")]
    assert tuple(headings[:7]) == SEVEN and headings[-1] == "tests.stage_examples:shout"  # built-in answer stages between
    assert any(line.startswith("  fault/ok try 1: HTTP 200, first byte ") and line.endswith("; answered") for line in explained)
    assert "  ended at data: [DONE]" in explained
    assert "  events: 1 Finish, 2 TextDelta, 1 Usage" in explained
    assert "  upper-cased 11 chars" in explained
    assert "fault-secret" not in err


def test_explain_with_json_adds_the_lines_to_the_document(fault_server: Any, tmp_path: Path, capsys: Any) -> None:
    code, out, _ = run(fault_server, tmp_path, capsys, SHOUT, "--explain", "--json")
    document = json.loads(out)
    assert code == 0 and document["outputs"][0]["text"] == "HELLO WORLD"
    assert "tests.stage_examples:shout:" in document["explain"] and "parse_stream:" in document["explain"]


def test_a_failing_config_declared_stage_is_a_clear_error_not_a_traceback(fault_server: Any, tmp_path: Path, capsys: Any) -> None:
    code, out, err = run(fault_server, tmp_path, capsys, '{ use: "tests.stage_examples:off", after: "parse_stream" }')
    assert (code, out) == (0, "Hello world\n")
    code, _, err = run(fault_server, tmp_path, capsys, '{ use: "tests.stage_examples:shout", before: "send" }')
    assert code == 2 and "pipeline.stages[0]" in err and "put it after parse_stream" in err and "Traceback" not in err
