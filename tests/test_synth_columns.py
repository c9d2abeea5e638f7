"""Column inference: kinds, dtypes given back, missing cells, and the errors that name the column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.data.schema import Schema
from nextbest.errors import DataError
from nextbest.generative.columns import category_codes, category_values, infer_spec, parse_conditions


def test_kinds_and_dtypes_are_inferred_from_the_values():
    n = 40
    table = pd.DataFrame({
        "segment": ["gold", "silver"] * (n // 2),
        "flag": [0, 1] * (n // 2),  # integers with few values: a category, given back as int
        "score": [1.0, 2.0, 3.0, np.nan] * (n // 4),  # a 1–3 score with empty cells
        "opt_in": [True, False] * (n // 2),
        "spend": np.round(np.linspace(0, 99.99, n), 2),
        "visits": np.arange(n),
        "age": [30.0, np.nan] * (n // 2) + np.arange(n) % 7,
    })
    spec = infer_spec(table)
    kinds = {c.name: (c.kind, c.dtype, c.missing) for c in spec.columns}
    assert kinds == {
        "segment": ("categorical", "str", False), "flag": ("categorical", "int", False),
        "score": ("categorical", "int", True), "opt_in": ("categorical", "bool", False),
        "spend": ("numeric", "float", False), "visits": ("numeric", "int", False), "age": ("numeric", "float", True),
    }
    assert spec.column("spend").decimals == 2 and spec.column("visits").decimals == 0
    assert (spec.column("visits").minimum, spec.column("visits").maximum) == (0, n - 1)
    for name in ("flag", "score", "opt_in", "segment"):  # codes and back give the same values and dtype
        column = spec.column(name)
        back = category_values(category_codes(table[name], column), column)
        pd.testing.assert_series_equal(back, table[name].astype(back.dtype), check_names=False)


def test_forced_categorical_columns_and_personalization_schema():
    table = pd.DataFrame({"zip": np.arange(30) % 12 + 1000, "spend": np.arange(30.0)})
    assert infer_spec(table, ["zip"]).column("zip").kind == "categorical"
    schema = Schema(columns=["zip", "spend"], categorical={"zip": [str(v) for v in range(1000, 1012)]})
    from nextbest.generative.columns import spec_for_schema

    assert spec_for_schema(table, schema).column("zip").categories[:2] == ["1000", "1001"]


@pytest.mark.parametrize(
    "table, message",
    [
        (pd.DataFrame({"a": []}), "has 0 row(s)"),
        (pd.DataFrame({"a": [np.nan] * 12, "b": range(12)}), "column 'a' is empty in every row"),
        (pd.DataFrame({"a": [3.0] * 12, "b": range(12)}), "column 'a' has one value ('3') in all 12 rows"),
        (pd.DataFrame({"a": [1.0, np.inf] * 6}), "column 'a' has inf in row 2; expected a finite number"),
    ],
)
def test_bad_tables_name_the_column(table, message):
    with pytest.raises(DataError) as error:
        infer_spec(table, source="t.csv")
    assert message in str(error.value) and str(error.value).startswith("t.csv: ")


def test_a_constant_column_with_empty_cells_is_fine_and_conditions_parse():
    table = pd.DataFrame({"a": [1.5, np.nan] * 6, "b": list("xyz") * 4})
    spec = infer_spec(table)
    assert spec.column("a").missing
    assert parse_conditions("b = y, b=z", spec) == {"b": "z"}
    assert parse_conditions({"b": "x"}, spec) == {"b": "x"}


@pytest.mark.parametrize("dates", [
    pd.date_range("2020-01-01", periods=150, freq="D"),                       # a Parquet timestamp column
    pd.date_range("2020-01-01", periods=150, freq="D").strftime("%Y-%m-%d"),  # dates as text
])
def test_a_date_column_is_refused_as_dates_not_as_an_identifier(dates):
    table = pd.DataFrame({"signup": dates, "spend": np.arange(150.0)})
    with pytest.raises(DataError, match="t.csv: column 'signup' holds dates, which the generators do not model; "
                                        r"give them as numbers \(e.g. days since a date\) or drop the column"):
        infer_spec(table, source="t.csv")


def test_conditions_name_an_unknown_column_and_read_booleans_in_any_case():
    from nextbest.errors import ConfigError

    spec = infer_spec(pd.DataFrame({"opted_in": [True, False] * 6, "b": list("xyz") * 4}))
    assert parse_conditions("opted_in=true", spec) == parse_conditions("opted_in=1", spec) == {"opted_in": "True"}
    with pytest.raises(ConfigError, match="condition tier=gold: unknown column 'tier'; the table has columns"):
        parse_conditions("tier=gold", spec)
