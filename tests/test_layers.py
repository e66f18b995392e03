"""The layer contracts (pyproject.toml, checked by ``lint-imports``) must cover every module.

The core's contract lists its modules one by one (the core shares the ``pipeline`` package with the
facade and the CLI); a new core module left off that list would escape the check, so this fails.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the package's lazy front door, the runner (it assembles the stages, send from backends/ among them), the facade, the CLI
ABOVE_THE_CORE = {"pipeline", "pipeline.runner", "pipeline.api", "pipeline.cli"}


def test_every_core_module_is_under_the_core_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [core] = [c for c in config["tool"]["importlinter"]["contracts"] if c["name"].startswith("the core ")]
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for path in (ROOT / "pipeline").glob("*.py")
    }
    assert modules - ABOVE_THE_CORE == set(core["source_modules"])
