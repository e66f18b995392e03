"""Rule table: a typed number in the config is finite (pipeline/config.py ``_convert`` / ``_all_finite``).

Rules:
- ``Infinity``, ``-Infinity`` and ``NaN`` (JSON5 allows them) are refused in every typed number field, at
  any depth: a provider's timeouts, a model's cost, in any provider of the dict and any model of the list.
  The issue names the field and shows the number.
- Free-form ``params`` are not typed: a non-finite number there is passed on as written.

msgspec's ``convert`` accepts ``inf`` where a field only asks for a number greater than 0, so these rows
are what pins the finiteness walk. Which fields of a Struct type can hold a float is computed once per
process and cached (``_fields_with_floats``); each row clears that cache, so the row computes it itself
and checks the rule, not an answer an earlier test left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, NamedTuple

import msgspec
import pytest

from pipeline import config as config_module
from pipeline.config import CompatConfig, Cost, parse_config
from pipeline.errors import ConfigError


class Row(NamedTuple):
    rule: str
    text: str
    issues: list[str]  # empty: accepted


P = 'baseUrl: "http://10.0.0.9/v1"'


def provider(fields: str) -> str:
    return f"{{models: {{providers: {{p: {{{P}, {fields}}}}}}}}}"


def model(fields: str, *, before: str = "") -> str:
    return provider(f'models: [{before}{{id: "m", {fields}}}]')


ROWS: dict[str, Row] = {
    "timeout_inf": Row(
        "timeoutSeconds is finite",
        provider("timeoutSeconds: Infinity"),
        ["models.providers.p.timeoutSeconds: expected a number greater than 0, found the number inf"],
    ),
    "connect_timeout_inf": Row(
        "connectTimeoutSeconds is finite",
        provider("connectTimeoutSeconds: Infinity"),
        ["models.providers.p.connectTimeoutSeconds: expected a number greater than 0, found the number inf"],
    ),
    "read_timeout_inf": Row(
        "readTimeoutSeconds is finite",
        provider("readTimeoutSeconds: Infinity"),
        ["models.providers.p.readTimeoutSeconds: expected a number greater than 0, found the number inf"],
    ),
    "total_timeout_inf": Row(
        "totalTimeoutSeconds is finite",
        provider("totalTimeoutSeconds: Infinity"),
        ["models.providers.p.totalTimeoutSeconds: expected a number greater than 0, found the number inf"],
    ),
    "cost_input_inf": Row(
        "a model's cost is finite (input)",
        model("cost: {input: Infinity}"),
        ["models.providers.p.models[0].cost.input: expected a number, found the number inf"],
    ),
    "cost_output_minus_inf": Row(
        "a model's cost is finite (output, -Infinity)",
        model("cost: {output: -Infinity}"),
        ["models.providers.p.models[0].cost.output: expected a number, found the number -inf"],
    ),
    "cost_cache_read_nan": Row(
        "a model's cost is a number (cacheRead, NaN)",
        model("cost: {cacheRead: NaN}"),
        ["models.providers.p.models[0].cost.cacheRead: expected a number, found the number nan"],
    ),
    "cost_cache_write_inf": Row(
        "a model's cost is finite (cacheWrite)",
        model("cost: {cacheWrite: Infinity}"),
        ["models.providers.p.models[0].cost.cacheWrite: expected a number, found the number inf"],
    ),
    "any_model_of_the_list": Row(
        "every model of the list is checked, not only the first",
        model("cost: {input: Infinity}", before='{id: "ok", cost: {input: 1.5}}, '),
        ["models.providers.p.models[1].cost.input: expected a number, found the number inf"],
    ),
    "any_provider_of_the_dict": Row(
        "every provider of the dict is checked, not only the first",
        f"{{models: {{providers: {{a: {{{P}}}, b: {{{P}, readTimeoutSeconds: Infinity}}}}}}}}",
        ["models.providers.b.readTimeoutSeconds: expected a number greater than 0, found the number inf"],
    ),
    "finite_numbers_pass": Row(
        "finite numbers everywhere are accepted",
        model("cost: {input: 1.5, output: 2, cacheRead: 0.25, cacheWrite: 0}", before='{id: "a"}, ').replace(
            P, P + ", timeoutSeconds: 30, connectTimeoutSeconds: 2.5, readTimeoutSeconds: 20, totalTimeoutSeconds: 90"
        ),
        [],
    ),
    "params_are_not_typed": Row(
        "a non-finite number in free-form params is passed on as written",
        '{agents: {defaults: {models: {"p/m": {params: {temperature: Infinity, nested: {x: NaN}}}}}}}',
        [],
    ),
}


@pytest.fixture(autouse=True)
def _float_fields_computed_by_this_row() -> Iterator[None]:
    config_module._fields_with_floats.cache_clear()
    yield
    config_module._fields_with_floats.cache_clear()


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_typed_numbers_are_finite(row: Row) -> None:
    if not row.issues:
        parse_config(row.text, {})
        return
    with pytest.raises(ConfigError) as caught:
        parse_config(row.text, {})
    assert [str(issue) for issue in caught.value.issues] == row.issues


class Holds(NamedTuple):
    rule: str
    type: Any
    holds: bool


# Which field types the walk visits. Today no union of the schema has a float member (``float | UnsetType``
# is a float type to msgspec: UNSET is not a member), so the union rows are what pins that case.
HOLDS: dict[str, Holds] = {
    "float": Holds("a float field is walked", float, True),
    "positive_or_unset": Holds("a float with bounds, or UNSET, is walked", Annotated[float, msgspec.Meta(gt=0)] | msgspec.UnsetType, True),
    "int": Holds("an int field is not (an int is always finite)", int, False),
    "str": Holds("a str field is not", str, False),
    "union_with_float": Holds("a union with a float member is walked", float | str, True),
    "union_without_float": Holds("a union without one is not", int | str, False),
    "list_of_float": Holds("a list of floats is walked", list[float], True),
    "tuple_of_structs": Holds("a tuple of Structs with floats is walked", tuple[Cost, ...], True),
    "list_of_str": Holds("a list of str is not", list[str], False),
    "struct_with_floats": Holds("a Struct with a float field is walked", Cost, True),
    "struct_without_floats": Holds("a Struct without one is not", CompatConfig, False),
    "dict_of_structs": Holds("a dict of Structs with floats is walked", dict[str, Cost], True),
    "dict_of_floats": Holds("a dict of plain floats is free-form, like params: not walked", dict[str, float], False),
    "dict_of_plain_structs": Holds("a dict of Structs without floats is not", dict[str, CompatConfig], False),
}


@pytest.mark.parametrize("row", list(HOLDS.values()), ids=list(HOLDS))
def test_which_fields_are_walked(row: Holds) -> None:
    assert config_module._holds_float(msgspec.inspect.type_info(row.type)) is row.holds
