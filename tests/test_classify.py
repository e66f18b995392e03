"""The classifier's rule tables and hints, beyond the conformance rows.

- Every rule in ``OVERFLOW_RULES``, ``MODEL_RULES``, ``FORMAT_RULES`` and
  ``HINT_RULES`` is needed: some conformance transcript (or, for wording that
  comes from outside the seven servers, a row below) matches it. A rule nothing
  matches is dead weight or a typo.
- The auth hint names where the key in use really comes from.
- Wording that looks like an overflow but is not (a too-large max_tokens) stays
  a format error.
"""

from __future__ import annotations

import pytest

from backends.classify import (
    FORMAT_RULES,
    HINT_RULES,
    MODEL_RULES,
    OVERFLOW_RULES,
    ErrorInfo,
    HintContext,
    HintRule,
    Rule,
    _pattern,
    auth_hint,
    error_info,
    event_failure,
    hint_for,
    http_error,
    is_context_overflow,
)
from backends.stream import Aggregator
from pipeline.errors import ErrorClass
from pipeline.events import ServerError
from tests.test_conformance import TRANSCRIPTS, Transcript, parse

CTX = HintContext("vllm", "http://127.0.0.1:8000/v1", "vllm/m", 'models.providers.vllm.models (id "m")', "none", "VLLM_API_KEY", 1024)

# Wording from outside the seven servers' tables that the classifier still knows.
ELSEWHERE: list[tuple[str, int, bytes, str]] = [
    # SPEC 7's overflow phrases (the reference implementation's list); OpenAI's code.
    (
        "OpenAI (SPEC 7)",
        400,
        b'{"error": {"message": "Request failed: context length exceeded", "type": "invalid_request_error", "code": null}}',
        "context_overflow",
    ),
    (
        "OpenAI (SPEC 7)",
        400,
        b'{"error": {"message": "This model\'s maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}',
        "context_overflow",
    ),
    # Anthropic-style proxies (Bedrock's wording as quoted in aaif-goose/goose#7442).
    ("Anthropic via Bedrock", 400, b'{"message": "prompt is too long: 227255 tokens > 200000 maximum"}', "context_overflow"),
]


def transcript_infos(t: Transcript) -> list[ErrorInfo]:
    """What a transcript's error says, where Genesis reads it: the HTTP body, an in-stream error, an error finish."""
    if t.status >= 400:
        return [error_info(t.body)]
    infos = [ErrorInfo(e.message, e.param, e.type, e.code) for e in parse(t) if isinstance(e, ServerError)]
    if t.expect.get("error") == "server_error" and not infos:
        infos.append(ErrorInfo(t.expect.get("message", "")))
    return infos


INFOS = [info for t in TRANSCRIPTS for info in transcript_infos(t)] + [error_info(body) for _, _, body, _ in ELSEWHERE]


@pytest.mark.parametrize(
    "rule", [pytest.param(r, id=f"{r.server}:{r.field}={r.match}") for r in OVERFLOW_RULES + MODEL_RULES + FORMAT_RULES]
)
def test_every_rule_has_evidence(rule: Rule) -> None:
    assert any(rule.matches(info) for info in INFOS), "no transcript says this"


@pytest.mark.parametrize("rule", [pytest.param(r, id=f"{r.server}:{r.pattern}") for r in HINT_RULES])
def test_every_hint_rule_has_evidence(rule: HintRule) -> None:
    pattern = _pattern(rule.pattern)
    extra = ["tool use is not supported by this model"]  # SPEC 7's generic "tools rejected"
    assert any(pattern.search(info.message) for info in INFOS) or any(pattern.search(m) for m in extra)


@pytest.mark.parametrize(("server", "status", "body", "error_class"), ELSEWHERE, ids=[f"{s}-{i}" for i, (s, *_) in enumerate(ELSEWHERE)])
def test_wording_from_elsewhere(server: str, status: int, body: bytes, error_class: str) -> None:
    assert http_error(status, body, url="u", ref="r", context=CTX).error_class == error_class


def test_max_tokens_naming_the_context_length_is_format() -> None:
    """Older vLLM said "maximum context length" for a too-large max_tokens; the param says it is the limit."""
    body = b'{"error": {"message": "This model\'s maximum context length is 1024 tokens. However, you requested 100030 tokens.", "param": "max_tokens", "code": 400}}'
    error = http_error(400, body, url="u", ref="r", context=CTX)
    assert (error.error_class, error.hint) == ("format", None)
    assert not is_context_overflow("This model's maximum context length is 1024 tokens", "max_completion_tokens")


def test_overflow_wording_is_not_recognised_on_auth_or_rate_limit_statuses() -> None:
    body = b'{"error": {"message": "maximum context length", "type": "exceed_context_size_error"}}'
    assert [http_error(s, body, url="u", ref="r", context=CTX).error_class for s in (401, 404, 429, 503)] == [
        "auth",
        "model_not_found",
        "rate_limit",
        "overloaded",
    ]


def test_model_and_format_rules_need_their_statuses() -> None:
    """A body rule only refines the statuses it is for: a 500 saying model_not_found is still a server failure."""
    assert (
        http_error(500, b'{"error": {"message": "x", "code": "model_not_found"}}', url="u", ref="r", context=CTX).error_class
        == "overloaded"
    )
    assert http_error(400, b'{"error": "tools param requires --jinja flag"}', url="u", ref="r", context=CTX).error_class == "format"
    assert http_error(503, b'{"error": "tools param requires --jinja flag"}', url="u", ref="r", context=CTX).error_class == "overloaded"


def test_in_stream_error_type_alone_is_overflow() -> None:
    event = ServerError(message="anything", type="exceed_context_size_error", code="400")
    error = event_failure(event, Aggregator(), url="u", ref="r", context=CTX)
    assert error is not None and error.error_class == "context_overflow" and "1024 tokens" in (error.hint or "")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"message": "m", "type": "t", "code": "c", "param": "p"}}', ErrorInfo("m", "p", "t", "c")),
        (
            b'{"object": "error", "message": "m", "type": "BadRequestError", "param": null, "code": 400}',
            ErrorInfo("m", None, "BadRequestError", "400"),
        ),
        (b'{"error": "m", "type": "t"}', ErrorInfo("m", None, "t")),
        (b'{"detail": "Invalid API key"}', ErrorInfo("Invalid API key")),
        (b'{"detail": [{"loc": ["body", "messages"], "msg": "field required"}]}', ErrorInfo("body.messages: field required")),
        (b"plain words\n", ErrorInfo("plain words")),
        (b"", ErrorInfo("(empty body)")),
        (b'{"error": {"code": 500}}', ErrorInfo('{"error": {"code": 500}}', None, None, None)),
    ],
)
def test_error_info_shapes(body: bytes, expected: ErrorInfo) -> None:
    assert error_info(body) == expected


@pytest.mark.parametrize(
    ("key_source", "key_env", "present", "absent"),
    [
        # The config's apiKey wins over the variable: the variable changes nothing, and the hint says so.
        (
            "config models.providers.llamacpp.apiKey",
            "LLAMACPP_API_KEY",
            ["from the config (models.providers.llamacpp.apiKey)", "LLAMACPP_API_KEY is not used"],
            ["set LLAMACPP_API_KEY"],
        ),
        ("config models.providers.custom.apiKey", None, ["models.providers.custom.apiKey"], ["not used", "None"]),
        # From the environment: change the variable (or move the key into the config).
        (
            "env VLLM_API_KEY",
            "VLLM_API_KEY",
            ["environment variable VLLM_API_KEY", "set VLLM_API_KEY", "models.providers.p.apiKey"],
            ["config ("],
        ),
        # Nothing is sent: say so, and name both places a key can come from.
        ("none", "SGLANG_API_KEY", ["no key is sent", "models.providers.p.apiKey", "SGLANG_API_KEY"], ["comes from"]),
        ("none", None, ["no key is sent", "models.providers.p.apiKey"], ["None"]),
        # A source this version does not know (auth profiles have their own rows in tests/test_auth_profiles.py): named as given.
        ("keyring default", "VLLM_API_KEY", ["from keyring default", "models.providers.p.apiKey"], []),
    ],
)
def test_auth_hint_names_the_real_key_source(key_source: str, key_env: str | None, present: list[str], absent: list[str]) -> None:
    provider = key_source.split(".")[2] if key_source.startswith("config ") else "p"
    ctx = HintContext(provider, "http://h/v1", f"{provider}/m", "path", key_source, key_env)
    hint = auth_hint(ctx)
    assert hint == hint_for(ErrorClass.AUTH, "Unauthorized", ctx)
    for part in present:
        assert part in hint
    for part in absent:
        assert part not in hint


def test_message_hints_win_over_class_hints() -> None:
    """A 422 serde message has its own fix, whatever its class."""
    assert "requiresStringContent" in (hint_for(ErrorClass.FORMAT, "invalid type: sequence, expected a string", CTX) or "")
    assert hint_for(ErrorClass.FORMAT, "some other 400", CTX) is None
