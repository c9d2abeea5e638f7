"""What a generator learns the columns of a table to be: kinds, vocabularies, dtypes, missing values, bounds.

`infer_spec(table)` reads a customer table and decides per column: categorical (text, booleans,
integers with at most 5 distinct values, or listed in `categorical_columns`) or numeric; whether it
has missing values; how to give sampled values back the look of the real ones (integers stay
integers, prices keep two decimals, booleans stay booleans). Bad tables (no rows, a column with
a single value, text among numbers, an identifier-like column) raise a `DataError` naming the column.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from nextbest.data.schema import Schema, category_text, natural_key
from nextbest.errors import ConfigError, DataError

MIN_ROWS = 10
FEW_INTEGERS = 5  # an integer column with at most this many distinct values is a category (0/1 flags, 1–5 scores)
MAX_DECIMALS = 6


class Column(BaseModel):
    name: str
    kind: Literal["categorical", "numeric"]
    dtype: Literal["int", "float", "bool", "str"]  # how sampled values are given back
    categories: list[str] = []  # categorical: the vocabulary as text, without the missing value
    missing: bool = False  # the column has empty cells; generators learn when a cell is empty
    decimals: int | None = None  # numeric: sampled values are rounded to this many decimals (0: integers)
    minimum: float | None = None
    maximum: float | None = None

    @property
    def n_codes(self) -> int:
        """Categorical: one code per category plus one for 'missing' when the column has empty cells."""
        return len(self.categories) + int(self.missing)


class TableSpec(BaseModel):
    columns: list[Column]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def categorical(self) -> list[Column]:
        return [c for c in self.columns if c.kind == "categorical"]

    @property
    def numeric(self) -> list[Column]:
        return [c for c in self.columns if c.kind == "numeric"]

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise ConfigError(f"unknown column {name!r}; the table has columns {self.names}")


def infer_spec(
    table: pd.DataFrame,
    categorical_columns: Iterable[str] | None = None,
    *,
    max_categories: int = 100,
    source: str = "the table",
    allow_constant: bool = False,
) -> TableSpec:
    """Column kinds and everything needed to sample values that look like the table's (see module doc)."""
    if table.shape[1] == 0:
        raise DataError(f"{source}: the table has no columns")
    if len(table) < MIN_ROWS:
        raise DataError(f"{source}: the table has {len(table)} row(s); a generator needs at least {MIN_ROWS}")
    duplicated = table.columns[table.columns.duplicated()].tolist()
    if duplicated:
        raise DataError(f"{source}: column(s) {duplicated} appear more than once")
    forced = list(categorical_columns or [])
    unknown = [c for c in forced if c not in table.columns]
    if unknown:
        raise ConfigError(f"categorical column(s) {unknown} are not in {source}; it has columns {list(table.columns)}")
    columns = [_infer_column(table[name], str(name), name in forced, max_categories, source) for name in table.columns]
    if not allow_constant:
        for column, name in zip(columns, table.columns):
            _require_variation(table[name], column, source)
    return TableSpec(columns=columns)


def spec_for_schema(table: pd.DataFrame, schema: Schema, **options) -> TableSpec:
    """A spec over a personalization `Schema`'s columns, with its categorical columns kept categorical."""
    missing = [c for c in schema.columns if c not in table.columns]
    if missing:
        raise DataError(f"{options.get('source', 'the table')}: missing column(s) {missing}; expected {schema.columns}")
    return infer_spec(table[schema.columns], schema.categorical_columns, **options)


def _infer_column(values: pd.Series, name: str, forced: bool, max_categories: int, source: str) -> Column:
    present = values.dropna()
    if present.empty:
        raise DataError(f"{source}: column '{name}' is empty in every row; drop it")
    missing = bool(values.isna().any())
    if not forced and pd.api.types.is_datetime64_any_dtype(values):
        raise DataError(_dates_message(name, source))
    numeric = _as_numbers(values, name, source) if not forced and not pd.api.types.is_bool_dtype(values) else None
    if numeric is not None:
        finite = numeric[~np.isnan(numeric)]
        distinct = np.unique(finite)
        integer = bool(np.all(finite == np.round(finite)))
        if not (integer and len(distinct) <= FEW_INTEGERS):
            return Column(
                name=name, kind="numeric", dtype="int" if integer and not missing else "float", missing=missing,
                decimals=_decimals(finite), minimum=float(finite.min()), maximum=float(finite.max()),
            )
    categories = sorted({category_text(v) for v in present}, key=natural_key)
    if len(categories) > max_categories:
        if _all_dates(present):
            raise DataError(_dates_message(name, source))
        raise DataError(
            f"{source}: column '{name}' has {len(categories)} distinct values, more than max_categories="
            f"{max_categories}; drop an identifier column, or raise max_categories in the hyperparameters"
        )
    return Column(name=name, kind="categorical", dtype=_dtype(present), categories=categories, missing=missing)


def _all_dates(present: pd.Series) -> bool:
    """Whether every value is a date or a date and time written in ISO form (2025-01-03, 2025-01-03 10:00)."""
    return bool(pd.to_datetime(present.astype(str), format="ISO8601", errors="coerce").notna().all())


def _dates_message(name: str, source: str) -> str:
    return (f"{source}: column '{name}' holds dates, which the generators do not model; give them as numbers "
            "(e.g. days since a date) or drop the column")


def _as_numbers(values: pd.Series, name: str, source: str) -> np.ndarray | None:
    """Float values of a numeric column, None for a text column; a few stray words among numbers is an error."""
    converted = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(values):
        infinite = np.isinf(converted)
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0]) + 1
            raise DataError(f"{source}: column '{name}' has {values.iloc[row - 1]} in row {row}; expected a finite number")
        return converted
    text = values.notna().to_numpy()
    failed = text & np.isnan(converted)
    if text.sum() and failed.sum() <= 0.05 * text.sum() and failed.any():
        row = int(np.flatnonzero(failed)[0]) + 1
        raise DataError(
            f"{source}: column '{name}' has {values.iloc[row - 1]!r} in row {row}; expected a number like its other rows "
            f"(or list '{name}' in categorical_columns)"
        )
    return None if failed.any() else converted


def _require_variation(values: pd.Series, column: Column, source: str) -> None:
    if column.kind == "categorical":
        distinct = column.n_codes
    else:
        distinct = (column.minimum != column.maximum) + 1 + int(column.missing)
    if distinct < 2:
        value = column.categories[0] if column.categories else column.minimum
        raise DataError(
            f"{source}: column '{column.name}' has one value ({value!r}) in all {len(values)} rows; "
            "there is nothing to learn about it: drop it"
        )


def _decimals(values: np.ndarray) -> int:
    sample = values[:10000]
    for decimals in range(MAX_DECIMALS + 1):
        if np.allclose(np.round(sample, decimals), sample, rtol=0, atol=1e-9):
            return decimals
    return MAX_DECIMALS


def _dtype(present: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(present):
        return "bool"
    if pd.api.types.is_integer_dtype(present):
        return "int"
    if pd.api.types.is_float_dtype(present):
        return "int" if np.all(present == np.round(present)) else "float"
    return "str"


def category_codes(values: pd.Series, column: Column) -> np.ndarray:
    """(n,) int64 codes of a categorical column: vocabulary order, then 'missing'; unknown values are −1."""
    text = values.map(category_text, na_action="ignore")
    codes = pd.Categorical(text, categories=column.categories).codes.astype(np.int64)
    if column.missing:
        codes[values.isna().to_numpy()] = len(column.categories)
    return codes


def category_values(codes: np.ndarray, column: Column) -> pd.Series:
    """Inverse of `category_codes`: values with the column's original dtype (missing → NaN/None)."""
    cast = {"int": int, "float": float, "bool": lambda t: t == "True", "str": str}[column.dtype]
    vocabulary = np.array([cast(t) for t in column.categories] + [None], dtype=object)
    values = pd.Series(vocabulary[np.where(codes < len(column.categories), codes, len(column.categories))])
    if column.dtype in ("int", "float", "bool") and not (codes >= len(column.categories)).any():
        return values.astype({"int": "int64", "float": "float64", "bool": "bool"}[column.dtype])
    if column.dtype in ("int", "float"):
        return values.astype("float64")
    return values


def numeric_values(values: np.ndarray, column: Column) -> pd.Series:
    """Sampled numbers given the real column's look: clipped to its range, rounded, int when it had no gaps."""
    out = np.clip(values, column.minimum, column.maximum)
    out = np.round(out, column.decimals)
    if column.dtype == "int":
        return pd.Series(out.astype(np.int64))
    return pd.Series(out)


def parse_conditions(text: str | dict[str, str] | None, spec: TableSpec) -> dict[str, str]:
    """'segment=gold,channel=email' → {'segment': 'gold', ...}, checked against the categorical columns."""
    if not text:
        return {}
    if isinstance(text, str):
        pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ConfigError(f"conditions {text!r}: expected column=value pairs separated by commas, e.g. 'segment=gold'")
        text = {name.strip(): value.strip() for name, value in pairs}
    conditions = {}
    for name, value in text.items():
        if name not in spec.names:
            raise ConfigError(f"condition {name}={value}: unknown column {name!r}; the table has columns {spec.names}")
        column = spec.column(name)
        if column.kind != "categorical":
            raise ConfigError(f"condition on '{name}': conditions apply to categorical columns; '{name}' is numeric")
        value = category_text(value)
        if column.dtype == "bool":  # true/false/1/0 in any case name the booleans' categories 'True' and 'False'
            value = {"true": "True", "1": "True", "false": "False", "0": "False"}.get(value.lower(), value)
        if value not in column.categories:
            raise ConfigError(f"condition {name}={value}: '{value}' is not a category of '{name}'; one of {column.categories}")
        conditions[name] = value
    return conditions


def matches(table: pd.DataFrame, conditions: dict[str, str]) -> np.ndarray:
    """(n,) bool: rows whose columns equal every condition."""
    keep = np.ones(len(table), dtype=bool)
    for name, value in conditions.items():
        keep &= table[name].map(category_text, na_action="ignore").to_numpy() == value
    return keep
