"""Rule table: a model's token limit when its entry sets none (pipeline/config.py ``max_tokens_limit``).

README "Choices where the spec is silent": the limit is the entry's ``maxTokens``; without one, the
default (8192) cut to the model's context window, since no answer can be longer than the window
(discovered models once showed maxTokens 8192 against a 1k context). The default is a catalog
figure, never sent: a request carries a limit only when it or the entry sets one (vLLM rejects a
limit above its context length), so discovery must not write one into the entries it makes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec
import pytest

from backends.discovery import models_from_listing
from pipeline.api import Genesis
from pipeline.catalog import build_catalog
from pipeline.config import DEFAULT_MAX_TOKENS, ModelConfig


class Row(NamedTuple):
    rule: str
    entry: dict[str, Any]  # ModelConfig fields
    limit: int


ROWS: dict[str, Row] = {
    "no_window_default": Row("no window and no maxTokens: the default", {}, DEFAULT_MAX_TOKENS),
    "window_larger_default": Row("a window larger than the default: the default", {"context_window": 131072}, DEFAULT_MAX_TOKENS),
    "window_smaller_cuts": Row("a window smaller than the default: the window", {"context_window": 1024}, 1024),
    "window_equal": Row("a window equal to the default: either", {"context_window": DEFAULT_MAX_TOKENS}, DEFAULT_MAX_TOKENS),
    "window_one_below": Row(
        "a window one below the default: the window", {"context_window": DEFAULT_MAX_TOKENS - 1}, DEFAULT_MAX_TOKENS - 1
    ),
    "explicit_kept": Row(
        "an explicit maxTokens is the entry's own, whatever the window", {"max_tokens": 300, "context_window": 128000}, 300
    ),
    "explicit_over_window_kept": Row(
        "an explicit maxTokens above the window is kept as written (it is what the request carries)",
        {"max_tokens": 4096, "context_window": 1024},
        4096,
    ),
}


@pytest.mark.parametrize("row", ROWS.values(), ids=list(ROWS))
def test_max_tokens_limit(row: Row) -> None:
    assert ModelConfig(id="m", **row.entry).max_tokens_limit == row.limit, row.rule


class DiscoveredRow(NamedTuple):
    rule: str
    served: dict[str, Any]
    window: int
    limit: int


DISCOVERED: dict[str, DiscoveredRow] = {
    "vllm_max_model_len": DiscoveredRow(
        "vLLM's max_model_len is the window; the limit stays within it", {"max_model_len": 1024}, 1024, 1024
    ),
    "llamacpp_n_ctx": DiscoveredRow("llama.cpp's meta.n_ctx is the window; the limit stays within it", {"meta": {"n_ctx": 512}}, 512, 512),
    "large_window": DiscoveredRow("a large window: the default limit", {"max_model_len": 32768}, 32768, DEFAULT_MAX_TOKENS),
    "no_length": DiscoveredRow("no length: the 128000 window and the default limit", {}, 128000, DEFAULT_MAX_TOKENS),
}


@pytest.mark.parametrize("row", DISCOVERED.values(), ids=list(DISCOVERED))
def test_a_discovered_model_never_has_a_limit_above_its_window(row: DiscoveredRow) -> None:
    [model] = models_from_listing(msgspec.json.encode({"data": [{"id": "tiny-model", **row.served}]}))
    assert (model.context_window, model.max_tokens_limit) == (row.window, row.limit), row.rule
    assert model.max_tokens is msgspec.UNSET, "discovery writes no limit: an explicit one would be sent"


def test_a_discovered_model_sends_no_default_limit() -> None:
    genesis = Genesis.from_config_text("{}", env={"VLLM_API_KEY": "k"})
    discovered = build_catalog(
        genesis.loaded, genesis.env, {"vllm": models_from_listing(b'{"data": [{"id": "tiny-model", "max_model_len": 1024}]}')}
    )
    wire = genesis.pipeline.build(discovered, {"messages": [{"role": "user", "content": "hi"}]}, ref="vllm/tiny-model").unwrap()
    body = msgspec.json.decode(wire.body)
    assert "max_tokens" not in body and "max_completion_tokens" not in body
