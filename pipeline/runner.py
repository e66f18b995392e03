"""The stage runner: a stage list as data, folded once.

Rules:
- A stage is a pure function ``Context -> Result[Context, GenesisError]``.
- The list is data: ``Pipeline`` holds ``(name, function)`` pairs; the
  editing methods return a new ``Pipeline`` and never change this one.
- Running is ``functools.reduce`` over ``Result.bind``: the first Failure
  stops the fold. The runner adds no logic of its own beyond a guard per
  stage, built once when the pipeline is made: a stage that raises, or
  returns something other than a Result holding a Context, fails with an
  error naming it; a custom stage that drops a body field without recording
  why gets the drop recorded for it, so no removal is ever silent.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import reduce
from typing import Any, NamedTuple

from returns.result import Failure, Result, Success

from pipeline.errors import ConfigError, ConfigIssue, GenesisError, StageError
from pipeline.request import check_request
from pipeline.trace import removed
from pipeline.types import Context, Headers, Stage, WireRequest
from pipeline.wire import encode_wire


class NamedStage(NamedTuple):
    name: str
    run: Stage


Step = Callable[[Context], "Result[Context, GenesisError]"]


def default_stages() -> tuple[NamedStage, ...]:
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
    )


class Pipeline:
    """An immutable, ordered list of named stages.

    >>> p = Pipeline()
    >>> p.names
    ('resolve_ref', 'apply_defaults', 'compat_shaping', 'strip_native_only', 'attach_headers')
    >>> p.remove("strip_native_only").names[-2:]
    ('compat_shaping', 'attach_headers')
    """

    __slots__ = ("_steps", "stages")

    def __init__(self, stages: Iterable[NamedStage | tuple[str, Stage]] | None = None) -> None:
        chosen = default_stages() if stages is None else tuple(NamedStage(*stage) for stage in stages)
        names = [stage.name for stage in chosen]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise StageError(duplicates[0], "appears twice in the pipeline; stage names must be unique")
        builtin = {stage.run for stage in default_stages()}
        self.stages: tuple[NamedStage, ...] = chosen
        self._steps: tuple[Step, ...] = tuple(_guard(stage, trusted=stage.run in builtin) for stage in chosen)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    def insert_before(self, anchor: str, name: str, stage: Stage) -> Pipeline:
        index = self._index(anchor)
        return Pipeline(self.stages[:index] + (NamedStage(name, stage),) + self.stages[index:])

    def insert_after(self, anchor: str, name: str, stage: Stage) -> Pipeline:
        index = self._index(anchor) + 1
        return Pipeline(self.stages[:index] + (NamedStage(name, stage),) + self.stages[index:])

    def replace(self, anchor: str, stage: Stage, name: str | None = None) -> Pipeline:
        index = self._index(anchor)
        return Pipeline(self.stages[:index] + (NamedStage(name or anchor, stage),) + self.stages[index + 1 :])

    def remove(self, anchor: str) -> Pipeline:
        index = self._index(anchor)
        return Pipeline(self.stages[:index] + self.stages[index + 1 :])

    def run(self, ctx: Context) -> Result[Context, GenesisError]:
        """Fold the stages over a context; the first Failure ends the run."""
        start: Result[Context, GenesisError] = Success(ctx)
        return reduce(lambda result, step: result.bind(step), self._steps, start)

    def shape(
        self,
        catalog: Any,
        request: Mapping[str, Any],
        *,
        ref: str | None = None,
        headers: Headers | Sequence[tuple[str, str]] = (),
    ) -> Result[Context, GenesisError]:
        """Run every stage over a request; the context holds the shaped body and the trace."""
        try:
            body = check_request(request)
        except GenesisError as exc:
            return Failure(exc)
        ctx = Context(catalog=catalog, request=request, body=body, ref=ref, caller_headers=tuple(headers))
        return self.run(ctx)

    def build(
        self,
        catalog: Any,
        request: Mapping[str, Any],
        *,
        ref: str | None = None,
        headers: Headers | Sequence[tuple[str, str]] = (),
    ) -> Result[WireRequest, GenesisError]:
        """Shape a request and encode it into the exact wire request."""
        return self.shape(catalog, request, ref=ref, headers=headers).bind(_encode)

    def _index(self, anchor: str) -> int:
        for index, stage in enumerate(self.stages):
            if stage.name == anchor:
                return index
        raise StageError(anchor, f"no such stage; the pipeline has: {', '.join(self.names)}")

    def __repr__(self) -> str:
        return f"Pipeline({', '.join(self.names)})"


def _encode(ctx: Context) -> Result[WireRequest, GenesisError]:
    try:
        return Success(encode_wire(ctx))
    except GenesisError as exc:
        return Failure(exc)


def _guard(stage: NamedStage, *, trusted: bool) -> Step:
    name, run = stage

    def trusted_step(ctx: Context) -> Result[Context, GenesisError]:
        try:
            return run(ctx)
        except GenesisError as exc:
            return Failure(exc)
        except Exception as exc:  # a bug in a stage must still surface as an error naming it
            return Failure(StageError(name, f"raised {type(exc).__name__}: {exc}"))

    def checked_step(ctx: Context) -> Result[Context, GenesisError]:
        try:
            result = run(ctx)
        except GenesisError as exc:
            return Failure(exc)
        except Exception as exc:
            return Failure(StageError(name, f"raised {type(exc).__name__}: {exc}"))
        if isinstance(result, Success):
            new = result.unwrap()
            if not isinstance(new, Context):
                return Failure(StageError(name, f"returned Success({type(new).__name__}); expected Success(Context)"))
            return Success(_record_silent_drops(name, ctx, new))
        if isinstance(result, Failure):
            error = result.failure()
            if isinstance(error, GenesisError):
                return result
            return Failure(StageError(name, f"failed: {error}"))
        return Failure(
            StageError(name, f"returned {type(result).__name__}; expected Success(context) or Failure(error) from returns.result")
        )

    return trusted_step if trusted else checked_step


def _record_silent_drops(name: str, before: Context, after: Context) -> Context:
    dropped = before.body.keys() - after.body.keys()
    if not dropped:
        return after
    new_changes = after.trace[len(before.trace) :]
    declared = {change.field for change in new_changes if change.action == "removed"}
    silent = sorted(dropped - declared)
    if not silent:
        return after
    return after.updated([removed(name, field, "dropped by a custom stage that recorded no rule") for field in silent])


def load_custom_stages(pipeline: Pipeline, specs: Sequence[Any], source: str = "<config>") -> Pipeline:
    """Apply the config's ``pipeline.stages``: each ``use: "module:function"`` goes before, after or in place of a stage."""
    issues: list[ConfigIssue] = []
    for index, spec in enumerate(specs):
        at = f"pipeline.stages[{index}]"
        module_name, _, function_name = spec.use.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), function_name)
        except ImportError as exc:
            issues.append(ConfigIssue(f"{at}.use", f'cannot import module "{module_name}": {exc}'))
            continue
        except AttributeError:
            issues.append(ConfigIssue(f"{at}.use", f'module "{module_name}" has no function "{function_name}"'))
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
        raise ConfigError(source, issues)
    return pipeline
