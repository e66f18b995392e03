"""OpenTelemetry against the real llama.cpp server (fixture ``llamacpp_url``): what a real streamed answer and a
real failure export (pipeline/otel.py's rules 1, 2, 4, 5, 6, 8)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from pipeline.api import Genesis
from pipeline.errors import ProviderError
from tests.conftest import LLAMACPP_KEY
from tests.test_otel import Exported, attributes, exported_text

pytestmark = [pytest.mark.anyio, pytest.mark.llamacpp]


def configured(url: str, exported: Exported, key: str = LLAMACPP_KEY) -> Genesis:
    text = f'{{models: {{providers: {{llamacpp: {{baseUrl: "{url}", apiKey: "{key}", maxRetries: 0, models: [{{id: "tiny-model"}}]}}}}}}}}'
    return Genesis.from_config_text(text, env={}, telemetry=exported.telemetry)


async def test_a_streamed_answer_from_llamacpp(llamacpp_url: str, anyio_backend: str) -> None:
    exported = Exported()
    request: dict[str, Any] = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8, "temperature": 0, "stream": True}
    async with configured(llamacpp_url, exported) as g:
        completion = await g.run("llamacpp/tiny-model", request)
    run, [tried] = exported.run(), exported.tries()
    found = attributes(run)
    assert (run.name, run.kind, run.status.status_code) == ("chat tiny-model", SpanKind.CLIENT, StatusCode.UNSET)
    assert (found["gen_ai.provider.name"], found["gen_ai.request.model"], found["gen_ai.request.max_tokens"]) == (
        "llamacpp",
        "tiny-model",
        8,
    )
    assert found["gen_ai.response.finish_reasons"] == (completion.raw_finish_reason,)
    assert completion.usage is not None and found["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens > 0
    assert found["gen_ai.response.time_to_first_chunk"] > 0 and found["server.port"] == int(llamacpp_url.rsplit(":", 1)[1].split("/")[0])
    assert attributes(tried)["http.response.status_code"] == 200
    assert {name for name in exported.metrics()} == {
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.time_to_first_chunk",
    }


async def test_a_wrong_key_is_an_auth_failure_and_no_key_is_exported(llamacpp_url: str, anyio_backend: str) -> None:
    exported = Exported(capture_content=True)
    async with configured(llamacpp_url, exported, key="sk-wrong-otel-5150") as g:
        with pytest.raises(ProviderError) as caught:
            await g.run("llamacpp/tiny-model", {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4})
    assert caught.value.error_class == "auth"
    assert attributes(exported.run())["error.type"] == attributes(exported.tries()[0])["error.type"] == "auth"
    assert LLAMACPP_KEY not in exported_text(exported) and "sk-wrong-otel-5150" not in exported_text(exported)
