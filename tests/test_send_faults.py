"""Sending through the local fault server: faults a real server won't make on demand.

Each fault ends in the right typed error or the right result: no hang, no
stray exception. Runs on asyncio and trio.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from pipeline.api import Genesis
from pipeline.errors import ProviderError
from pipeline.events import AttemptFailed, TextDelta

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent
PROMPT = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


def config(base_url: str, *, timeout: float = 10, extra: str = "", fallbacks: str = "", retries: int = 0) -> str:
    # maxRetries 0: these tests pin classes and failover; retries have their own (tests/test_retries.py).
    return f"""{{
      agents: {{ defaults: {{ model: {{ primary: "fault/ok", fallbacks: [{fallbacks}] }} }} }},
      models: {{ providers: {{
        fault: {{ baseUrl: "{base_url}", apiKey: "fault-secret", timeoutSeconds: {timeout}, maxRetries: {retries},
                  models: [{{ id: "ok" }}, {{ id: "strict-inferrs" {extra} }}] }},
      }} }},
    }}"""


def genesis(fault_server: Any, **options: Any) -> Genesis:
    return Genesis.from_config_text(config(fault_server.base_url, **options), env={})


async def run(g: Genesis, model: str, request: dict[str, Any] = PROMPT, **options: Any) -> Any:
    async with g:
        return await g.run(model, request, **options)


async def failure(g: Genesis, model: str, request: dict[str, Any] = PROMPT, **options: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await run(g, model, request, **options)
    return caught.value


@pytest.mark.parametrize("scenario", ["ok", "crlf", "cr"])
async def test_ok_streams(fault_server: Any, scenario: str) -> None:
    completion = await run(genesis(fault_server), f"fault/{scenario}")
    assert (completion.text, completion.finish_reason) == ("Hello world", "stop")
    assert completion.usage is not None and completion.usage.total_tokens > 0  # include_usage: loopback endpoint


async def test_non_stream(fault_server: Any) -> None:
    completion = await run(genesis(fault_server), "fault/ok", {**PROMPT, "stream": False})
    assert completion.text == "Hello world" and completion.usage is not None


async def test_reasoning_and_tool_streams(fault_server: Any) -> None:
    assert (await run(genesis(fault_server), "fault/reasoning")).reasoning
    completion = await run(genesis(fault_server), "fault/tool-stream")
    [call] = completion.tool_calls
    assert (call.id, call.name, call.parsed_arguments, completion.finish_reason) == ("call_1", "get_weather", {"city": "Paris"}, "tool_use")


@pytest.mark.parametrize(
    ("scenario", "error_class", "status", "text"),
    [
        ("drop-mid-stream", "protocol", None, "the connection broke mid-answer"),
        ("reset-mid-stream", "protocol", None, "the connection broke mid-answer"),
        ("malformed-chunk", "protocol", 200, "malformed chunk"),
        ("serde-422", "format", 422, "invalid type: sequence, expected a string"),
        ("finish-error", "server_error", 200, "Error: engine failed: out of memory"),
        ("stream-error-object", "server_error", 200, "boom"),
        ("unauthorized", "auth", 401, "Unauthorized"),
        ("overloaded", "overloaded", 503, "Service Unavailable"),
        ("no-such-model", "model_not_found", 404, "does not exist"),
    ],
)
async def test_faults_are_classified(fault_server: Any, scenario: str, error_class: str, status: int | None, text: str) -> None:
    error = await failure(genesis(fault_server), f"fault/{scenario}", fallbacks=False)
    assert (error.error_class, error.status) == (error_class, status)
    assert text in str(error)
    assert "fault-secret" not in str(error) and "fault-secret" not in (error.hint or "")


async def test_serde_422_hint(fault_server: Any) -> None:
    error = await failure(genesis(fault_server), "fault/serde-422")
    assert error.hint and "compat.requiresStringContent: true" in error.hint
    assert "invalid type: sequence" in error.raw


async def test_strict_inferrs_developer_role_and_the_fix(fault_server: Any) -> None:
    request = {"messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}], "stream": True}
    explicit = genesis(fault_server, extra=", compat: { supportsDeveloperRole: true }")
    error = await failure(explicit, "fault/strict-inferrs", request)
    assert error.error_class == "format" and error.hint and "supportsDeveloperRole: false" in error.hint
    completion = await run(genesis(fault_server), "fault/strict-inferrs", request)  # proxy-style default: developer -> system
    assert completion.text == "Hello world" and completion.usage is None  # inferrs never sends usage


async def test_slow_server_times_out_without_hanging(fault_server: Any) -> None:
    with anyio.fail_after(10):
        error = await failure(genesis(fault_server, timeout=0.5), "fault/slow")
    assert error.error_class == "timeout" and error.hint and "timeoutSeconds" in error.hint


async def test_cancelling_a_run_returns_promptly(fault_server: Any) -> None:
    g = genesis(fault_server)
    with anyio.fail_after(5):
        with anyio.move_on_after(0.3) as scope:
            await run(g, "fault/slow")
    assert scope.cancelled_caught


async def test_64_mib_event(fault_server: Any) -> None:
    completion = await run(genesis(fault_server), "fault/huge-event")
    assert len(completion.text) == 64 * 1024 * 1024


async def test_failover_records_every_attempt(fault_server: Any) -> None:
    g = genesis(fault_server, fallbacks='"fault/overloaded", "fault/ok"')
    events: list[Any] = []
    async with g:
        completion = await g.run("fault/unauthorized", PROMPT, on_event=events.append)
    assert [(a.model, a.ok, a.error_class) for a in completion.attempts] == [
        ("unauthorized", False, "auth"),
        ("overloaded", False, "overloaded"),
        ("ok", True, None),
    ]
    assert completion.model == "ok" and completion.text == "Hello world"
    assert [type(e) for e in events[:2]] == [AttemptFailed, AttemptFailed]


async def test_no_failover_for_format_errors(fault_server: Any) -> None:
    error = await failure(genesis(fault_server, fallbacks='"fault/ok"'), "fault/serde-422")
    assert [a.error_class for a in error.attempts] == ["format"]


async def test_no_failover_once_text_reached_the_caller(fault_server: Any) -> None:
    error = await failure(genesis(fault_server, fallbacks='"fault/ok"'), "fault/drop-mid-stream")
    assert [a.error_class for a in error.attempts] == ["protocol"]


async def test_audit_hook_gets_redacted_exact_request(fault_server: Any) -> None:
    records: list[Any] = []
    g = genesis(fault_server, fallbacks='"fault/ok"')
    await run(g, "fault/overloaded", audit=records.append)
    assert [(r.model, r.ok, r.status) for r in records] == [("overloaded", False, 503), ("ok", True, 200)]
    assert records[1].request.headers["Authorization"] == "Bearer ***"
    assert json.loads(records[1].request.body)["stream_options"] == {"include_usage": True}
    assert records[1].usage is not None and records[1].timing["total_ms"] is not None
    sent = [r for r in fault_server.requests if r["path"].endswith("/chat/completions")][-1]
    assert sent["body"].decode() == records[1].request.body  # the audit shows the bytes that went out


async def test_stream_yields_events_as_they_come(fault_server: Any) -> None:
    async with genesis(fault_server) as g:
        texts = [e.text async for e in g.stream("fault/ok", PROMPT) if isinstance(e, TextDelta)]
    assert texts == ["Hello", " world"]


async def test_injected_transport() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer k"
        body = {"choices": [{"message": {"content": "mocked"}, "finish_reason": "stop"}]}
        return httpx.Response(200, json=body)

    g = Genesis.from_config_text("{}", env={"VLLM_API_KEY": "k"}, transport=httpx.MockTransport(answer))
    g._discovered = True  # the mock answers chat only
    completion = await run(g, "vllm/m", {**PROMPT, "stream": False})
    assert completion.text == "mocked"


def test_run_sync(fault_server: Any) -> None:
    assert genesis(fault_server).run_sync("fault/ok", PROMPT).text == "Hello world"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", **(env or {})},
        timeout=120,
    )


@pytest.mark.parametrize("scenario", ["drop-mid-stream", "malformed-chunk", "serde-422", "finish-error", "slow"])
def test_cli_faults_end_in_one_line(fault_server: Any, tmp_path: Path, scenario: str) -> None:
    path = tmp_path / "c.json5"
    path.write_text(config(fault_server.base_url, timeout=1))
    done = cli("infer", "model", "run", "--config", str(path), "--model", f"fault/{scenario}", "--prompt", "hi")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"genesis: fault/{scenario}: ")


def test_cli_json_failure_and_audit_file(fault_server: Any, tmp_path: Path) -> None:
    path = tmp_path / "c.json5"
    path.write_text(config(fault_server.base_url))
    audit = tmp_path / "audit.jsonl"
    done = cli(
        "infer", "model", "run", "--config", str(path), "--model", "fault/serde-422", "--prompt", "hi", "--json", "--audit", str(audit)
    )
    document = json.loads(done.stdout)
    assert done.returncode == 1 and document["ok"] is False
    assert document["error"]["class"] == "format" and "requiresStringContent" in document["error"]["hint"]
    [record] = [json.loads(line) for line in audit.read_text().splitlines()]
    assert record["status"] == 422 and record["request"]["headers"]["Authorization"] == "Bearer ***"
    assert "fault-secret" not in audit.read_text()


def test_cli_nothing_listening_fails_fast_with_url_and_hint(tmp_path: Path) -> None:
    path = tmp_path / "c.json5"
    path.write_text('{models: {providers: {vllm: {baseUrl: "http://127.0.0.1:9/v1", maxRetries: 0, models: [{id: "m"}]}}}}')
    done = cli("infer", "model", "run", "--config", str(path), "--model", "vllm/m", "--prompt", "hi")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert "unreachable" in line and "http://127.0.0.1:9/v1/chat/completions" in line and "curl http://127.0.0.1:9/v1/models" in line
