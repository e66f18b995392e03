"""Embeddings from a real vLLM with the pooling runner (marker ``vllm``; fixture ``vllm_pooling_url``).

The server is the suite's tiny model run as an embedding model (``--runner pooling --convert embed``:
the last token's hidden state, normalized), with Matryoshka dimensions 16, 64 and 128 declared
(tests/conftest.py ``VLLM_POOLING_ARGS``). What vLLM answers, and where its source says it:

- ``POST /v1/embeddings``: ``vllm/entrypoints/pooling/embed/protocol.py`` (``EmbeddingCompletionRequest``:
  a string, strings, token ids; ``dimensions``) and ``serving.py``: one unit vector of 128 numbers per input,
  ``usage.prompt_tokens``;
- ``dimensions``: ``vllm/pooling_params.py`` ``_set_default_parameters``: one of the declared Matryoshka
  dimensions truncates (and renormalizes); another is a 400 "only supports Matryoshka dimensions", one out
  of ``[1, 128]`` a 400 "only supports dimensions in range" (a model that declares none: every one is a 400);
- routes: ``vllm/entrypoints/launchers/api_server/routers.py`` registers the chat routes only for the
  ``generate`` task and ``/v1/embeddings`` only for pooling ones, so chat on this server, and embeddings
  on the generating one (``vllm_url``), are FastAPI's bare 404 ``{"detail": "Not Found"}``.

Through the library (``Genesis.embed`` on asyncio and trio, ``embed_sync``) and the CLI (``genesis infer
embedding create``, text and ``--json``); each rule a row.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from pipeline.api import Genesis
from pipeline.embeddings import NO_ROUTE_HINT
from pipeline.errors import ErrorClass, ProviderError
from tests.conftest import VLLM_KEY, VLLM_POOLING_DIMENSIONS

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parent.parent
WIDTH = max(VLLM_POOLING_DIMENSIONS)  # the tiny model's hidden size: its vectors' length
KEY = "test-key"  # the pooling server's: the fixture starts it


def config_text(url: str, key: str = KEY) -> str:
    return f'{{models: {{providers: {{vllm: {{baseUrl: "{url}", apiKey: "{key}", maxRetries: 0, models: [{{id: "tiny-model"}}]}}}}}}}}'


def genesis(url: str, key: str = KEY) -> Genesis:
    return Genesis.from_config_text(config_text(url, key), env={})


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(number * number for number in vector))


# ---- the library ----


def test_a_batch_comes_back_in_input_order_through_the_library(vllm_pooling_url: str) -> None:
    records: list[Any] = []
    embeddings = genesis(vllm_pooling_url).embed_sync("vllm/tiny-model", ["hello", "world", "hello"], audit=records.append)
    assert (len(embeddings.vectors), embeddings.dimensions, embeddings.server_model) == (3, WIDTH, "tiny-model")
    assert all(abs(norm(vector) - 1) < 1e-3 for vector in embeddings.vectors)  # vLLM normalizes embed vectors
    first, second, third = embeddings.vectors
    assert first != second and all(abs(a - b) < 1e-2 for a, b in zip(first, third, strict=True))  # same text, same vector
    assert embeddings.usage is not None and embeddings.usage.prompt_tokens > 0
    assert [(record.ok, record.status) for record in records] == [(True, 200)]
    assert records[0].request is not None and records[0].request.url == f"{vllm_pooling_url}/embeddings"


@pytest.mark.anyio
async def test_embed_on_the_callers_loop(vllm_pooling_url: str, anyio_backend: str) -> None:
    async with genesis(vllm_pooling_url) as client:
        embeddings = await client.embed("vllm/tiny-model", {"input": [[1, 2, 3], [4, 5]]})  # token ids
    assert len(embeddings.vectors) == 2 and embeddings.dimensions == WIDTH


# ---- dimensions ----


class Dimensions(NamedTuple):
    rule: str
    dimensions: int
    width: int | None  # None: refused
    message: str = ""


DIMENSIONS = [
    Dimensions("a declared Matryoshka dimension truncates", 16, 16),
    Dimensions("another declared one", 64, 64),
    Dimensions("an undeclared one is a format error", 32, None, "only supports Matryoshka dimensions [16, 64, 128], got 32"),
    Dimensions("one beyond the hidden size is a format error", 1000, None, "only supports dimensions in range [1, 128], got 1000"),
]


@pytest.mark.parametrize("row", DIMENSIONS, ids=[row.rule for row in DIMENSIONS])
def test_dimensions(vllm_pooling_url: str, row: Dimensions) -> None:
    request = {"input": ["hello", "world"], "dimensions": row.dimensions}
    if row.width is not None:
        embeddings = genesis(vllm_pooling_url).embed_sync("vllm/tiny-model", request)
        assert [len(vector) for vector in embeddings.vectors] == [row.width, row.width]
        assert all(abs(norm(vector) - 1) < 1e-3 for vector in embeddings.vectors)  # renormalized after the cut
        return
    with pytest.raises(ProviderError) as caught:
        genesis(vllm_pooling_url).embed_sync("vllm/tiny-model", request)
    assert (caught.value.error_class, caught.value.status) == (ErrorClass.FORMAT, 400)
    assert row.message in caught.value.server_message


# ---- errors: each a typed class, the server's message, a hint where one is known ----


# The route hint, not the unknown-model one: the model is listed, the chat route is missing.
NO_CHAT_ROUTE = "vLLM started with --runner pooling serves embeddings only"


class Refusal(NamedTuple):
    rule: str
    call: Callable[[str], object]  # given the pooling server's URL
    error_class: ErrorClass
    status: int
    message: str
    hint: str | None  # a text the hint holds; None: no hint expected


REFUSALS = [
    Refusal(
        "chat on the pooling server: no chat route (backends.classify ROUTE_RULES)",
        lambda url: genesis(url).run_sync("vllm/tiny-model", {"messages": [{"role": "user", "content": "hi"}]}),
        ErrorClass.MODEL_NOT_FOUND,
        404,
        "Not Found",
        NO_CHAT_ROUTE,
    ),
    Refusal(
        "chat streamed on the pooling server: the same 404, before any stream",
        lambda url: list(genesis(url).stream_sync("vllm/tiny-model", {"messages": [{"role": "user", "content": "hi"}], "stream": True})),
        ErrorClass.MODEL_NOT_FOUND,
        404,
        "Not Found",
        NO_CHAT_ROUTE,
    ),
    Refusal(
        "a wrong key",
        lambda url: genesis(url, key="not-the-key").embed_sync("vllm/tiny-model", "hello"),
        ErrorClass.AUTH,
        401,
        "Unauthorized",
        "apiKey",
    ),
    Refusal(
        "a model the server does not serve",
        lambda url: Genesis.from_config_text(
            f'{{models: {{providers: {{vllm: {{baseUrl: "{url}", apiKey: "{KEY}", maxRetries: 0, models: [{{id: "other"}}]}}}}}}}}', env={}
        ).embed_sync("vllm/other", "hello"),
        ErrorClass.MODEL_NOT_FOUND,
        404,
        "does not exist",
        "/models lists the ones it does",
    ),
]


@pytest.mark.parametrize("row", REFUSALS, ids=[row.rule for row in REFUSALS])
def test_refusals_are_typed(vllm_pooling_url: str, row: Refusal) -> None:
    with pytest.raises(ProviderError) as caught:
        row.call(vllm_pooling_url)
    error = caught.value
    assert (error.error_class, error.status) == (row.error_class, row.status)
    assert row.message in error.server_message and "Traceback" not in str(error)
    if row.hint is not None:
        assert error.hint is not None and row.hint in error.hint


def test_embeddings_from_the_generating_server_say_how_to_serve_them(vllm_url: str) -> None:
    """The suite's other vLLM runs the generate runner: no /v1/embeddings route (pipeline.embeddings rule 5)."""
    with pytest.raises(ProviderError) as caught:
        genesis(vllm_url, key=VLLM_KEY).embed_sync("vllm/tiny-model", "hello")
    error = caught.value
    assert (error.error_class, error.status, error.server_message, error.hint) == (
        ErrorClass.MODEL_NOT_FOUND,
        404,
        "Not Found",
        NO_ROUTE_HINT,
    )


# ---- the CLI ----


def genesis_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pipeline.cli", "infer", "embedding", "create", "--config", str(config), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    )


@pytest.fixture
def pooling_config(vllm_pooling_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "genesis.json5"
    path.write_text(config_text(vllm_pooling_url))
    return path


def test_the_cli_prints_a_vector_per_line(pooling_config: Path) -> None:
    done = genesis_cli(pooling_config, "--model", "vllm/tiny-model", "--text", "hello", "--text", "world")
    assert done.returncode == 0, done.stderr
    vectors = [json.loads(line) for line in done.stdout.splitlines()]
    assert [len(vector) for vector in vectors] == [WIDTH, WIDTH] and vectors[0] != vectors[1]


def test_the_cli_json(pooling_config: Path) -> None:
    done = genesis_cli(pooling_config, "--model", "vllm/tiny-model", "--text", "hello", "--json")
    answer = json.loads(done.stdout)
    assert (answer["ok"], answer["dimensions"], [item["index"] for item in answer["data"]]) == (True, WIDTH, [0])
    assert answer["usage"]["promptTokens"] > 0 and answer["attempts"] == [
        {"provider": "vllm", "model": "tiny-model", "ok": True, "status": 200}
    ]


def test_the_cli_json_error(pooling_config: Path) -> None:
    done = genesis_cli(pooling_config, "--model", "vllm/tiny-model", "--text", "hello", "--json", "--dimensions", "32")
    answer = json.loads(done.stdout)
    assert (done.returncode, answer["ok"], answer["error"]["class"]) == (1, False, "format")
    assert "Matryoshka" in answer["error"]["message"] and KEY not in done.stdout + done.stderr
