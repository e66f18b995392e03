"""Rule table: ``${VAR}`` however the ``$`` is written (pipeline/config.py ``parse_config``, ``_may_hold_references``).

Rules:
- A ``$`` written as a JSON5 escape (``\\u0024``, ``\\x24``) is a ``$``: the
  reference it starts is expanded like a plain one, and a value taken from the environment for a header
  is a secret.
- ``\\U0024`` and ``\\X24`` are not escapes of ``$`` in JSON5 (an unneeded escape of ``U`` / ``X``): the
  text stays as written, nothing is expanded.
- An escaped reference to an unset variable is the same error as a plain one.

Text without a ``$`` in any form skips the expansion walk (a fast path); these rows pin that the fast
path is taken only when it changes nothing.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from pipeline.config import parse_config
from pipeline.errors import ConfigError


class Row(NamedTuple):
    rule: str
    header: str  # the value of header X-T, as written in the JSON5 text
    value: str  # what it is after parsing, or the issue when it is refused
    secret: bool  # whether the value came from the environment (a secret)


ENV = {"T": "tok-from-env"}


def text(header: str) -> str:
    return '{models: {providers: {p: {baseUrl: "http://h/v1", headers: {"X-T": "' + header + '"}}}}}'


ROWS: dict[str, Row] = {
    "plain": Row("a plain ${VAR} is expanded", "${T}", "tok-from-env", True),
    "u_escape": Row("\\u0024{VAR} is ${VAR}", "\\u0024{T}", "tok-from-env", True),
    "x_escape": Row("\\x24{VAR} is ${VAR}", "\\x24{T}", "tok-from-env", True),
    "upper_u_is_not_an_escape": Row("\\U0024 is U0024 in JSON5, not a $", "\\U0024{T}", "U0024{T}", False),
    "upper_x_is_not_an_escape": Row("\\X24 is X24 in JSON5, not a $", "\\X24{T}", "X24{T}", False),
    "no_dollar": Row("text without a $ in any form is kept as written", "plain {T}", "plain {T}", False),
    "escaped_unset": Row(
        "an escaped reference to an unset variable is refused like a plain one",
        "\\u0024{NOPE}",
        "models.providers.p.headers.X-T: environment variable NOPE is not set",
        False,
    ),
    "plain_unset": Row(
        "a plain reference to an unset variable is refused",
        "${NOPE}",
        "models.providers.p.headers.X-T: environment variable NOPE is not set",
        False,
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_reference_however_written(row: Row) -> None:
    if "NOPE" in row.header:
        with pytest.raises(ConfigError) as caught:
            parse_config(text(row.header), ENV)
        assert [str(issue) for issue in caught.value.issues] == [row.value]
        return
    loaded = parse_config(text(row.header), ENV)
    assert loaded.config.models.providers["p"].headers == {"X-T": row.value}
    assert (row.value in loaded.secrets) is row.secret
