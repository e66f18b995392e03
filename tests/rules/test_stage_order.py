"""Every stage after resolve_ref needs the resolved model: run too early, it says which stage and why.

Whether a stage raises the StageError or returns it as a Failure (both are handled by the runner's
guard), the error names the stage.
"""

from __future__ import annotations

import pytest
from returns.result import Failure

from pipeline.errors import GenesisError, StageError
from tests.rules.support import StageFn, config, context
from transforms.apply_defaults import apply_defaults
from transforms.attach_headers import attach_headers
from transforms.compat_shaping import compat_shaping
from transforms.strip_native_only import strip_native_only

STAGES: dict[str, StageFn] = {
    "apply_defaults": apply_defaults,
    "compat_shaping": compat_shaping,
    "strip_native_only": strip_native_only,
    "attach_headers": attach_headers,
}


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_before_resolve_ref_names_itself(name: str) -> None:
    ctx = context(config(), {"messages": []}, resolved=False)
    error: GenesisError
    try:
        result = STAGES[name](ctx)
    except StageError as raised:
        error = raised
    else:
        assert isinstance(result, Failure)
        error = result.failure()
    assert isinstance(error, StageError)
    assert error.stage == name
    assert error.message == f"stage {name!r}: needs a resolved model; the resolve_ref stage must run before it"
