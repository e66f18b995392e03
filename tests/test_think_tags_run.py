"""``extractThinkTags`` in a whole run: the built-in answer-side stage is wired after parse_stream.

The rules themselves are pinned in tests/test_think_tags.py (the step alone); these rows check the
wiring: the flag switches the step on through ``Genesis.run`` for streamed and non-streamed answers,
its notes reach ``Completion.answer_trace``, and without the flag the text is left as it came.
"""

from __future__ import annotations

import json

import pytest

from pipeline.api import Genesis
from pipeline.events import Finish, TextDelta
from tests.conftest import genesis_from
from tests.replay import Recording, Replay, sse_of

pytestmark = pytest.mark.anyio

CONFIG = """{
  models: { providers: {
    a: { baseUrl: "http://a.invalid/v1", models: [{ id: "m", %s }] },
  } },
}"""
PROMPT = {"messages": [{"role": "user", "content": "2+2?"}]}
ANSWER = "<think>Two plus two.</think>\n\n4"
STREAMED = sse_of([TextDelta("<thi"), TextDelta("nk>Two plus"), TextDelta(" two.</th"), TextDelta("ink>\n\n4"), Finish("stop")], done=True)
WHOLE = json.dumps(
    {
        "id": "c",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
    }
).encode()


def genesis_with(compat: str, recording: Recording) -> Genesis:
    genesis = genesis_from(CONFIG % compat, {})
    genesis.pipeline = genesis.pipeline.replace("send", Replay(recording))
    return genesis


# (rule, compat block, recording, stream, expected text, expected reasoning, a note that must be in the trace)
ROWS = [
    (
        "streamed: the block becomes reasoning",
        "compat: { extractThinkTags: true }",
        Recording.sse(STREAMED),
        True,
        "4",
        "Two plus two.",
        "reasoning extracted from <think>",
    ),
    (
        "streamed, one byte per read",
        "compat: { extractThinkTags: true }",
        Recording.sse(STREAMED, piece_size=1),
        True,
        "4",
        "Two plus two.",
        "reasoning extracted from <think>",
    ),
    (
        "non-streamed: the same completion",
        "compat: { extractThinkTags: true }",
        Recording.whole(WHOLE),
        False,
        "4",
        "Two plus two.",
        "reasoning extracted from <think>",
    ),
    ("flag off: the text is left as it came", "", Recording.sse(STREAMED), True, ANSWER, "", None),
    ("flag false: the same as off", "compat: { extractThinkTags: false }", Recording.whole(WHOLE), False, ANSWER, "", None),
]


@pytest.mark.parametrize(
    ("compat", "recording", "stream", "text", "reasoning", "note"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
async def test_extract_think_tags_in_a_run(
    compat: str, recording: Recording, stream: bool, text: str, reasoning: str, note: str | None
) -> None:
    genesis = genesis_with(compat, recording)
    async with genesis:
        completion = await genesis.run("a/m", {**PROMPT, "stream": stream})
    assert (completion.text, completion.reasoning or "") == (text, reasoning)
    notes = [entry.note for entry in completion.answer_trace if entry.stage == "extract_think_tags"]
    if note is None:
        assert notes == []
    else:
        assert any(note in line for line in notes), completion.answer_trace
