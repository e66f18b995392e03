"""Rule table for the classifier (``backends.classify``): status x body -> class, hint, failover.

Each row names the rule it pins: a row of the module docstring's class table, a
rule of ``OVERFLOW_RULES`` / ``MODEL_RULES`` / ``FORMAT_RULES`` / ``HINT_RULES``,
or the statuses each table may refine. The expected failover is the class
table's last column. tests/test_classify.py proves each wording rule has a
transcript behind it and pins the auth hint's key sources; this table pins
what each rule decides, one row per rule, through ``http_error`` (the HTTP
path) and ``event_failure`` (the in-stream path).
"""

from __future__ import annotations

import pytest

from backends.classify import (
    FAILOVER_CLASSES,
    ErrorInfo,
    HintContext,
    class_of,
    class_of_status,
    error_info,
    event_failure,
    hint_for,
    http_error,
    is_context_overflow,
    server_message,
)
from backends.stream import Aggregator
from pipeline.errors import ErrorClass
from pipeline.events import Event, Finish, ReasoningDelta, ServerError, StreamFault, TextDelta, ToolCallDelta, Usage
from pipeline.secrets import Secrets

CTX = HintContext(
    "vllm", "http://127.0.0.1:8000/v1/", "vllm/m", 'models.providers.vllm.models (id "m")', "none", "VLLM_API_KEY", 1024, Secrets()
)
PATH = CTX.model_path
OVERFLOW_HINT = "the prompt does not fit the model's context window of 1024 tokens: shorten it or lower max_tokens"
MODEL_HINT = "the server does not serve this model id; curl http://127.0.0.1:8000/v1/models lists the ones it does"
RATE_HINT = "the server is rate limiting: retry later or add agents.defaults.model.fallbacks"
TIMEOUT_HINT = "the server did not answer in time; raise models.providers.vllm.timeoutSeconds if it is just slow"
AUTH_HINT = (
    "no key is sent and the server requires one: set models.providers.vllm.apiKey (or VLLM_API_KEY) to the server's key (its --api-key)"
)
NO_TOOLS = f"the server rejects tools: try compat.supportsTools: false on the model ({PATH}.compat)"


def err(message: str, **fields: object) -> bytes:
    import json

    return json.dumps({"error": {"message": message, **fields}}).encode()


# (rule, status, body, class, hint)
HTTP_ROWS: list[tuple[str, int, bytes, str, str | None]] = [
    # --- the status alone ---
    ("401 is auth", 401, err("Unauthorized"), "auth", AUTH_HINT),
    ("403 is auth", 403, err("Forbidden"), "auth", AUTH_HINT),
    ("404 is model_not_found", 404, err("The model `x` does not exist."), "model_not_found", MODEL_HINT),
    ("408 is timeout", 408, b"Request Timeout", "timeout", TIMEOUT_HINT),
    ("429 is rate_limit", 429, err("Too many requests"), "rate_limit", RATE_HINT),
    ("400 is format", 400, err("bad field"), "format", None),
    ("422 is format", 422, b'{"detail": [{"loc": ["body", "messages"], "msg": "field required"}]}', "format", None),
    ("another 4xx is format", 418, b"teapot", "format", None),
    ("413 without overflow wording is format", 413, b"Payload Too Large", "format", None),
    ("500 is overloaded", 500, err("Internal error"), "overloaded", None),
    ("502 is overloaded", 502, b"Bad Gateway", "overloaded", None),
    ("503 is overloaded (a server loading its model)", 503, err("Loading model"), "overloaded", None),
    ("another 5xx is overloaded", 599, b"", "overloaded", None),
    # --- OVERFLOW_RULES, on 400, 413 and 422 ---
    (
        "overflow: 'maximum context length' (vLLM, OpenAI, SGLang, inferrs)",
        400,
        err("This model's maximum context length is 1024 tokens"),
        "context_overflow",
        OVERFLOW_HINT,
    ),
    ("overflow: vLLM's param input_tokens", 400, err("too long", param="input_tokens"), "context_overflow", OVERFLOW_HINT),
    ("overflow: vLLM's param input_text", 400, err("too long", param="input_text"), "context_overflow", OVERFLOW_HINT),
    ("overflow: code context_length_exceeded", 400, err("x", code="context_length_exceeded"), "context_overflow", OVERFLOW_HINT),
    ("overflow: 'context length exceeded'", 400, err("Request failed: context length exceeded"), "context_overflow", OVERFLOW_HINT),
    ("overflow: 'context_length_exceeded' in the message", 400, err("error: context_length_exceeded"), "context_overflow", OVERFLOW_HINT),
    (
        "overflow: 'prompt is too long' (Anthropic-style proxies)",
        400,
        b'{"message": "prompt is too long: 227255 tokens > 200000 maximum"}',
        "context_overflow",
        OVERFLOW_HINT,
    ),
    (
        "overflow: llama.cpp's type exceed_context_size_error",
        400,
        err("x", type="exceed_context_size_error"),
        "context_overflow",
        OVERFLOW_HINT,
    ),
    (
        "overflow: llama.cpp 'exceeds the available context size'",
        400,
        err("request (13529 tokens) exceeds the available context size (2048 tokens)"),
        "context_overflow",
        OVERFLOW_HINT,
    ),
    (
        "overflow: llama.cpp 'is larger than the max context size'",
        400,
        err("input (5000 tokens) is larger than the max context size (2048 tokens)"),
        "context_overflow",
        OVERFLOW_HINT,
    ),
    (
        "overflow: SGLang 'is longer than the model's context length'",
        400,
        err("The input (5000 tokens) is longer than the model's context length (4096 tokens)."),
        "context_overflow",
        OVERFLOW_HINT,
    ),
    (
        "overflow: Ollama 'prompt is longer than the context length'",
        400,
        err("the prompt is longer than the context length currently available"),
        "context_overflow",
        OVERFLOW_HINT,
    ),
    (
        "overflow: LM Studio 'greater than the context length'",
        400,
        err("The number of tokens to keep from the initial prompt is greater than the context length"),
        "context_overflow",
        OVERFLOW_HINT,
    ),
    (
        "overflow: LM Studio 'when context the overflows'",
        400,
        err("Trying to keep the first 5000 tokens when context the overflows"),
        "context_overflow",
        OVERFLOW_HINT,
    ),
    (
        "overflow: LM Studio 'does not fit in context length'",
        400,
        err("Input does not fit in context length"),
        "context_overflow",
        OVERFLOW_HINT,
    ),
    ("overflow wording is matched case-insensitively", 400, err("PROMPT IS TOO LONG"), "context_overflow", OVERFLOW_HINT),
    ("overflow on 413", 413, err("prompt is too long"), "context_overflow", OVERFLOW_HINT),
    ("overflow on 422", 422, err("prompt is too long"), "context_overflow", OVERFLOW_HINT),
    ("overflow wording on a 500 stays overloaded", 500, err("prompt is too long"), "overloaded", None),
    ("overflow wording on a 503 stays overloaded", 503, err("prompt is too long"), "overloaded", None),
    ("overflow wording on a 404 stays model_not_found", 404, err("prompt is too long"), "model_not_found", MODEL_HINT),
    (
        "a too-large max_tokens is format, not overflow",
        400,
        err("This model's maximum context length is 1024 tokens", param="max_tokens"),
        "format",
        None,
    ),
    (
        "a too-large max_completion_tokens is format",
        400,
        err("maximum context length", param="max_completion_tokens", code="context_length_exceeded"),
        "format",
        None,
    ),
    ("type must equal exactly, not contain", 400, err("x", type="exceed_context_size_error_2"), "format", None),
    # --- MODEL_RULES, on 400 and 404 ---
    (
        "model: code model_not_found on a 400 (LM Studio, llama-cpp-python)",
        400,
        err("Invalid model identifier", code="model_not_found"),
        "model_not_found",
        MODEL_HINT,
    ),
    ("model: llama.cpp router 'model 'x' not found'", 400, err("model 'qwen' not found"), "model_not_found", MODEL_HINT),
    ("model: the router wording must be the whole message", 400, err("the model 'qwen' not found here"), "format", None),
    (
        "model: LM Studio 'No models loaded'",
        400,
        err("No models loaded. Please load a model in the developer page."),
        "model_not_found",
        MODEL_HINT,
    ),
    ("model: 'no models loaded' only at the start", 400, err("there are no models loaded"), "format", None),
    ("model rules do not refine a 500", 500, err("x", code="model_not_found"), "overloaded", None),
    ("model rules do not refine a 422", 422, err("x", code="model_not_found"), "format", None),
    ("overflow wins over a model rule on a 400", 400, err("prompt is too long", code="model_not_found"), "context_overflow", OVERFLOW_HINT),
    # --- FORMAT_RULES, on 500 ---
    ("format: llama.cpp 'tools param requires --jinja flag' on a 500", 500, err("tools param requires --jinja flag"), "format", NO_TOOLS),
    ("format: 'tool_choice param requires --jinja flag' on a 500", 500, err("tool_choice param requires --jinja flag"), "format", NO_TOOLS),
    ("format: llama-cpp-python's pydantic list on a 500", 500, err("2 validation errors: ..."), "format", None),
    ("format: one validation error", 500, err("1 validation error: ..."), "format", None),
    ("format: the pydantic count must start the message", 500, err("there were 2 validation errors"), "overloaded", None),
    ("format rules do not refine a 503", 503, err("tools param requires --jinja flag"), "overloaded", NO_TOOLS),
    ("format rules do not refine a 502", 502, err("1 validation error: x"), "overloaded", None),
    # --- HINT_RULES: a message with a known fix wins over the class's hint ---
    (
        "hint: inferrs 'invalid type: sequence, expected a string'",
        422,
        b"Failed to deserialize the JSON body into the target type: messages[0].content: invalid type: sequence, expected a string",
        "format",
        f"set compat.requiresStringContent: true on the model ({PATH}.compat)",
    ),
    (
        "hint: inferrs 'unknown variant `developer`'",
        422,
        b"messages[0].role: unknown variant `developer`, expected one of ...",
        "format",
        f"set compat.supportsDeveloperRole: false on the model ({PATH}.compat)",
    ),
    (
        "hint: inferrs with straight quotes",
        422,
        b"unknown variant 'developer'",
        "format",
        f"set compat.supportsDeveloperRole: false on the model ({PATH}.compat)",
    ),
    (
        "hint: llama-cpp-python's 'input': 'developer'",
        500,
        err("6 validation errors: {'input': 'developer'}"),
        "format",
        f"set compat.supportsDeveloperRole: false on the model ({PATH}.compat)",
    ),
    (
        "hint: vLLM 'tool choice requires'",
        400,
        err('"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'),
        "format",
        NO_TOOLS,
    ),
    ("hint: vLLM 'tool-call-parser'", 400, err("set --tool-call-parser"), "format", NO_TOOLS),
    ("hint: vLLM 'enable-auto-tool-choice'", 400, err("needs enable-auto-tool-choice"), "format", NO_TOOLS),
    ("hint: Ollama 'does not support tools'", 400, err("registry.ollama.ai/library/gemma:2b does not support tools"), "format", NO_TOOLS),
    ("hint: any 'tool ... not supported'", 400, err("tool use is not supported by this model"), "format", NO_TOOLS),
    ("hint: any 'tool ... unsupported'", 400, err("tools are unsupported"), "format", NO_TOOLS),
    ("a message hint wins over the auth hint", 401, err("tool use is not supported"), "auth", NO_TOOLS),
    (
        "a message hint wins over the overflow hint",
        400,
        err("prompt is too long for tools: tool calls unsupported"),
        "context_overflow",
        NO_TOOLS,
    ),
]


@pytest.mark.parametrize(("rule", "status", "body", "error_class", "hint"), HTTP_ROWS, ids=[row[0] for row in HTTP_ROWS])
def test_http_rule(rule: str, status: int, body: bytes, error_class: str, hint: str | None) -> None:
    error = http_error(status, body, url="http://h/v1/chat/completions", ref="vllm/m", context=CTX)
    assert (error.error_class, error.hint) == (error_class, hint)
    assert error.status == status and error.url == "http://h/v1/chat/completions" and error.ref == "vllm/m"


# (class, failover): the class table's last column
FAILOVER_ROWS: list[tuple[str, bool]] = [
    ("unreachable", True),
    ("timeout", True),
    ("auth", True),
    ("rate_limit", True),
    ("overloaded", True),
    ("model_not_found", True),
    ("format", False),
    ("context_overflow", False),
    ("server_error", True),
    ("protocol", True),
    ("aborted", False),
    ("cooldown", True),  # a cooling model is skipped: the run goes on to the next candidate (pipeline.errors.CLASS_RULES)
]


@pytest.mark.parametrize(("error_class", "failover"), FAILOVER_ROWS, ids=[row[0] for row in FAILOVER_ROWS])
def test_failover_rule(error_class: str, failover: bool) -> None:
    assert (error_class in FAILOVER_CLASSES) == failover


def test_the_failover_table_is_whole() -> None:
    assert {c for c, failover in FAILOVER_ROWS if failover} == FAILOVER_CLASSES


def test_http_error_keeps_the_body_bounded_and_the_message() -> None:
    body = err("m" * 10) + b" " * 3000
    error = http_error(400, body, url="u", ref="r", context=CTX)
    assert error.server_message == "m" * 10 and error.raw is not None and len(error.raw) == 2000


def test_http_error_scrubs_the_configured_secrets() -> None:
    ctx = HintContext("p", "http://h/v1", "p/m", "path", "env P_KEY", "P_KEY", None, Secrets(["sk-secret-123"]))
    error = http_error(401, err("bad key sk-secret-123"), url="u", ref="r", context=ctx)
    assert "sk-secret-123" not in str(error) and "sk-secret-123" not in (error.raw or "")


# --- hints by class --------------------------------------------------------------------------------

# (rule, class, context window, hint)
CLASS_HINT_ROWS: list[tuple[str, str, int | None, str | None]] = [
    (
        "unreachable names the /models URL to curl",
        "unreachable",
        None,
        "the server is not running or not on that host/port; check it with: curl http://127.0.0.1:8000/v1/models",
    ),
    ("model_not_found names the /models URL", "model_not_found", None, MODEL_HINT),
    ("timeout names timeoutSeconds", "timeout", None, TIMEOUT_HINT),
    ("overflow names the window when known", "context_overflow", 1024, OVERFLOW_HINT),
    (
        "overflow without a known window",
        "context_overflow",
        None,
        "the prompt does not fit the model's context window: shorten it or lower max_tokens",
    ),
    ("rate_limit suggests fallbacks", "rate_limit", None, RATE_HINT),
    ("format has no hint of its own", "format", None, None),
    ("overloaded has no hint of its own", "overloaded", None, None),
    ("server_error has no hint of its own", "server_error", None, None),
    ("protocol has no hint of its own", "protocol", None, None),
]


@pytest.mark.parametrize(("rule", "error_class", "window", "hint"), CLASS_HINT_ROWS, ids=[row[0] for row in CLASS_HINT_ROWS])
def test_class_hint_rule(rule: str, error_class: str, window: int | None, hint: str | None) -> None:
    ctx = HintContext("vllm", "http://127.0.0.1:8000/v1/", "vllm/m", PATH, "none", "VLLM_API_KEY", window)
    assert hint_for(ErrorClass(error_class), "some message", ctx) == hint


def test_only_the_trailing_slash_of_the_base_url_goes() -> None:
    ctx = HintContext("p", "http://h/RouterX/", "p/m", "path")
    assert (hint_for(ErrorClass("unreachable"), "m", ctx) or "").endswith("curl http://h/RouterX/models")
    assert (hint_for(ErrorClass("model_not_found"), "m", ctx) or "").startswith(
        "the server does not serve this model id; curl http://h/RouterX/models "
    )


def test_the_auth_hint_is_the_key_source_hint() -> None:
    assert hint_for(ErrorClass("auth"), "Unauthorized", CTX) == AUTH_HINT


@pytest.mark.parametrize(
    ("key_source", "key_env", "hint"),
    [
        ("none", None, "no key is sent and the server requires one: set models.providers.vllm.apiKey to the server's key (its --api-key)"),
        (
            "config models.providers.vllm.apiKey",
            None,
            "the server refused the key from the config (models.providers.vllm.apiKey): set it to the server's key (its --api-key)",
        ),
        (
            "env MY_KEY",
            "VLLM_API_KEY",
            "the server refused the key from the environment variable MY_KEY: set MY_KEY to the server's key (its --api-key), or set models.providers.vllm.apiKey",
        ),
        (
            "keyring work",
            None,
            "the server refused the key from keyring work: replace it there with the server's key (its --api-key), or set models.providers.vllm.apiKey",
        ),
    ],
    ids=["none without a variable", "config without a variable", "env", "another source"],
)
def test_auth_hint_rule(key_source: str, key_env: str | None, hint: str) -> None:
    ctx = HintContext("vllm", "http://h/v1", "vllm/m", PATH, key_source, key_env)
    assert hint_for(ErrorClass("auth"), "Unauthorized", ctx) == hint


def test_a_hint_is_looked_for_in_the_first_2000_characters_only() -> None:
    """An in-stream error message is not cut to one line; a hostile one of many "tool" words made the hint search
    quadratic (40 KB: 47 s). The hint rules read the first 2000 characters (a fix; the second row fails on the old code)."""
    assert hint_for(ErrorClass("server_error"), "tool" + "x" * 1980 + " not supported", CTX) == NO_TOOLS
    assert hint_for(ErrorClass("server_error"), "tool" + "x" * 2000 + " not supported", CTX) is None
    ctx = HintContext("p", "http://h/v1", "p/m", "path")
    error = event_failure(ServerError("tool" * 250_000), Aggregator(), url="u", ref="r", context=ctx)  # 1 MB: returns at once
    assert error is not None and error.error_class == "server_error" and error.hint is None


# --- the status alone, and overflow by wording -----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(400, "format"), (401, "auth"), (403, "auth"), (404, "model_not_found"), (408, "timeout"), (422, "format"), (429, "rate_limit")]
    + [(499, "format"), (500, "overloaded"), (501, "overloaded"), (503, "overloaded"), (300, "format")],
)
def test_class_of_status_rule(status: int, error_class: str) -> None:
    assert class_of_status(status) == error_class


@pytest.mark.parametrize(
    ("message", "param", "fields", "overflow"),
    [
        ("prompt is too long", None, {}, True),
        ("prompt is too long", "max_tokens", {}, False),
        ("prompt is too long", "messages", {}, True),
        ("fine", "input_tokens", {}, True),
        ("fine", None, {"code": "context_length_exceeded"}, True),
        ("fine", None, {"type": "exceed_context_size_error"}, True),
        ("fine", None, {"code": "context_length"}, False),
        ("fine", None, {}, False),
    ],
    ids=["wording", "max_tokens param", "another param", "param", "code", "type", "a code that only starts alike", "nothing"],
)
def test_is_context_overflow_rule(message: str, param: str | None, fields: dict[str, str], overflow: bool) -> None:
    assert is_context_overflow(message, param, **fields) is overflow


def test_class_of_reads_the_info_not_the_body() -> None:
    assert class_of(400, ErrorInfo("prompt is too long")) == "context_overflow"
    assert class_of(400, ErrorInfo("x", code="model_not_found")) == "model_not_found"
    assert class_of(500, ErrorInfo("1 validation error: x")) == "format"
    assert class_of(500, ErrorInfo("1 validation error")) == "overloaded"  # the pydantic list ends its count with a colon
    assert class_of(500, ErrorInfo("x")) == "overloaded"


# --- error body shapes -----------------------------------------------------------------------------

# (rule, body, info)
BODY_ROWS: list[tuple[str, bytes, ErrorInfo]] = [
    (
        "OpenAI: error object with every field",
        b'{"error": {"message": "m", "type": "t", "code": "c", "param": "p"}}',
        ErrorInfo("m", "p", "t", "c"),
    ),
    ("a numeric code becomes its digits", b'{"error": {"message": "m", "code": 400}}', ErrorInfo("m", None, None, "400")),
    ("a boolean code is no code", b'{"error": {"message": "m", "code": true}}', ErrorInfo("m")),
    ("a code of 0 is a code", b'{"error": {"message": "m", "code": 0}}', ErrorInfo("m", code="0")),
    ("an empty string field is no field", b'{"error": {"message": "m", "type": ""}}', ErrorInfo("m")),
    ("a list field is no field", b'{"error": {"message": "m", "param": ["a"]}}', ErrorInfo("m")),
    ("vLLM: error as a string", b'{"error": "Unauthorized"}', ErrorInfo("Unauthorized")),
    ("fields beside an error string are kept", b'{"error": "m", "type": "t", "code": 7, "param": "p"}', ErrorInfo("m", "p", "t", "7")),
    (
        "SGLang: a top-level message",
        b'{"object": "error", "message": "m", "type": "BadRequestError", "code": 400}',
        ErrorInfo("m", None, "BadRequestError", "400"),
    ),
    ("FastAPI: detail as a string", b'{"detail": "Not Found"}', ErrorInfo("Not Found")),
    (
        "FastAPI: detail as a list names the location",
        b'{"detail": [{"loc": ["body", 0, "content"], "msg": "bad"}]}',
        ErrorInfo("body.0.content: bad"),
    ),
    ("FastAPI: a detail without location is its msg", b'{"detail": [{"msg": "bad"}]}', ErrorInfo("bad")),
    ("FastAPI: an empty location is its msg", b'{"detail": [{"loc": [], "msg": "bad"}]}', ErrorInfo("bad")),
    ("a detail list without msg is not a message", b'{"detail": [{"x": 1}]}', ErrorInfo('{"detail": [{"x": 1}]}')),
    ("an empty detail list is not a message", b'{"detail": []}', ErrorInfo('{"detail": []}')),
    ("error object with msg instead of message", b'{"error": {"msg": "m"}}', ErrorInfo("m")),
    ("error object with detail instead of message", b'{"error": {"detail": "m"}}', ErrorInfo("m")),
    ("message wins over msg and detail", b'{"error": {"message": "a", "msg": "b", "detail": "c"}}', ErrorInfo("a")),
    (
        "an error object's fields win over the outer ones",
        b'{"error": {"message": "m", "type": "inner"}, "type": "outer", "code": 5}',
        ErrorInfo("m", None, "inner", "5"),
    ),
    ("error wins over detail and message", b'{"error": "e", "detail": "d", "message": "m"}', ErrorInfo("e")),
    ("detail wins over message", b'{"detail": "d", "message": "m"}', ErrorInfo("d")),
    ("an empty error string falls to the next", b'{"error": "", "message": "m"}', ErrorInfo("m")),
    ("an error object without a message falls to the next", b'{"error": {"code": 1}, "message": "m"}', ErrorInfo("m")),
    ("a number message is its text", b'{"error": {"message": 42}}', ErrorInfo("42")),
    ("no message anywhere: the body, one line", b'{"error": {"code": 500},\n "x": 1}', ErrorInfo('{"error": {"code": 500}, "x": 1}')),
    (
        "no message anywhere keeps the outer fields",
        b'{"type": "t", "code": "c", "param": "p"}',
        ErrorInfo('{"type": "t", "code": "c", "param": "p"}', "p", "t", "c"),
    ),
    (
        "FastAPI: a detail list keeps the outer fields",
        b'{"detail": [{"loc": ["body"], "msg": "m"}], "type": "t", "code": 9, "param": "p"}',
        ErrorInfo("body: m", "p", "t", "9"),
    ),
    ("plain text is the message, whitespace folded", b"  line one\n\tline two  ", ErrorInfo("line one line two")),
    ("an empty body says so", b"", ErrorInfo("(empty body)")),
    ("a blank body says so", b" \n ", ErrorInfo("(empty body)")),
    ("JSON that is not an object is text", b"[1, 2]", ErrorInfo("[1, 2]")),
    ("invalid UTF-8 is replaced", b"bad \xff", ErrorInfo("bad \ufffd")),
    ("a message over 500 characters is cut with ...", err("x" * 600), ErrorInfo("x" * 497 + "...")),
    ("a message of 500 characters is whole", err("x" * 500), ErrorInfo("x" * 500)),
    ("a message's newlines are folded", err("a\n\nb"), ErrorInfo("a b")),
]


# A hostile error body is text, never a Python error (a fix: these raised UnicodeDecodeError / RecursionError).
DEEP = b"[" * 5000 + b"]" * 5000
HOSTILE_BODY_ROWS: list[tuple[str, bytes, ErrorInfo]] = [
    (
        "invalid UTF-8 inside a JSON string is text",
        b'{"error": {"message": "bad \xff"}}',
        ErrorInfo('{"error": {"message": "bad \ufffd"}}'),
    ),
    ("invalid UTF-8 inside an error string is text", b'{"error": "\xc3("}', ErrorInfo('{"error": "\ufffd("}')),
    (
        "JSON nested too deeply is text, cut to one line",
        b'{"error": ' + DEEP + b"}",
        ErrorInfo(('{"error": ' + DEEP.decode())[:497] + "..."),
    ),
    (
        "JSON nested too deeply in a field beside the message is text",
        b'{"error": {"message": "m"}, "x": ' + DEEP + b"}",
        ErrorInfo(('{"error": {"message": "m"}, "x": ' + DEEP.decode())[:497] + "..."),
    ),
]


@pytest.mark.parametrize(("rule", "body", "info"), HOSTILE_BODY_ROWS, ids=[row[0] for row in HOSTILE_BODY_ROWS])
@pytest.mark.parametrize(("status", "error_class"), [(400, "format"), (401, "auth"), (503, "overloaded")])
def test_a_hostile_error_body_is_classified_by_its_status(rule: str, body: bytes, info: ErrorInfo, status: int, error_class: str) -> None:
    assert error_info(body) == info
    error = http_error(status, body, url="u", ref="r", context=CTX)
    assert (error.error_class, error.server_message) == (error_class, info.message)


@pytest.mark.parametrize(("rule", "body", "info"), BODY_ROWS, ids=[row[0] for row in BODY_ROWS])
def test_error_body_rule(rule: str, body: bytes, info: ErrorInfo) -> None:
    assert error_info(body) == info
    assert server_message(body) == (info.message, info.param)


# --- in-stream failures: event_failure ----------------------------------------------------------

# (rule, answer so far, event, class or None, message, hint)
EVENT_ROWS: list[tuple[str, list[Event], Event, str | None, str | None, str | None]] = [
    ("text is no failure", [], TextDelta("a"), None, None, None),
    ("usage is no failure", [], Usage(1, 1, 2), None, None, None),
    ("finish stop is no failure", [], Finish("stop"), None, None, None),
    ("finish length is no failure (a cut answer is an answer)", [], Finish("length"), None, None, None),
    ("finish tool_calls is no failure", [], Finish("tool_calls"), None, None, None),
    ("finish function_call is no failure", [], Finish("function_call"), None, None, None),
    ("an error object in the stream is server_error", [], ServerError("boom", "InternalServerError", "500"), "server_error", "boom", None),
    (
        "an in-stream error saying the prompt is too long is overflow",
        [],
        ServerError("prompt is too long"),
        "context_overflow",
        "prompt is too long",
        OVERFLOW_HINT,
    ),
    (
        "an in-stream error's code can say overflow",
        [],
        ServerError("x", None, "context_length_exceeded"),
        "context_overflow",
        "x",
        OVERFLOW_HINT,
    ),
    (
        "an in-stream error's param can say overflow",
        [],
        ServerError("x", None, None, "input_tokens"),
        "context_overflow",
        "x",
        OVERFLOW_HINT,
    ),
    (
        "an in-stream overflow wording about max_tokens is not overflow",
        [],
        ServerError("maximum context length", None, None, "max_tokens"),
        "server_error",
        "maximum context length",
        None,
    ),
    (
        "an in-stream error with a known fix has its hint",
        [],
        ServerError("tools param requires --jinja flag"),
        "server_error",
        "tools param requires --jinja flag",
        NO_TOOLS,
    ),
    ("a stream fault is protocol", [], StreamFault("malformed chunk (x): y"), "protocol", "malformed chunk (x): y", None),
    ("an unknown finish_reason is protocol", [], Finish("eos_token"), "protocol", "unknown finish_reason 'eos_token'", None),
    (
        "content_filter is not a completion: protocol",
        [],
        Finish("content_filter"),
        "protocol",
        "unknown finish_reason 'content_filter'",
        None,
    ),
    (
        "finish error (inferrs): server_error quoting the text so far",
        [TextDelta("it broke")],
        Finish("error"),
        "server_error",
        "the server reported an error: it broke",
        None,
    ),
    ("finish error without text says so", [], Finish("error"), "server_error", "the server reported an error: (no message)", None),
    (
        "finish error quotes only the last 300 characters, one line",
        [TextDelta("a" * 500 + "\nend")],
        Finish("error"),
        "server_error",
        "the server reported an error: " + ("a" * 500 + " end")[-300:].lstrip(),
        None,
    ),
    (
        "finish error whose text says overflow is context_overflow",
        [TextDelta("the prompt is too long")],
        Finish("error"),
        "context_overflow",
        "the server reported an error: the prompt is too long",
        OVERFLOW_HINT,
    ),
    ("reasoning is no failure", [], ReasoningDelta("r"), None, None, None),
    ("a tool call is no failure", [], ToolCallDelta(0, "a", "f", ""), None, None, None),
]


@pytest.mark.parametrize(("rule", "before", "event", "error_class", "message", "hint"), EVENT_ROWS, ids=[row[0] for row in EVENT_ROWS])
def test_event_rule(rule: str, before: list[Event], event: Event, error_class: str | None, message: str | None, hint: str | None) -> None:
    answer = Aggregator()
    for earlier in before:
        answer.add(earlier)
    error = event_failure(event, answer, url="http://h/v1/chat/completions", ref="vllm/m", context=CTX)
    if error_class is None:
        assert error is None
        return
    assert error is not None
    assert (error.error_class, error.server_message, error.hint) == (error_class, message, hint)
    assert (error.status, error.url, error.ref) == (200, "http://h/v1/chat/completions", "vllm/m")


def test_an_in_stream_error_keeps_failover_and_an_overflow_does_not() -> None:
    """Failover after an in-stream error: server_error fails over, context_overflow never does."""
    answer = Aggregator()
    boom = event_failure(ServerError("boom"), answer, url="u", ref="r", context=CTX)
    overflow = event_failure(ServerError("prompt is too long"), answer, url="u", ref="r", context=CTX)
    fault = event_failure(StreamFault("bad"), answer, url="u", ref="r", context=CTX)
    assert boom is not None and overflow is not None and fault is not None
    assert boom.error_class in FAILOVER_CLASSES and fault.error_class in FAILOVER_CLASSES
    assert overflow.error_class not in FAILOVER_CLASSES


def test_in_stream_errors_are_scrubbed() -> None:
    ctx = HintContext("p", "http://h/v1", "p/m", "path", "none", None, None, Secrets(["sk-live-999"]))
    for event in (ServerError("key sk-live-999 refused"), StreamFault("echo sk-live-999"), Finish("weird sk-live-999")):
        error = event_failure(event, Aggregator(), url="u", ref="r", context=ctx)
        assert error is not None and "sk-live-999" not in str(error)
    answer = Aggregator()
    answer.add(TextDelta("leak sk-live-999"))
    error = event_failure(Finish("error"), answer, url="u", ref="r", context=ctx)
    assert error is not None and "sk-live-999" not in str(error)
