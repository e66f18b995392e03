"""``genesis auth set | list | remove`` and the file behind them (backends/auth_store.py), end to end.

The CLI runs in-process (``pipeline.cli.main``) with a temporary ``GENESIS_STATE_DIR`` and ``HOME``;
warnings (logged, so printed by a handler the first ``main`` installs) and the terminal prompt run
the real program in a subprocess. Every output of every command is checked for the key.
"""

from __future__ import annotations

import io
import json
import os
import select
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from backends.auth_store import auth_file, read_auth_profiles, update_auth_profiles, write_auth_profiles
from pipeline.api import Genesis
from pipeline.auth_profiles import AuthProfiles
from pipeline.cli import main
from pipeline.errors import ConfigError, ProviderError

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-prof-7f3a9c/Q+z=0K"  # a slash, a plus and an equals sign: its encodings differ
KEY_VARIABLES = ("VLLM_API_KEY", "SGLANG_API_KEY", "LLAMACPP_API_KEY", "LMSTUDIO_API_KEY", "OLLAMA_API_KEY")


class Env(NamedTuple):
    state: Path
    file: Path
    home: Path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    state = tmp_path / "state"
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("GENESIS_STATE_DIR", str(state))
    monkeypatch.setenv("HOME", str(home))
    for name in ("GENESIS_CONFIG_PATH", "GENESIS_DEBUG", *KEY_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    return Env(state, state / "auth-profiles.json", home)


def stdin_of(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    for text in (out, err):
        assert KEY not in text and KEY[:8] not in text, text  # no command ever shows the key, nor its beginning
    return code, out, err


def set_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], provider: str, data: bytes, *args: str
) -> tuple[int, str, str]:
    stdin_of(monkeypatch, data)
    return run(capsys, "auth", "set", provider, *args)


def stored(env: Env) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(env.file.read_text())
    return document


# ---- auth set: reading the key --------------------------------------------------------------------


class Input(NamedTuple):
    rule: str
    data: bytes
    stored: str | None  # None: refused, nothing stored
    said: str


INPUTS: dict[str, Input] = {
    "printf": Input("printf %s KEY: stored as given", KEY.encode(), KEY, "stored the key for vllm in"),
    "echo": Input("echo KEY: one trailing LF dropped", KEY.encode() + b"\n", KEY, "stored the key for vllm in"),
    "crlf": Input("a key saved on Windows: one trailing CRLF dropped", KEY.encode() + b"\r\n", KEY, "stored the key for vllm in"),
    "two_newlines": Input(
        "only one line break is dropped; a second one is refused",
        KEY.encode() + b"\n\n",
        None,
        "the key for vllm contains a line break (U+000A) at position 22; nothing was stored",
    ),
    "empty": Input("an empty stdin is refused", b"", None, "the key for vllm is empty; nothing was stored"),
    "only_newline": Input("a lone line break is an empty key", b"\n", None, "the key for vllm is empty; nothing was stored"),
    "two_lines": Input(
        "two keys on two lines are refused",
        KEY.encode() + b"\nother",
        None,
        "the key for vllm contains a line break (U+000A) at position 22",
    ),
    "padded": Input("a key with a space around it is refused", b" " + KEY.encode(), None, "begins or ends with a space or tab"),
    "not_utf8": Input(
        "bytes that are not UTF-8 are refused",
        b"sk-\xff\xfe",
        None,
        "the key for vllm on stdin is not valid UTF-8 (byte 4); nothing was stored",
    ),
}


@pytest.mark.parametrize("row", list(INPUTS.values()), ids=list(INPUTS))
def test_auth_set_reads_stdin(row: Input, env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = set_key(monkeypatch, capsys, "vllm", row.data)
    if row.stored is None:
        assert (code, out, env.file.exists()) == (2, "", False)
        assert row.said in err and len(err.strip().splitlines()) == 1
    else:
        assert (code, err) == (0, "")
        assert out.startswith(row.said) and str(env.file) in out
        assert stored(env) == {"version": 1, "profiles": {"vllm": {"apiKey": row.stored}}}


def test_a_text_stdin_without_a_byte_buffer_is_read_too(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A caller embedding the CLI may put a text stream (no ``.buffer``) in place of stdin."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(KEY + "\n"))
    assert main(["auth", "set", "vllm"]) == 0
    assert stored(env) == {"version": 1, "profiles": {"vllm": {"apiKey": KEY}}}
    assert KEY not in capsys.readouterr().out


def test_the_file_is_0600_the_new_folder_0700_and_no_temp_file_is_left(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old_umask = os.umask(0)  # the mode must not depend on the umask
    try:
        assert set_key(monkeypatch, capsys, "vllm", KEY.encode())[0] == 0
        assert set_key(monkeypatch, capsys, "sglang", b"sk-second")[0] == 0  # a replace keeps the mode
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(env.file.stat().st_mode) == 0o600
    assert stat.S_IMODE(env.state.stat().st_mode) == 0o700
    assert sorted(path.name for path in env.state.iterdir()) == ["auth-profiles.json"]
    assert stored(env)["profiles"] == {"sglang": {"apiKey": "sk-second"}, "vllm": {"apiKey": KEY}}


def test_an_existing_state_folder_keeps_its_mode(env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env.state.mkdir(mode=0o755)
    os.chmod(env.state, 0o755)
    assert set_key(monkeypatch, capsys, "vllm", KEY.encode())[0] == 0
    assert stat.S_IMODE(env.state.stat().st_mode) == 0o755 and stat.S_IMODE(env.file.stat().st_mode) == 0o600


def test_setting_again_replaces_the_key(env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    set_key(monkeypatch, capsys, "vllm", b"sk-old-key")
    set_key(monkeypatch, capsys, "VLLM", KEY.encode())  # ids are lower-cased
    assert stored(env)["profiles"] == {"vllm": {"apiKey": KEY}}


# ---- which providers may have a key -----------------------------------------------------------------


def test_an_unknown_provider_is_refused_with_a_suggestion(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = set_key(monkeypatch, capsys, "vlm", KEY.encode())
    assert (code, out, env.file.exists()) == (2, "", False)
    assert "no provider 'vlm' to store a key for" in err and "did you mean vllm?" in err


def test_a_provider_defined_in_the_config_may_have_a_key(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "g.json5"
    config.write_text('{models: {providers: {lan: {baseUrl: "http://10.0.0.9/v1", models: [{id: "m"}]}}}}')
    refused = set_key(monkeypatch, capsys, "lan", KEY.encode())  # the default config does not define it
    assert refused[0] == 2 and "no provider 'lan'" in refused[2]
    assert set_key(monkeypatch, capsys, "lan", KEY.encode(), "--config", str(config))[0] == 0
    code, out, _ = run(capsys, "wire", "--config", str(config), "--model", "lan/m", "--prompt", "hi", "--explain")
    assert code == 0 and "Authorization: Bearer ***" in out and f"profile {env.file}" in out
    code, out, _ = run(capsys, "wire", "--config", str(config), "--model", "lan/m", "--prompt", "hi", "--json")
    assert json.loads(out)["headers"]["Authorization"] == "Bearer ***"


def test_a_broken_config_does_not_stop_a_builtin_key(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "broken.json5"
    config.write_text("{models: ")
    assert set_key(monkeypatch, capsys, "vllm", KEY.encode(), "--config", str(config))[0] == 0
    refused = set_key(monkeypatch, capsys, "lan", KEY.encode(), "--config", str(config))  # not a built-in: the config must say
    assert refused[0] == 2 and str(config) in refused[2]


# ---- auth list and models status: where each key comes from ----------------------------------------


def test_list_names_each_source_and_what_it_shadows(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "g.json5"
    config.write_text(
        f'{{models: {{providers: {{lan: {{baseUrl: "http://10.0.0.9/v1", apiKey: "{KEY}x", models: [{{id: "m"}}]}},'
        ' gone: {baseUrl: "http://10.0.0.8/v1", models: [{id: "m"}]}}}}'
    )
    for provider in ("vllm", "sglang", "lan", "gone"):
        set_key(monkeypatch, capsys, provider, KEY.encode(), "--config", str(config))
    config.write_text(f'{{models: {{providers: {{lan: {{baseUrl: "http://10.0.0.9/v1", apiKey: "{KEY}x", models: [{{id: "m"}}]}}}}}}}}')
    monkeypatch.setenv("SGLANG_API_KEY", KEY + "y")
    code, out, _ = run(capsys, "auth", "list", "--json", "--config", str(config))
    rows = {row["provider"]: (row["keySource"], row["shadowed"], row["active"]) for row in json.loads(out)}
    profile = f"profile {env.file}"
    assert code == 0 and rows == {
        "vllm": (profile, [], True),
        "sglang": ("env SGLANG_API_KEY", [profile], True),
        "llamacpp": ("none", [], False),
        "lmstudio": ("none", [], False),
        "ollama": ("none", [], False),
        "lan": ("config models.providers.lan.apiKey", [profile], True),
        "gone": ("none", [profile], False),
    }
    code, out, _ = run(capsys, "auth", "list", "--config", str(config))
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert lines["Provider"].split() == ["Provider", "Key", "from", "Also", "set,", "not", "used"]
    assert f"auth profile {env.file}" in lines["vllm"]
    assert "environment variable SGLANG_API_KEY" in lines["sglang"] and f"auth profile {env.file}" in lines["sglang"]
    assert "config apiKey (models.providers.lan.apiKey)" in lines["lan"]
    assert "(no such provider in the config)" in lines["gone"]
    code, out, _ = run(capsys, "models", "status", "--json", "--config", str(config))
    status = {record["provider"]: (record["auth"], record["authShadowed"]) for record in json.loads(out)}
    assert status["vllm"] == (profile, []) and status["sglang"] == ("env SGLANG_API_KEY", [profile])
    code, out, _ = run(capsys, "models", "status", "--config", str(config))
    assert f"env SGLANG_API_KEY (over {profile})" in out


# ---- auth remove ------------------------------------------------------------------------------------


def test_remove(env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "auth", "remove", "vllm")
    assert code == 2 and f"no auth profile for vllm in {env.file}" in err and "stored profiles: none" in err
    set_key(monkeypatch, capsys, "vllm", KEY.encode())
    set_key(monkeypatch, capsys, "sglang", b"sk-other")
    code, _, err = run(capsys, "auth", "remove", "ollama")
    assert code == 2 and "stored profiles: sglang, vllm" in err
    code, out, _ = run(capsys, "auth", "remove", "VLLM")
    assert code == 0 and out.startswith(f"removed the key for vllm from {env.file}")
    assert stored(env)["profiles"] == {"sglang": {"apiKey": "sk-other"}} and stat.S_IMODE(env.file.stat().st_mode) == 0o600
    code, out, _ = run(capsys, "auth", "remove", "sglang")
    assert code == 0 and "no profile is left, so auth-profiles.json was deleted" in out and not env.file.exists()


# ---- a file that cannot be trusted or read ----------------------------------------------------------


class Unusable(NamedTuple):
    rule: str
    mode: int
    content: bytes
    said: str


PROFILE = b'{"version": 1, "profiles": {"vllm": {"apiKey": "' + KEY.encode() + b'"}}}'
UNUSABLE: dict[str, Unusable] = {
    "group_readable": Unusable("readable by the group: refused, like ssh", 0o640, PROFILE, "other users may read or change it (mode 0640)"),
    "world_readable": Unusable("readable by anyone", 0o644, PROFILE, "other users may read or change it (mode 0644)"),
    "group_writable": Unusable("writable by the group", 0o620, PROFILE, "other users may read or change it (mode 0620)"),
    "corrupt": Unusable("hand-edited into invalid JSON", 0o600, PROFILE[:-2], "not valid JSON: input data was truncated"),
    "wrong_version": Unusable(
        "another version", 0o600, b'{"version": 9, "profiles": {}}', "version: this Genesis reads version 1, found 9"
    ),
}
COMMANDS = {
    "auth list": ["auth", "list"],
    "auth set": ["auth", "set", "sglang"],
    "auth remove": ["auth", "remove", "vllm"],
    "wire": ["wire", "--model", "vllm/m", "--prompt", "hi"],
    "models status": ["models", "status"],
}


@pytest.mark.parametrize("command", list(COMMANDS.values()), ids=list(COMMANDS))
@pytest.mark.parametrize("row", list(UNUSABLE.values()), ids=list(UNUSABLE))
def test_an_unusable_file_is_one_line_naming_it(
    row: Unusable, command: list[str], env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.state.mkdir()
    env.file.write_bytes(row.content)
    os.chmod(env.file, row.mode)
    stdin_of(monkeypatch, b"sk-new")
    code, out, err = run(capsys, *command)
    assert (code, out) == (2, "")
    [line] = err.splitlines()
    assert line.startswith(f"genesis: config error in {env.file}: {row.said}") and "Traceback" not in err
    fix = f"chmod 600 {env.file}" if row.mode != 0o600 else "delete it and store the keys again with `genesis auth set PROVIDER`"
    assert f"(hint: {'fix the file, or ' if row.mode == 0o600 else ''}{fix})" in line
    assert env.file.read_bytes() == row.content  # never rewritten behind the user's back


def test_remove_with_nothing_stored_creates_no_folder(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "auth", "remove", "vllm")[0] == 2 and not env.state.exists()


def test_changes_at_the_same_time_all_land(env: Env) -> None:
    """Each change reads, changes and writes under the folder lock: no change is lost to another's stale copy."""
    from concurrent.futures import ThreadPoolExecutor

    def add(index: int) -> None:
        update_auth_profiles(env.file, lambda profiles: profiles.with_key(f"p{index}", f"key-{index}"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(add, range(24)))
    assert read_auth_profiles(env.file).keys == {f"p{index}": f"key-{index}" for index in range(24)}


def test_a_folder_in_place_of_the_file(env: Env) -> None:
    env.file.mkdir(parents=True)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_auth_profiles(env.file)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root can give a file to another user")
def test_a_file_owned_by_another_user_is_refused(env: Env) -> None:
    env.state.mkdir()
    env.file.write_bytes(PROFILE)
    os.chmod(env.file, 0o600)
    os.chown(env.file, 54321, -1)
    with pytest.raises(ConfigError, match=r"owned by another user \(uid 54321\)"):
        read_auth_profiles(env.file)


def test_no_file_is_no_profiles_and_an_empty_write_deletes_it(env: Env) -> None:
    assert read_auth_profiles(env.file) == AuthProfiles(str(env.file))
    write_auth_profiles(env.file, AuthProfiles(str(env.file), {"vllm": KEY}))
    assert read_auth_profiles(env.file).keys == {"vllm": KEY}
    write_auth_profiles(env.file, AuthProfiles(str(env.file)))
    assert not env.file.exists()


def test_the_state_folder_is_defined_once() -> None:
    assert auth_file({"GENESIS_STATE_DIR": "/srv/g", "HOME": "/home/u"}) == Path("/srv/g/auth-profiles.json")
    assert auth_file({"HOME": "/home/u"}) == Path("/home/u/.genesis/auth-profiles.json")
    assert auth_file({"GENESIS_STATE_DIR": "", "HOME": "/home/u"}) == Path("/home/u/.genesis/auth-profiles.json")


# ---- a profile at work: activation, discovery, redaction --------------------------------------------


def test_a_profile_activates_vllm_and_its_discovery(env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "wire", "--model", "vllm/m", "--prompt", "hi")
    assert code == 2 and "genesis auth set vllm" in err  # inactive: the hint names the profile too
    set_key(monkeypatch, capsys, "vllm", KEY.encode())
    seen: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, request.headers.get("authorization", "")))
        return httpx.Response(200, json={"object": "list", "data": [{"id": "tiny", "max_model_len": 2048}]})

    genesis = Genesis.from_config_file(None, transport=httpx.MockTransport(answer))
    assert genesis.catalog.providers["vllm"].active

    async def discover() -> None:
        async with genesis:
            await genesis.discover()

    import anyio

    anyio.run(discover)
    assert seen == [("/v1/models", f"Bearer {KEY}")]
    assert [model.ref for model in genesis.catalog.active_models()] == ["vllm/tiny"]


def test_from_config_file_takes_profiles_given_to_it(env: Env) -> None:
    given = AuthProfiles("given", {"sglang": "sk-given"})
    write_auth_profiles(env.file, AuthProfiles(str(env.file), {"vllm": KEY}))
    catalog = Genesis.from_config_file(None, auth_profiles=given).catalog
    assert (catalog.providers["vllm"].active, catalog.providers["sglang"].key_source) == (False, "profile given")
    assert not Genesis.from_config_text("{}", env=dict(os.environ)).catalog.providers["vllm"].active  # text configs read no file


def echo_config(tmp_path: Path, fault_server: Any) -> Path:
    path = tmp_path / "echo.json5"
    path.write_text(f'{{models: {{mode: "replace", providers: {{echo: {{baseUrl: "{fault_server.url}/echo-auth/v1", maxRetries: 0}}}}}}}}')
    return path


@pytest.mark.parametrize("scenario", ["echo-401", "echo-403", "echo-html", "echo-stream"])
def test_a_server_echoing_the_profile_key_is_redacted(
    scenario: str, fault_server: Any, env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The key reaches the server only from the profile; every echo of it, bare or encoded, is scrubbed."""
    from urllib.parse import quote

    config = echo_config(tmp_path, fault_server)
    assert set_key(monkeypatch, capsys, "echo", KEY.encode(), "--config", str(config))[0] == 0
    audit = tmp_path / "audit.jsonl"
    args = ["--model", f"echo/{scenario}", "--prompt", "hi", "--config", str(config)]
    code, out, err = run(capsys, "infer", "model", "run", *args, "--json", "--audit", str(audit))
    assert code == 1 and json.loads(out)["ok"] is False
    assert "Incorrect API key provided" in err or "502" in err  # the server's words survive, the key does not
    code, explained, _ = run(capsys, "infer", "model", "run", *args, "--explain")
    for text in (out, err, explained, audit.read_text()):
        for form in (KEY, quote(KEY, safe=""), KEY.replace("/", "\\/")):
            assert form not in text
    if scenario == "echo-401":
        assert f"the auth profile for echo ({env.file})" in err


@pytest.mark.anyio
async def test_the_library_error_hides_an_echoed_profile_key(fault_server: Any, env: Env, tmp_path: Path, anyio_backend: str) -> None:
    write_auth_profiles(env.file, AuthProfiles(str(env.file), {"echo": KEY}))
    genesis = Genesis.from_config_file(echo_config(tmp_path, fault_server))
    with pytest.raises(ProviderError) as caught:
        async with genesis:
            await genesis.run("echo/echo-401", {"messages": [{"role": "user", "content": "hi"}]}, fallbacks=False)
    error = caught.value
    assert "Incorrect API key provided: ***" in error.server_message
    for text in (str(error), repr(error), error.raw, error.hint or "", repr(error.attempts)):
        assert KEY not in text


def test_an_internal_error_hides_profile_keys(env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline import cli

    write_auth_profiles(env.file, AuthProfiles(str(env.file), {"vllm": KEY}))

    def broken(args: Any) -> int:
        raise RuntimeError(f"a bug holding {KEY}")

    monkeypatch.setattr(cli, "_dispatch", broken)
    code, _, err = run(capsys, "auth", "list")
    assert code == 70 and "a bug holding ***" in err


# ---- real processes: the warning lines, and the prompt on a terminal --------------------------------


def genesis(env: Env, *args: str, stdin: bytes = b"", extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(env.home), "GENESIS_STATE_DIR": str(env.state), **(extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], input=stdin, capture_output=True, cwd=ROOT, env=environment, timeout=60
    )


def test_set_warns_when_the_stored_key_is_not_used(env: Env) -> None:
    done = genesis(env, "auth", "set", "vllm", stdin=KEY.encode() + b"\n", extra={"VLLM_API_KEY": "from-env"})
    assert done.returncode == 0 and KEY.encode() not in done.stdout + done.stderr
    assert done.stderr.decode() == (
        "genesis: warning: vllm uses the key from the environment variable VLLM_API_KEY, which comes first: the stored key is not used\n"
    )
    done = genesis(env, "auth", "remove", "vllm", extra={"VLLM_API_KEY": "from-env"})
    assert done.returncode == 0 and b"VLLM_API_KEY is set: vllm still has a key from the environment" in done.stderr


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal (master, slave), closed after the test."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    try:
        yield master, slave
    finally:
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass


def read_until(master: int, wanted: bytes, seen: bytearray, deadline: float) -> None:
    while wanted not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {wanted!r}; got {bytes(seen)!r}")
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            seen.extend(chunk)


def test_a_key_typed_at_a_terminal_is_not_echoed(env: Env, terminal: tuple[int, int]) -> None:
    master, slave = terminal
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(env.home), "GENESIS_STATE_DIR": str(env.state)}
    child = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "auth", "set", "vllm"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=environment,
        start_new_session=True,
    )
    seen = bytearray()
    deadline = time.monotonic() + 60
    try:
        read_until(master, b"API key for vllm (not shown): ", seen, deadline)
        os.write(master, KEY.encode() + b"\n")
        read_until(master, b"(mode 0600)", seen, deadline)
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert KEY.encode() not in seen and b"stored the key for vllm" in seen
    assert read_auth_profiles(env.file).keys == {"vllm": KEY}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_in_place_of_the_file_is_refused_without_hanging(env: Env) -> None:
    env.state.mkdir()
    os.mkfifo(env.file, 0o600)
    with pytest.raises(ConfigError, match="not a regular file"):
        read_auth_profiles(env.file)


@pytest.mark.parametrize(
    ("name", "said"),
    [("a/b", "PROVIDER 'a/b' has a slash or a space"), ("", "PROVIDER '' is empty")],
    ids=["slash", "empty"],
)
def test_a_provider_argument_that_cannot_be_an_id(name: str, said: str, env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["auth", "set", name], ["auth", "remove", name]):
        code, out, err = run(capsys, *command)
        assert (code, out) == (2, "") and said in err and not env.state.exists()
