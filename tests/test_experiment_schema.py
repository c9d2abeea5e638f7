"""`experiment_schema`: the schema `nextbest init` chooses, from a context table, dimensions, or neither."""

from __future__ import annotations

import pandas as pd
import pytest

from nextbest.agents.settings import build_hyperparameters
from nextbest.errors import ConfigError, SchemaError
from nextbest.training.setup import experiment_schema


def _hp(categorical_columns=("browser",), **settings):
    return build_hyperparameters("linucb", action_space=[2], columns=["browser", "price"],
                                 categorical_columns=list(categorical_columns), **settings)


def test_a_context_table_gives_vocabularies_and_numeric_statistics(tmp_path):
    path = tmp_path / "contexts.csv"
    pd.DataFrame({"browser": ["safari", "chrome", "chrome"], "price": [1.0, 2.0, 3.0]}).to_csv(path, index=False)
    schema = experiment_schema(_hp(), schema_from=path)
    assert schema.categorical == {"browser": ["chrome", "safari"]}
    assert schema.numeric["price"].mean == pytest.approx(2.0)


def test_a_context_table_may_be_a_dataframe_named_in_messages():
    table = pd.DataFrame({"browser": ["a", None], "price": [1.0, 2.0]})
    with pytest.raises(SchemaError, match="shop.csv: column 'browser' is empty in row 2"):
        experiment_schema(_hp(), schema_from=table, source="shop.csv")


def test_dimensions_give_categories_zero_to_n_minus_one():
    schema = experiment_schema(_hp(), categorical_dimensions=[3])
    assert schema.categorical == {"browser": ["0", "1", "2"]} and schema.numeric == {"price": None}


def test_dimensions_default_to_the_hyperparameters():
    schema = experiment_schema(_hp(categorical_dimensions={"browser": 2}))
    assert schema.categorical == {"browser": ["0", "1"]}


def test_given_dimensions_win_over_the_hyperparameters():
    schema = experiment_schema(_hp(categorical_dimensions={"browser": 2}), categorical_dimensions=[4])
    assert schema.categorical == {"browser": ["0", "1", "2", "3"]}


def test_numeric_columns_alone_need_neither():
    schema = experiment_schema(_hp(categorical_columns=()))
    assert schema.categorical == {} and schema.numeric_columns == ["browser", "price"]


def test_both_sources_at_once_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="give either --categorical-dimensions or --schema-from, not both"):
        experiment_schema(_hp(), categorical_dimensions=[3], schema_from=tmp_path / "contexts.csv")


def test_categorical_columns_without_categories_are_refused():
    with pytest.raises(ConfigError, match="categorical columns need their categories: pass --categorical-dimensions 3,4"):
        experiment_schema(_hp())


def test_hyperparameters_without_a_use_case_are_refused():
    with pytest.raises(ConfigError, match="set the context columns"):
        experiment_schema(build_hyperparameters("linucb", action_space=[2]))
