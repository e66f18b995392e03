"""Rule table for the apply defaults stage (transforms/apply_defaults.py).

README: "adds `agents.defaults.models[ref].params` the request leaves out, and the model's `maxTokens`
when the entry sets one". The request always wins; the limit goes under the endpoint's maxTokensField.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest

from tests.rules.support import NATIVE_URL, config, context, shaped, trace_lines
from transforms.apply_defaults import apply_defaults

STAGE = "apply_defaults"
BASE = {"messages": [{"role": "user", "content": "hi"}]}
PARAMS = 'models: {"p/m": {params: {temperature: 0.2, top_p: 0.9}}}'


class Row(NamedTuple):
    rule: str
    config: str
    extra: dict[str, Any]
    added: dict[str, Any]  # what the stage adds to BASE + extra
    trace: list[str]
    ref: str = "p/m"


ROWS: dict[str, Row] = {
    "params_added": Row(
        "agents.defaults.models[ref].params are added when the request leaves them out",
        config(agents=PARAMS),
        {},
        {"temperature": 0.2, "top_p": 0.9},
        ['temperature added: agents.defaults.models["p/m"].params', 'top_p added: agents.defaults.models["p/m"].params'],
    ),
    "request_wins_over_params": Row(
        "the request wins over params",
        config(agents=PARAMS),
        {"temperature": 1.0},
        {"top_p": 0.9},
        ['top_p added: agents.defaults.models["p/m"].params'],
    ),
    "request_null_still_wins": Row(
        "a field the request sets, even to null, is not filled",
        config(agents=PARAMS),
        {"temperature": None, "top_p": None},
        {},
        [],
    ),
    "params_of_other_ref_not_used": Row(
        "only the resolved ref's params apply",
        config(agents='models: {"p/other": {params: {temperature: 0.2}}}'),
        {},
        {},
        [],
    ),
    "params_found_via_alias": Row(
        "an alias resolves to its ref, whose params apply",
        config(agents='models: {"p/m": {alias: "fast", params: {seed: 7}}}'),
        {},
        {"seed": 7},
        ['seed added: agents.defaults.models["p/m"].params'],
        "fast",
    ),
    "max_tokens_from_entry_proxy": Row(
        "maxTokens set on the entry: added under max_tokens on proxy-style endpoints",
        config("maxTokens: 512"),
        {},
        {"max_tokens": 512},
        ["max_tokens added: maxTokens of model p/m"],
    ),
    "max_tokens_from_entry_native": Row(
        "maxTokens set on the entry: added under max_completion_tokens on native endpoints",
        config("maxTokens: 512", base_url=NATIVE_URL),
        {},
        {"max_completion_tokens": 512},
        ["max_completion_tokens added: maxTokens of model p/m"],
    ),
    "max_tokens_field_flag": Row(
        "maxTokens goes under the model's maxTokensField",
        config('maxTokens: 100, compat: {maxTokensField: "max_completion_tokens"}'),
        {},
        {"max_completion_tokens": 100},
        ["max_completion_tokens added: maxTokens of model p/m"],
    ),
    "no_max_tokens_without_entry_value": Row(
        "an entry without maxTokens sends no limit (the 8192 default is a catalog figure)",
        config(),
        {},
        {},
        [],
    ),
    "request_max_tokens_wins": Row(
        "the request's max_tokens wins over the entry's maxTokens",
        config("maxTokens: 512"),
        {"max_tokens": 5},
        {},
        [],
    ),
    "request_max_completion_tokens_wins": Row(
        "the request's max_completion_tokens counts as a limit too",
        config("maxTokens: 512"),
        {"max_completion_tokens": 5},
        {},
        [],
    ),
    "params_limit_wins_over_entry": Row(
        "a limit from params wins over the entry's maxTokens",
        config("maxTokens: 512", agents='models: {"p/m": {params: {max_completion_tokens: 64}}}'),
        {},
        {"max_completion_tokens": 64},
        ['max_completion_tokens added: agents.defaults.models["p/m"].params'],
    ),
    "params_then_limit": Row(
        "params and the limit together, params first",
        config("maxTokens: 512", agents='models: {"p/m": {params: {temperature: 0}}}'),
        {},
        {"temperature": 0, "max_tokens": 512},
        ['temperature added: agents.defaults.models["p/m"].params', "max_tokens added: maxTokens of model p/m"],
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_defaults_rule(row: Row) -> None:
    ctx = context(row.config, {**BASE, **row.extra}, ref=row.ref)
    after = shaped(apply_defaults, ctx)
    expected = {**BASE, **row.extra, **row.added}
    assert after.body == expected
    assert list(after.body) == list(expected)
    assert trace_lines(after, STAGE) == row.trace
    if not row.trace:
        assert after is ctx
