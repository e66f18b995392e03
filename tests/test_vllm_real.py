"""Against a real vLLM server (CPU build, tiny random-weight model), not a mock.

The model's text is random bytes, so these assert on structure: status,
classes, usage, tool-call shape. ``temperature: 0`` with
``parallel_tool_calls: false`` makes the tool-call answer deterministic.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pipeline.api import Genesis
from pipeline.errors import ProviderError
from pipeline.providers import BUILTIN_PROVIDERS
from tests.conftest import VLLM_KEY

pytestmark = [pytest.mark.anyio, pytest.mark.vllm]
ROOT = Path(__file__).resolve().parent.parent
HI = {"messages": [{"role": "user", "content": "Hello, how are you?"}], "max_tokens": 16}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def configured(vllm_url: str, key: str = VLLM_KEY, fallbacks: str = "") -> Genesis:
    text = f"""{{
      agents: {{ defaults: {{ model: {{ primary: "vllm/tiny-model", fallbacks: [{fallbacks}] }} }} }},
      models: {{ providers: {{
        vllm: {{ baseUrl: "{vllm_url}", apiKey: "{key}", models: [{{ id: "tiny-model", contextWindow: 1024 }}] }},
        dead: {{ baseUrl: "http://127.0.0.1:9/v1", timeoutSeconds: 3, maxRetries: 0, models: [{{ id: "tiny-model" }}] }},
      }} }},
    }}"""
    return Genesis.from_config_text(text, env={})


async def run(g: Genesis, model: str, request: dict[str, Any]) -> Any:
    async with g:
        return await g.run(model, request)


async def test_non_stream(vllm_url: str) -> None:
    completion = await run(configured(vllm_url), "vllm/tiny-model", {**HI, "stream": False})
    assert completion.finish_reason in ("stop", "length")
    assert completion.usage is not None and completion.usage.completion_tokens <= 16


async def test_stream_usage_comes_from_the_final_chunk(vllm_url: str) -> None:
    g = configured(vllm_url)
    wire = g.build("vllm/tiny-model", {**HI, "stream": True})
    assert json.loads(wire.body)["stream_options"] == {"include_usage": True}
    events: list[Any] = []
    async with g:
        completion = await g.run("vllm/tiny-model", {**HI, "stream": True}, on_event=events.append)
    assert type(events[-1]).__name__ == "Usage"  # vLLM: a last chunk with choices: [] and usage
    assert (
        completion.usage is not None
        and completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion.usage.completion_tokens >= 1


@pytest.mark.parametrize("stream", [True, False])
async def test_required_tool_choice_gives_a_structured_call(vllm_url: str, stream: bool) -> None:
    request = {
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "temperature": 0,
        "parallel_tool_calls": False,
        "max_tokens": 64,
        "stream": stream,
    }
    completion = await run(configured(vllm_url), "vllm/tiny-model", request)
    assert completion.finish_reason == "tool_use"
    [call] = completion.tool_calls
    assert call.name == "get_weather" and call.id
    assert isinstance(call.arguments, str)  # random weights: valid JSON, not necessarily the schema


async def test_wrong_key_is_auth_with_hint(vllm_url: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await run(configured(vllm_url, key="wrong-key"), "vllm/tiny-model", HI)
    error = caught.value
    assert (error.error_class, error.status, error.server_message) == ("auth", 401, "Unauthorized")
    assert error.hint and "apiKey" in error.hint and "wrong-key" not in str(error) + error.hint


async def test_unknown_model_is_model_not_found(vllm_url: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await run(configured(vllm_url), "vllm/no-such-model", HI)
    assert (caught.value.error_class, caught.value.status) == ("model_not_found", 404)
    assert "does not exist" in caught.value.server_message


async def test_too_many_tokens_is_format_with_the_server_message(vllm_url: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await run(configured(vllm_url), "vllm/tiny-model", {**HI, "max_tokens": 100000})
    error = caught.value
    assert (error.error_class, error.status) == ("format", 400)
    assert "max_tokens" in error.server_message or "maximum context length" in error.server_message


async def test_dead_primary_falls_back_to_the_live_server(vllm_url: str) -> None:
    completion = await run(configured(vllm_url, fallbacks='"vllm/tiny-model"'), "dead/tiny-model", HI)
    assert [(a.provider, a.ok, a.error_class) for a in completion.attempts] == [("dead", False, "unreachable"), ("vllm", True, None)]
    assert completion.provider == "vllm"


async def test_discovery_finds_the_served_model(vllm_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Discovery asks the built-in vllm base URL (:8000); the session's server runs on a free port.
    monkeypatch.setitem(BUILTIN_PROVIDERS, "vllm", msgspec.structs.replace(BUILTIN_PROVIDERS["vllm"], base_url=vllm_url))
    g = Genesis.from_config_text("{models: {providers: {}}}", env={"VLLM_API_KEY": VLLM_KEY})
    async with g:
        await g.discover()
    entry = g.catalog.providers["vllm"].find("tiny-model")
    assert entry is not None and entry.origin == "discovered" and entry.config.context_window == 1024


def test_cli_json_end_to_end(vllm_url: str, tmp_path: Path) -> None:
    path = tmp_path / "genesis.json5"
    path.write_text(
        f'{{models: {{providers: {{vllm: {{baseUrl: "{vllm_url}", apiKey: "${{VLLM_API_KEY}}", models: [{{id: "tiny-model", contextWindow: 1024}}]}}}}}}}}'
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "infer",
            "model",
            "run",
            "--config",
            str(path),
            "--model",
            "vllm/tiny-model",
            "--prompt",
            "What is 2 + 2?",
            "--max-tokens",
            "8",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "VLLM_API_KEY": VLLM_KEY},
        timeout=120,
    )
    document = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert (document["ok"], document["capability"], document["provider"], document["model"]) == (True, "model.run", "vllm", "tiny-model")
    assert document["usage"]["contextWindow"] == 1024 and document["finishReason"] in ("stop", "length")
    assert document["attempts"] == [{"provider": "vllm", "model": "tiny-model", "ok": True, "status": 200}]


def test_cli_stream_status_line(vllm_url: str, tmp_path: Path) -> None:
    path = tmp_path / "genesis.json5"
    path.write_text(
        f'{{models: {{providers: {{vllm: {{baseUrl: "{vllm_url}", apiKey: "{VLLM_KEY}", models: [{{id: "tiny-model", contextWindow: 1024}}]}}}}}}}}'
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "infer",
            "model",
            "run",
            "--config",
            str(path),
            "--model",
            "vllm/tiny-model",
            "--prompt",
            "hi",
            "--max-tokens",
            "8",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    [status] = done.stderr.strip().splitlines()
    assert status.startswith("genesis: vllm/tiny-model · ") and "/1,024 (" in status
