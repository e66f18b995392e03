"""The stage runner: the seven stages of the card as data, folded once.

The pipeline lists, in order: the request-side stages (``resolve_ref``,
``apply_defaults``, ``compat_shaping``, ``strip_native_only``,
``attach_headers``), ``send`` (the one stage that does I/O) and
``parse_stream`` (bytes -> typed events), then any answer-side stages.

Rules:
- A request-side stage is a pure function ``Context -> Result[Context, GenesisError]``;
  ``send`` is a ``pipeline.answer.Send``, ``parse_stream`` a ``ParseStream``; an
  answer-side stage is a ``pipeline.answer.AnswerStage``. Where a stage sits says
  which it is: before ``send``, request side; after ``parse_stream``, answer side.
- The list is data: ``Pipeline`` holds ``(name, function)`` pairs; the editing
  methods return a new ``Pipeline`` and never change this one. ``send`` and
  ``parse_stream`` can be replaced (they keep their names) but not removed, and
  nothing goes between them. A function whose return annotation says it is of
  the other side is refused where it is put; one that is not annotated is
  caught when it returns the other side's value.
- Building folds the request-side stages in order (``Result.bind``, unwrapped: a
  step hands on a Context or the error that ends the run): the first Failure
  stops the fold. Answering is the session's
  (``backends.session``): it calls ``send``, feeds each read to ``parse_stream``
  and, only when some answer-side stage has a step for this request, through
  ``answer_chain``.
- One guard (``_guarded``) wraps every call of a stage: an exception, or a return
  of the wrong kind, becomes a StageError naming the stage. (A build specialises it:
  a custom request-side stage's Result is checked by its concrete class first; a
  built-in one is called unwrapped, its ``run`` returning the Context or the error,
  so a build makes no ``Success`` per stage.) Every change a custom
  request-side stage makes is in the trace under its name in the pipeline: what it
  recorded, or, when it recorded nothing, the differences the runner sees; a drop
  it did not record is recorded for it, so no removal is ever silent.
- The built-in answer-side steps (``transforms.think_tags``, driven by a compat
  flag) run right after ``parse_stream``, before the custom ones; they are not
  listed: a flag turns them on, not the list.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any, NamedTuple, TypeVar

import msgspec
from returns.result import Failure, Result, Success

from pipeline.answer import AnswerStage, AnswerStep, ParseStream, Send
from pipeline.errors import ConfigError, ConfigIssue, GenesisError, StageError
from pipeline.events import (
    AttemptFailed,
    Event,
    Finish,
    ReasoningDelta,
    ServerError,
    StageNote,
    StreamFault,
    TextDelta,
    Timings,
    ToolCallDelta,
    Usage,
)
from pipeline.request import check_request
from pipeline.trace import UNRECORDED_DROP, observed_changes, observed_header_changes, removed
from pipeline.types import Context, Headers, WireRequest
from pipeline.wire import encode_wire

SEND = "send"
PARSE_STREAM = "parse_stream"
_EVENT_TYPES = (TextDelta, ReasoningDelta, ToolCallDelta, Usage, Timings, Finish, ServerError, StreamFault, AttemptFailed)


class NamedStage(NamedTuple):
    name: str
    run: Any  # a Stage before send, a Send, a ParseStream, an AnswerStage after parse_stream


Step = Callable[[Context], "Context | GenesisError"]


def default_stages() -> tuple[NamedStage, ...]:
    """The card's seven stages, their default implementations (imported on first use: ``import pipeline`` stays cheap)."""
    from backends.http import send
    from backends.stream import parse_stream
    from transforms.apply_defaults import apply_defaults
    from transforms.attach_headers import attach_headers
    from transforms.compat_shaping import compat_shaping
    from transforms.resolve_ref import resolve_ref
    from transforms.strip_native_only import strip_native_only

    return (
        NamedStage("resolve_ref", resolve_ref),
        NamedStage("apply_defaults", apply_defaults),
        NamedStage("compat_shaping", compat_shaping),
        NamedStage("strip_native_only", strip_native_only),
        NamedStage("attach_headers", attach_headers),
        NamedStage(SEND, send),
        NamedStage(PARSE_STREAM, parse_stream),
    )


def _unwrapped_builtins() -> dict[Any, Callable[[Context], Context | GenesisError]]:
    """Each built-in request-side stage, by its Result form, and the function it wraps (``run``: the new
    Context, or the error). The runner calls that function itself: a build makes no ``Success`` per stage."""
    from transforms import apply_defaults, attach_headers, compat_shaping, resolve_ref, strip_native_only

    return {
        resolve_ref.resolve_ref: resolve_ref.run,
        apply_defaults.apply_defaults: apply_defaults.run,
        compat_shaping.compat_shaping: compat_shaping.run,
        strip_native_only.strip_native_only: strip_native_only.run,
        attach_headers.attach_headers: attach_headers.run,
    }


def builtin_answer_stages() -> tuple[NamedStage, ...]:
    """The built-in answer-side stages, run right after parse_stream whenever they return a step.

    Each is switched on by a compat flag and returns None otherwise (so it costs nothing):
    ``extract_think_tags`` moves ``<think>...</think>`` from text to reasoning (``extractThinkTags``).
    """
    from transforms.think_tags import extract_think_tags

    return (NamedStage("extract_think_tags", extract_think_tags),)


class Pipeline:
    """An immutable, ordered list of named stages.

    >>> p = Pipeline()
    >>> p.names
    ('resolve_ref', 'apply_defaults', 'compat_shaping', 'strip_native_only', 'attach_headers', 'send', 'parse_stream')
    >>> p.remove("strip_native_only").names[-4:]
    ('compat_shaping', 'attach_headers', 'send', 'parse_stream')
    """

    __slots__ = ("_answer", "_builtin_answer", "_count_events", "_request_count", "_steps", "stages")

    def __init__(
        self,
        stages: Iterable[NamedStage | tuple[str, Any]] | None = None,
        *,
        answer_builtins: Iterable[NamedStage | tuple[str, AnswerStage]] | None = None,
        count_events: bool = False,
    ) -> None:
        """``stages`` None: the seven defaults. A list without ``send`` is request-side only: it can
        shape and build, not run. ``answer_builtins`` None: ``builtin_answer_stages()``.
        ``count_events``: parse_stream's notes count the events by kind (``--explain``; a step on every read)."""
        chosen = default_stages() if stages is None else tuple(NamedStage(*stage) for stage in stages)
        names = [stage.name for stage in chosen]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise StageError(duplicates[0], "appears twice in the pipeline; stage names must be unique")
        if (SEND in names) != (PARSE_STREAM in names) or (SEND in names and names.index(PARSE_STREAM) != names.index(SEND) + 1):
            raise StageError(PARSE_STREAM, "must come right after send: send's bytes are what it parses")
        request_count = names.index(SEND) if SEND in names else len(chosen)
        self.stages: tuple[NamedStage, ...] = chosen
        self._request_count = request_count
        builtins = builtin_answer_stages() if answer_builtins is None else tuple(NamedStage(*stage) for stage in answer_builtins)
        self._builtin_answer = builtins
        self._answer: tuple[NamedStage, ...] = builtins + chosen[request_count + 2 :]
        self._count_events = count_events
        unwrapped = _unwrapped_builtins()
        self._steps: tuple[Step, ...] = tuple(
            _builtin_step(stage.name, unwrapped[stage.run]) if stage.run in unwrapped else _request_step(stage)
            for stage in chosen[:request_count]
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    @property
    def request_stages(self) -> tuple[NamedStage, ...]:
        """The stages before send: they shape the request."""
        return self.stages[: self._request_count]

    @property
    def answer_stages(self) -> tuple[NamedStage, ...]:
        """The stages after parse_stream (built-ins first): they transform the answer's events."""
        return self._answer

    @property
    def send(self) -> Send:
        run: Send = self._stage(SEND).run
        return run

    @property
    def parse_stream(self) -> ParseStream:
        run: ParseStream = self._stage(PARSE_STREAM).run
        return run

    def counting_events(self) -> Pipeline:
        """This pipeline, with parse_stream's notes counting the events by kind (for ``--explain``)."""
        return Pipeline(self.stages, answer_builtins=self._builtin_answer, count_events=True)

    def insert_before(self, anchor: str, name: str, stage: Any) -> Pipeline:
        index = self._index(anchor)
        return self._edited(self.stages[:index] + (NamedStage(name, stage),) + self.stages[index:], index, stage)

    def insert_after(self, anchor: str, name: str, stage: Any) -> Pipeline:
        index = self._index(anchor) + 1
        return self._edited(self.stages[:index] + (NamedStage(name, stage),) + self.stages[index:], index, stage)

    def replace(self, anchor: str, stage: Any, name: str | None = None) -> Pipeline:
        """Put ``stage`` in ``anchor``'s place; ``send`` and ``parse_stream`` keep their names (they are the card's slots)."""
        index = self._index(anchor)
        kept = anchor if anchor in (SEND, PARSE_STREAM) else (name or anchor)
        chosen = self.stages[:index] + (NamedStage(kept, stage),) + self.stages[index + 1 :]
        return self._edited(chosen, index, stage if anchor not in (SEND, PARSE_STREAM) else None)

    def remove(self, anchor: str) -> Pipeline:
        index = self._index(anchor)
        if anchor in (SEND, PARSE_STREAM):
            raise StageError(anchor, f"cannot be removed: a run needs it; replace it instead (Pipeline.replace({anchor!r}, ...))")
        return self._with(self.stages[:index] + self.stages[index + 1 :])

    def run(self, ctx: Context) -> Result[Context, GenesisError]:
        """Fold the request-side stages over a context; the first Failure ends the run."""
        shaped = self._fold(ctx)
        return Failure(shaped) if isinstance(shaped, GenesisError) else Success(shaped)

    def _fold(self, ctx: Context) -> Context | GenesisError:
        """``run``'s fold, unwrapped: each step hands on a Context, or the error that ends the run."""
        for step in self._steps:
            shaped = step(ctx)
            if isinstance(shaped, GenesisError):
                return shaped
            ctx = shaped
        return ctx

    def shape(
        self,
        catalog: Any,
        request: Mapping[str, Any],
        *,
        ref: str | None = None,
        headers: Headers | Sequence[tuple[str, str]] = (),
    ) -> Result[Context, GenesisError]:
        """Run every request-side stage over a request; the context holds the shaped body and the trace."""
        shaped = self._shaped(catalog, request, ref, headers)
        return Failure(shaped) if isinstance(shaped, GenesisError) else Success(shaped)

    def _shaped(
        self, catalog: Any, request: Mapping[str, Any], ref: str | None, headers: Headers | Sequence[tuple[str, str]]
    ) -> Context | GenesisError:
        try:
            body = check_request(request)
        except GenesisError as exc:
            return exc
        return self._fold(Context(catalog=catalog, request=request, body=body, ref=ref, caller_headers=tuple(headers)))

    def build(
        self,
        catalog: Any,
        request: Mapping[str, Any],
        *,
        ref: str | None = None,
        headers: Headers | Sequence[tuple[str, str]] = (),
    ) -> Result[WireRequest, GenesisError]:
        """Shape a request and encode it into the exact wire request (its ``trace`` and ``target`` at hand)."""
        shaped = self._shaped(catalog, request, ref, headers)
        return Failure(shaped) if isinstance(shaped, GenesisError) else _encode(shaped)

    def answer_chain(self, ctx: Context) -> AnswerChain | None:
        """This attempt's answer-side steps, or None when no stage has one for this request.

        Each stage is called once, under the guard; one that returns None is left out,
        so a run whose stages all return None reads the answer exactly as without them.
        """
        steps: list[tuple[str, AnswerStep]] = [(PARSE_STREAM, _EventCounter())] if self._count_events else []
        for name, stage in self._answer:
            step = _guarded(name, stage, ctx, _answer_start_problem)
            if isinstance(step, GenesisError):
                raise step
            if step is not None:
                steps.append((name, step))
        return AnswerChain(tuple(steps)) if steps else None

    def _index(self, anchor: str) -> int:
        for index, stage in enumerate(self.stages):
            if stage.name == anchor:
                return index
        raise StageError(anchor, f"no such stage; the pipeline has: {', '.join(self.names)}")

    def _stage(self, name: str) -> NamedStage:
        for stage in self.stages[self._request_count :]:
            if stage.name == name:
                return stage
        raise StageError(name, "this pipeline has no such stage: it can build requests, not run them")

    def _edited(self, chosen: tuple[NamedStage, ...], index: int, stage: Any) -> Pipeline:
        """A new pipeline with ``stage`` at ``index``, refused where its kind does not belong."""
        name = chosen[index].name
        if (
            name != PARSE_STREAM
            and 0 < index < len(chosen) - 1
            and (chosen[index - 1].name, chosen[index + 1].name) == (SEND, PARSE_STREAM)
        ):
            raise StageError(name, "cannot go between send and parse_stream: insert it before send or after parse_stream")
        new = self._with(chosen)
        side = "request" if index < new._request_count else ("answer" if index > new._request_count + 1 else None)
        declared = _declared_side(stage) if stage is not None else None
        if side is not None and declared is not None and declared != side:
            where = "before send" if declared == "request" else "after parse_stream"
            raise StageError(name, f"is {declared}-side (its return annotation says so) but sits on the {side} side; put it {where}")
        return new

    def _with(self, chosen: tuple[NamedStage, ...]) -> Pipeline:
        return Pipeline(chosen, answer_builtins=self._builtin_answer, count_events=self._count_events)

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(self.names)})"


class AnswerChain:
    """One attempt's answer-side steps, in order; every call guarded (a bad step raises a StageError naming it)."""

    __slots__ = ("_steps",)

    def __init__(self, steps: tuple[tuple[str, AnswerStep], ...]) -> None:
        self._steps = steps

    def feed(self, events: list[Event]) -> list[Event]:
        for name, step in self._steps:
            events = _checked_events(name, step.feed, events)
        return events

    def finish(self) -> list[Event]:
        """What each step still held, passed through the steps after it."""
        out: list[Event] = []
        for name, step in self._steps:
            if out:
                out = _checked_events(name, step.feed, out)
            out = out + _checked_events(name, _finish_of, step)
        return out

    def notes(self) -> tuple[StageNote, ...]:
        found: list[StageNote] = []
        for name, step in self._steps:
            notes = _guarded(name, _notes_of, step, _notes_problem)
            if isinstance(notes, GenesisError):
                raise notes
            found += [StageNote(name, note) for note in notes]
        return tuple(found)


class _EventCounter:
    """``--explain``'s view of parse_stream: its events by kind (passes them on untouched)."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def feed(self, events: Sequence[Event]) -> Sequence[Event]:
        self._counts.update(type(event).__name__ for event in events)
        return events

    def finish(self) -> Sequence[Event]:
        return ()

    def notes(self) -> tuple[str, ...]:
        if not self._counts:
            return ("events: none",)
        return ("events: " + ", ".join(f"{count} {kind}" for kind, count in sorted(self._counts.items())),)


def _finish_of(step: AnswerStep) -> Sequence[Event]:
    return step.finish()


def _notes_of(step: AnswerStep) -> tuple[str, ...]:
    return step.notes()


def _checked_events(name: str, call: Callable[[Any], Any], argument: Any) -> list[Event]:
    out = _guarded(name, call, argument, _events_problem)
    if isinstance(out, GenesisError):
        raise out
    return out if type(out) is list else list(out)


def _encode(ctx: Context) -> Result[WireRequest, GenesisError]:
    try:
        return Success(encode_wire(ctx))
    except GenesisError as exc:
        return Failure(exc)


# ---- the guard: one wrapper for every call of a stage ----

_In = TypeVar("_In")


def _guarded(name: str, call: Callable[[_In], Any], argument: _In, problem: Callable[[Any], str | None]) -> Any:
    """``call(argument)``, or the GenesisError it becomes: what it raised, or what ``problem`` finds wrong with
    what it returned, as a StageError naming the stage. (Returned, not raised: the caller picks the channel.)"""
    try:
        out = call(argument)
    except GenesisError as exc:
        return exc
    except Exception as exc:  # a bug in a stage must still surface as an error naming it
        return StageError(name, f"raised {type(exc).__name__}: {exc}")
    wrong = problem(out)
    return out if wrong is None else StageError(name, wrong)


def _request_problem(result: Any) -> str | None:
    if isinstance(result, Success):
        new = result.unwrap()
        return None if isinstance(new, Context) else f"returned Success({type(new).__name__}); expected Success(Context)"
    if isinstance(result, Failure):
        error = result.failure()
        return None if isinstance(error, GenesisError) else f"failed: {error}"
    if _is_answer_step(result) or result is None:
        return "returned an answer-side step (or None): answer-side stages go after parse_stream"
    return f"returned {type(result).__name__}; expected Success(context) or Failure(error) from returns.result"


def _answer_start_problem(step: Any) -> str | None:
    if step is None or _is_answer_step(step):
        return None
    if isinstance(step, (Success, Failure)):
        return "returned a Result: it is a request-side stage, and request-side stages go before send"
    return f"returned {type(step).__name__}; expected an AnswerStep (feed, finish, notes) or None"


def _events_problem(events: Any) -> str | None:
    if not isinstance(events, (list, tuple)):
        return f"returned {type(events).__name__}; expected a sequence of events"
    for event in events:
        if not isinstance(event, _EVENT_TYPES):
            return f"returned a sequence holding {type(event).__name__}; expected events (pipeline.events)"
    return None


def _notes_problem(notes: Any) -> str | None:
    if isinstance(notes, (list, tuple)) and all(isinstance(note, str) for note in notes):
        return None
    return f"notes() returned {type(notes).__name__}; expected a tuple of strings"


def _is_answer_step(value: Any) -> bool:
    return all(callable(getattr(value, method, None)) for method in ("feed", "finish", "notes"))


def _declared_side(function: Any) -> str | None:
    """The side a stage's return annotation names, if it names one (``Result``: request, ``AnswerStep``: answer)."""
    try:
        annotation = inspect.signature(function).return_annotation
    except (TypeError, ValueError):
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))
    if "AnswerStep" in text:
        return "answer"
    if "Result" in text:
        return "request"
    return None


def _builtin_step(name: str, run: Callable[[Context], Context | GenesisError]) -> Step:
    """A built-in request-side stage, its unwrapped form under the guard. It returns a Context or a
    GenesisError by its type, so only what it raises is caught; it records each change under its own
    rule (a rename names the new field), so nothing is attributed for it."""

    def step(ctx: Context) -> Context | GenesisError:
        try:
            return run(ctx)
        except GenesisError as exc:
            return exc
        except Exception as exc:  # a bug in a stage must still surface as an error naming it
            return StageError(name, f"raised {type(exc).__name__}: {exc}")

    return step


def _request_step(stage: NamedStage) -> Step:
    """A custom request-side stage under the guard: the Context it returns, or the error it failed with or
    became (what ``_guarded`` does, specialised: a build calls it once per stage). Its changes are
    attributed to it (``_attributed``)."""
    name, run = stage

    def step(ctx: Context) -> Context | GenesisError:
        try:
            result = run(ctx)
        except GenesisError as exc:
            return exc
        except Exception as exc:  # a bug in a stage must still surface as an error naming it
            return StageError(name, f"raised {type(exc).__name__}: {exc}")
        # The concrete classes first: an isinstance against Result's ABCs costs more than most stages' work.
        kind = type(result)
        if kind is Failure and isinstance(result.failure(), GenesisError):
            return result.failure()  # type: ignore[no-any-return]
        new = result.unwrap() if kind is Success else None
        if type(new) is not Context:  # anything else, subclasses included, the long way
            wrong = _request_problem(result)
            if wrong is not None:
                return StageError(name, wrong)
            if isinstance(result, Failure):
                return result.failure()  # type: ignore[no-any-return]
            new = result.unwrap()
        if new is not ctx:
            try:
                return _attributed(name, ctx, new)
            except (AttributeError, TypeError, ValueError) as exc:  # a body that is no dict, headers that are no pairs
                return StageError(name, f"returned a context whose body or headers are malformed ({type(exc).__name__}: {exc})")
        return new

    return step


def _attributed(name: str, before: Context, after: Context) -> Context:
    """A custom stage's result, its trace made complete and named after the stage as the pipeline lists it.

    Rules: the trace only grows (a stage that rewrote the earlier entries gets them back); every
    change recorded during the step is the stage's, under its name in the pipeline (a stage cannot
    know it: the config names it ``module:function``); a stage that recorded nothing gets the
    differences of the body and headers recorded for it; one that recorded some gets its unrecorded
    top-level drops recorded, so no removal is ever silent.
    """
    earlier = before.trace
    if after.trace[: len(earlier)] == earlier:
        recorded = after.trace[len(earlier) :]
    else:
        recorded = tuple(change for change in after.trace if change not in earlier)
    recorded = tuple(change if change.stage == name else msgspec.structs.replace(change, stage=name) for change in recorded)
    if not recorded:
        secrets = frozenset(before.catalog.secrets)
        recorded = (
            *observed_changes(name, before.body, after.body, secrets=secrets),
            *observed_header_changes(name, before.headers, after.headers),
        )
    else:
        declared = {change.field for change in recorded if change.action == "removed"}
        silent = sorted((before.body.keys() - after.body.keys()) - declared)
        recorded += tuple(removed(name, field, UNRECORDED_DROP) for field in silent)
    if recorded == after.trace[len(earlier) :] and after.trace[: len(earlier)] == earlier:
        return after
    return msgspec.structs.replace(after, trace=earlier + recorded)


def load_custom_stages(pipeline: Pipeline, specs: Sequence[Any], source: str = "<config>", folder: str | None = None) -> Pipeline:
    """Apply the config's ``pipeline.stages``: each ``use: "module:function"`` goes before, after or in place of a stage.

    ``folder`` is the config file's own: a module not installed is looked for there
    (``import_stage_module``)."""
    issues: list[ConfigIssue] = []
    not_found = False
    for index, spec in enumerate(specs):
        at = f"pipeline.stages[{index}]"
        module_name, _, function_name = spec.use.partition(":")
        try:
            function = getattr(import_stage_module(module_name, folder), function_name)
        except ImportError as exc:
            looked = "the installed packages" + (f" and {folder}" if folder is not None else "")
            issues.append(ConfigIssue(f"{at}.use", f'cannot import module "{module_name}" (looked in {looked}): {exc}'))
            not_found = True
            continue
        except AttributeError:
            issues.append(ConfigIssue(f"{at}.use", f'module "{module_name}" has no function "{function_name}"'))
            continue
        except Exception as exc:  # the module's own code failed while it loaded: the user's bug, named, not a traceback
            issues.append(ConfigIssue(f"{at}.use", f'module "{module_name}" failed while loading: {type(exc).__name__}: {exc}'))
            continue
        if not callable(function):
            issues.append(ConfigIssue(f"{at}.use", f'"{spec.use}" is not callable'))
            continue
        try:
            if isinstance(spec.before, str):
                pipeline = pipeline.insert_before(spec.before, spec.use, function)
            elif isinstance(spec.after, str):
                pipeline = pipeline.insert_after(spec.after, spec.use, function)
            else:
                pipeline = pipeline.replace(spec.replace, function, spec.use)
        except StageError as exc:
            issues.append(ConfigIssue(at, str(exc)))
    if issues:
        raise ConfigError(source, issues, hint=USE_HINT if not_found else None)
    return pipeline


USE_HINT = (
    "a use: module is imported from the installed packages, else from the config file's folder "
    "(mypkg.stages: mypkg/stages.py next to the config); or add its folder to PYTHONPATH"
)


# The last module each top-level name was loaded as from a config's folder, and that folder: how a load
# tells an installed module (never here) from another config's module of the same name.
_FROM_CONFIG_FOLDER: dict[str, tuple[str, ModuleType]] = {}


def _take_out(top: str) -> dict[str, ModuleType]:
    """Remove ``top`` and its submodules from ``sys.modules``; what was removed."""
    names = [name for name in sys.modules if name == top or name.startswith(top + ".")]
    return {name: sys.modules.pop(name) for name in names}


def import_stage_module(name: str, folder: str | None) -> ModuleType:
    """The module a ``use:`` names: installed (``sys.path``) first, else from ``folder``.

    Rules: an installed module wins, so a file next to the config never shadows one by
    accident; only a missing top-level name is looked for in the folder (a module that is
    found but fails to import its own dependencies fails as it is). The folder is on
    ``sys.path`` only while the module loads, so loading a config leaves the process's
    import path as it was; the module's package keeps its own path for later imports.
    A module from a config's folder is that folder's: a config in another folder naming the
    same module gets its own folder's (loaded afresh; ``sys.modules`` then holds the latest),
    or an installed one, or none; never the first folder's. A failed load puts back what it took out.
    """
    top = name.partition(".")[0]
    last = _FROM_CONFIG_FOLDER.get(top)
    from_folder = last[0] if last is not None and sys.modules.get(top) is last[1] else None
    own = from_folder is not None and from_folder == folder  # this folder's, loaded before: its submodules load from it too
    taken = _take_out(top) if from_folder is not None and not own else {}  # another folder's: not this config's to see
    try:
        if not own:
            try:
                return importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if folder is None or exc.name != top:
                    raise
        assert folder is not None  # own: the folder it came from; otherwise the line above raised
        sys.path.append(folder)
        try:
            importlib.invalidate_caches()  # the folder's listing may have changed since a finder last read it
            module = importlib.import_module(name)
        finally:
            at = len(sys.path) - 1 - sys.path[::-1].index(folder)  # the entry appended above, wherever it moved
            del sys.path[at]
    except BaseException:
        if taken:  # the other folder's modules go back; what this failed load left goes
            _take_out(top)
            sys.modules.update(taken)
        raise
    _FROM_CONFIG_FOLDER[top] = (folder, sys.modules[top])
    return module
