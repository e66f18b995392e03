"""The layer contracts (pyproject.toml, checked by ``lint-imports``) must cover every module, and no
module cycle exists anywhere in the three packages.

The core's contract lists its modules one by one (the core shares the ``pipeline`` package with the
facade and the CLI); a new core module left off that list would escape the check, so this fails.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# the package's lazy front door, the runner (it assembles the stages, send from backends/ among them), the facade,
# the OpenAI SDK drop-in (beside the facade), the CLI
ABOVE_THE_CORE = {"pipeline", "pipeline.runner", "pipeline.api", "pipeline.openai_transport", "pipeline.openai_httpx2", "pipeline.cli"}


def test_every_core_module_is_under_the_core_contract() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [core] = [c for c in config["tool"]["importlinter"]["contracts"] if c["name"].startswith("the core ")]
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__") for path in (ROOT / "pipeline").glob("*.py")
    }
    assert modules - ABOVE_THE_CORE == set(core["source_modules"])


# ---- no module cycles, across the three packages too ----
#
# The ``acyclic_siblings`` contract (pyproject.toml) finds cycles between the modules of one
# package; a cycle that leaves a package and comes back (pipeline.runner -> transforms.x ->
# pipeline.runner) is between no siblings, so the whole graph is checked here. grimp (the graph
# import-linter builds) sees every import statement: lazy ones inside functions, and
# TYPE_CHECKING ones.

PACKAGES = ("pipeline", "transforms", "backends")


def module_cycles(*packages: str) -> list[tuple[str, ...]]:
    """One cycle per import that closes one: ``(a, b, ..., a)``, the shortest way back from the imported module."""
    import grimp

    graph = grimp.build_graph(*packages, cache_dir=None)
    cycles: set[tuple[str, ...]] = set()
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycle = (importer, *back)
                start = cycle.index(min(cycle[:-1]))  # the same cycle found from each of its imports is one
                cycles.add((*cycle[start:-1], *cycle[:start], cycle[start]))
    return sorted(cycles)


def test_no_module_cycles() -> None:
    assert module_cycles(*PACKAGES) == []


CYCLES: list[tuple[str, dict[str, str], list[tuple[str, ...]]]] = [
    (
        "a lazy import across packages closes a cycle",
        {
            "core/__init__.py": "",
            "core/runner.py": "def stages() -> None:\n    from stages import resolve\n",
            "core/types.py": "",
            "stages/__init__.py": "",
            "stages/resolve.py": "import core.types\n\ndef later() -> None:\n    from core.runner import stages\n",
        },
        [("core.runner", "stages.resolve", "core.runner")],
    ),
    (
        "a TYPE_CHECKING import within a package closes a cycle",
        {
            "core/__init__.py": "",
            "core/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from core.b import B\n",
            "core/b.py": "from core import a\n",
            "stages/__init__.py": "",
        },
        [("core.a", "core.b", "core.a")],
    ),
    (
        "imports that only go down have no cycle",
        {
            "core/__init__.py": "",
            "core/runner.py": "def stages() -> None:\n    from stages import resolve\n",
            "core/types.py": "",
            "stages/__init__.py": "",
            "stages/resolve.py": "import core.types\n",
        },
        [],
    ),
]


@pytest.mark.parametrize(("name", "files", "cycles"), CYCLES, ids=[row[0] for row in CYCLES])
def test_the_cycle_check_finds_cycles(
    name: str, files: dict[str, str], cycles: list[tuple[str, ...]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / name.replace(" ", "_")
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    monkeypatch.syspath_prepend(str(root))
    assert module_cycles("core", "stages") == cycles
