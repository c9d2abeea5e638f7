"""The data contract: schemas, encoding, action spaces and table files, with their errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import check_columns, encode
from nextbest.data.schema import Schema
from nextbest.data.tables import read_table, write_table
from nextbest.errors import ConfigError, DataError, SchemaError


@pytest.fixture
def contexts() -> pd.DataFrame:
    return pd.DataFrame(
        {"browser": ["chrome", "safari", "chrome", "firefox"], "device": [1, 0, 2, 1], "price": [10.0, 20.0, 30.0, 40.0]}
    )


@pytest.fixture
def schema(contexts) -> Schema:
    return Schema.infer(contexts, ["browser", "device", "price"], ["browser", "device"])


def test_schema_infers_sorted_vocabularies_and_numeric_statistics(schema):
    assert schema.categorical == {"browser": ["chrome", "firefox", "safari"], "device": ["0", "1", "2"]}
    assert schema.numeric["price"].mean == pytest.approx(25.0)
    assert schema.numeric["price"].std == pytest.approx(np.std([10, 20, 30, 40]))


def test_schema_round_trips_through_json(schema, tmp_path):
    schema.save(tmp_path / "schema.json")
    assert Schema.load(tmp_path / "schema.json") == schema


def test_schema_from_dimensions_uses_codes_zero_to_n_minus_one():
    schema = Schema.from_dimensions(["a", "b", "x"], ["a", "b"], [3, 4])
    assert schema.categorical == {"a": ["0", "1", "2"], "b": ["0", "1", "2", "3"]}
    assert schema.numeric == {"x": None}


def test_schema_from_dimensions_needs_one_dimension_per_column():
    with pytest.raises(SchemaError, match="2 categorical columns .* but 1 categorical dimensions"):
        Schema.from_dimensions(["a", "b"], ["a", "b"], [3])


def test_encode_standardizes_numbers_and_codes_categories(contexts):
    schema = Schema.infer(contexts, ["browser", "device", "price"], ["browser", "device"], numeric_encoding="standard")
    features = encode(contexts, schema)
    assert features.categorical.tolist() == [[0, 1], [2, 0], [0, 2], [1, 1]]
    np.testing.assert_allclose(features.numeric[:, 0], (contexts["price"] - 25.0) / np.std(contexts["price"]), rtol=1e-6)
    design = features.design_matrix()
    assert design.shape == (4, 3 + 3 + 1 + 1)
    np.testing.assert_array_equal(design[0, :6], [1, 0, 0, 0, 1, 0])
    assert (design[:, -1] == 1).all()


def test_integer_and_text_categories_are_the_same_category(schema, contexts):
    as_text = contexts.assign(device=contexts["device"].astype(str))
    as_float = contexts.assign(device=contexts["device"].astype(float))
    expected = encode(contexts, schema).categorical
    np.testing.assert_array_equal(encode(as_text, schema).categorical, expected)
    np.testing.assert_array_equal(encode(as_float, schema).categorical, expected)


def test_unknown_category_is_an_error_naming_row_and_vocabulary(schema, contexts):
    bad = contexts.copy()
    bad.loc[2, "browser"] = "fridge"
    with pytest.raises(SchemaError, match=r"ctx.csv: column 'browser' has value 'fridge' in row 3, not one of \['chrome', 'firefox', 'safari'\]"):
        encode(bad, schema, source="ctx.csv")


def test_unknown_category_goes_to_its_bucket_when_configured(contexts):
    schema = Schema.infer(contexts, ["browser", "device", "price"], ["browser", "device"], unknown_category="bucket")
    bad = contexts.copy()
    bad.loc[2, "browser"] = "fridge"
    features = encode(bad, schema)
    assert features.categorical[2, 0] == 3  # after the 3 known browsers
    assert schema.cardinalities() == [4, 4]


@pytest.mark.parametrize(
    ("value", "message"),
    [(np.nan, "column 'price' is empty in row 2"), ("cheap", "column 'price' has 'cheap' in row 2"), (np.inf, "in row 2")],
)
def test_bad_numbers_name_the_row(schema, contexts, value, message):
    bad = contexts.astype({"price": object})
    bad.loc[1, "price"] = value
    with pytest.raises(SchemaError, match=message):
        encode(bad, schema)


def test_missing_and_extra_columns_are_named(contexts):
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['age'\]"):
        check_columns(contexts, ["browser", "device", "price", "age"])
    with pytest.raises(SchemaError, match=r"unexpected column\(s\) \['price'\]"):
        check_columns(contexts, ["browser", "device"])


def test_action_space_joint_index_round_trips():
    space = ActionSpace.parse("4,3")
    actions = np.array([[0, 0], [3, 2], [1, 2]])
    joint = space.to_joint(actions)
    assert joint.tolist() == [0, 11, 5]
    np.testing.assert_array_equal(space.from_joint(joint), actions)
    assert space.column_names() == ["action_0", "action_1"]
    assert ActionSpace.parse("[16]").column_names() == ["action"]


def test_action_outside_the_space_names_row_and_range():
    space = ActionSpace.parse("2,2")
    table = pd.DataFrame({"action_0": [0, 1], "action_1": [1, 2]})
    with pytest.raises(SchemaError, match=r"column 'action_1' has 2 in row 2; expected an integer action from 0 to 1"):
        space.read(table, source="exp.csv")


@pytest.mark.parametrize("text", ["sixteen", "0", "-2", ""])
def test_bad_action_space_is_a_config_error(text):
    with pytest.raises(ConfigError):
        ActionSpace.parse(text)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tables_round_trip_in_csv_and_parquet(tmp_path, contexts, suffix):
    path = write_table(contexts, tmp_path / f"t{suffix}")
    pd.testing.assert_frame_equal(read_table(path), contexts, check_dtype=False)


def test_unreadable_tables_are_named(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b\n")
    (tmp_path / "ragged.csv").write_text('a,b\n1,2\n3,4,5,6\n"x\n')
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        read_table(tmp_path / "empty.csv")
    with pytest.raises(DataError, match="header.csv: the table has a header but no rows"):
        read_table(tmp_path / "header.csv")
    with pytest.raises(DataError, match="ragged.csv: malformed CSV"):
        read_table(tmp_path / "ragged.csv")
    with pytest.raises(DataError, match="bad.parquet: cannot read as parquet"):
        read_table(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="missing.csv: file not found"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(DataError, match=r"expected a .csv or .parquet file"):
        read_table(tmp_path / "table.xlsx")


@pytest.mark.parametrize(("text", "message"), [
    ("a,b,c\nx,1,2,3\ny,4,5,6\n", "row 1 has 4 fields but the header names 3 columns"),  # pandas made 'x' an index
    ("a,b\n1,2\n3,4,\n", "row 2 has 3 fields but the header names 2 columns"),
])
def test_a_csv_row_longer_than_the_header_is_refused_not_shifted(tmp_path, text, message):
    (tmp_path / "long.csv").write_text(text)
    with pytest.raises(DataError, match=f"long.csv: malformed CSV \\({message}\\)"):
        read_table(tmp_path / "long.csv")


def test_a_csv_with_a_byte_order_mark_and_windows_line_endings_reads_as_usual(tmp_path):
    (tmp_path / "excel.csv").write_bytes("\ufeffregion,store\r\nNorth East,7\r\nsouth,12\r\n".encode("utf-8"))
    table = read_table(tmp_path / "excel.csv")
    assert list(table.columns) == ["region", "store"]
    assert table["region"].tolist() == ["North East", "south"]
