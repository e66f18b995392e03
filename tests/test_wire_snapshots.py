"""Each stage, snapshot-tested on the wire payload over a table of cases.

For every case the snapshot holds, stage by stage, what the stage changed
(its trace) and the body after it, then the final request exactly as it
would be sent (secrets redacted). A change in any stage's behaviour shows
up as a reviewable diff in ``snapshots/``.
"""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from pipeline.render import as_text
from pipeline.runner import Pipeline
from pipeline.types import Context
from pipeline.wire import encode_wire
from tests.cases import CASES, ENV
from tests.conftest import genesis_from


def stage_by_stage(case: dict[str, Any]) -> str:
    genesis = genesis_from(case["config"], ENV)
    full = genesis.pipeline
    body: Any = dict(case["request"])
    lines: list[str] = []
    ctx: Context | None = None
    for count, stage in enumerate(full.request_stages, start=1):
        partial = Pipeline(full.request_stages[:count])
        ctx = partial.shape(genesis.catalog, case["request"], ref=case["model"], headers=case.get("headers", ())).unwrap()
        lines.append(f"## after {stage.name}")
        lines += [f"  {change}" for change in ctx.trace if change.stage == stage.name] or ["  (no changes)"]
        if ctx.body != body:
            lines.append(msgspec.json.format(msgspec.json.encode(ctx.body), indent=2).decode())
            body = ctx.body
    assert ctx is not None
    lines.append("## wire")
    lines.append(as_text(encode_wire(ctx)))
    return "\n".join(lines)


@pytest.mark.parametrize("name", sorted(CASES))
def test_stages_on_the_wire(name: str, snapshot: Any) -> None:
    assert stage_by_stage(CASES[name]) == snapshot


@pytest.mark.parametrize("name", sorted(CASES))
def test_caller_request_is_never_mutated(name: str) -> None:
    case = CASES[name]
    before = copy.deepcopy(case["request"])
    genesis_from(case["config"], ENV).build(case["model"], case["request"], headers=case.get("headers", ()))
    assert case["request"] == before


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_secret_in_shown_request(name: str) -> None:
    case = CASES[name]
    wire = genesis_from(case["config"], ENV).build(case["model"], case["request"], headers=case.get("headers", ()))
    shown = as_text(wire)
    for secret in (*ENV.values(), "lan-secret-key", "inferrs-local"):
        assert secret not in shown


def test_rendered_headers_are_what_httpx_sends() -> None:
    import httpx

    from pipeline.render import wire_headers

    case = CASES["env_var_keys_and_header_merge"]
    wire = genesis_from(case["config"], ENV).build(case["model"], case["request"], headers=case["headers"])
    request = httpx.Request(wire.method, wire.url, headers=list(wire.headers), content=wire.body)
    sent = [(name.decode(), value.decode()) for name, value in request.headers.raw]
    assert sent == list(wire_headers(wire, show_secrets=True))
