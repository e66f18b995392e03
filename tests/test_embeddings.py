"""Embeddings (``pipeline.embeddings``, ``backends.embeddings``, ``Genesis.embed``, ``genesis infer
embedding create``): one table per rule.

- the request: what ``embedding_body`` accepts and refuses;
- the build: which stages run (resolve_ref, attach_headers: the pipeline's own), which do not
  (each in the trace), the URL, the body, the caller's request left as it was;
- the answer: hostile bytes from a real socket (the fault server's ``/v1/embeddings`` scenarios)
  become a typed ``ProviderError`` saying what is wrong, never a traceback;
- the send: retries as chat, audit records, no fallback;
- the CLI: vectors per line, ``--json``, errors with exit codes;
- a real llama.cpp server started with ``--embeddings --pooling mean`` (marker ``llamacpp``).

The shapes are vLLM's (vllm-project/vllm ``vllm/entrypoints/pooling/embed/protocol.py``) and
llama.cpp's (ggml-org/llama.cpp ``tools/server/server-common.cpp``,
``format_embeddings_response_oaicompat``; ``tools/server/server-context.cpp`` refuses pooling
``none`` and answers 501 without ``--embeddings``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from returns.result import Success

from pipeline.api import Genesis
from pipeline.embeddings import SKIPPED_RULE, embedding_body
from pipeline.errors import ErrorClass, ProviderError, RequestError, UnknownModelError
from pipeline.trace import added
from pipeline.types import Context
from tests.conftest import LLAMACPP_KEY, llamacpp_server
from tests.replay import JSON, Recording, Replay

ROOT = Path(__file__).resolve().parent.parent
VECTORS = b'{"data":[{"index":0,"embedding":[0.5,1.0]},{"index":1,"embedding":[2.0,3.0]}],"usage":{"prompt_tokens":4,"total_tokens":4}}'


def offline(**provider: Any) -> Genesis:
    options = "".join(f", {name}: {json.dumps(value)}" for name, value in provider.items())
    text = f'{{models: {{providers: {{vllm: {{baseUrl: "http://127.0.0.1:9/v1", apiKey: "sk-embed"{options}, models: [{{id: "e5"}}]}}}}}}}}'
    return Genesis.from_config_text(text, env={})


def fault(fault_server: Any, **provider: Any) -> Genesis:
    options = "".join(f", {name}: {json.dumps(value)}" for name, value in provider.items())
    text = f'{{models: {{providers: {{fault: {{baseUrl: "{fault_server.base_url}", apiKey: "fault-secret", maxRetries: 0{options}, models: [{{id: "ok"}}]}}}}}}}}'
    return Genesis.from_config_text(text, env={})


# ---- the request ----

ACCEPTED: list[tuple[str, Any, dict[str, Any], int]] = [
    ("a string", "hi", {"input": "hi"}, 1),
    ("a list of strings", ["a", "b", "c"], {"input": ["a", "b", "c"]}, 3),
    ("token ids: one input", {"input": [1, 2, 3]}, {"input": [1, 2, 3]}, 1),
    ("lists of token ids", {"input": [[1, 2], [3]]}, {"input": [[1, 2], [3]]}, 2),
    ("other fields pass through", {"input": "x", "dimensions": 8, "user": "u"}, {"input": "x", "dimensions": 8, "user": "u"}, 1),
    ('encoding_format "float"', {"input": "x", "encoding_format": "float"}, {"input": "x", "encoding_format": "float"}, 1),
    ("stream false is dropped", {"input": "x", "stream": False}, {"input": "x"}, 1),
]


@pytest.mark.parametrize(("request_body", "body", "count"), [row[1:] for row in ACCEPTED], ids=[row[0] for row in ACCEPTED])
def test_accepted_requests(request_body: Any, body: dict[str, Any], count: int) -> None:
    assert embedding_body(request_body) == (body, count)


REFUSED: list[tuple[str, Any, str]] = [
    ("no input", {"dimensions": 8}, "has no input"),
    ("an empty string", "", "empty string"),
    ("an empty list", [], "non-empty list"),
    ("an empty string in the list", ["a", ""], "input[1] is an empty string"),
    ("a number in a list of strings", ["a", 3], "input[1]"),
    ("an empty token list", {"input": [[1], []]}, "input[1]"),
    ("a negative token id", {"input": [[1, -2]]}, "input[0]"),
    ("stream true", {"input": "x", "stream": True}, "never streamed"),
    ("base64", {"input": "x", "encoding_format": "base64"}, "encoding_format 'base64' is not supported"),
    ("dimensions 0", {"input": "x", "dimensions": 0}, "positive integer"),
    ("dimensions as text", {"input": "x", "dimensions": "8"}, "positive integer"),
    ("dimensions true", {"input": "x", "dimensions": True}, "positive integer"),
    ("not a request", 42, "not int"),
]


@pytest.mark.parametrize(("request_body", "message"), [row[1:] for row in REFUSED], ids=[row[0] for row in REFUSED])
def test_refused_requests(request_body: Any, message: str) -> None:
    with pytest.raises(RequestError, match=re.escape(message)):
        embedding_body(request_body)


# ---- the build: which stages run ----


def test_the_wire_request_goes_to_embeddings_with_model_and_key() -> None:
    wire = offline().build_embedding("vllm/e5", ["a", "b"])
    assert (wire.method, wire.url, wire.stream) == ("POST", "http://127.0.0.1:9/v1/embeddings", False)
    assert json.loads(wire.body) == {"model": "e5", "input": ["a", "b"]}
    assert ("Authorization", "Bearer sk-embed") in wire.headers
    assert "sk-embed" not in repr(wire)


def test_each_chat_stage_is_skipped_with_a_trace_line() -> None:
    wire = offline().build_embedding("vllm/e5", "a")
    skipped = {change.stage for change in wire.trace if change.rule == SKIPPED_RULE}
    assert skipped == {"apply_defaults", "compat_shaping", "strip_native_only"}
    ran = {change.stage for change in wire.trace if change.rule != SKIPPED_RULE}
    assert ran == {"resolve_ref", "attach_headers"}


def test_provider_defaults_do_not_reach_an_embeddings_body() -> None:
    """apply_defaults would add chat parameters (here the model's maxTokens); it does not run."""
    text = '{models: {providers: {vllm: {baseUrl: "http://127.0.0.1:9/v1", models: [{id: "e5", maxTokens: 64}]}}}}'
    genesis = Genesis.from_config_text(text, env={})
    assert "max_tokens" in json.loads(genesis.build("vllm/e5", {"messages": [{"role": "user", "content": "hi"}]}).body)
    assert json.loads(genesis.build_embedding("vllm/e5", "a").body) == {"model": "e5", "input": "a"}


def add_seed(ctx: Context) -> Success[Context]:
    return Success(ctx.updated([added("seeded", "seed", "reproducible runs")], body={**ctx.body, "seed": 7}))


def header_stage(ctx: Context) -> Success[Context]:
    return Success(ctx.updated([added("attach_headers", "header X-Mine", "mine")], headers=(*ctx.headers, ("X-Mine", "1"))))


def test_a_custom_chat_stage_is_skipped_and_a_replaced_stage_runs() -> None:
    genesis = offline()
    genesis.pipeline = genesis.pipeline.insert_after("compat_shaping", "seeded", add_seed).replace("attach_headers", header_stage)
    wire = genesis.build_embedding("vllm/e5", "a")
    assert "seed" not in json.loads(wire.body)
    assert any(change.stage == "seeded" and change.rule == SKIPPED_RULE for change in wire.trace)
    assert wire.headers == (("X-Mine", "1"),)  # the replaced attach_headers ran instead of the built-in one


def test_the_callers_request_is_not_changed() -> None:
    request = {"input": ["a"], "stream": False}
    before = json.dumps(request)
    offline().build_embedding("vllm/e5", request)
    assert json.dumps(request) == before


def test_an_unknown_model_is_a_typed_error_naming_the_config() -> None:
    with pytest.raises(UnknownModelError) as caught:
        offline().build_embedding("nope/e5", "a")
    assert "config read" in " ".join(getattr(caught.value, "__notes__", []))


# ---- the answer: hostile bytes over a real socket (the fault server) ----

ANSWERS: list[tuple[str, str, Any, ErrorClass | None, str]] = [
    ("a valid answer", "ok", ["a", "b"], None, ""),
    ("listed last first: put in input order", "embed-reversed", ["a", "b", "c"], None, ""),
    ("an HTML page", "embed-not-json", ["a"], ErrorClass.PROTOCOL, "not JSON"),
    ("one vector short", "embed-short", ["a", "b"], ErrorClass.PROTOCOL, "has 1 vectors for 2 inputs"),
    ("vectors of two sizes", "embed-ragged", ["a", "b"], ErrorClass.PROTOCOL, "vector 1 has 3 numbers; vector 0 has 4"),
    ("base64 strings", "embed-base64", ["a"], ErrorClass.PROTOCOL, "not usable"),
    ("a number beyond float range", "embed-overflow", ["a"], ErrorClass.PROTOCOL, "Number out of range - at `$.data[0].embedding[1]`"),
    ("an error object with status 200", "embed-error-200", ["a"], ErrorClass.PROTOCOL, "missing required field `data`"),
    ("an unknown model: 404", "nope", ["a"], ErrorClass.MODEL_NOT_FOUND, "does not exist"),
]


@pytest.mark.parametrize(("scenario", "texts", "error_class", "message"), [row[1:] for row in ANSWERS], ids=[row[0] for row in ANSWERS])
def test_answers_from_a_socket(fault_server: Any, scenario: str, texts: list[str], error_class: ErrorClass | None, message: str) -> None:
    genesis = fault(fault_server)
    if error_class is None:
        embeddings = genesis.embed_sync(f"fault/{scenario}", texts)
        assert embeddings.vectors == [[float(index), 0.5, -0.25, 1.0] for index in range(len(texts))]
        assert embeddings.usage is not None and embeddings.usage.prompt_tokens == len(texts)
        return
    with pytest.raises(ProviderError) as caught:
        genesis.embed_sync(f"fault/{scenario}", texts)
    assert caught.value.error_class == error_class
    assert message in str(caught.value)
    assert caught.value.hint


BOUNDS: list[tuple[str, str, dict[str, Any], ErrorClass, str]] = [
    ("larger than maxResponseBytes", "embed-huge", {"maxResponseBytes": 1024 * 1024}, ErrorClass.PROTOCOL, "maxResponseBytes"),
    ("a body cut short", "embed-truncated", {}, ErrorClass.PROTOCOL, ""),
]


@pytest.mark.parametrize(("scenario", "provider", "error_class", "message"), [row[1:] for row in BOUNDS], ids=[row[0] for row in BOUNDS])
def test_the_send_stage_bounds_apply(
    fault_server: Any, scenario: str, provider: dict[str, Any], error_class: ErrorClass, message: str
) -> None:
    with pytest.raises(ProviderError) as caught:
        fault(fault_server, **provider).embed_sync(f"fault/{scenario}", ["a"])
    assert caught.value.error_class == error_class
    assert message in str(caught.value)


def test_huge_answer_within_the_bound_is_read(fault_server: Any) -> None:
    """The bound row above fails for the bound, not for the padding: with room, the same answer decodes."""
    assert fault(fault_server).embed_sync("fault/embed-huge", ["a"]).dimensions == 4


def test_dimensions_a_server_ignored_are_refused(fault_server: Any) -> None:
    with pytest.raises(ProviderError) as caught:
        fault(fault_server).embed_sync("fault/ok", {"input": ["a"], "dimensions": 2})
    assert "asked for dimensions 2" in str(caught.value)
    assert caught.value.hint is not None and "ignores dimensions" in caught.value.hint


# ---- the send: retries, audit, no fallback (recorded answers) ----


async def no_wait(seconds: float) -> None:
    return None


def replaying(*recordings: Recording, retries: int = 2) -> tuple[Genesis, Replay]:
    genesis = Genesis(offline(maxRetries=retries).loaded, env={}, sleep=no_wait, random=lambda: 0.0)
    replay = Replay(*recordings)
    genesis.pipeline = genesis.pipeline.replace("send", replay)
    return genesis, replay


def test_overloaded_is_retried_then_answers_with_every_attempt_audited() -> None:
    genesis, replay = replaying(Recording(503, "text/plain", (b"busy",)), Recording.whole(VECTORS))
    records: list[Any] = []
    embeddings = genesis.embed_sync("vllm/e5", ["a", "b"], audit=records.append)
    assert embeddings.vectors == [[0.5, 1.0], [2.0, 3.0]]
    assert [(attempt.ok, attempt.error_class, attempt.retry) for attempt in embeddings.attempts] == [
        (False, ErrorClass.OVERLOADED, 0),
        (True, None, 1),
    ]
    assert [(record.ok, record.status) for record in records] == [(False, 503), (True, 200)]
    assert records[1].request.url.endswith("/embeddings") and "Bearer ***" in records[1].request.headers.values()
    assert records[1].usage is not None and records[1].usage.total_tokens == 4
    assert len(replay.sent) == 2


def test_auth_is_not_retried() -> None:
    genesis, replay = replaying(Recording(401, JSON, (b'{"error":"bad key"}',)), Recording.whole(VECTORS))
    with pytest.raises(ProviderError) as caught:
        genesis.embed_sync("vllm/e5", ["a", "b"])
    assert caught.value.error_class == ErrorClass.AUTH
    assert len(replay.sent) == 1 and len(caught.value.attempts) == 1


def test_no_fallback_model_is_tried() -> None:
    text = """{
      agents: { defaults: { model: { primary: "vllm/e5", fallbacks: ["vllm/other"] } } },
      models: { providers: { vllm: { baseUrl: "http://127.0.0.1:9/v1", maxRetries: 0, models: [{ id: "e5" }, { id: "other" }] } } },
    }"""
    genesis = Genesis.from_config_text(text, env={})
    replay = Replay(Recording(503, "text/plain", (b"busy",)), Recording.whole(VECTORS))
    genesis.pipeline = genesis.pipeline.replace("send", replay)
    with pytest.raises(ProviderError):
        genesis.embed_sync(None, ["a", "b"])
    assert [json.loads(wire.body)["model"] for wire in replay.sent] == ["e5"]


@pytest.mark.anyio
async def test_embed_is_async_on_both_backends(anyio_backend: str) -> None:
    genesis, _ = replaying(Recording.whole(VECTORS))
    async with genesis:
        embeddings = await genesis.embed("vllm/e5", ["a", "b"])
    assert embeddings.dimensions == 2


@pytest.mark.anyio
async def test_embed_sync_inside_a_loop_is_refused(anyio_backend: str) -> None:
    from pipeline.blocking import SyncInsideLoopError

    with pytest.raises(SyncInsideLoopError) as caught:
        offline().embed_sync("vllm/e5", "a")
    assert caught.value.hint is not None and "Genesis.embed" in caught.value.hint


# ---- the CLI ----


def genesis_cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pipeline.cli", "infer", "embedding", "create", "--config", str(config), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    )


@pytest.fixture
def fault_config(fault_server: Any, tmp_path: Path) -> Path:
    path = tmp_path / "genesis.json5"
    path.write_text(f'{{models: {{providers: {{fault: {{baseUrl: "{fault_server.base_url}", apiKey: "fault-secret", maxRetries: 0}}}}}}}}')
    return path


CLI: list[tuple[str, tuple[str, ...], int, str, str]] = [
    ("a vector per line", ("--model", "fault/ok", "--text", "a", "--text", "b"), 0, "[0.0,0.5,-0.25,1.0]\n[1.0,0.5,-0.25,1.0]\n", ""),
    (
        "a typed error, exit 1",
        ("--model", "fault/embed-short", "--text", "a", "--text", "b"),
        1,
        "",
        "protocol: the embeddings answer has 1",
    ),
    ("a request error, exit 2", ("--model", "fault/ok", "--text", ""), 2, "", "input[0] is an empty string"),
    ("an unknown provider, exit 2", ("--model", "nope/x", "--text", "a"), 2, "", "Unknown model"),
]


@pytest.mark.parametrize(("args", "code", "stdout", "stderr"), [row[1:] for row in CLI], ids=[row[0] for row in CLI])
def test_cli(fault_config: Path, args: tuple[str, ...], code: int, stdout: str, stderr: str) -> None:
    done = genesis_cli(*args, config=fault_config)
    assert (done.returncode, done.stdout) == (code, stdout), done.stderr
    assert stderr in done.stderr and "Traceback" not in done.stderr and "fault-secret" not in done.stderr


def test_cli_json(fault_config: Path) -> None:
    done = genesis_cli("--model", "fault/ok", "--text", "a", "--json", config=fault_config)
    answer = json.loads(done.stdout)
    assert answer["ok"] is True and answer["dimensions"] == 4 and answer["data"] == [{"index": 0, "embedding": [0.0, 0.5, -0.25, 1.0]}]
    assert answer["usage"] == {"promptTokens": 1, "totalTokens": 1}
    assert answer["attempts"] == [{"provider": "fault", "model": "ok", "ok": True, "status": 200}]
    failed = json.loads(genesis_cli("--model", "fault/embed-base64", "--text", "a", "--json", config=fault_config).stdout)
    assert failed["ok"] is False and failed["error"]["class"] == "protocol" and failed["attempts"][0]["class"] == "protocol"


def test_cli_audit(fault_config: Path, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    assert genesis_cli("--model", "fault/ok", "--text", "a", "--audit", str(audit), config=fault_config).returncode == 0
    record = msgspec.json.decode(audit.read_bytes().splitlines()[0])
    assert record["request"]["url"].endswith("/v1/embeddings") and record["request"]["headers"]["Authorization"] == "Bearer ***"


# ---- a real llama.cpp server ----


@pytest.fixture(scope="module")
def llamacpp_embeddings_url() -> Iterator[str]:
    """A private llama-server serving ``tiny-model`` for embeddings (mean pooling: the tiny model has none of its own)."""
    from tests.conftest import _require_llamacpp

    _require_llamacpp()
    with llamacpp_server(args=["--embeddings", "--pooling", "mean"]) as server:
        yield server.url


def llamacpp_genesis(url: str) -> Genesis:
    text = f'{{models: {{providers: {{llamacpp: {{baseUrl: "{url}", apiKey: "{LLAMACPP_KEY}", models: [{{id: "tiny-model"}}]}}}}}}}}'
    return Genesis.from_config_text(text, env={})


@pytest.mark.llamacpp
def test_llamacpp_embeds_through_the_library(llamacpp_embeddings_url: str) -> None:
    records: list[Any] = []
    embeddings = llamacpp_genesis(llamacpp_embeddings_url).embed_sync(
        "llamacpp/tiny-model", ["hello", "world", "hello"], audit=records.append
    )
    assert len(embeddings.vectors) == 3 and embeddings.dimensions > 0
    assert embeddings.vectors[0] != embeddings.vectors[1]
    assert embeddings.usage is not None and embeddings.usage.prompt_tokens > 0
    assert [record.ok for record in records] == [True]


@pytest.mark.llamacpp
def test_llamacpp_embeds_through_the_cli(llamacpp_embeddings_url: str, tmp_path: Path) -> None:
    config = tmp_path / "genesis.json5"
    config.write_text(f'{{models: {{providers: {{llamacpp: {{baseUrl: "{llamacpp_embeddings_url}", apiKey: "{LLAMACPP_KEY}"}}}}}}}}')
    done = genesis_cli("--model", "llamacpp/tiny-model", "--text", "hello", "--text", "world", config=config)
    assert done.returncode == 0, done.stderr
    vectors = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 0


@pytest.mark.llamacpp
def test_llamacpp_without_embeddings_is_a_typed_error(llamacpp_url: str) -> None:
    """The suite's shared server runs without --embeddings: llama.cpp answers 501, which is classified."""
    with pytest.raises(ProviderError) as caught:
        llamacpp_genesis(llamacpp_url).embed_sync("llamacpp/tiny-model", "hello")
    assert caught.value.status == 501 and "--embeddings" in caught.value.server_message


@pytest.mark.llamacpp
def test_llamacpp_ignores_dimensions(llamacpp_embeddings_url: str) -> None:
    with pytest.raises(ProviderError) as caught:
        llamacpp_genesis(llamacpp_embeddings_url).embed_sync("llamacpp/tiny-model", {"input": "hello", "dimensions": 4})
    assert caught.value.error_class == ErrorClass.PROTOCOL and "dimensions 4" in str(caught.value)
