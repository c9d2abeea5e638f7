"""Reading and writing tables (CSV or Parquet, by file suffix) with errors that name the file."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pandas as pd

from nextbest.errors import DataError
from nextbest.io import temporary_path

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def table_format(path: str | Path) -> str:
    """'csv' or 'parquet' from the file suffix; anything else is a DataError."""
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: expected a .csv or .parquet file, got suffix '{Path(path).suffix}'")
    return fmt


def read_table(path: str | Path, *, allow_empty: bool = False) -> pd.DataFrame:
    """Read a CSV or Parquet table. Missing, unreadable, malformed or empty files raise DataError."""
    path = Path(path)
    fmt = table_format(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if fmt == "csv":
            table = pd.read_csv(path, skipinitialspace=True)
        else:
            table = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; expected a header row and at least one data row") from None
    except pd.errors.ParserError as error:
        expected = re.search(r"Expected (\d+) fields", str(error))
        detail = _long_row(path, int(expected.group(1))) if expected else _first_line(error)
        raise DataError(f"{path}: malformed CSV ({detail})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file; expected a CSV table") from None
    except (OSError, ValueError) as error:  # pyarrow raises ArrowInvalid (a ValueError) on a bad Parquet file
        raise DataError(f"{path}: cannot read as {fmt} ({_first_line(error)})") from None
    if fmt == "csv" and not table.index.equals(pd.RangeIndex(len(table))):
        # pandas turns the surplus leading fields of rows longer than the header into an index: refuse, never shift
        raise DataError(f"{path}: malformed CSV ({_long_row(path, len(table.columns))})")
    unnamed = [c for c in table.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        raise DataError(f"{path}: a column has no name in the header (position {table.columns.get_loc(unnamed[0]) + 1})")
    if len(table) == 0 and not allow_empty:
        raise DataError(f"{path}: the table has a header but no rows")
    return table


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV or Parquet (by suffix), atomically: a reader never sees half a file."""
    path = Path(path)
    fmt = table_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        if fmt == "csv":
            table.to_csv(temporary, index=False)
        else:
            table.to_parquet(temporary, index=False)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _long_row(path: Path, header_fields: int) -> str:
    """Which data row has more fields than the header (rows count from 1 after the header)."""
    with open(path, newline="", encoding="utf-8-sig") as file:
        for row, fields in enumerate(csv.reader(file)):
            if row and len(fields) > header_fields:
                return f"row {row} has {len(fields)} fields but the header names {header_fields} columns"
    return f"a row has more fields than the header's {header_fields} columns"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
