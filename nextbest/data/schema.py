"""The schema of a context table: which columns, which are categorical and with what vocabulary.

Categorical values are compared as strings (a CSV's `3` and a Parquet's 3 are the same
category). Numeric columns are encoded with the statistics the schema holds: by default each number
becomes the normal score of its quantile among the numbers the statistics were computed from
(`numeric_encoding = "quantile"`: Φ⁻¹ of the empirical CDF interpolated between 33 stored percentiles), which is
the z-score for normal data and the z-score of the logarithm for log-normal amounts, and keeps heavy
tails, counts and rare flags within about ±2.3; `"standard"` is (x − mean) / std. When the statistics
are not known at `init` (no --schema-from) they are frozen from the first training batch, and until
then those columns encode as 0 — one small prediction call never sets them.
"""

from __future__ import annotations

import math
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, model_validator

from nextbest.errors import SchemaError
from nextbest.io import write_json

UNKNOWN = "__unknown__"
# The knots of the quantile encoding are the column's percentiles at these levels: its minimum, 31 levels from
# 1% to 99% (the scores are clipped beyond those anyway), and its maximum (so a rare flag still stands out).
QUANTILE_LEVELS = (0.0, *np.linspace(0.01, 0.99, 31).round(6).tolist(), 1.0)
NumericEncoding = Literal["quantile", "standard"]


def knot_table(knots: np.ndarray, levels: tuple[float, ...] = QUANTILE_LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """(distinct knots, the mean level of each): a value that repeats across knots (a count, a flag) takes the
    mean of its levels, so the empirical CDF interpolated between them is a function."""
    values, inverse = np.unique(knots, return_inverse=True)
    return values, np.bincount(inverse, weights=levels) / np.bincount(inverse)


class NumericStats(BaseModel):
    mean: float = 0.0
    std: float = 1.0
    quantiles: list[float] | None = Field(None, description="knots of the quantile encoding (the percentiles at "
                                                            "QUANTILE_LEVELS); without them the column is standardized")

    @cached_property
    def knot_table(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The encoding's interpolation table, computed once (None without knots): see `knot_table`."""
        return None if self.quantiles is None else knot_table(np.asarray(self.quantiles))

    @classmethod
    def of(cls, values: np.ndarray, encoding: NumericEncoding) -> NumericStats:
        """The statistics of one column's values (at least one) for `encoding`."""
        std = float(values.std()) if len(values) > 1 else 1.0
        knots = np.quantile(values, QUANTILE_LEVELS).tolist() if encoding == "quantile" else None
        return cls(mean=float(values.mean()), std=std if std > 1e-12 else 1.0, quantiles=knots)


class Schema(BaseModel):
    """Columns in order; vocabularies of the categorical ones; standardization of the numeric ones."""

    columns: list[str]
    categorical: dict[str, list[str]] = Field(default_factory=dict)
    numeric: dict[str, NumericStats | None] = Field(default_factory=dict)
    unknown_category: Literal["error", "bucket"] = "error"
    numeric_encoding: NumericEncoding = "quantile"

    @model_validator(mode="after")
    def _check(self) -> Schema:
        if not self.columns:
            raise ValueError("a schema needs at least one column")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"duplicate column names in {self.columns}")
        for name in self.categorical:
            if name not in self.columns:
                raise ValueError(f"categorical column '{name}' is not one of the columns {self.columns}")
        for name in self.columns:
            if name not in self.categorical:
                self.numeric.setdefault(name, None)
        self.numeric = {name: self.numeric[name] for name in self.columns if name not in self.categorical}
        return self

    @property
    def categorical_columns(self) -> list[str]:
        return [c for c in self.columns if c in self.categorical]

    @property
    def numeric_columns(self) -> list[str]:
        return [c for c in self.columns if c not in self.categorical]

    def cardinalities(self) -> list[int]:
        """Number of codes per categorical column (one more than the vocabulary with an unknown bucket)."""
        extra = 1 if self.unknown_category == "bucket" else 0
        return [len(self.categorical[c]) + extra for c in self.categorical_columns]

    @property
    def numeric_stats_known(self) -> bool:
        return all(stats is not None for stats in self.numeric.values())

    def with_numeric_stats(self, table: pd.DataFrame) -> Schema:
        """A copy whose unknown numeric statistics are computed from `table` (already validated)."""
        numeric = {}
        for name, stats in self.numeric.items():
            if stats is None:
                stats = NumericStats.of(table[name].to_numpy(dtype=float), self.numeric_encoding)
            numeric[name] = stats
        return self.model_copy(update={"numeric": numeric})

    @classmethod
    def from_dimensions(
        cls,
        columns: list[str],
        categorical_columns: list[str],
        categorical_dimensions: list[int] | dict[str, int],
        unknown_category: Literal["error", "bucket"] = "error",
        numeric_encoding: NumericEncoding = "quantile",
    ) -> Schema:
        """Categorical column c with dimension n takes the values 0 … n−1 (Optimus' convention)."""
        if isinstance(categorical_dimensions, dict):
            missing = [c for c in categorical_columns if c not in categorical_dimensions]
            if missing:
                raise SchemaError(f"categorical_dimensions has no entry for {missing}")
            dims = [categorical_dimensions[c] for c in categorical_columns]
        else:
            dims = list(categorical_dimensions)
        if len(dims) != len(categorical_columns):
            raise SchemaError(
                f"{len(categorical_columns)} categorical columns {categorical_columns} but "
                f"{len(dims)} categorical dimensions {dims}; give one dimension per categorical column"
            )
        if any(d < 1 for d in dims):
            raise SchemaError(f"categorical dimensions must be positive integers, got {dims}")
        vocabularies = {c: [str(v) for v in range(d)] for c, d in zip(categorical_columns, dims)}
        return cls(columns=columns, categorical=vocabularies, unknown_category=unknown_category,
                   numeric_encoding=numeric_encoding)

    @classmethod
    def infer(
        cls,
        table: pd.DataFrame,
        columns: list[str],
        categorical_columns: list[str],
        *,
        source: str = "the table",
        unknown_category: Literal["error", "bucket"] = "error",
        numeric_encoding: NumericEncoding = "quantile",
    ) -> Schema:
        """Vocabularies (sorted) and numeric statistics from a context table."""
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise SchemaError(f"{source}: missing column(s) {missing}; expected columns {columns}")
        vocabularies = {}
        for name in categorical_columns:
            values = table[name]
            if values.isna().any():
                row = int(np.flatnonzero(values.isna().to_numpy())[0]) + 1
                raise SchemaError(f"{source}: column '{name}' is empty in row {row}; expected a category")
            vocabularies[name] = sorted({category_text(v) for v in values}, key=natural_key)
        schema = cls(columns=columns, categorical=vocabularies, unknown_category=unknown_category,
                     numeric_encoding=numeric_encoding)
        from nextbest.data.encoding import numeric_matrix  # validates numbers and names the bad row

        numeric_matrix(table, schema.numeric_columns, source=source)
        return schema.with_numeric_stats(table)

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.model_dump())

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        import json

        return cls.model_validate(json.loads(Path(path).read_text()))


def category_text(value: object) -> str:
    """The string form a category is compared by: 3, 3.0 and '3' are the same category."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    return str(value)


def natural_key(text: str) -> tuple:
    """Sort key of a category's text: numbers first, in numeric order ('2' before '10'), then text."""
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)
