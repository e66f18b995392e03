"""A key never leaks: not when a server echoes it back, not in any repr.

Three layers of rules, one table each:
- ``scrub`` (pipeline/secrets.py): what is replaced, what is left alone;
- ``ProviderError``: every text field is scrubbed at construction;
- every object that holds a key has a repr/str/rich repr without it;
and, end to end through the fault server's echo-auth routes, every output
channel of the CLI and the library is grepped for the key in all its forms.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
import pytest

from pipeline.api import Genesis
from pipeline.errors import ErrorClass, ProviderError
from pipeline.secrets import MIN_SECRET_LENGTH, REDACTED, Secrets, scrub

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-echo-7f3a9c/Q+z=0K"  # a slash, a plus and an equals sign: its URL encoding differs
HEADER_SECRET = "org-tok-5c1e9a"  # a header value from ${VAR} under a harmless name
CALLER_SECRET = "caller-tok-88d2"  # a key the caller passes with --header
LEAKS = (KEY, quote(KEY, safe=""), json.dumps(KEY)[1:-1], HEADER_SECRET, CALLER_SECRET)
UNREDACTED_BEARER = re.compile(r"bearer(?:\s|%20)+(?!\*\*\*)[^\s\"'<]", re.IGNORECASE)


def assert_clean(text: str, where: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{where} shows {leak!r}: {text[:2000]}"
    assert UNREDACTED_BEARER.search(text) is None, f"{where} shows a Bearer credential: {text[:2000]}"


# ---- scrub: one row per rule ------------------------------------------------------------------

S = "sk-live-1234abcd"
SCRUB_ROWS: list[tuple[str, str, frozenset[str], str | None]] = [
    ("Rule 1: the raw secret", f"bad key {S}!", frozenset({S}), "bad key ***!"),
    ("Rule 1: every occurrence", f"{S} and {S}", frozenset({S}), "*** and ***"),
    ("Rule 1: longest first", "key sk-live-1234abcd-extra", frozenset({S, S + "-extra"}), "key ***"),
    ("Rule 1: URL-encoded", "login?key=a%2Fb%2Bc9%3D", frozenset({"a/b+c9="}), "login?key=***"),
    ("Rule 1: URL-encoded, lower-case hex", "login?key=a%2fb%2bc9%3d", frozenset({"a/b+c9="}), "login?key=***"),
    ("Rule 1: form-encoded space", "q=my+long+key", frozenset({"my long key"}), "q=***"),
    ("Rule 1: JSON-escaped", r'{"k": "say \"hi\" now"}', frozenset({'say "hi" now'}), '{"k": "***"}'),
    ("Rule 1: JSON-escaped slash", r'{"k": "a\/b\/cdef"}', frozenset({"a/b/cdef"}), '{"k": "***"}'),
    (
        "Rule 1: inside base64 of user:key",
        "creds " + base64.b64encode(f"admin:{S}".encode()).decode(),
        frozenset({S}),
        None,
    ),  # checked below: the key's own stretch is gone
    ("Rule 1: a secret of exactly the minimum length", "pin abcd here", frozenset({"abcd"}), "pin *** here"),
    ("Rule 2: shorter than the minimum is kept", "a b c", frozenset({"b"}), "a b c"),
    ("Rule 2: ...but still caught as a credential", "sent Bearer b", frozenset({"b"}), "sent Bearer ***"),
    ("Rule 3: Bearer without secrets", "Authorization: Bearer abc.def-123", frozenset(), "Authorization: Bearer ***"),
    ("Rule 3: bearer, any case", "BEARER xyz", frozenset(), "BEARER ***"),
    ("Rule 3: Basic", "Basic dXNlcjpwYXNz", frozenset(), "Basic ***"),
    ("Rule 3: URL-encoded Bearer", "auth=Bearer%20abc123", frozenset(), "auth=Bearer%20***"),
    ("Rule 3: x-api-key echo", "x-api-key: k-1", frozenset(), "x-api-key: ***"),
    ("Rule 3: api-key echo", "Api-Key=k-1&x=2", frozenset(), "Api-Key=***&x=2"),
    ("Rule 3: JSON api_key", '{"api_key": "k-1"}', frozenset(), '{"api_key": "***"}'),
    ("Rule 3: raw Authorization", "authorization: sk-raw", frozenset(), "authorization: ***"),
    ("Rule 3: Proxy-Authorization", "Proxy-Authorization: Basic Zm9vOmJhcg==", frozenset(), "Proxy-Authorization: Basic ***"),
    ("Rule 3: the stop at a tag", "<pre>Authorization: Bearer abc</pre>", frozenset(), "<pre>Authorization: Bearer ***</pre>"),
    ("Rule 3: the stop at a quote", "'Authorization: Bearer tok' was sent", frozenset(), "'Authorization: Bearer ***' was sent"),
    ("Rule 3: prose is left alone", "Missing Bearer token; Basic auth is off", frozenset(), "Missing Bearer token; Basic auth is off"),
    ("Rule 3: a realm is not a credential", 'WWW-Authenticate: Basic realm="x"', frozenset(), 'WWW-Authenticate: Basic realm="x"'),
    ("Rule 3: no value", "api_key=None", frozenset(), "api_key=None"),
    ("Rule 4: cut off at the end", f"the key {S[:10]}...", frozenset({S}), "the key ***..."),
    ("Rule 4: cut off, no ellipsis", f"the key {S[:8]}", frozenset({S}), "the key ***"),
    ("Rule 4: too short a tail is kept", f"a test {S[:4]}", frozenset({S}), f"a test {S[:4]}"),
    ("idempotent", "Bearer *** and x-api-key: ***", frozenset({S}), "Bearer *** and x-api-key: ***"),
    ("nothing to do", "model not found", frozenset({S}), "model not found"),
    ("empty", "", frozenset({S}), ""),
]


@pytest.mark.parametrize(("rule", "text", "secrets", "expected"), SCRUB_ROWS, ids=[row[0] for row in SCRUB_ROWS])
def test_scrub(rule: str, text: str, secrets: frozenset[str], expected: str | None) -> None:
    scrubbed = scrub(text, secrets)
    if expected is not None:
        assert scrubbed == expected
    assert scrub(scrubbed, secrets) == scrubbed  # idempotent
    if rule.startswith("Rule 1: inside base64"):
        encoded = text.split()[1]
        assert REDACTED in scrubbed and encoded not in scrubbed


def test_the_minimum_length_is_the_documented_one() -> None:
    assert MIN_SECRET_LENGTH == 4
    assert scrub("xyz xyzw", {"xyz", "xyzw"}) == "xyz ***"


def test_scrub_accepts_any_iterable_and_a_secrets_set_hides_itself() -> None:
    assert scrub(f"k {S}", [S]) == scrub(f"k {S}", Secrets({S})) == "k ***"
    assert S not in repr(Secrets({S})) and S not in str(Secrets({S}))


# ---- ProviderError: scrubbed at construction ----------------------------------------------------

ERROR_FIELDS = ("message", "server_message", "raw", "hint", "url")


@pytest.mark.parametrize("field", ERROR_FIELDS)
@pytest.mark.parametrize("with_secrets", [True, False], ids=["with secrets", "pattern only"])
def test_provider_error_scrubs_every_text(field: str, with_secrets: bool) -> None:
    echo = f"Bearer {KEY}"
    error = ProviderError(
        ErrorClass.AUTH,
        f"invalid: {echo}",
        url=f"http://h/v1?auth={quote(echo)}",
        status=401,
        raw=f'{{"error": "{echo}"}}',
        hint=f"you sent {echo}",
        secrets=frozenset({KEY}) if with_secrets else frozenset(),
    )
    value = str(getattr(error, field))
    assert KEY not in value and quote(KEY, safe="") not in value
    for shown in (str(error), repr(error), error.args[0]):
        assert KEY not in shown


def test_provider_error_scrubs_a_bare_key_only_with_secrets() -> None:
    error = ProviderError(ErrorClass.AUTH, f"unknown key {KEY}", url="http://h", secrets=frozenset({KEY}))
    assert error.server_message == "unknown key ***"
    assert not hasattr(error, "secrets")  # the secrets are not kept on the error


# ---- reprs: an object that holds a key never shows it ------------------------------------------

CONFIG = f"""{{
  models: {{ mode: "replace", providers: {{
    lan: {{ baseUrl: "http://10.0.0.7:8000/v1", apiKey: "{KEY}", headers: {{ "X-Org": "${{ORG}}", "X-Api-Key": "{KEY}" }},
           models: [{{ id: "big", headers: {{ "X-Org": "${{ORG}}" }} }}] }},
  }} }},
}}"""


def _genesis() -> Genesis:
    return Genesis.from_config_text(CONFIG, env={"ORG": HEADER_SECRET, "VLLM_API_KEY": KEY})


def _context() -> Any:
    request = {"messages": [{"role": "user", "content": "hi"}]}
    return _genesis().shape("lan/big", request, headers=[("X-Caller-Token", CALLER_SECRET)]).unwrap()


def _hints() -> Any:
    from backends.session import hints_for

    return hints_for(_context().target, Secrets(_genesis().catalog.secrets))


REPR_ROWS: list[tuple[str, Callable[[], Any], str]] = [
    (
        "WireRequest",
        lambda: _genesis().build("lan/big", {"messages": [{"role": "user", "content": "hi"}]}, headers=[("X-Caller-Token", CALLER_SECRET)]),
        "http://10.0.0.7:8000/v1/chat/completions",
    ),
    ("Context", _context, "lan/big"),
    ("LoadedConfig", lambda: _genesis().loaded, "http://10.0.0.7:8000/v1"),
    ("Config", lambda: _genesis().loaded.config, "http://10.0.0.7:8000/v1"),
    ("ProviderConfig", lambda: _genesis().loaded.config.models.providers["lan"], "http://10.0.0.7:8000/v1"),
    ("ModelConfig", lambda: _genesis().loaded.config.models.providers["lan"].models[0], "big"),
    ("Catalog", lambda: _genesis().catalog, "http://10.0.0.7:8000/v1"),
    ("ProviderEntry", lambda: _genesis().catalog.providers["lan"], "http://10.0.0.7:8000/v1"),
    ("ModelEntry", lambda: _genesis().catalog.providers["lan"].models[0], "big"),
    ("Target", lambda: _context().target, "lan/big"),
    ("HintContext", _hints, "models.providers.lan"),
    ("Secrets", lambda: Secrets({KEY, HEADER_SECRET}), "2 hidden"),
]


@pytest.mark.parametrize(("name", "make", "useful"), REPR_ROWS, ids=[row[0] for row in REPR_ROWS])
def test_repr_hides_the_key(name: str, make: Callable[[], Any], useful: str) -> None:
    obj = make()
    assert type(obj).__name__ == name
    rich = repr(list(obj.__rich_repr__())) if hasattr(obj, "__rich_repr__") else ""
    for shown in (repr(obj), str(obj), f"{obj}", rich, repr([obj]), repr({"x": obj})):
        for leak in (KEY, HEADER_SECRET, CALLER_SECRET):
            assert leak not in shown, f"{name} shows {leak!r}: {shown}"
    assert useful in repr(obj)  # still says what it is


def test_wire_repr_keeps_harmless_headers_and_the_body() -> None:
    wire = _genesis().build("lan/big", {"messages": [{"role": "user", "content": "hi"}]}, headers=[("X-Trace", "t-1")])
    shown = repr(wire)
    assert "('X-Trace', 't-1')" in shown and "('Authorization', 'Bearer ***')" in shown and '"content":"hi"' in shown


def test_msgspec_encoding_is_data_not_output() -> None:
    """Encoding a WireRequest gives the real headers (it is what is sent); output goes through render/audit."""
    from backends.audit import audit_request
    from pipeline.render import as_json, as_text

    wire = _genesis().build("lan/big", {"messages": [{"role": "user", "content": "hi"}]})
    assert KEY in msgspec.json.encode(wire).decode()  # the raw data: never printed as such
    for shown in (as_text(wire), json.dumps(as_json(wire)), msgspec.json.encode(audit_request(wire)).decode()):
        assert_clean(shown, "rendered wire request")


# ---- end to end: the echo-auth server, every output channel ------------------------------------


def genesis_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "ORG": HEADER_SECRET},
        timeout=120,
    )


def echo_config(tmp_path: Path, fault_server: Any, *, fallbacks: bool = True) -> str:
    path = tmp_path / "echo.json5"
    path.write_text(f"""{{
      agents: {{ defaults: {{ model: {{ primary: "echo/echo-401", fallbacks: [{'"echo/ok"' if fallbacks else ""}] }} }} }},
      models: {{ mode: "replace", providers: {{
        echo: {{ baseUrl: "{fault_server.url}/echo-auth/v1", apiKey: "{KEY}", headers: {{ "X-Org": "${{ORG}}" }} }},
      }} }},
    }}""")
    return str(path)


ECHOES = ["echo-401", "echo-403", "echo-html", "echo-stream"]


@pytest.mark.parametrize("scenario", ECHOES)
def test_a_failed_run_shows_no_key(fault_server: Any, tmp_path: Path, scenario: str) -> None:
    """stderr, every field of --json, and the audit file, when the echoing model is the last one tried."""
    audit = tmp_path / "audit.jsonl"
    done = genesis_cli(
        "infer",
        "model",
        "run",
        "--model",
        f"echo/{scenario}",
        "--prompt",
        "hi",
        "--json",
        "--no-fallbacks",
        "--audit",
        str(audit),
        "--header",
        f"X-Caller-Token: {CALLER_SECRET}",
        "--config",
        echo_config(tmp_path, fault_server),
    )
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert document["ok"] is False and document["error"]["serverMessage"] and document["attempts"][0]["message"]
    assert "Incorrect API key provided" in done.stderr or "502" in done.stderr  # the server's words survive
    assert_clean(done.stderr, "stderr")
    assert_clean(done.stdout, "--json")
    lines = audit.read_text().splitlines()
    assert lines, "one audit line per attempt, retries included"
    for line in lines:
        assert_clean(line, "--audit")
        record = json.loads(line)
        assert record["request"]["headers"]["Authorization"] == "Bearer ***"
        fields = {"time", "ref", "provider", "model", "request", "ok", "status", "class", "message", "timing", "retry", "delay_ms"}
        assert set(record) <= fields  # no raw body


@pytest.mark.parametrize("scenario", ECHOES)
def test_a_fallback_line_shows_no_key(fault_server: Any, tmp_path: Path, scenario: str) -> None:
    audit = tmp_path / "audit.jsonl"
    done = genesis_cli(
        "infer",
        "model",
        "run",
        "--model",
        f"echo/{scenario}",
        "--prompt",
        "hi",
        "--json",
        "--audit",
        str(audit),
        "--config",
        echo_config(tmp_path, fault_server),
    )
    assert done.returncode == 0, done.stderr
    assert f"echo/{scenario} failed (" in done.stderr
    assert_clean(done.stderr, "the fallback line")
    assert_clean(done.stdout, "--json attempts")
    outcomes = [json.loads(line)["ok"] for line in audit.read_text().splitlines()]
    assert outcomes[-1] is True and not any(outcomes[:-1]) and len(outcomes) >= 2
    assert_clean(audit.read_text(), "--audit")


def test_models_probe_shows_no_key(fault_server: Any, tmp_path: Path) -> None:
    config = echo_config(tmp_path, fault_server)
    text = genesis_cli("models", "probe", "echo/echo-strict", "--config", config)
    assert text.returncode == 0 and "rejected (400: unsupported request" in text.stdout, text.stderr
    as_json = genesis_cli("models", "probe", "echo/echo-strict", "--json", "--config", config)
    assert {result["outcome"] for result in json.loads(as_json.stdout)["results"]} == {"rejected"}
    failed = genesis_cli("models", "probe", "echo/echo-401", "--json", "--config", config)
    assert failed.returncode == 1 and "auth" in failed.stderr
    for done in (text, as_json, failed):
        assert_clean(done.stdout + done.stderr, "models probe")


def test_models_status_probe_shows_no_key(fault_server: Any, tmp_path: Path) -> None:
    config = echo_config(tmp_path, fault_server)
    as_json = genesis_cli("models", "status", "--probe", "--json", "--config", config)
    [record] = json.loads(as_json.stdout)
    probe = record["probe"]
    assert (probe["models"]["state"], probe["health"]["state"]) == ("auth", "auth")
    assert probe["models"]["detail"] and probe["health"]["detail"]  # the server's words are kept, scrubbed
    text = genesis_cli("models", "status", "--probe", "--config", config)
    for done in (as_json, text):
        assert_clean(done.stdout + done.stderr, "models status --probe")


@pytest.mark.anyio
@pytest.mark.parametrize("scenario", ECHOES)
async def test_the_library_error_shows_no_key(fault_server: Any, scenario: str, anyio_backend: str) -> None:
    g = Genesis.from_config_text(echo_config_text(fault_server), env={"ORG": HEADER_SECRET})
    with pytest.raises(ProviderError) as caught:
        async with g:
            await g.run(
                f"echo/{scenario}",
                {"messages": [{"role": "user", "content": "hi"}], "stream": True},
                headers=[("X-Caller-Token", CALLER_SECRET)],
                fallbacks=False,
            )
    error = caught.value
    for where, text in [
        ("str", str(error)),
        ("repr", repr(error)),
        ("raw", error.raw),
        ("hint", error.hint or ""),
        ("server_message", error.server_message),
        ("attempts", repr(error.attempts)),
    ]:
        assert_clean(text, where)


@pytest.mark.anyio
async def test_discovery_and_reachability_show_no_key(fault_server: Any, anyio_backend: str) -> None:
    from backends.discovery import fetch_models
    from backends.probe import check_health

    g = Genesis.from_config_text(echo_config_text(fault_server), env={"ORG": HEADER_SECRET})
    provider = g.catalog.providers["echo"]
    async with httpx.AsyncClient() as client:
        with pytest.raises(ProviderError) as caught:
            await fetch_models(client, provider)
        health = await check_health(client, provider)  # the provider's own key, no catalog passed
    assert health.state == "auth" and health.detail
    assert_clean(f"{caught.value} {caught.value.raw} {health.detail}", "discovery / health")


def echo_config_text(fault_server: Any) -> str:
    return f"""{{ models: {{ mode: "replace", providers: {{
      echo: {{ baseUrl: "{fault_server.url}/echo-auth/v1", apiKey: "{KEY}", headers: {{ "X-Org": "${{ORG}}" }} }} }} }} }}"""


def test_the_internal_error_line_shows_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline import cli

    config = tmp_path / "c.json5"
    config.write_text(f'{{models: {{providers: {{p: {{baseUrl: "http://127.0.0.1:9/v1", apiKey: "{KEY}"}}}}}}}}')

    def broken(args: Any) -> int:
        raise RuntimeError(f"a bug holding {KEY} and Bearer {CALLER_SECRET}")

    monkeypatch.setattr(cli, "_dispatch", broken)
    monkeypatch.delenv("GENESIS_DEBUG", raising=False)
    assert cli.main(["models", "list", "--config", str(config)]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err.startswith("genesis: internal error: RuntimeError: a bug holding *** and Bearer ***")
    assert_clean(err, "the internal-error line")
