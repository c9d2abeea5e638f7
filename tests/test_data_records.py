"""Contexts as JSON records (the service's path) encode exactly as the same rows in a table, and bad fields are named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.data.encoding import encode, encode_records
from nextbest.data.schema import Schema
from nextbest.errors import SchemaError


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"device": rng.choice(["mobile", "desktop", "tablet"], 200), "region": rng.integers(0, 4, 200),
                         "basket": rng.lognormal(3, 1, 200), "visits": rng.integers(0, 9, 200)})


@pytest.fixture
def schema(table) -> Schema:
    return Schema.infer(table, list(table.columns), ["device", "region"])


def records(table: pd.DataFrame) -> list[dict]:
    return [{k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()} for row in table.to_dict("records")]


def test_records_encode_exactly_as_the_table(table, schema):
    from_table, from_records = encode(table, schema), encode_records(records(table), schema)
    np.testing.assert_array_equal(from_records.categorical, from_table.categorical)
    np.testing.assert_array_equal(from_records.numeric, from_table.numeric)


def test_a_category_may_come_as_text_or_number(schema):
    row = {"device": "mobile", "basket": 10.0, "visits": 2}
    as_int, as_text = encode_records([row | {"region": 3}], schema), encode_records([row | {"region": "3"}], schema)
    np.testing.assert_array_equal(as_int.categorical, as_text.categorical)


@pytest.mark.parametrize(("change", "message"), [
    ({"device": "fridge"}, r"contexts\[1\]\.device: 'fridge' is not one of \['desktop', 'mobile', 'tablet'\]"),
    ({"basket": "cheap"}, r"contexts\[1\]\.basket: expected a finite number, got 'cheap'"),
    ({"basket": float("nan")}, r"contexts\[1\]\.basket: expected a finite number, got nan"),
    ({"basket": True}, r"contexts\[1\]\.basket: expected a finite number, got True"),
    ({"basket": None}, r"contexts\[1\]\.basket: expected a finite number, got None"),
    ({"device": ["mobile"]}, r"contexts\[1\]\.device: expected a category \(text or integer\), got \['mobile'\]"),
    ({"colour": "red"}, r"contexts\[1\]\.colour: unexpected column"),
])
def test_a_bad_field_is_named_with_its_path(table, schema, change, message):
    rows = records(table.head(2))
    rows[1] = rows[1] | change
    with pytest.raises(SchemaError, match=message):
        encode_records(rows, schema)


def test_a_missing_column_and_a_non_object_are_named(table, schema):
    rows = records(table.head(1))
    del rows[0]["visits"]
    with pytest.raises(SchemaError, match=r"contexts\[0\]\.visits: missing"):
        encode_records(rows, schema)
    with pytest.raises(SchemaError, match=r"contexts\[0\]: expected an object of columns"):
        encode_records(["mobile"], schema)


def test_a_column_without_statistics_encodes_as_zero(table, schema):
    unknown = schema.model_copy(update={"numeric": {"basket": None, "visits": schema.numeric["visits"]}})
    features = encode_records(records(table.head(3)), unknown)
    assert (features.numeric[:, 0] == 0).all() and (features.numeric[:, 1] != 0).any()
    np.testing.assert_array_equal(encode(table.head(3), unknown).numeric, features.numeric)


def test_unseen_categories_go_to_the_bucket_when_the_schema_says_so(table, schema):
    bucketed = schema.model_copy(update={"unknown_category": "bucket"})
    row = records(table.head(1))[0] | {"device": "fridge"}
    assert encode_records([row], bucketed).categorical[0, 0] == 3  # after the three known devices

