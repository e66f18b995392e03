"""Rule table for the attach headers stage (transforms/attach_headers.py, SPEC 4, README "Secrets").

Each row: config, environment and the caller's headers in; the headers (in order), which of them are
secret, and the stage's trace out. Refusals (bad names, values, keys) are a Failure naming where.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec
import pytest

from pipeline.errors import ConfigError, RequestError
from pipeline.types import Context
from pipeline.version import __version__
from tests.rules.support import LOOPBACK_URL, NATIVE_URL, config, context, failed, shaped, trace_lines
from transforms.attach_headers import attach_headers, is_secret_header

STAGE = "attach_headers"
JSON = ("Content-Type", "application/json")
Headers = tuple[tuple[str, str], ...]


class Row(NamedTuple):
    rule: str
    config: str
    caller: Headers
    headers: Headers
    secret: set[str]
    trace: list[str] | None = None  # None: not checked by this row
    env: tuple[tuple[str, str], ...] = ()
    ref: str = "p/m"


ROWS: dict[str, Row] = {
    "content_type_only": Row(
        "a keyless proxy-style provider: Content-Type and nothing else (keyless local servers work)",
        config(base_url=LOOPBACK_URL),
        (),
        (JSON,),
        set(),
        ["header Content-Type added: JSON body"],
    ),
    "bearer_auth": Row(
        "auth is Authorization: Bearer <apiKey>, and it is secret",
        config(provider='apiKey: "sk-lan-123",'),
        (),
        (JSON, ("Authorization", "Bearer sk-lan-123")),
        {"authorization"},
        ["header Content-Type added: JSON body", "header Authorization added: apiKey (config models.providers.p.apiKey)"],
    ),
    "auth_header_false": Row(
        "authHeader: false never sends Authorization, even with an apiKey",
        config(provider='apiKey: "sk-lan-123", authHeader: false,'),
        (),
        (JSON,),
        set(),
    ),
    "key_from_env_of_builtin": Row(
        "a built-in provider's key comes from its variable, and the trace names the variable",
        "{}",
        (),
        (JSON, ("Authorization", "Bearer env-key")),
        {"authorization"},
        ["header Content-Type added: JSON body", "header Authorization added: apiKey (env VLLM_API_KEY)"],
        (("VLLM_API_KEY", "env-key"),),
        "vllm/x",
    ),
    "attribution_native_only": Row(
        "attribution (originator, version, User-Agent genesis/<version>) goes to native endpoints",
        config(base_url=NATIVE_URL),
        (),
        (JSON, ("originator", "genesis"), ("version", __version__), ("User-Agent", f"genesis/{__version__}")),
        set(),
        [
            "header Content-Type added: JSON body",
            "header originator added: attribution (native OpenAI endpoint)",
            "header version added: attribution (native OpenAI endpoint)",
            "header User-Agent added: attribution (native OpenAI endpoint)",
        ],
    ),
    "no_attribution_on_custom_url": Row(
        "custom base URLs get no attribution headers (and no genesis User-Agent)",
        config(provider='apiKey: "k",'),
        (),
        (JSON, ("Authorization", "Bearer k")),
        {"authorization"},
    ),
    "merge_order_later_wins": Row(
        "merge order, later wins, names case-insensitive: provider headers, model headers, the caller's; then auth",
        config(provider='apiKey: "k", headers: {"X-Team": "ml", "X-Keep": "p"},', model='headers: {"x-team": "inference", "X-Model": "1"}'),
        (("X-TEAM", "caller"), ("X-Req", "r-1")),
        (JSON, ("X-TEAM", "caller"), ("X-Keep", "p"), ("X-Model", "1"), ("X-Req", "r-1"), ("Authorization", "Bearer k")),
        {"authorization"},
        [
            "header Content-Type added: JSON body",
            "header X-Team added: models.providers.p.headers",
            "header X-Keep added: models.providers.p.headers",
            "header x-team changed: headers of model p/m",
            "header X-Model added: headers of model p/m",
            "header X-TEAM changed: caller's headers",
            "header X-Req added: caller's headers",
            "header Authorization added: apiKey (config models.providers.p.apiKey)",
        ],
    ),
    "auth_wins_over_caller": Row(
        "auth comes last: a caller's Authorization is replaced by the configured key",
        config(provider='apiKey: "k",'),
        (("authorization", "Bearer mine"),),
        (JSON, ("Authorization", "Bearer k")),
        {"authorization"},
    ),
    "caller_auth_without_key": Row(
        "with no apiKey, the caller's Authorization is sent as given (and is secret)",
        config(),
        (("Authorization", "Basic abc"),),
        (JSON, ("Authorization", "Basic abc")),
        {"authorization"},
    ),
    "caller_overrides_content_type": Row(
        "the caller's headers win over Content-Type too",
        config(),
        (("content-type", "application/json; charset=utf-8"),),
        (("content-type", "application/json; charset=utf-8"),),
        set(),
        ["header Content-Type added: JSON body", "header content-type changed: caller's headers"],
    ),
    "secret_by_name": Row(
        "a header is secret when its name says so: auth, key, token, secret, cookie, password, credential",
        config(),
        tuple(
            (name, "v") for name in ("X-Auth-User", "X-Api-Key", "X-Token", "X-Secret", "Cookie", "X-Password", "X-Credential", "X-Trace")
        ),
        (
            JSON,
            *(
                (name, "v")
                for name in ("X-Auth-User", "X-Api-Key", "X-Token", "X-Secret", "Cookie", "X-Password", "X-Credential", "X-Trace")
            ),
        ),
        {"x-auth-user", "x-api-key", "x-token", "x-secret", "cookie", "x-password", "x-credential"},
    ),
    "secret_by_value": Row(
        "a header holding a configured secret is secret, whatever its name",
        config(provider='apiKey: "${K}", headers: {"X-Org": "org-${K}"},'),
        (("X-Echo", "has s3cretvalue inside"), ("X-Plain", "nothing")),
        (
            JSON,
            ("X-Org", "org-s3cretvalue"),
            ("X-Echo", "has s3cretvalue inside"),
            ("X-Plain", "nothing"),
            ("Authorization", "Bearer s3cretvalue"),
        ),
        {"x-org", "x-echo", "authorization"},
        None,
        (("K", "s3cretvalue"),),
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_header_rule(row: Row) -> None:
    ctx = context(row.config, {"messages": []}, ref=row.ref, headers=row.caller, env=dict(row.env))
    after = shaped(attach_headers, ctx)
    assert after.headers == row.headers
    assert after.secret_headers == frozenset(row.secret)
    assert after.body == ctx.body
    if row.trace is not None:
        assert trace_lines(after, STAGE) == row.trace


class Refusal(NamedTuple):
    rule: str
    caller: Headers
    env: dict[str, str]
    kind: type[Exception]
    message: str
    hint: str | None


REFUSALS: dict[str, Refusal] = {
    "caller_bad_name": Refusal(
        "a caller's header name must be an RFC 9110 token",
        (("Bad Name", "v"),),
        {},
        RequestError,
        'the caller\'s headers: "Bad Name" is not a valid header name: the character U+0020 at position 4 is not allowed'
        " (a name is letters, digits and !#$%&'*+-.^_`|~)",
        None,
    ),
    "caller_value_line_break": Refusal(
        "a caller's header value holds no line break; the error gives the position, never the value",
        (("X-A", "a\nb"),),
        {},
        RequestError,
        "the caller's headers X-A: the value contains a line break (U+000A) at position 2",
        None,
    ),
    "caller_value_trailing_line_break": Refusal(
        "a value whose only fault is a trailing line break gets the hint to strip it",
        (("X-A", "k\n"),),
        {},
        RequestError,
        "the caller's headers X-A: the value contains a line break (U+000A) at position 2",
        "strip the trailing line break (a key saved by echo or an editor often ends with one)",
    ),
    "env_key_line_break": Refusal(
        "a key from an environment variable is checked when the request is built, and named by its variable",
        (),
        {"VLLM_API_KEY": "abc\n"},
        ConfigError,
        "config error in the environment: the key from VLLM_API_KEY contains a line break (U+000A) at position 4",
        "strip the trailing line break (a key saved by echo or an editor often ends with one)",
    ),
}


@pytest.mark.parametrize("row", list(REFUSALS.values()), ids=list(REFUSALS))
def test_header_refusal(row: Refusal) -> None:
    ctx = context("{}", {"messages": []}, ref="vllm/x", headers=row.caller, env={"VLLM_API_KEY": "ok", **row.env})
    error = failed(attach_headers, ctx)
    assert isinstance(error, row.kind)
    assert (error.message, error.hint) == (row.message, row.hint)
    assert "abc" not in str(error)


@pytest.mark.parametrize(
    ("name", "value", "secrets", "secret"),
    [
        ("X-Api-Key", "abc", frozenset(), True),
        ("X-Trace", "abc", frozenset(), False),
        ("X-Org", "org-s3cret", frozenset({"s3cret"}), True),
        ("X-Org", "org", frozenset({"s3cret"}), False),
    ],
    ids=["name_says_key", "plain", "value_holds_secret", "value_without_secret"],
)
def test_is_secret_header(name: str, value: str, secrets: frozenset[str], secret: bool) -> None:
    assert is_secret_header(name, value, secrets) is secret


def with_headers(ctx: Context, provider_headers: dict[str, str], model_headers: dict[str, str]) -> Context:
    """The context with headers the config loader would have refused (a catalog built another way)."""
    target = ctx.target
    assert target is not None
    model_config = msgspec.structs.replace(target.model.config, headers=model_headers)
    provider = msgspec.structs.replace(target.provider, headers=provider_headers)
    model = msgspec.structs.replace(target.model, config=model_config)
    return msgspec.structs.replace(ctx, target=msgspec.structs.replace(target, provider=provider, model=model))


# (rule, provider headers, model headers, the issue's problem, hint): checked again when the request is built
CONFIGURED: dict[str, tuple[str, dict[str, str], dict[str, str], str, str | None]] = {
    "provider_bad_name": (
        "a configured header name that is not a token is a ConfigError naming its path",
        {"X Y": "v"},
        {},
        "models.providers.p.headers.X Y: the header name is not a valid header name: the character U+0020 at position 2 is not allowed"
        " (a name is letters, digits and !#$%&'*+-.^_`|~)",
        None,
    ),
    "provider_bad_value": (
        "a configured header value with a NUL is a ConfigError giving the position, never the value",
        {"X-A": "a\x00b"},
        {},
        "models.providers.p.headers.X-A: the value contains a NUL (U+0000) at position 2",
        None,
    ),
    "model_value_trailing_line_break": (
        "a model header value ending in a line break: the error says so and hints to strip it",
        {},
        {"X-A": "k\n"},
        "X-A: the value contains a line break (U+000A) at position 2",
        "strip the trailing line break (a key saved by echo or an editor often ends with one)",
    ),
}


@pytest.mark.parametrize(("rule", "provider", "model", "issue", "hint"), list(CONFIGURED.values()), ids=list(CONFIGURED))
def test_configured_header_refused(rule: str, provider: dict[str, str], model: dict[str, str], issue: str, hint: str | None) -> None:
    error = failed(attach_headers, with_headers(context(config(), {}), provider, model))
    assert isinstance(error, ConfigError)
    (only,) = error.issues
    assert str(only).endswith(issue)
    assert str(error).startswith(f"config error in <config>: {only}")
    assert error.hint == hint


def test_configured_key_refused_at_build_names_the_config() -> None:
    """A configured key the loader would have refused (a catalog built another way) is checked again, by path."""
    ctx = context(config(provider='apiKey: "sk-good",'), {})
    assert ctx.target is not None
    provider = msgspec.structs.replace(ctx.target.provider, api_key="sk-bad\n")
    error = failed(attach_headers, msgspec.structs.replace(ctx, target=msgspec.structs.replace(ctx.target, provider=provider)))
    assert isinstance(error, ConfigError)
    assert str(error) == "config error in <config>: models.providers.p.apiKey: the key contains a line break (U+000A) at position 7"
    assert error.hint == "strip the trailing line break (a key saved by echo or an editor often ends with one)"
