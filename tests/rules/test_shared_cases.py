"""The shared wire cases (tests/cases.py) are handed out fresh: what one test does to a case, no other test sees.

This is what makes the no-mutation check in tests/test_wire_snapshots.py independent of test order: it
deep-copies its case before building, and that copy must be the pristine case, not one an earlier test
already ran through the stages.
"""

from __future__ import annotations

import pytest

from tests.cases import CASES


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_case_changed_by_one_test_is_pristine_for_the_next(name: str) -> None:
    first = CASES[name]
    pristine = CASES[name]
    first["request"].setdefault("messages", []).append({"role": "user", "content": "appended by a careless test"})
    first["request"]["messages"][0]["role"] = "changed in place"
    first["model"] = "changed"
    assert CASES[name] == pristine
    assert CASES[name] is not CASES[name]
