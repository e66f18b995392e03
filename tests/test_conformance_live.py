"""The conformance rows that have a reproducible request, sent again to the real servers.

vLLM (fixture ``vllm_url``) and llama.cpp's llama-server (fixture ``llamacpp_url``)
run here with key ``test-key`` and model ``tiny-model``. Each row's ``live``
request goes out as the row says (the key right, wrong, or missing; an over-long
prompt where ``long_prompt`` is set), and the live answer must match the
transcript in status, media type and class (errors), or in shape (answers): the
model's text is random, so token counts, ids and text are not compared, but
where usage comes, which choices answer, whether tool calls come, whether the
stream ends with [DONE] and carries timings are.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
import pytest

from tests.conftest import LLAMACPP_KEY, VLLM_KEY
from tests.test_conformance import TRANSCRIPTS, Outcome, Transcript, run

SERVERS = {"vllm": ("vllm_url", pytest.mark.vllm), "llamacpp": ("llamacpp_url", pytest.mark.llamacpp)}
KEYS = {"vllm": VLLM_KEY, "llamacpp": LLAMACPP_KEY}  # VLLM_KEY: GENESIS_TEST_VLLM_KEY for a server named by the user
MODEL = "tiny-model"


def request_body(t: Transcript) -> dict[str, Any]:
    assert t.live is not None
    body: dict[str, Any] = {"model": MODEL, **t.live["body"]}
    if "long_prompt" in t.live:  # more tokens than the server's context holds
        body["messages"] = [{"role": "user", "content": "hello " * int(t.live["long_prompt"])}]
    return body


def headers(t: Transcript) -> dict[str, str]:
    assert t.live is not None
    auth = t.live["auth"]
    return {"good": {"Authorization": f"Bearer {KEYS[t.table]}"}, "wrong": {"Authorization": "Bearer wrong-key"}, "none": {}}[auth]


def sse_payloads(body: bytes) -> list[Any]:
    """The JSON of every ``data:`` line, ``"[DONE]"`` kept as a string; independent of Genesis's parser."""
    out: list[Any] = []
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def shape(t: Transcript, outcome: Outcome) -> dict[str, Any]:
    """What must agree between a transcript and the live answer to the same request."""
    media = t.content_type.split(";")[0].strip()
    if outcome.error is not None:
        return {"status": t.status, "media": media, "class": outcome.error.error_class}
    completion = outcome.completion
    assert completion is not None
    if media != "text/event-stream":
        document = json.loads(t.body)
        return {
            "status": t.status,
            "media": media,
            "usage": completion.usage is not None,
            "timings": "timings" in document,
            "finish": completion.finish_reason == "tool_use",
            "tools": [c.name for c in completion.tool_calls],
        }
    frames = sse_payloads(t.body)
    chunks = [f for f in frames if isinstance(f, dict)]
    return {
        "status": t.status,
        "media": media,
        "done": frames[-1:] == ["[DONE]"],
        "usage_in_empty_choices_chunk": any(c.get("choices") == [] and c.get("usage") for c in chunks),
        "usage_on_a_choice_chunk": any(c.get("choices") and c.get("usage") for c in chunks),
        "choices": sorted({choice["index"] for c in chunks for choice in c.get("choices") or []}),
        "first_delta_has_role": bool(chunks) and bool(chunks[0]["choices"]) and "role" in chunks[0]["choices"][0]["delta"],
        "timings": any("timings" in c for c in chunks),
        "finish": completion.finish_reason == "tool_use",
        "tools": [c.name for c in completion.tool_calls],
    }


ROWS = [pytest.param(t, id=t.id, marks=[SERVERS[t.table][1]]) for t in TRANSCRIPTS if t.live is not None]


@pytest.mark.parametrize("t", ROWS)
def test_live_answer_matches_transcript(t: Transcript, request: pytest.FixtureRequest) -> None:
    base_url: str = request.getfixturevalue(SERVERS[t.table][0])
    with httpx.Client(timeout=300) as client:
        response = client.post(f"{base_url}/chat/completions", json=request_body(t), headers=headers(t))
    live = dataclasses.replace(t, status=response.status_code, content_type=response.headers.get("content-type", ""), body=response.content)
    assert shape(live, run(live)) == shape(t, run(t)), response.text[:2000]


def test_every_live_row_is_for_a_live_server() -> None:
    assert {t.table for t in TRANSCRIPTS if t.live is not None} <= set(SERVERS)
    assert {t.live["auth"] for t in TRANSCRIPTS if t.live is not None} <= {"good", "wrong", "none"}
