"""Hostile chunks and several choices, end to end through the fault server (asyncio and trio).

A hostile chunk ends in one typed ``protocol`` error naming the problem, never a Python
exception; an answer with several choices keeps them apart, streamed or not.
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.api import Genesis
from pipeline.errors import ProviderError

pytestmark = pytest.mark.anyio


def genesis(fault_server: Any) -> Genesis:
    config = f"""{{
      models: {{ providers: {{
        fault: {{ baseUrl: "{fault_server.base_url}", apiKey: "fault-secret", timeoutSeconds: 30, models: [{{ id: "ok" }}] }},
      }} }},
    }}"""
    return Genesis.from_config_text(config, env={})


def request(stream: bool) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "hi"}], "stream": stream}


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize(
    ("scenario", "words"), [("deep-json", "JSON nested too deeply"), ("bad-utf8", "invalid UTF-8 inside a JSON string")]
)
async def test_hostile_chunk_is_a_protocol_error(fault_server: Any, scenario: str, words: str, stream: bool) -> None:
    async with genesis(fault_server) as g:
        with pytest.raises(ProviderError) as caught:
            await g.run(f"fault/{scenario}", request(stream), fallbacks=False)
    error = caught.value
    assert error.error_class == "protocol" and words in error.server_message
    assert len(error.server_message) < 400  # an excerpt, not 200 KB of brackets


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_two_choices_stay_apart(fault_server: Any, stream: bool) -> None:
    async with genesis(fault_server) as g:
        completion = await g.run("fault/two-choices", {**request(stream), "n": 2})
    assert [(o.index, o.text, o.finish_reason) for o in completion.outputs] == [(0, "Hello", "stop"), (1, "Bonjour", "length")]
    assert (completion.text, completion.finish_reason) == ("Hello", "stop")


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
async def test_parallel_tool_calls_on_one_index_are_two_calls(fault_server: Any, stream: bool) -> None:
    async with genesis(fault_server) as g:
        completion = await g.run("fault/parallel-tools-index0", request(stream))
    assert [(c.id, c.parsed_arguments) for c in completion.tool_calls] == [
        ("call_paris", {"city": "Paris"}),
        ("call_rome", {"city": "Rome"}),
    ]
