"""Rule table for the resolve ref stage (transforms/resolve_ref.py): the server's model id goes first in the body.

Ref resolution itself has its own table (tests/rules/test_refs.py); these rows pin what the stage does
with the answer: the body's ``model``, the trace, the target, and the "not supported yet" api.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from pipeline.errors import UnsupportedError
from tests.rules.support import config, context, failed, shaped, trace_lines
from transforms.resolve_ref import resolve_ref

STAGE = "resolve_ref"
MESSAGES = [{"role": "user", "content": "hi"}]


class Row(NamedTuple):
    rule: str
    ref: str
    request: dict[str, Any]
    body: dict[str, Any]
    trace: list[str]


ROWS: dict[str, Row] = {
    "model_added_first": Row(
        "the server's model id is added, first in the body",
        "p/m",
        {"messages": MESSAGES},
        {"model": "m", "messages": MESSAGES},
        ["model added: resolved p/m"],
    ),
    "caller_model_replaced": Row(
        "a model the caller put in the body is replaced by the resolved id, and moved first",
        "p/m",
        {"messages": MESSAGES, "model": "other"},
        {"model": "m", "messages": MESSAGES},
        ["model changed: resolved p/m (was 'other')"],
    ),
    "same_model_untraced": Row(
        "the same id already in the body: nothing recorded (it still goes first)",
        "p/m",
        {"messages": MESSAGES, "model": "m"},
        {"model": "m", "messages": MESSAGES},
        [],
    ),
    "synthesized_said": Row(
        "an unlisted id resolves to a synthesized entry, and the trace says so",
        "p/new",
        {"messages": MESSAGES},
        {"model": "new", "messages": MESSAGES},
        ["model added: resolved p/new (not listed in its provider's models: synthesized entry)"],
    ),
    "alias_sends_the_id": Row(
        "an alias sends the model's id, and the trace names the ref",
        "Fast",
        {"messages": MESSAGES},
        {"model": "m", "messages": MESSAGES},
        ["model added: resolved p/m"],
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_resolve_rule(row: Row) -> None:
    text = config(agents='models: {"p/m": {alias: "fast"}}')
    ctx = shaped(resolve_ref, context(text, row.request, ref=row.ref, resolved=False))
    assert ctx.body == row.body
    assert list(ctx.body) == list(row.body)
    assert trace_lines(ctx, STAGE) == row.trace
    assert ctx.target is not None and ctx.target.model.config.id == row.body["model"]


def test_responses_api_is_not_supported_yet() -> None:
    ctx = context(config(provider='api: "openai-responses",'), {"messages": MESSAGES}, resolved=False)
    error = failed(resolve_ref, ctx)
    assert isinstance(error, UnsupportedError)
    assert error.message == 'models.providers.p.api: "openai-responses" is not supported yet'
    assert error.hint == 'use api: "openai-completions" (the default), which vLLM, SGLang, inferrs and llama.cpp all serve'
