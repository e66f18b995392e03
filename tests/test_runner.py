"""The stage runner: the list as data, custom stages, guards, purity."""

from __future__ import annotations

from typing import Any

import pytest
from returns.result import Failure, Result, Success

from pipeline.errors import ConfigError, GenesisError, StageError
from pipeline.runner import Pipeline
from pipeline.trace import added
from pipeline.types import Context
from tests.cases import VLLM
from tests.conftest import genesis_from

REQUEST = {"messages": [{"role": "user", "content": "hi"}], "service_tier": "auto"}
ENV = {"VLLM_API_KEY": "k"}


def add_seed(ctx: Context) -> Result[Context, GenesisError]:
    return Success(ctx.updated([added("add_seed", "seed", "tests want determinism")], body={**ctx.body, "seed": 7}))


def drop_messages_silently(ctx: Context) -> Result[Context, GenesisError]:
    return Success(ctx.updated([], body={k: v for k, v in ctx.body.items() if k != "service_tier"}))


def raises(ctx: Context) -> Result[Context, GenesisError]:
    raise ValueError("boom")


def returns_dict(ctx: Context) -> Any:
    return {"not": "a result"}


def fails_plainly(ctx: Context) -> Any:
    return Failure("nope")


def test_insert_after_and_before() -> None:
    genesis = genesis_from(VLLM, ENV)
    after = genesis.pipeline.insert_after("apply_defaults", "add_seed", add_seed)
    assert after.names.index("add_seed") == after.names.index("apply_defaults") + 1
    wire = after.build(genesis.catalog, REQUEST, ref="vllm/tiny-model").unwrap()
    assert b'"seed":7' in wire.body
    before = genesis.pipeline.insert_before("resolve_ref", "add_seed", add_seed)
    assert before.names[0] == "add_seed"


def test_editing_returns_a_new_pipeline() -> None:
    pipeline = Pipeline()
    pipeline.remove("strip_native_only")
    assert "strip_native_only" in pipeline.names


def test_replace_and_remove() -> None:
    genesis = genesis_from(VLLM, ENV)
    without_strip = genesis.pipeline.remove("strip_native_only")
    assert b"service_tier" in without_strip.build(genesis.catalog, REQUEST, ref="vllm/tiny-model").unwrap().body
    replaced = genesis.pipeline.replace("strip_native_only", add_seed, "add_seed")
    assert "strip_native_only" not in replaced.names and "add_seed" in replaced.names


def test_unknown_anchor_names_the_stages() -> None:
    with pytest.raises(StageError, match="no such stage; the pipeline has: resolve_ref"):
        Pipeline().insert_after("compat", "x", add_seed)


def test_duplicate_names_rejected() -> None:
    with pytest.raises(StageError, match="appears twice"):
        Pipeline().insert_after("apply_defaults", "compat_shaping", add_seed)


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        (raises, "stage 'bad': raised ValueError: boom"),
        (returns_dict, "stage 'bad': returned dict; expected Success(context) or Failure(error)"),
        (fails_plainly, "stage 'bad': failed: nope"),
        (lambda ctx: Success(42), "stage 'bad': returned Success(int); expected Success(Context)"),
    ],
)
def test_bad_custom_stage_is_named(stage: Any, message: str) -> None:
    genesis = genesis_from(VLLM, ENV)
    result = genesis.pipeline.insert_after("apply_defaults", "bad", stage).build(genesis.catalog, REQUEST, ref="vllm/tiny-model")
    assert isinstance(result, Failure)
    assert message in str(result.failure())


def test_silent_drop_by_custom_stage_is_recorded() -> None:
    genesis = genesis_from(VLLM, ENV)
    pipeline = genesis.pipeline.insert_before("strip_native_only", "dropper", drop_messages_silently)
    ctx = pipeline.shape(genesis.catalog, REQUEST, ref="vllm/tiny-model").unwrap()
    [change] = [c for c in ctx.trace if c.field == "service_tier"]
    assert (change.stage, change.action, change.rule) == ("dropper", "removed", "dropped by a custom stage that recorded no rule")


def with_stages(spec: str) -> str:
    return VLLM.rstrip()[:-1] + f"pipeline: {{ stages: [{spec}] }} }}"


def test_config_names_custom_stages() -> None:
    text = with_stages("{ use: 'tests.test_runner:add_seed', after: 'compat_shaping' }")
    genesis = genesis_from(text, ENV)
    assert genesis.pipeline.names[3] == "tests.test_runner:add_seed"
    assert b'"seed":7' in genesis.build("vllm/tiny-model", REQUEST).body


@pytest.mark.parametrize(
    ("use", "position", "message"),
    [
        ("tests.nowhere:fn", "after: 'compat_shaping'", 'cannot import module "tests.nowhere"'),
        ("tests.test_runner:missing", "after: 'compat_shaping'", 'has no function "missing"'),
        ("tests.test_runner:add_seed", "before: 'nope'", "no such stage"),
    ],
)
def test_config_stage_errors_name_the_path(use: str, position: str, message: str) -> None:
    text = with_stages(f"{{ use: '{use}', {position} }}")
    with pytest.raises(ConfigError, match=r"pipeline\.stages\[0\]") as caught:
        genesis_from(text, ENV)
    assert message in str(caught.value)


def test_failure_stops_the_fold() -> None:
    genesis = genesis_from(VLLM, ENV)
    result = genesis.build_result("nowhere/x", REQUEST)
    assert isinstance(result, Failure) and "Unknown model: nowhere/x" in str(result.failure())


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ([], "request: expected a JSON object"),
        ({"messages": "hi"}, "request.messages: expected a non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "request.messages[0].role: expected one of"),
        ({"messages": [{"role": "user", "content": 5}]}, "request.messages[0].content: expected a string or a list"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": {}}, "request.tools: expected a list"),
    ],
)
def test_bad_requests(request_: Any, message: str) -> None:
    result = genesis_from(VLLM, ENV).build_result("vllm/tiny-model", request_)
    assert isinstance(result, Failure) and message in str(result.failure())


def test_unencodable_body_is_a_request_error() -> None:
    result = genesis_from(VLLM, ENV).build_result("vllm/tiny-model", {**REQUEST, "extra": object()})
    assert isinstance(result, Failure) and "cannot be encoded as JSON" in str(result.failure())


def test_responses_api_not_supported_yet() -> None:
    text = "{models: {providers: {o: {baseUrl: 'https://api.openai.com/v1', api: 'openai-responses', models: [{id: 'm'}]}}}}"
    result = genesis_from(text).build_result("o/m", REQUEST)
    assert isinstance(result, Failure)
    assert 'models.providers.o.api: "openai-responses" is not supported yet' in str(result.failure())
