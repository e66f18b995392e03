"""Bounds a service can rely on, against a hostile server (the fault server's transport scenarios).

Every row ends in a typed error that names the bound and the config key to raise it, or in the
complete answer; no row may hang (each runs under ``anyio.fail_after``). Memory bounds are
proved with tracemalloc peaks, not with time. Runs on asyncio and trio.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from pipeline.api import Genesis
from pipeline.errors import GenesisError, ProviderError
from pipeline.policy import MAX_INFORMATIONAL_RESPONSES
from tests.servers.fault_server import FaultServer

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent
STREAM = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
NO_STREAM = {**STREAM, "stream": False}
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def hostile() -> Iterator[FaultServer]:
    """A fault server of this module's own, with fast knobs (the shared one keeps its defaults)."""
    server = FaultServer(slow_seconds=30.0)
    server.trickle_seconds = 0.05  # type: ignore[attr-defined]
    server.token_seconds = 0.01  # type: ignore[attr-defined]
    with server:
        yield server


def config(base_url: str, provider: str = "") -> str:
    """A provider on the fault server; ``provider`` adds or overrides fields (duplicate keys are config errors)."""
    defaults = "".join(
        f"{field}: {value}, "
        for field, value in (("readTimeoutSeconds", 5), ("totalTimeoutSeconds", 20), ("maxRetries", 0))
        if field not in provider
    )
    return f"""{{
      models: {{ providers: {{
        fault: {{ baseUrl: "{base_url}", apiKey: "fault-secret", {defaults}{provider}
                  models: [{{ id: "ok" }}] }},
      }} }},
    }}"""


def genesis(server: FaultServer, provider: str = "", env: dict[str, str] | None = None) -> Genesis:
    return Genesis.from_config_text(config(server.base_url, provider), env=env or {})


async def failure(g: Genesis, scenario: str, request: dict[str, Any] = STREAM) -> ProviderError:
    with anyio.fail_after(15), pytest.raises(ProviderError) as caught:
        async with g:
            await g.run(f"fault/{scenario}", request)
    return caught.value


# ---- [DONE] ends the answer ----


async def test_done_ends_the_answer_though_the_server_keeps_the_body_open(hostile: FaultServer) -> None:
    async with genesis(hostile, "readTimeoutSeconds: 10,") as g:
        with anyio.fail_after(5):  # the server holds the connection for 30 s: only [DONE] can end this in time
            completion = await g.run("fault/done-keep-open", STREAM)
    assert (completion.text, completion.finish_reason) == ("Hello", "stop")


async def test_a_connection_is_reused_only_if_its_body_really_ended(hostile: FaultServer) -> None:
    async with genesis(hostile) as g:
        for scenario in ("done-keep-open", "done-then-end", "done-then-end", "done-keep-open", "done-then-end"):
            with anyio.fail_after(5):
                await g.run(f"fault/{scenario}", STREAM)
    ports = [port for _, port in hostile.peers[-5:]]  # type: ignore[attr-defined]
    # after [DONE] with the body still open the connection is closed; after [DONE] and the 0-chunk it is reused
    assert ports[1] != ports[0] and ports[2] == ports[1] and ports[3] == ports[2] and ports[4] != ports[3]


# ---- time, count and size bounds ----

BOUNDS = [
    # (scenario, provider settings, request, class, in the message, in the hint)
    ("trickle", "totalTimeoutSeconds: 0.5,", STREAM, "timeout", "total deadline of 0.5 s", "fault.totalTimeoutSeconds"),
    ("endless-tokens", "totalTimeoutSeconds: 0.5,", STREAM, "timeout", "total deadline of 0.5 s", "fault.totalTimeoutSeconds"),
    ("continue-trickle", "totalTimeoutSeconds: 0.5,", STREAM, "timeout", "total deadline of 0.5 s", "fault.totalTimeoutSeconds"),
    ("continue-flood", "", STREAM, "protocol", f"more than {MAX_INFORMATIONAL_RESPONSES} informational (1xx) responses", None),
    ("token-flood", "maxResponseBytes: 65536,", STREAM, "protocol", "maxResponseBytes (65536 bytes", "fault.maxResponseBytes"),
    ("huge-html", "maxResponseBytes: 1048576,", NO_STREAM, "protocol", "Content-Length is 1073741824", "fault.maxResponseBytes"),
    ("huge-html-chunked", "maxResponseBytes: 1048576,", NO_STREAM, "protocol", "1048576 bytes on the wire", "fault.maxResponseBytes"),
    ("gzip-bomb", "maxResponseBytes: 1048576,", NO_STREAM, "protocol", "1048576 bytes after decoding", "fault.maxResponseBytes"),
    ("gzip-bomb", "maxResponseBytes: 1048576,", STREAM, "protocol", "1048576 bytes after decoding", "fault.maxResponseBytes"),
]


@pytest.mark.parametrize(("scenario", "provider", "request_", "error_class", "message", "hint"), BOUNDS)
async def test_bounds(
    hostile: FaultServer, scenario: str, provider: str, request_: dict[str, Any], error_class: str, message: str, hint: str | None
) -> None:
    error = await failure(genesis(hostile, provider), scenario, request_)
    assert error.error_class == error_class
    assert message in str(error)
    if hint is not None:
        assert error.hint is not None and hint in error.hint
    assert "fault-secret" not in str(error) + (error.hint or "")


async def test_informational_responses_under_the_cap_are_skipped(hostile: FaultServer) -> None:
    async with genesis(hostile) as g:
        assert (await g.run("fault/continue-then-ok", STREAM)).text == "Hello world"


async def test_an_error_body_is_read_decoded_and_capped(hostile: FaultServer) -> None:
    error = await failure(genesis(hostile), "gzip-bomb-error")
    assert (error.error_class, error.status) == ("overloaded", 503)
    assert len(error.raw) <= 2000 and error.server_message == "(empty body)"  # inflated spaces, not gzip bytes


@pytest.mark.parametrize(("scenario", "request_"), [("huge-html-chunked", NO_STREAM), ("gzip-bomb", NO_STREAM), ("gzip-bomb", STREAM)])
async def test_memory_stays_within_a_few_times_the_cap(hostile: FaultServer, scenario: str, request_: dict[str, Any]) -> None:
    cap = 8 * MiB
    g = genesis(hostile, f"maxResponseBytes: {cap},")
    tracemalloc.start()
    try:
        error = await failure(g, scenario, request_)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "maxResponseBytes" in str(error)
    assert peak < 4 * cap  # the server offers 1 GiB (gzip: 4 GiB inflated); peak counts the server thread too


# ---- redirects and Retry-After ----


async def test_a_redirect_names_its_location_and_the_base_url_to_set(hostile: FaultServer) -> None:
    error = await failure(genesis(hostile), "redirect")
    assert (error.error_class, error.status) == ("protocol", 308)
    assert "redirected (308) to https://llm.example.invalid/v1/chat/completions" in str(error)
    assert error.hint == "set models.providers.fault.baseUrl to https://llm.example.invalid/v1"


async def test_retry_after_from_a_rate_limited_answer(hostile: FaultServer) -> None:
    error = await failure(genesis(hostile), "rate-limited")
    assert (error.error_class, error.retry_after) == ("rate_limit", 7.0)


# ---- request headers that cannot be sent: named, never echoed, never a crash ----

HEADERS = [
    # (key from the environment, caller headers, what the attach_headers stage says, what the transport says)
    ("secret-key\n", (), "the key from VLLM_API_KEY contains a line break", "Authorization header's value has a line break"),
    ("secret-key\r", (), "the key from VLLM_API_KEY contains a line break", "Authorization header's value has a line break"),
    ("secret\x00key", (), "the key from VLLM_API_KEY contains a NUL", "Authorization header's value has a NUL"),
    (
        "secret-clé",
        (),
        "the key from VLLM_API_KEY contains a character outside ASCII",
        "Authorization header's value has a non-ASCII character",
    ),
    ("secret-key", (("X-Trace", "secret-key\r\nX-Evil: 1"),), "X-Trace: the value contains a line break", None),
]


@pytest.mark.parametrize(("key", "headers", "refused", "transport_says"), HEADERS)
async def test_unsendable_header_values(key: str, headers: tuple[tuple[str, str], ...], refused: str, transport_says: str | None) -> None:
    """Two lines of defence: the attach_headers stage refuses the request (a user error naming the source), and
    discovery, which sends the key without the stages, meets the transport's own guard (a warning, never a crash)."""
    g = Genesis.from_config_text("{}", env={"VLLM_API_KEY": key})
    warnings: list[str] = []
    g.warn = warnings.append
    with anyio.fail_after(10), pytest.raises(GenesisError) as caught:
        async with g:
            await g.run("vllm/m", STREAM, headers=headers)
    error = caught.value
    assert not isinstance(error, ProviderError), "refused before anything was sent"
    assert refused in str(error)
    assert "secret" not in str(error) + (error.hint or "")
    if transport_says is not None:
        [warning] = warnings
        assert transport_says in warning and "secret" not in warning


@pytest.mark.parametrize("value", ["secret-key\r\nX-Evil: 1", "secret\x00key", "secret-clé"])
async def test_the_transport_refuses_what_a_custom_stage_smuggles_past_the_checks(value: str) -> None:
    """The last line of defence: a header added after attach_headers still never reaches h11 or the output."""
    from returns.result import Success

    from pipeline.runner import Pipeline

    def smuggle(ctx: Any) -> Any:
        return Success(ctx.updated([], headers=(*ctx.headers, ("X-Trace", value))))

    pipeline = Pipeline().insert_after("attach_headers", "smuggle", smuggle)
    g = Genesis.from_config_text('{models: {providers: {p: {baseUrl: "http://127.0.0.1:9/v1", maxRetries: 0}}}}', env={}, pipeline=pipeline)
    with anyio.fail_after(10), pytest.raises(ProviderError) as caught:
        async with g:
            await g.run("p/m", STREAM)
    assert caught.value.error_class == "format" and "X-Trace header's value has" in str(caught.value)
    assert "secret" not in str(caught.value) + (caught.value.hint or "")


def test_cli_key_with_a_newline_is_one_line_and_no_key(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "infer", "model", "run", "--model", "vllm/m", "--prompt", "hi"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VLLM_API_KEY": "sk-secret-value\n"},
    )
    assert done.returncode == 2, done.stderr  # the user's environment is wrong: a user error
    assert "Traceback" not in done.stderr and "sk-secret-value" not in done.stderr + done.stdout
    assert "the key from VLLM_API_KEY contains a line break" in done.stderr and "strip the trailing line break" in done.stderr
