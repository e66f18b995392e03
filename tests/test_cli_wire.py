"""`genesis wire`, as a user runs it (the issue's done-when checks)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from tests.cases import OPENAI

ROOT = Path(__file__).resolve().parent.parent
INFERRS = str(ROOT / "examples" / "inferrs.json5")
PARTS = {
    "messages": [{"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "text", "text": "2 + 2?"}]}],
    "service_tier": "auto",
    "store": True,
    "prompt_cache_key": "session-1",
    "stream": True,
}


def run(args: list[str], capsys: Any, stdin: str | None = None, monkeypatch: Any = None) -> tuple[int, str, str]:
    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("GENESIS_CONFIG_PATH", "GENESIS_STATE_DIR", "VLLM_API_KEY", "SGLANG_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_inferrs_seed_request_shaped_and_explained(capsys: Any, monkeypatch: Any) -> None:
    code, out, err = run(
        ["wire", "--config", INFERRS, "--model", "inferrs/google/gemma-4-E2B-it", "--request", "-", "--explain"],
        capsys,
        json.dumps(PARTS),
        monkeypatch,
    )
    assert code == 0 and err == ""
    assert '"content": "What is\\n2 + 2?"' in out
    assert "Authorization: Bearer ***" in out and "inferrs-local" not in out
    head = out.split("\n\n")[0].lower()
    assert "originator" not in head and "version:" not in head
    wire_part, explain = out.split("# what each stage did")
    for field in ("service_tier", "store", "prompt_cache_key"):
        assert f'"{field}"' not in wire_part
    assert "messages[0].content changed: requiresStringContent: true" in explain
    assert "service_tier removed: proxy-style endpoint" in explain
    assert "store removed: supportsStore: false" in explain
    assert "prompt_cache_key removed: proxy-style endpoint" in explain
    assert "header Authorization added" in explain


def test_json_output_is_one_object(capsys: Any, monkeypatch: Any) -> None:
    code, out, _ = run(["wire", "--config", INFERRS, "--request", "-", "--json"], capsys, json.dumps(PARTS), monkeypatch)
    document = json.loads(out)
    assert code == 0 and set(document) == {"method", "url", "headers", "body"}
    assert document["headers"]["Authorization"] == "Bearer ***"
    assert document["body"]["messages"][0]["content"] == "What is\n2 + 2?"


def test_show_secrets(capsys: Any) -> None:
    code, out, _ = run(["wire", "--config", INFERRS, "--prompt", "hi", "--show-secrets"], capsys)
    assert code == 0 and "Authorization: Bearer inferrs-local" in out


def test_native_openai_keeps_service_tier_and_attribution(capsys: Any, monkeypatch: Any, tmp_path: Path) -> None:
    config = tmp_path / "openai.json5"
    config.write_text(OPENAI)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-0123456789abcdefghij")
    code, out, _ = run(
        ["wire", "--config", str(config), "--model", "openai/gpt-4.1", "--request", "-", "--json"], capsys, json.dumps(PARTS), monkeypatch
    )
    document = json.loads(out)
    assert code == 0
    assert document["body"]["service_tier"] == "auto" and document["body"]["store"] is True
    assert document["headers"]["originator"] == "genesis"
    assert document["headers"]["User-Agent"].startswith("genesis/")
    assert "sk-live" not in out


def test_unset_variable_fails_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.json5"
    config.write_text('{models: {providers: {vllm: {baseUrl: "http://127.0.0.1:8000/v1", apiKey: "${NOPE}"}}}}')
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "wire", "--config", str(config), "--model", "vllm/m", "--prompt", "hi"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "NOPE" in lines[0] and "models.providers.vllm.apiKey" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["wire", "--model", "vllm/tiny-model", "--prompt", "hi"],
            "Unknown model: vllm/tiny-model (hint: set VLLM_API_KEY (any value works)",
        ),
        (["wire", "--prompt", "hi"], "no model given and no default model configured"),
        (["wire", "--config", "/nonexistent/g.json5", "--prompt", "hi"], "file not found"),
        (["wire", "--config", INFERRS, "--request", "/nonexistent.json"], "--request /nonexistent.json: cannot be read"),
        (["wire", "--config", INFERRS, "--prompt", "hi", "--header", "nocolon"], "expected 'Name: value'"),
    ],
)
def test_user_errors_exit_2_with_one_line(args: list[str], expected: str, capsys: Any) -> None:
    code, out, err = run(args, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and expected in err


def test_bad_request_file(capsys: Any, monkeypatch: Any) -> None:
    code, _, err = run(["wire", "--config", INFERRS, "--request", "-"], capsys, "{not json", monkeypatch)
    assert code == 2 and "--request stdin: not valid JSON" in err


def test_caller_header_and_raw_body(capsys: Any) -> None:
    code, out, _ = run(["wire", "--config", INFERRS, "--prompt", "hi", "--header", "X-Trace: t-1", "--raw", "--no-stream"], capsys)
    assert code == 0 and "X-Trace: t-1\r\n" in out
    assert out.rstrip("\n").endswith('"max_tokens":4096}')


def test_fluffbuzz_alias_installed() -> None:
    scripts = Path(sys.executable).parent
    assert (scripts / "genesis").exists() and (scripts / "fluffbuzz").exists()


def test_library_warnings_print_as_genesis_warning_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """The library warns through the ``genesis`` logger (TLS verification off, an unusable proxy);
    the CLI shows those as its own one-line warnings on stderr."""
    import logging

    from pipeline.cli import _warnings_to_stderr

    logger = logging.getLogger("genesis")
    saved = (list(logger.handlers), logger.propagate)
    try:
        logger.handlers.clear()
        _warnings_to_stderr()
        _warnings_to_stderr()  # once only, however often main() runs in one process
        logger.warning("TLS certificate verification is OFF for %s", "https://h/v1")
        assert capsys.readouterr().err == "genesis: warning: TLS certificate verification is OFF for https://h/v1\n"
    finally:
        logger.handlers[:] = saved[0]
        logger.propagate = saved[1]
