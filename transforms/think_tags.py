"""Answer-side stage: ``<think>...</think>`` inside text becomes reasoning (compat ``extractThinkTags``).

Servers without a reasoning parser (llama.cpp without ``--reasoning-format``,
Ollama's OpenAI route for some models, vLLM without ``--reasoning-parser``)
stream a model's reasoning inline in ``content``. This step moves it out of
``TextDelta`` into ``ReasoningDelta``. Rules, per choice:

- Outside a block, ``<think>`` opens one (anywhere in the text, any number of
  times); inside, ``</think>`` closes it. Tags match exactly (``<thinking>``,
  ``<Think>``, ``< think>`` and ``a < b`` are text). The tags themselves go.
- ``"startsInside"``: the chat template opened the block in the prompt, so the
  answer starts inside it and everything up to the first ``</think>`` is
  reasoning (a ``<think>`` in there is reasoning too). After it, as ``true``.
  A choice whose server sends reasoning apart (a ``ReasoningDelta`` before any
  text) is not inside: the server already took the block out.
- Whitespace (space, tab, CR, LF) right after ``</think>`` is dropped, up to
  the first other character of the answer (models write ``</think>\\n\\n``);
  the reasoning itself is kept as written. llama.cpp's own parser skips the
  same whitespace (common/chat-parser.cpp, ``try_parse_reasoning``).
- A piece of text that may be the start of a tag (``<``, ``<th``, ``</thi``
  at the end of a delta) is held back until the next text of its choice says
  what it is; text that turns out not to be a tag is released as it was, in
  order. Held text is released before its choice's ``Finish`` and at
  ``finish()``; a block still open then stays reasoning, and ``notes()`` says so.
- Every other event passes through untouched, in order; a text delta this step
  does not change is passed on as the same object. Events are never mutated.

Streamed and non-streamed answers give the same text and reasoning: the rules
read characters, not deltas.

>>> from pipeline.events import Finish, TextDelta
>>> step = ThinkTags(starts_inside=False)
>>> step.feed([TextDelta("<thi"), TextDelta("nk>plan</think>\\n\\nHi"), Finish("stop")])
[ReasoningDelta(text='plan', choice=0), TextDelta(text='Hi', choice=0), Finish(reason='stop', choice=0)]
>>> step.notes()
('reasoning extracted from <think>: 4 chars', 'whitespace after </think> dropped: 2 chars')
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.answer import AnswerStep
from pipeline.events import Event, Finish, ReasoningDelta, TextDelta
from pipeline.types import Context

OPEN = "<think>"
CLOSE = "</think>"
_AFTER_CLOSE = " \t\r\n"


def extract_think_tags(ctx: Context) -> AnswerStep | None:
    """A fresh step when the target's ``extractThinkTags`` is on, else None (the run skips it)."""
    target = ctx.target
    if target is None:
        return None
    flag = target.model.compat.extract_think_tags
    if flag is False:
        return None
    return ThinkTags(starts_inside=flag == "startsInside")


def held_length(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` may be the start of ``tag`` (0 when none).

    A tag starts with its only ``<``, so only the last ``<`` can begin one, and only within
    the last ``len(tag) - 1`` characters (a whole tag would have been found).

    >>> held_length("a <th", OPEN), held_length("a < b", OPEN), held_length("x</", CLOSE), held_length("<think", CLOSE)
    (3, 0, 2, 0)
    """
    start = text.rfind("<", 1 - len(tag))
    if start < 0 or not tag.startswith(text[start:]):
        return 0
    return len(text) - start


class _Choice:
    """Where one choice is: inside a block or not, the text held back, whether whitespace is being dropped."""

    __slots__ = ("block_chars", "dropping", "held", "inside", "seen_text")

    def __init__(self, inside: bool) -> None:
        self.inside = inside
        self.held = ""
        self.dropping = False
        self.block_chars = 0
        self.seen_text = False


class ThinkTags:
    """One attempt's state (see the module's rules); built by ``extract_think_tags``."""

    __slots__ = ("_choices", "_dropped", "_reasoning_chars", "_saw_tag", "_server_reasoning", "_starts_inside", "_unclosed")

    def __init__(self, *, starts_inside: bool) -> None:
        self._starts_inside = starts_inside
        self._choices: dict[int, _Choice] = {}
        self._reasoning_chars = 0
        self._saw_tag = False
        self._dropped = 0
        self._unclosed: list[tuple[int, int]] = []  # (choice, chars) of blocks still open at the end
        self._server_reasoning: list[int] = []  # choices where startsInside did not apply

    def feed(self, events: Sequence[Event]) -> Sequence[Event]:
        out: list[Event] = []
        for event in events:
            kind = type(event)
            if kind is TextDelta:
                assert isinstance(event, TextDelta)
                self._text(event, out)
            elif kind is Finish:
                assert isinstance(event, Finish)
                self._end(event.choice, out)
                out.append(event)
            else:
                if kind is ReasoningDelta:
                    assert isinstance(event, ReasoningDelta)
                    self._server_sent_reasoning(event.choice)
                out.append(event)
        return out

    def finish(self) -> Sequence[Event]:
        out: list[Event] = []
        for index in sorted(self._choices):
            self._end(index, out)
        return out

    def notes(self) -> tuple[str, ...]:
        lines: list[str] = []
        if self._saw_tag or self._reasoning_chars:
            lines.append(f"reasoning extracted from <think>: {self._reasoning_chars} chars")
        if self._dropped:
            lines.append(f"whitespace after </think> dropped: {self._dropped} chars")
        for index, chars in self._unclosed:
            lines.append(f"no </think> before the answer ended: {chars} chars kept as reasoning{_of(index)}")
        for index in self._server_reasoning:
            lines.append(f"startsInside not applied: the server sent reasoning apart{_of(index)}")
        return tuple(lines)

    def _choice(self, index: int) -> _Choice:
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice(self._starts_inside)
        return state

    def _server_sent_reasoning(self, index: int) -> None:
        state = self._choice(index)
        if state.inside and not state.seen_text:
            state.inside = False
            self._server_reasoning.append(index)

    def _text(self, event: TextDelta, out: list[Event]) -> None:
        state = self._choice(event.choice)
        state.seen_text = state.seen_text or bool(event.text)
        if not (state.inside or state.held or state.dropping) and "<" not in event.text:
            out.append(event)  # the common case: plain text, passed on as it came
            return
        pieces: list[tuple[bool, str]] = []  # (is reasoning, text), in order
        rest = state.held + event.text
        state.held = ""
        while rest:
            if state.dropping:
                kept = rest.lstrip(_AFTER_CLOSE)
                self._dropped += len(rest) - len(kept)
                rest = kept
                state.dropping = not rest
            tag = CLOSE if state.inside else OPEN
            at = rest.find(tag)
            if at < 0:
                held = held_length(rest, tag)
                state.held = rest[len(rest) - held :]
                self._piece(state, rest[: len(rest) - held], pieces)
                break
            self._piece(state, rest[:at], pieces)
            rest = rest[at + len(tag) :]
            self._saw_tag = True
            state.dropping = state.inside
            state.inside = not state.inside
            state.block_chars = 0
        if pieces == [(False, event.text)]:
            out.append(event)
        else:
            _emit(pieces, event.choice, out)

    def _piece(self, state: _Choice, text: str, pieces: list[tuple[bool, str]]) -> None:
        if text:
            pieces.append((state.inside, text))
            if state.inside:
                self._reasoning_chars += len(text)
                state.block_chars += len(text)

    def _end(self, index: int, out: list[Event]) -> None:
        """The choice ended: held text is what it looked like (not a tag), an open block stays reasoning."""
        state = self._choices.get(index)
        if state is None:
            return
        pieces: list[tuple[bool, str]] = []
        self._piece(state, state.held, pieces)
        state.held = ""
        _emit(pieces, index, out)
        if state.inside and state.seen_text:
            self._unclosed.append((index, state.block_chars))
        state.inside = False


def _emit(pieces: list[tuple[bool, str]], choice: int, out: list[Event]) -> None:
    for is_reasoning, text in pieces:
        out.append(ReasoningDelta(text, choice) if is_reasoning else TextDelta(text, choice))


def _of(index: int) -> str:
    return f" (choice {index})" if index else ""
