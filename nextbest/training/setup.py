"""Setting up an experiment: the schema `nextbest init` gives a new experiment directory.

    hp = build_hyperparameters("linucb", action_space=[16], columns=["browser", "price"], categorical_columns=["browser"])
    schema = experiment_schema(hp, schema_from="contexts.csv")       # or categorical_dimensions=[3]
    Experiment.create("runs/shop", hp, schema)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nextbest.config import Hyperparameters
from nextbest.data.schema import Schema
from nextbest.data.tables import read_table
from nextbest.errors import ConfigError


def experiment_schema(
    hyperparameters: Hyperparameters,
    *,
    categorical_dimensions: list[int] | dict[str, int] | None = None,
    schema_from: str | Path | pd.DataFrame | None = None,
    source: str = "contexts",
) -> Schema:
    """The schema of the hyperparameters' context columns, from exactly one of:

    - schema_from: a context table (a path, or a DataFrame named `source` in messages) whose
      vocabularies (sorted) and numeric statistics are read;
    - categorical_dimensions (else the hyperparameters' `categorical_dimensions`): categorical
      column c with dimension n takes the values 0 … n−1; numeric statistics are frozen from the
      first table the agent trains on;
    - neither, when no column is categorical.

    Raises ConfigError for both sources at once, and for categorical columns with neither."""
    hyperparameters.require_use_case()
    data = hyperparameters.data
    if schema_from is not None:
        if categorical_dimensions:
            raise ConfigError("give either --categorical-dimensions or --schema-from, not both")
        if not isinstance(schema_from, pd.DataFrame):
            schema_from, source = read_table(schema_from), str(schema_from)
        return Schema.infer(schema_from, data.columns, data.categorical_columns, source=source,
                            unknown_category=data.unknown_category, numeric_encoding=data.numeric_encoding)
    dimensions = categorical_dimensions or data.categorical_dimensions
    if dimensions or not data.categorical_columns:
        return Schema.from_dimensions(data.columns, data.categorical_columns, dimensions or [], data.unknown_category,
                                      data.numeric_encoding)
    raise ConfigError("categorical columns need their categories: pass --categorical-dimensions 3,4 or --schema-from contexts.csv")
