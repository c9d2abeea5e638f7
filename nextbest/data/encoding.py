"""Turning a context table into arrays the agents use, with errors that name the row.

`encode(table, schema)` gives `Features`: integer codes of the categorical columns and the
standardized numeric columns. Linear agents use `Features.design_matrix()` (one-hot
categories, numbers and a bias); neural agents embed the codes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.data.schema import QUANTILE_LEVELS, UNKNOWN, Schema, category_text, knot_table
from nextbest.errors import SchemaError

_TAIL = 0.01  # quantile scores stop at the normal's 1st and 99th percentiles


@dataclass(frozen=True)
class Features:
    """categorical: (n, n_categorical) int64 codes; numeric: (n, n_numeric) float32 standardized."""

    categorical: np.ndarray
    numeric: np.ndarray
    cardinalities: tuple[int, ...]

    def __len__(self) -> int:
        return self.numeric.shape[0]

    @property
    def n_rows(self) -> int:
        return self.numeric.shape[0]

    def take(self, rows: np.ndarray | slice) -> Features:
        return Features(self.categorical[rows], self.numeric[rows], self.cardinalities)

    @property
    def design_width(self) -> int:
        return sum(self.cardinalities) + self.numeric.shape[1] + 1

    def design_matrix(self) -> np.ndarray:
        """(n, Σ cardinalities + n_numeric + 1) float64: one-hot codes, numbers, then a bias of 1."""
        n = self.n_rows
        out = np.zeros((n, self.design_width))
        offset = 0
        for j, size in enumerate(self.cardinalities):
            out[np.arange(n), offset + self.categorical[:, j]] = 1.0
            offset += size
        out[:, offset : offset + self.numeric.shape[1]] = self.numeric
        out[:, -1] = 1.0
        return out

    @staticmethod
    def concatenate(parts: Iterable[Features]) -> Features:
        parts = list(parts)
        return Features(
            np.concatenate([p.categorical for p in parts]),
            np.concatenate([p.numeric for p in parts]),
            parts[0].cardinalities,
        )


def check_columns(
    table: pd.DataFrame, required: list[str], *, optional: Iterable[str] = (), source: str = "the table"
) -> None:
    """Every required column present and no column that is neither required nor optional."""
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {missing}; expected columns {required}")
    allowed = set(required) | set(optional)
    extra = [str(c) for c in table.columns if c not in allowed]
    if extra:
        optional = [c for c in optional if c not in required]
        hint = f" (optional: {optional})" if optional else ""
        raise SchemaError(f"{source}: unexpected column(s) {extra}; expected columns {required}{hint}")
    duplicated = table.columns[table.columns.duplicated()].tolist()
    if duplicated:
        raise SchemaError(f"{source}: column(s) {duplicated} appear more than once")


def numeric_matrix(table: pd.DataFrame, columns: list[str], *, source: str = "the table") -> np.ndarray:
    """(n, len(columns)) float64 of numeric columns; text, NaN or infinity raise naming the row."""
    out = np.empty((len(table), len(columns)))
    for j, name in enumerate(columns):
        out[:, j] = numeric_column(table[name], name, source=source)
    return out


def numeric_column(values: pd.Series, name: str, *, source: str = "the table") -> np.ndarray:
    """One numeric column as float64; the first bad row is named (rows count from 1, header excluded)."""
    converted = pd.to_numeric(values, errors="coerce")
    array = converted.to_numpy(dtype=float, na_value=np.nan, copy=True)
    bad = ~np.isfinite(array)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raw = values.iloc[row]
        what = "is empty" if pd.isna(raw) else f"has {shown(raw)}"
        raise SchemaError(f"{source}: column '{name}' {what} in row {row + 1}; expected a finite number")
    return array


FLAG_TEXT = {"1": True, "1.0": True, "true": True, "yes": True, "0": False, "0.0": False, "false": False, "no": False}


def parse_flags(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A 0/1 column as booleans, and the mask of rows that are not 0, 1, True, False, yes, no (any case)."""
    text = values.astype(str).str.strip().str.lower()
    bad = (~text.isin(list(FLAG_TEXT)) | values.isna()).to_numpy()
    return text.map(FLAG_TEXT).fillna(False).to_numpy(dtype=bool), bad


def flag_column(values: pd.Series, name: str, *, source: str = "the table") -> np.ndarray:
    """A 0/1 column (such as `done`) as booleans; the first row that is not a flag is named."""
    flags, bad = parse_flags(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(f"{source}: column '{name}' has {shown(values.iloc[row])} in row {row + 1}; expected 0 or 1")
    return flags


def shown(value: object) -> str:
    """A cell value as a user wrote it: 'cheap', 2, 3.5 (numpy scalars shown as plain numbers)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def category_codes(values: pd.Series, name: str, schema: Schema, *, source: str = "the table") -> np.ndarray:
    """Integer codes of one categorical column; unknown values raise or go to the unknown bucket."""
    vocabulary = schema.categorical[name]
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise SchemaError(f"{source}: column '{name}' is empty in row {row + 1}; expected one of {vocabulary}")
    if pd.api.types.is_integer_dtype(values) or pd.api.types.is_string_dtype(values):
        text = values.astype(str)
    else:
        text = values.map(category_text)
    codes = pd.Index(vocabulary).get_indexer(text).astype(np.int64)
    unknown = codes < 0
    if unknown.any():
        if schema.unknown_category == "bucket":
            codes[unknown] = len(vocabulary)  # the bucket sits after the known categories
        else:
            row = int(np.flatnonzero(unknown)[0])
            raise SchemaError(
                f"{source}: column '{name}' has value {text.iloc[row]!r} in row {row + 1}, not one of "
                f"{vocabulary}; set unknown_category to 'bucket' to map unseen values to '{UNKNOWN}'"
            )
    return codes


def encode(table: pd.DataFrame, schema: Schema, *, source: str = "the table") -> Features:
    """Encode the schema's columns of `table` (other columns are ignored here; check them with check_columns)."""
    missing = [c for c in schema.columns if c not in table.columns]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {missing}; expected columns {schema.columns}")
    categorical = np.stack(
        [category_codes(table[c], c, schema, source=source) for c in schema.categorical_columns], axis=1
    ) if schema.categorical_columns else np.zeros((len(table), 0), dtype=np.int64)
    numeric = standardized(numeric_matrix(table, schema.numeric_columns, source=source), schema)
    return Features(categorical, numeric, tuple(schema.cardinalities()))


def standardized(numeric: np.ndarray, schema: Schema) -> np.ndarray:
    """(n, n_numeric) raw numbers → encoded numbers per column, float32: the normal score of the quantile on
    the column's knots when it has them, else (x − mean) / std. A column whose statistics are not known yet
    encodes as 0: it informs no decision until the first training batch sets its statistics (a single
    request's numbers never do)."""
    out = np.zeros(numeric.shape, dtype=np.float32)
    for j, name in enumerate(schema.numeric_columns):
        stats = schema.numeric[name]
        if stats is not None and stats.knot_table is not None:
            out[:, j] = normal_scores(numeric[:, j], *stats.knot_table)
        elif stats is not None:
            out[:, j] = (numeric[:, j] - stats.mean) / stats.std
    return out


def quantile_scores(x: np.ndarray, knots: np.ndarray, levels: tuple[float, ...] = QUANTILE_LEVELS) -> np.ndarray:
    """Φ⁻¹ of the empirical CDF interpolated between `knots` (the percentiles at `levels`), clipped to the
    1st … 99th percentile of the normal (±2.33). A value that repeats across knots (a count, a flag) takes
    the mean of its levels; a constant column encodes as 0."""
    return normal_scores(x, *knot_table(np.asarray(knots), levels))


def normal_scores(x: np.ndarray, values: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """Φ⁻¹ of the CDF interpolated on a `knot_table`, clipped to ±2.33 (0 for a constant column)."""
    from scipy.special import ndtri  # here: scipy.special adds half a second to every command's start

    if len(values) == 1:
        return np.zeros(len(x))
    return ndtri(np.clip(np.interp(x, values, cdf), _TAIL, 1.0 - _TAIL))


def encode_records(records: list[dict], schema: Schema, *, source: str = "contexts") -> Features:
    """Encode contexts given as JSON-like records (the service's fast path: no pandas), with the same
    codes and numbers as `encode` on a table of them. Errors name the field as `contexts[3].device`."""
    expected = set(schema.columns)
    lookups = {name: {text: code for code, text in enumerate(schema.categorical[name])} for name in schema.categorical_columns}
    bucket = schema.unknown_category == "bucket"
    categorical = np.empty((len(records), len(schema.categorical_columns)), dtype=np.int64)
    numeric = np.empty((len(records), len(schema.numeric_columns)))
    for i, record in enumerate(records):
        where = f"{source}[{i}]"
        if not isinstance(record, dict):
            raise SchemaError(f"{where}: expected an object of columns {schema.columns}, got {type(record).__name__}")
        if record.keys() != expected:
            missing = [c for c in schema.columns if c not in record]
            if missing:
                raise SchemaError(f"{where}.{missing[0]}: missing; expected columns {schema.columns}")
            extra = next(str(c) for c in record if c not in expected)
            raise SchemaError(f"{where}.{extra}: unexpected column; expected columns {schema.columns}")
        for j, name in enumerate(schema.categorical_columns):
            value = record[name]
            if not isinstance(value, str | int | float) or (isinstance(value, float) and not math.isfinite(value)):
                raise SchemaError(f"{where}.{name}: expected a category (text or integer), got {value!r}")
            code = lookups[name].get(category_text(value))
            if code is None:
                if not bucket:
                    raise SchemaError(f"{where}.{name}: {value!r} is not one of {schema.categorical[name]}; set "
                                      f"unknown_category to 'bucket' to map unseen values to '{UNKNOWN}'")
                code = len(lookups[name])
            categorical[i, j] = code
        for j, name in enumerate(schema.numeric_columns):
            value = record[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise SchemaError(f"{where}.{name}: expected a finite number, got {value!r}")
            numeric[i, j] = value
    return Features(categorical, standardized(numeric, schema), tuple(schema.cardinalities()))
