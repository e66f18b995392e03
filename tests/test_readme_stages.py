"""The README's "Adding your own stage" examples run verbatim: a request-side stage, an
answer-side stage against the fault server, and a replayed ``send`` with no server at all."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def section_code(heading: str) -> list[str]:
    text = README.read_text()
    start = text.index(heading)
    end = min(text.index(marker, start + len(heading)) for marker in ("\n## ", "\n### ") if marker in text[start + len(heading) :])
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_custom_stage_section_shows_both_sides() -> None:
    blocks = section_code("### Adding your own stage")
    assert len(blocks) == 3
    assert 'insert_after("apply_defaults"' in blocks[0] and 'insert_after("parse_stream"' in blocks[1] and 'replace("send"' in blocks[2]


def test_the_custom_stage_examples_run_verbatim(
    fault_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "genesis.json5"
    config.write_text(
        f"""{{ agents: {{ defaults: {{ model: {{ primary: "fault/ok" }} }} }},
        models: {{ mode: "replace", providers: {{ fault: {{ baseUrl: "{fault_server.base_url}", models: [{{ id: "ok" }}] }} }} }} }}"""
    )
    monkeypatch.setenv("GENESIS_CONFIG_PATH", str(config))
    namespace: dict[str, Any] = {"__name__": "readme"}
    for block in section_code("### Adding your own stage"):
        exec(compile(block, str(README), "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    assert b'"seed":7' in namespace["wire"].body and "seed added: reproducible runs" in out[0]
    assert out[1].startswith("Hello world (StageNote(stage='send', note='fault/ok try 1: HTTP 200")
    assert out[2] == "Call ###-####"
