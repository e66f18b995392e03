"""Shared fixtures: snapshots in the top-level ``snapshots/`` folder, config helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from syrupy.extensions.amber import AmberSnapshotExtension

from pipeline.api import Genesis

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


class RepoSnapshots(AmberSnapshotExtension):
    """Amber snapshots kept in the repository's top-level ``snapshots/`` folder."""

    @classmethod
    def dirname(cls, *, test_location: Any) -> str:
        return str(ROOT / "snapshots")


@pytest.fixture
def snapshot(snapshot: Any) -> Any:
    return snapshot.use_extension(RepoSnapshots)


def genesis_from(text: str, env: dict[str, str] | None = None, **options: Any) -> Genesis:
    return Genesis.from_config_text(text, env=env or {}, **options)


@pytest.fixture
def inferrs_config_text() -> str:
    return (EXAMPLES / "inferrs.json5").read_text()

# Server setup scripts are run by hand or by fixtures, never imported by the doctest collector.
collect_ignore = ["servers/make_tiny_model.py"]
