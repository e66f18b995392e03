"""extractThinkTags against a real llama.cpp server (tests/servers/llamacpp.sh, the tiny random-weight model).

The tiny model never writes think tags by itself, so a GBNF ``grammar`` (a llama.cpp request field)
makes it: ``<think>``, a few letters, ``</think>``, two newlines, a few letters. With
``temperature: 0`` the answer is repeatable, and llama.cpp streams the tag in pieces (``<``, ``th``,
``in``, ``k``, ``>``). The tiny model's chat template has no reasoning format, so llama.cpp leaves
the tags in ``content`` (what a server without a reasoning parser does).

The step runs over the events ``Genesis.run`` reports, one event per read. Until the runner applies
answer-side stages itself, the run's own completion still holds the tags; once it does, the events
come out already extracted and a second pass changes nothing (no tag is left): both give the same.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from backends.stream import Aggregator
from pipeline.api import Genesis
from pipeline.events import Event
from tests.conftest import LLAMACPP_KEY
from transforms.think_tags import extract_think_tags

pytestmark = [pytest.mark.anyio, pytest.mark.llamacpp]

REF = "llamacpp/tiny-model"
GRAMMAR = r'root ::= "<think>" [a-z ]{3,12} "</think>\n\n" [a-z ]{2,10}'


def config_text(url: str) -> str:
    return f"""{{
      models: {{ providers: {{
        llamacpp: {{ baseUrl: "{url}", apiKey: "{LLAMACPP_KEY}",
                     models: [{{ id: "tiny-model", contextWindow: 2048, compat: {{ extractThinkTags: true }} }}] }},
      }} }},
    }}"""


async def answer(genesis: Genesis, stream: bool) -> tuple[str, str, tuple[str, ...], str]:
    """(text, reasoning, the step's notes) after the step, and the run's own text."""
    request: dict[str, Any] = {
        "messages": [{"role": "user", "content": "Think first."}],
        "max_tokens": 48,
        "temperature": 0,
        "grammar": GRAMMAR,
        "stream": stream,
    }
    events: list[Event] = []
    completion = await genesis.run(REF, request, on_event=events.append)
    step = extract_think_tags(genesis.shape(REF, request).unwrap())
    assert step is not None
    aggregator = Aggregator()
    for event in events:
        for out in step.feed([event]):
            aggregator.add(out)
    for out in step.finish():
        aggregator.add(out)
    extracted = aggregator.completion()
    return extracted.text, extracted.reasoning, step.notes(), completion.text


async def test_think_tags_from_a_real_server_become_reasoning_streamed_or_not(llamacpp_url: str) -> None:
    async with Genesis.from_config_text(config_text(llamacpp_url), env={}) as genesis:
        streamed = await answer(genesis, stream=True)
        whole = await answer(genesis, stream=False)
    text, reasoning, notes, run_text = streamed
    assert re.fullmatch(r"[a-z ]{3,12}", reasoning), reasoning
    assert re.fullmatch(r"[a-z ]{2,10}", text), text
    assert run_text in (f"<think>{reasoning}</think>\n\n{text}", text)  # before / after the runner applies the step
    if run_text != text:
        assert notes == (f"reasoning extracted from <think>: {len(reasoning)} chars", "whitespace after </think> dropped: 2 chars")
    assert whole[:2] == streamed[:2]
