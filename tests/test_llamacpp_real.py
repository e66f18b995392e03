"""Against a real llama.cpp ``llama-server`` (CPU build, the tiny random-weight model as GGUF), not a mock.

The model's text is random bytes, so these assert on structure: status,
classes, hints, usage, tool-call shape. ``temperature: 0`` (and a fixed
``seed`` where sampling matters) makes each answer repeatable. The server
is started by tests/servers/llamacpp.sh on a free port; tests that kill or
stall a server start a private one (``llamacpp_server`` in conftest).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from backends.discovery import fetch_models
from backends.transport import Http11Transport
from pipeline.api import Genesis
from pipeline.errors import ProviderError
from pipeline.events import Finish, TextDelta, Timings, Usage
from tests.conftest import LLAMACPP_KEY, LLAMACPP_MODEL, llamacpp_server

pytestmark = [pytest.mark.anyio, pytest.mark.llamacpp]
ROOT = Path(__file__).resolve().parent.parent
REF = "llamacpp/tiny-model"
N_CTX = 2048
HI = {"messages": [{"role": "user", "content": "Hello, how are you?"}], "max_tokens": 16, "temperature": 0}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def config_text(url: str, key: str = LLAMACPP_KEY, *, x_api_key: bool = False, extra: str = "") -> str:
    """The built-in ``llamacpp`` provider pointed at ``url`` (its default is port 8080).

    ``x_api_key``: the key goes in an ``X-Api-Key`` header instead of ``Authorization: Bearer``.
    ``extra``: more provider settings, e.g. ``maxRetries: 8,``.
    """
    auth = f'authHeader: false, headers: {{"X-Api-Key": "{key}"}}' if x_api_key else f'apiKey: "{key}"'
    return f"""{{
      models: {{ providers: {{
        llamacpp: {{ baseUrl: "{url}", {auth}, {extra} models: [{{ id: "tiny-model", contextWindow: {N_CTX} }}] }},
      }} }},
    }}"""


def configured(url: str, key: str = LLAMACPP_KEY, *, x_api_key: bool = False, transport: Any = None, extra: str = "") -> Genesis:
    return Genesis.from_config_text(config_text(url, key, x_api_key=x_api_key, extra=extra), env={}, transport=transport)


async def run(g: Genesis, request: dict[str, Any], model: str = REF) -> Any:
    async with g:
        return await g.run(model, request)


# -- discovery --


async def test_discovery_reads_the_context_window_from_meta_n_ctx(llamacpp_url: str) -> None:
    # A configured provider is not discovered (its entry is explicit), so ask the same way
    # discovery does: GET {baseUrl}/models with the provider's key.
    g = configured(llamacpp_url)
    async with g:
        models, _ = await fetch_models(g.client(), g.catalog.providers["llamacpp"])
    assert [(m.id, m.context_window) for m in models] == [("tiny-model", N_CTX)]  # meta.n_ctx, not the 128000 default


async def test_builtin_provider_discovers_the_served_model(llamacpp_installed: None) -> None:
    # The full path: no config, only LLAMACPP_API_KEY, so the built-in provider (its fixed
    # base URL is port 8080) is active and discovered. Needs 8080 for a private server.
    if not _port_free(8080):
        pytest.skip("port 8080 is taken (the built-in llamacpp provider's fixed port)")
    with llamacpp_server(port=8080):
        g = Genesis.from_config_text("{}", env={"LLAMACPP_API_KEY": LLAMACPP_KEY})
        async with g:
            await g.discover()
            completion = await g.run(REF, {**HI, "stream": False})
    entry = g.catalog.providers["llamacpp"].find("tiny-model")
    assert entry is not None and entry.origin == "discovered" and entry.config.context_window == N_CTX
    assert completion.provider == "llamacpp" and completion.usage is not None and completion.usage.completion_tokens > 0


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# -- answers --


async def test_non_stream_has_usage(llamacpp_url: str) -> None:
    completion = await run(configured(llamacpp_url), {**HI, "stream": False})
    assert completion.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0 and 0 < completion.usage.completion_tokens <= 16
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


async def test_stream_usage_comes_in_a_last_chunk(llamacpp_url: str) -> None:
    g = configured(llamacpp_url)
    wire = g.build(REF, {**HI, "stream": True})
    assert json.loads(wire.body)["stream_options"] == {"include_usage": True}
    events: list[Any] = []
    async with g:
        completion = await g.run(REF, {**HI, "stream": True}, on_event=events.append)
    assert any(isinstance(event, TextDelta) for event in events)
    # llama.cpp: a last chunk with choices: [], usage and timings; nothing of the answer after it
    last_text = max(at for at, event in enumerate(events) if isinstance(event, TextDelta))
    usage_at = [at for at, event in enumerate(events) if isinstance(event, Usage)]
    assert len(usage_at) == 1 and usage_at[0] > last_text
    assert {type(event) for event in events[usage_at[0] :]} <= {Usage, Timings, Finish}
    assert completion.timings is not None and completion.timings["predicted_n"] == completion.usage.completion_tokens  # type: ignore[union-attr]
    assert completion.usage is not None
    assert completion.usage.prompt_tokens > 0 and 0 < completion.usage.completion_tokens <= 16
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


async def test_streamed_and_non_streamed_answers_agree(llamacpp_url: str) -> None:
    g = configured(llamacpp_url)
    async with g:
        streamed = await g.run(REF, {**HI, "stream": True})
        whole = await g.run(REF, {**HI, "stream": False})
    assert (streamed.text, streamed.raw_finish_reason, streamed.usage) == (whole.text, whole.raw_finish_reason, whole.usage)


async def test_any_model_name_is_served(llamacpp_url: str) -> None:
    # llama-server ignores the request's model field: an id it does not list still answers.
    completion = await run(configured(llamacpp_url), {**HI, "stream": False}, model="llamacpp/no-such-model")
    assert completion.model == "no-such-model" and completion.usage is not None


# -- tools --

# With this tiny model, tool_choice "required" alone does not force a call: llama.cpp's
# grammar for it lets any text come before the first call, and greedy decoding writes
# newlines forever. Biasing the tokens a call is made of (the <tool_call> tag, the newline
# after it, the quote that closes a string) makes one start soon and strings end; the grammar
# (name and argument keys from the schema) does the rest; it forbids the end-of-turn token
# (<|im_end|>, id 2 in this tokenizer) until a call is complete, so biasing that harder ends
# the answer right after the first call. Sampled with a fixed seed: repeatable, and every
# seed tried (1-20) gave exactly one call with finish_reason "tool_calls".
TOOL_REQUEST = {
    "messages": [{"role": "user", "content": "Weather in Paris?"}],
    "tools": [WEATHER_TOOL],
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "logit_bias": {"<tool_call>": 10, "\n": 10, '"': 10, "2": 20},
    "seed": 42,
    "temperature": 1.0,
    "max_tokens": 200,
}


@pytest.mark.parametrize("stream", [True, False])
async def test_tool_call_comes_back_structured(llamacpp_url: str, stream: bool) -> None:
    completion = await run(configured(llamacpp_url), {**TOOL_REQUEST, "stream": stream})
    assert (completion.finish_reason, completion.raw_finish_reason) == ("tool_use", "tool_calls")
    [call] = completion.tool_calls
    assert call.name == "get_weather" and call.id
    assert isinstance(call.arguments, str) and isinstance(json.loads(call.arguments), dict)


# -- errors --


async def test_wrong_key_is_auth_with_hint(llamacpp_url: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await run(configured(llamacpp_url, key="wrong-key"), HI)
    error = caught.value
    assert (error.error_class, error.status, error.server_message) == ("auth", 401, "Invalid API Key")
    assert error.hint and "LLAMACPP_API_KEY" in error.hint and "apiKey" in error.hint
    assert "wrong-key" not in str(error) + error.hint


async def test_x_api_key_header_is_accepted(llamacpp_url: str) -> None:
    g = configured(llamacpp_url, x_api_key=True)
    wire = g.build(REF, HI)
    names = {name.lower() for name, _ in wire.headers}
    assert "x-api-key" in names and "authorization" not in names
    completion = await run(g, {**HI, "stream": False})
    assert completion.usage is not None and completion.usage.completion_tokens > 0


async def test_wrong_x_api_key_is_auth(llamacpp_url: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await run(configured(llamacpp_url, key="wrong-key", x_api_key=True), HI)
    assert (caught.value.error_class, caught.value.status) == ("auth", 401)


async def test_prompt_larger_than_the_context_is_context_overflow(llamacpp_url: str) -> None:
    long_prompt = "Hello, how are you? " * 1000  # 7029 tokens with the chat template; n_ctx is 2048
    with pytest.raises(ProviderError) as caught:
        await run(configured(llamacpp_url), {**HI, "messages": [{"role": "user", "content": long_prompt}]})
    error = caught.value
    assert error.status == 400 and "exceeds the available context size" in error.server_message
    assert error.error_class == "context_overflow"
    assert error.hint and "context window" in error.hint


async def test_bad_field_is_format_with_the_server_message(llamacpp_url: str) -> None:
    # Genesis passes fields it does not know as they are; llama.cpp checks their types.
    with pytest.raises(ProviderError) as caught:
        await run(configured(llamacpp_url), {**HI, "temperature": "hot"})
    error = caught.value
    assert (error.error_class, error.status) == ("format", 400)
    assert error.server_message.startswith("Field 'temperature':")  # from {"error": {"message": ...}}


# -- a server that is still loading its model: 503, then ready --

# Holds a write lease (fcntl F_SETLEASE) on a file: while it is held, another process's
# open() of that file blocks (at most /proc/sys/fs/lease-break-time seconds, 45 by default,
# then the kernel breaks the lease). llama-server listens before it opens the model, so a
# server given a held file answers 503 "Loading model" for exactly as long as the lease is held.
_LEASE_HOLDER = r"""
import fcntl, os, signal, sys
signal.signal(signal.SIGIO, signal.SIG_IGN)  # the kernel's "someone wants the file" notice
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
os.close(fd)
"""


@contextmanager
def held_open(path: Path) -> Iterator[Any]:
    """Until ``release()`` (or the end of the block), opening ``path`` blocks."""
    holder = subprocess.Popen([sys.executable, "-c", _LEASE_HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    if holder.stdout.readline().strip() != "held":
        holder.kill()
        pytest.fail(f"could not take a file lease on {path} (exit {holder.wait()})")

    class Gate:
        released = False

        def release(self) -> None:
            if not self.released:
                self.released = True
                assert holder.stdin is not None
                holder.stdin.close()
                holder.wait(timeout=10)

    gate = Gate()
    try:
        yield gate
    finally:
        gate.release()


class Watching(httpx.AsyncBaseTransport):
    """Genesis's own transport, noting each status; ``on_status`` runs when one arrives."""

    def __init__(self, on_status: Any) -> None:
        self.inner = Http11Transport()
        self.statuses: list[int] = []
        self.on_status = on_status

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.statuses.append(response.status_code)
        self.on_status(response.status_code)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _health(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            try:
                return await client.get(url, timeout=2)
            except httpx.TransportError:
                await anyio.sleep(0.05)
    pytest.fail(f"nothing answered on {url}")


async def test_run_started_while_the_model_loads_succeeds(llamacpp_installed: None, tmp_path: Path) -> None:
    model = tmp_path / "held.gguf"
    shutil.copyfile(LLAMACPP_MODEL, model)
    with held_open(model) as gate, llamacpp_server(model=model, wait=False) as server:
        health = await _health(f"http://127.0.0.1:{server.port}/health")
        assert health.status_code == 503
        assert health.json() == {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
        # The first answer the run gets is that 503; the model loads once it has arrived.
        transport = Watching(lambda status: gate.release() if status == 503 else None)
        # Loading takes about a second on an idle machine and several on a busy one: enough retries
        # (backoff 0.25 s doubling, so about a minute in all) that the run outlasts the load.
        completion = await run(configured(server.url, transport=transport, extra="maxRetries: 8,"), {**HI, "stream": False})
    assert transport.statuses[0] == 503 and transport.statuses[-1] == 200
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert [(a.provider, a.ok) for a in completion.attempts][-1] == ("llamacpp", True)


# -- a server killed mid-answer --


async def test_server_killed_mid_stream_is_protocol(llamacpp_installed: None) -> None:
    # An answer that cannot end before the kill: no end-of-turn (ignore_eos) and, with
    # --context-shift, no end at the 2048-token context either (the oldest tokens make room).
    request = {**HI, "max_tokens": 1_000_000, "ignore_eos": True, "stream": True}
    events: list[Any] = []
    with llamacpp_server(args=["--context-shift"]) as server:
        g = configured(server.url)
        with pytest.raises(ProviderError) as caught:
            async with g:
                async for event in g.stream(REF, request):
                    events.append(event)
                    if len(events) == 3:
                        server.kill()
    error = caught.value
    assert error.error_class == "protocol", error
    assert error.status is None  # below HTTP: the chunked body just stopped
    assert any(isinstance(event, TextDelta) for event in events[:3])


# -- the CLI --


def test_cli_json_end_to_end(llamacpp_url: str, tmp_path: Path) -> None:
    path = tmp_path / "genesis.json5"
    path.write_text(
        f'{{models: {{providers: {{llamacpp: {{baseUrl: "{llamacpp_url}", models: [{{id: "tiny-model", contextWindow: {N_CTX}}}]}}}}}}}}'
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
            REF,
            "--prompt",
            "hi",
            "--max-tokens",
            "8",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "LLAMACPP_API_KEY": LLAMACPP_KEY},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["ok"], document["provider"], document["model"]) == (True, "llamacpp", "tiny-model")
    usage = document["usage"]
    assert usage["promptTokens"] > 0 and 0 < usage["completionTokens"] <= 8 and usage["contextWindow"] == N_CTX
    assert document["attempts"] == [{"provider": "llamacpp", "model": "tiny-model", "ok": True, "status": 200}]
