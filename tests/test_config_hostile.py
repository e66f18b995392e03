"""Configs and requests as hostile input: one row per rule, each row able to fail.

Rules pinned here: bad ``${...}`` forms are errors (escapes and plain ``$``
keep working); duplicate keys are errors; nesting has a stated limit and
never raises RecursionError; plain JSON takes the fast path and JSON5 syntax
still works; header names and values are checked at load and at request
time without ever echoing a value; ``--request`` bytes and ``--header``
arguments are user errors (exit 2, one line); the CLI never exits 70 on a
config and never prints a configured key.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from returns.result import Failure

from pipeline.api import Genesis
from pipeline.cli import main
from pipeline.config import parse_config
from pipeline.errors import ConfigError, RequestError

MAX_CONFIG_DEPTH = 64  # the documented limit (pipeline.jsontext.MAX_CONFIG_DEPTH)
SECRET = "sk-Q7d9ZpL2mXv8"
PROVIDER = "models.providers.vllm"


def provider_config(**fields: Any) -> str:
    provider = {"baseUrl": "http://127.0.0.1:8000/v1", "models": [{"id": "m"}], **fields}
    return json.dumps({"models": {"providers": {"vllm": provider}}})


def issues_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env or {})
    return [str(issue) for issue in caught.value.issues]


# --- 1. ${...} forms -------------------------------------------------------------------------------

NAME_PATH = f"{PROVIDER}.models[0].name"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${lower}", '"${lower}" at position 1 is not a valid variable reference'),
        ("x ${}", '"${}" at position 3 is an empty variable reference'),
        ("${X", '"${" at position 1 has no closing "}"'),
        ("${A-B}", '"${A-B}" at position 1 is not a valid variable reference'),
        ("${A:-fallback}", "is not a valid variable reference"),
        ("${1ABC}", "is not a valid variable reference"),
        ("${ X }", "is not a valid variable reference"),
        ("ok ${X} then ${bad}", '"${bad}" at position 14'),
    ],
)
def test_bad_reference_is_an_error_with_path_and_hint(value: str, expected: str) -> None:
    [issue] = issues_of(provider_config(models=[{"id": "m", "name": value}]), {"X": "x"})
    assert issue.startswith(f"{NAME_PATH}: ")
    assert expected in issue
    assert "$${" in issue and "to send it literally" in issue


@pytest.mark.parametrize(
    ("value", "expanded"),
    [
        ("cost $5", "cost $5"),
        ("a lone $", "a lone $"),
        ("$HOME stays", "$HOME stays"),
        ("$$ stays", "$$ stays"),
        ("$${X}", "${X}"),
        ("$${lower} and $${}", "${lower} and ${}"),
        ("$${unterminated", "${unterminated"),
        ("${X}-${Y_2}", "x-y"),
        ("$${X}${X}", "${X}x"),
    ],
)
def test_escapes_and_plain_dollars_still_work(value: str, expanded: str) -> None:
    loaded = parse_config(provider_config(models=[{"id": "m", "name": value}]), {"X": "x", "Y_2": "y"})
    assert loaded.config.models.providers["vllm"].models[0].name == expanded


@pytest.mark.parametrize("field", ["apiKey", "headers"])
def test_bad_reference_in_a_secret_field_is_not_quoted(field: str) -> None:
    value = f"{SECRET}${{oops}}"
    text = provider_config(apiKey=value) if field == "apiKey" else provider_config(headers={"X-Key": value})
    [issue] = issues_of(text)
    assert "position 16" in issue and "oops" not in issue and SECRET not in issue


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"baseUrl": "${K}"},
            f'{PROVIDER}.baseUrl: expected an http(s) URL such as "http://127.0.0.1:8000/v1", found the value from the environment',
        ),
        ({"maxRetries": "${K}"}, f"{PROVIDER}.maxRetries: expected a whole number from 0 to 10, found a string"),
        ({"models": [{"id": "${K}"}, {"id": "${K}"}]}, f"{PROVIDER}.models[1].id: the value from the environment is listed twice"),
        ({"maxRetries": "${K}${bad}"}, f"{PROVIDER}.maxRetries: expected a whole number from 0 to 10, found a string"),
    ],
)
def test_values_from_the_environment_are_never_quoted(fields: dict[str, Any], expected: str) -> None:
    found = issues_of(provider_config(**fields), {"K": SECRET})
    assert expected in found and not any(SECRET in issue for issue in found)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"pipeline": {"\\ud800": null}}', 'pipeline."\\ud800": unknown key'),
        ('{"models": {"providers": {"\\ud800\\n": {"baseUrl": 1}}}}', 'models.providers."\\ud800\\n".baseUrl: expected a non-empty string'),
        ('{"models": {"mode": "\\udfff\\u0007"}}', 'found the string "\\udfff\\u0007"'),
    ],
)
def test_unprintable_keys_and_values_are_escaped_in_messages(text: str, expected: str) -> None:
    found = issues_of(text)
    assert any(expected in issue for issue in found), found
    assert all(issue.isprintable() for issue in found)


def test_escaped_reference_is_not_a_secret() -> None:
    loaded = parse_config(provider_config(headers={"X-Lit": "$${KEY}"}), {"KEY": "k"})
    assert "${KEY}" not in loaded.secrets


# --- 2. duplicate keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '{"models": {"providers": {"vllm": {"baseUrl": "http://a/v1", "baseUrl": "http://b/v1"}}}}',
            f'{PROVIDER}: key "baseUrl" appears twice',
        ),
        ("{models: {providers: {vllm: {baseUrl: 'http://a/v1', baseUrl: 'http://b/v1'}}}}", f'{PROVIDER}: key "baseUrl" appears twice'),
        ('{"models": {}, "models": {}}', 'key "models" appears twice'),
        (
            '{"models": {"providers": {"v": {"baseUrl": "http://a/v1", "models": [{"id": "m", "id": "n"}]}}}}',
            'models.providers.v.models[0]: key "id" appears twice',
        ),
        (
            "{agents: {defaults: {models: {'a/b': {params: {t: 1, t: 2, t: 3}}}}}}",
            'agents.defaults.models.a/b.params: key "t" appears 3 times',
        ),
        ('{"models": {"providers": {"a": {}, "a": {}}}}', 'models.providers: key "a" appears twice'),
    ],
)
def test_duplicate_keys_are_errors_naming_the_path(text: str, expected: str) -> None:
    assert expected in issues_of(text)


def test_same_key_in_different_objects_is_fine() -> None:
    text = '{"models": {"providers": {"a": {"baseUrl": "http://a/v1"}, "b": {"baseUrl": "http://b/v1"}}}}'
    assert set(parse_config(text, {}).config.models.providers) == {"a", "b"}


# --- 3. nesting ------------------------------------------------------------------------------------


# A value under agents.defaults.models.<ref>.params is free-form; the prefix takes 6 levels.
# "json5" takes the rewrite to JSON; a \u escape sends "json5-exact" to the json5 package itself.
def nested_config(depth: int, *, json5: str | bool) -> str:
    inner = "[" * (depth - 6) + "]" * (depth - 6)
    if json5 == "json5-exact":
        return "// deep\n{agents: {defaults: {models: {'a/b': {params: {u: '\\u0041', x: " + inner + "}}}}}}"
    if json5:
        return "// deep\n{agents: {defaults: {models: {'a/b': {params: {x: " + inner + "}}}}}}"
    return '{"agents": {"defaults": {"models": {"a/b": {"params": {"x": ' + inner + "}}}}}}"


@pytest.mark.parametrize("json5", [False, True, "json5-exact"], ids=["json", "json5", "json5-exact"])
@pytest.mark.parametrize("depth", [55, MAX_CONFIG_DEPTH])
def test_nesting_up_to_the_limit_loads(depth: int, json5: str | bool) -> None:
    params = parse_config(nested_config(depth, json5=json5), {}).config.agents.defaults.models["a/b"].params
    level, node = 7, params["x"]  # the outermost list is level 7
    while node:
        level, node = level + 1, node[0]
    assert level == depth


@pytest.mark.parametrize("json5", [False, True, "json5-exact"], ids=["json", "json5", "json5-exact"])
@pytest.mark.parametrize("depth", [MAX_CONFIG_DEPTH + 1, 1000, 200_000])
def test_nesting_beyond_the_limit_says_so(depth: int, json5: str | bool) -> None:
    [issue] = issues_of(nested_config(depth, json5=json5))
    assert f"the limit is {MAX_CONFIG_DEPTH} levels" in issue


@pytest.mark.parametrize("text", ["[" * 100_000, "{a:" * 100_000, "{a:[" * 50_000 + "1"])
def test_deep_broken_text_is_a_config_error(text: str) -> None:
    assert issues_of(text)


# --- 4. fast path and JSON5 syntax -----------------------------------------------------------------


def test_plain_json_never_reaches_the_json5_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    import json5

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("json5 used for plain JSON")

    monkeypatch.setattr(json5, "loads", refuse)
    assert parse_config(provider_config(), {}).config.models.providers["vllm"].models[0].id == "m"


def test_common_json5_never_reaches_the_json5_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    import json5

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("json5 used for JSON5 the rewrite reads")

    monkeypatch.setattr(json5, "loads", refuse)
    text = "// local vLLM\n{models: {providers: {vllm: {baseUrl: 'http://127.0.0.1:8000/v1', /* no key */ models: [{id: 'm', maxTokens: 0x400,},],},},},}"
    assert parse_config(text, {}).config.models.providers["vllm"].models[0].max_tokens == 1024


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ("{agents: {defaults: {models: {'a/b': {params: {t: 1}}}}}}", {"t": 1}),  # unquoted keys, single quotes
        ('{"agents": {"defaults": {"models": {"a/b": {"params": {"t": 1,},},},},},}', {"t": 1}),  # trailing commas
        ('// c\n{"agents": /* c */ {"defaults": {"models": {"a/b": {"params": {"t": 1}}}}}}', {"t": 1}),  # comments
        ("{agents: {defaults: {models: {'a/b': {params: {h: 0x1F, p: +2, d: .5, e: 5.}}}}}}", {"h": 31, "p": 2, "d": 0.5, "e": 5.0}),
        ("{agents: {defaults: {models: {'a/b': {params: {s: 'two \\\n lines', q: \"it's\"}}}}}}", {"s": "two  lines", "q": "it's"}),
        ('{"agents": {"defaults": {"models": {"a/b": {"params": {"t": "\\u00e9"}}}}}}', {"t": "\u00e9"}),
    ],
)
def test_json5_syntax_still_works(text: str, params: dict[str, Any]) -> None:
    assert parse_config(text, {}).config.agents.defaults.models["a/b"].params == params


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("{models: {\n  mode: 'merge',,\n}}", "line 2, column"),
        ('{"models": {"mode": "merge"\n\n  "x": 1}}', "line 3, column"),
        ("{models: 'unterminated}", "line 1, column"),
    ],
)
def test_broken_json5_points_at_line_and_column(text: str, where: str) -> None:
    [issue] = issues_of(text)
    assert issue.startswith("not valid JSON5: ") and where in issue


def test_a_large_config_loads_on_both_paths() -> None:
    from bench.config_load import as_json5, big_config

    config = big_config(60_000)
    count = len(config["models"]["providers"]["vllm"]["models"])  # type: ignore[index]
    for text in (json.dumps(config), as_json5(config)):
        assert len(parse_config(text, {}).config.models.providers["vllm"].models) == count


def test_large_json5_loads_fast_but_a_large_broken_one_is_refused_with_a_hint() -> None:
    from pipeline.jsontext import MAX_JSON5_CHARS

    filler = "'" + "x" * (MAX_JSON5_CHARS + 10) + "'"
    text = "// a comment\n{agents: {defaults: {models: {'a/b': {params: {t: " + filler + "}}}}}}"
    assert parse_config(text, {}).config.agents.defaults.models["a/b"].params["t"] == "x" * (MAX_JSON5_CHARS + 10)
    [issue] = issues_of(text[:-1])  # one brace short: the exact (slow) reader would be needed to say where
    assert "not valid JSON (line 1, column 1" in issue and f"reads up to {MAX_JSON5_CHARS} characters" in issue


@pytest.mark.parametrize("text", ['{"a": ' + "9" * 5000 + "}", "{a: " + "9" * 5000 + "}"])
def test_a_number_too_long_to_read_is_a_config_error(text: str) -> None:
    [issue] = issues_of(text)
    assert "a number is too long" in issue


# --- 5. header names and values --------------------------------------------------------------------

BAD_VALUES = [
    (f"{SECRET}\n", "a line break (U+000A) at position 16", True),
    (f"{SECRET}\r\n", "a line break (U+000D) at position 16", True),
    (f"Bearer\r\nX-Injected: 1{SECRET}", "a line break (U+000D) at position 7", False),
    (f"{SECRET}\x00", "a NUL (U+0000) at position 16", False),
    (f"{SECRET}\x07", "a control character (U+0007)", False),
    (f"{SECRET}\x7f", "a control character (U+007F)", False),
    (f"{SECRET}\x85", "a control character (U+0085)", False),
    (f"{SECRET}\ud800", "a lone surrogate (U+D800)", False),
    (f"{SECRET}\u20ac", "a character outside ASCII (U+20AC)", False),
    (f"{SECRET}\u00e9", "a character outside ASCII (U+00E9)", False),
]


@pytest.mark.parametrize(("value", "problem", "strip_hint"), BAD_VALUES)
@pytest.mark.parametrize("where", ["apiKey", "provider headers", "model headers"])
def test_bad_header_values_in_the_config(value: str, problem: str, strip_hint: bool, where: str) -> None:
    if where == "apiKey":
        text, path = provider_config(apiKey=value), f"{PROVIDER}.apiKey: the key contains "
    elif where == "provider headers":
        text, path = provider_config(headers={"X-Key": value}), f"{PROVIDER}.headers.X-Key: the value contains "
    else:
        text, path = (
            provider_config(models=[{"id": "m", "headers": {"X-Key": value}}]),
            f"{PROVIDER}.models[0].headers.X-Key: the value contains ",
        )
    [issue] = issues_of(text)
    assert issue.startswith(path) and problem in issue
    assert SECRET not in issue and value not in issue
    assert ("strip the trailing line break" in issue) is strip_hint


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is an empty header name"),
        ("X Key", "the character U+0020 at position 2"),
        ("X-Key:", "the character U+003A at position 6"),
        ("X-Key\n", "a line break (U+000A) at position 6"),
        ("X-K\u00e9y", "a character outside ASCII (U+00E9) at position 4"),
        ("(X)", "the character U+0028 at position 1"),
    ],
)
def test_bad_header_names_in_the_config(name: str, problem: str) -> None:
    [issue] = issues_of(provider_config(headers={name: "v"}))
    assert "the header name" in issue and problem in issue
    assert "\n" not in issue


@pytest.mark.parametrize("value", ["plain", "tab\tinside", "!#$%&'*+-.^_`|~ ()<>@,;:\\\"/[]?={}"])
def test_good_header_values_load(value: str) -> None:
    name = "!#$%&'*+-.^_`|~0-9A-Za-z"
    loaded = parse_config(provider_config(headers={name: value}, apiKey=value.replace("$", "$$")), {})
    assert loaded.config.models.providers["vllm"].headers == {name: value}


def test_key_from_the_environment_with_a_trailing_newline_fails_the_request() -> None:
    env = {"VLLM_API_KEY": f"{SECRET}\n"}
    genesis = Genesis.from_config_text("{}", env=env)
    result = genesis.build_result("vllm/m", {"messages": [{"role": "user", "content": "hi"}]})
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, ConfigError)
    assert "the key from VLLM_API_KEY contains a line break (U+000A) at position 16" in str(error)
    assert error.hint is not None and "strip the trailing line break" in error.hint
    assert SECRET not in str(error) + error.hint


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (("X-Trace", "a\r\nX-Injected: 1"), "the value contains a line break (U+000D) at position 2"),
        (("X-Trace", f"{SECRET}\x00"), "the value contains a NUL (U+0000) at position 16"),
        (("X-Trace", f"{SECRET}\u2603"), "outside ASCII (U+2603)"),
        (("X Trace", "v"), "is not a valid header name"),
        (("", "v"), "is an empty header name"),
    ],
)
def test_caller_headers_are_checked_at_request_time(header: tuple[str, str], problem: str) -> None:
    genesis = Genesis.from_config_text(provider_config(), env={})
    result = genesis.build_result("vllm/m", {"messages": [{"role": "user", "content": "hi"}]}, headers=[header])
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, RequestError) and problem in str(error)
    assert "the caller's headers" in str(error) and SECRET not in str(error)


# --- 6. --request bytes and --header arguments -----------------------------------------------------


@pytest.fixture
def wire_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("GENESIS_CONFIG_PATH", "GENESIS_STATE_DIR", "VLLM_API_KEY", "SGLANG_API_KEY", "GENESIS_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    path = tmp_path / "genesis.json5"
    path.write_text(provider_config(apiKey=SECRET))
    return str(path)


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"messages": [], "x": "\xff"}', "not valid UTF-8: byte 0xff at offset 23"),
        (b'{"messages": "\xc3"}', "not valid UTF-8: byte 0xc3 at offset 14"),
        (b"[" * 1000 + b"]" * 1000, "nested too deep; the limit is 128"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deep; the limit is 128"),
        (b'{"a": ' + b"[" * 200 + b"]" * 200 + b"}", "nested too deep; the limit is 128"),
        (b"[1, 2]", "expected a JSON object (a chat completion body), found a list"),
        (b'"text"', "expected a JSON object"),
        (b"42", "expected a JSON object"),
        (b'{"max_tokens": 1' + b"0" * 5000 + b"}", "a number is out of range"),
        (b'{"temperature": 1e999}', "a number is out of range"),
        (b'{"messages": [}', "not valid JSON"),
        (b"", "not valid JSON"),
    ],
)
def test_request_file_bytes_are_a_user_error(data: bytes, problem: str, wire_config: str, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_bytes(data)
    code, out, err = run_cli(["wire", "--config", wire_config, "--model", "vllm/m", "--request", str(request)])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"genesis: --request {request}: ")
    assert problem in err


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (f"X-Trace: {SECRET}\n", "the value contains a line break (U+000A)"),
        (f"X-Trace: a\rX-Injected: {SECRET}", "the value contains a line break (U+000D) at position 2"),
        (f"X-Trace: {SECRET}\x00", "a NUL (U+0000)"),
        (f"X-Trace: {SECRET}\x1b[31m", "a control character (U+001B)"),
        (f"X Trace: {SECRET}", "is not a valid header name"),
        (f"Authorization Bearer {SECRET}", "expected 'Name: value'"),
    ],
)
def test_header_arguments_are_checked(header: str, problem: str, wire_config: str) -> None:
    code, out, err = run_cli(["wire", "--config", wire_config, "--model", "vllm/m", "--prompt", "hi", "--header", header])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and problem in err and SECRET not in err


def test_good_header_argument_reaches_the_wire(wire_config: str) -> None:
    code, out, err = run_cli(["wire", "--config", wire_config, "--model", "vllm/m", "--prompt", "hi", "--header", "X-Trace:\tabc "])
    assert code == 0 and err == "" and "X-Trace: abc" in out and SECRET not in out


# --- reading the file ------------------------------------------------------------------------------


def test_config_file_with_bad_utf8_says_where(tmp_path: Path) -> None:
    from pipeline.config import load_config

    path = tmp_path / "genesis.json5"
    path.write_bytes(b'{"models": {"mode": "\xffmerge"}}')
    with pytest.raises(ConfigError, match=r"not valid UTF-8: byte 0xff at offset 21"):
        load_config(path, {})


def test_config_file_is_read_only_up_to_its_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.config

    monkeypatch.setattr(pipeline.config, "MAX_CONFIG_BYTES", 100)
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps({"agents": {"defaults": {"models": {"a/b": {"params": {"t": "x" * 200}}}}}}))
    with pytest.raises(ConfigError, match="larger than"):
        pipeline.config.load_config(path, {})
    path.write_text("{}")
    assert pipeline.config.load_config(path, {}).config.models.providers == {}


@pytest.mark.parametrize(
    ("provider_fields", "model_headers", "problem"),
    [
        ({"headers": {"X-Key": f"{SECRET}\n"}}, {}, "models.providers.vllm.headers.X-Key: the value contains a line break (U+000A)"),
        ({"headers": {"X Key": "v"}}, {}, "models.providers.vllm.headers.X Key: the header name is not a valid header name"),
        ({}, {"X-Key": f"{SECRET}\x00"}, "headers of model vllm/m.X-Key: the value contains a NUL (U+0000)"),
        ({"api_key": f"{SECRET}\r\n"}, {}, "models.providers.vllm.apiKey: the key contains a line break (U+000D)"),
    ],
)
def test_a_config_built_in_python_is_checked_at_request_time(
    provider_fields: dict[str, Any], model_headers: dict[str, str], problem: str
) -> None:
    """A LoadedConfig made by hand skips parse_config; the attach_headers stage still refuses bad headers."""
    from pipeline.config import Config, LoadedConfig, ModelConfig, ModelsSection, ProviderConfig

    provider = ProviderConfig(base_url="http://127.0.0.1:8000/v1", models=(ModelConfig(id="m", headers=model_headers),), **provider_fields)
    genesis = Genesis(LoadedConfig(Config(models=ModelsSection(providers={"vllm": provider})), source="<python>"), env={})
    result = genesis.build_result("vllm/m", {"messages": [{"role": "user", "content": "hi"}]})
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, ConfigError) and problem in str(error) and SECRET not in str(error)
