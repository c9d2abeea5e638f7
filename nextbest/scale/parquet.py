"""Parquet in and out of Ray Data, for batch scoring: no torch here, so that read and write workers start fast.

    files = input_files("crm/")                       # a file, or a folder's Parquet files in name order
    pieces, seeded = plan_pieces(files, columns)      # row groups numbered through (the driver reads footers only)
    ray.data.read_datasource(contexts_datasource(pieces, columns, 65_536))   # blocks with their rows' numbers in ROW
    dataset.write_datasink(sink := predictions_datasink(folder))              # part-<first row>.parquet
    check_written(sink.returns, n, folder)            # every row written once, or a DataError
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nextbest.data.encoding import check_columns
from nextbest.data.tables import write_table
from nextbest.errors import DataError

ROW = "__row__"  # the row's number in the whole input, from 0; never written
PARQUET = (".parquet", ".pq")


@dataclass(frozen=True)
class Piece:
    """One row group of one input file, and the number of its first row in the whole input."""

    path: str
    row_group: int
    first_row: int
    rows: int


def input_files(path: str | Path) -> list[Path]:
    """The Parquet file, or the Parquet files in a folder (and its sub-folders) in name order."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder; expected a Parquet file or a folder of Parquet files")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in PARQUET and p.is_file())
    if not files:
        raise DataError(f"{path}: the folder holds no Parquet file (*.parquet, *.pq)")
    return files


def plan_pieces(files: list[Path], columns: list[str]) -> tuple[list[Piece], bool]:
    """Row groups of every file, numbered through; and whether the input has its own `prediction_seed` column.
    Reads the footers only. Every file must have the schema's columns (and no others), as `predict` requires."""
    pieces, first, seeded = [], 0, None
    for path in files:
        try:
            metadata = pq.ParquetFile(path).metadata
        except (OSError, pa.ArrowException) as error:
            raise DataError(f"{path}: cannot read as parquet ({str(error).splitlines()[0]})") from None
        names = metadata.schema.to_arrow_schema().names
        check_columns(pd.DataFrame(columns=names), columns, optional=["prediction_seed"], source=str(path))
        has_seed = "prediction_seed" in names
        if seeded is not None and has_seed != seeded:
            raise DataError(f"{path}: {'has' if has_seed else 'has no'} column 'prediction_seed', unlike {files[0]}; "
                            "expected every file of the folder to have the same columns")
        seeded = has_seed
        for group in range(metadata.num_row_groups):
            rows = metadata.row_group(group).num_rows
            if rows:
                pieces.append(Piece(str(path), group, first, rows))
                first += rows
    if first == 0:
        raise DataError(f"{files[0] if len(files) == 1 else files[0].parent}: the input has no rows")
    return pieces, bool(seeded)


def read_piece(piece: Piece, columns: list[str], batch_size: int) -> Iterator[pa.Table]:
    """The row group as blocks of at most `batch_size` rows, each with its rows' numbers in ROW."""
    first = piece.first_row
    for batch in pq.ParquetFile(piece.path).iter_batches(batch_size=batch_size, row_groups=[piece.row_group], columns=columns):
        table = pa.Table.from_batches([batch])
        yield table.append_column(ROW, pa.array(np.arange(first, first + len(table), dtype=np.int64)))
        first += len(table)


def contexts_datasource(pieces: list[Piece], columns: list[str], batch_size: int) -> Any:
    """A Ray Data datasource of the pieces: one read task per row group."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class Contexts(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None) -> list:
            return [
                ReadTask(lambda piece=piece: read_piece(piece, columns, batch_size),
                         BlockMetadata(num_rows=piece.rows, size_bytes=None, exec_stats=None, input_files=[piece.path]),
                         per_task_row_limit=per_task_row_limit)
                for piece in pieces
            ]

    return Contexts()


def predictions_datasink(folder: Path) -> Any:
    """A Ray Data datasink writing each block as `folder/part-<first row>.parquet`, rows in input order, without
    ROW; each write returns (files, rows, Σ row, Σ row²) so that the driver can check every row came once."""
    from ray.data.datasource import Datasink

    class Predictions(Datasink):
        def write(self, blocks: Iterable, ctx: Any) -> tuple[int, int, int, int]:
            files = count = total = squares = 0
            for block in blocks:
                table = block.to_pandas() if isinstance(block, pa.Table) else pd.DataFrame(block)
                if not len(table):
                    continue
                table = table.sort_values(ROW, kind="stable")
                rows = table.pop(ROW).to_numpy(dtype=np.int64)
                write_table(table.reset_index(drop=True), folder / f"part-{rows[0]:012d}.parquet")  # atomic: a retry overwrites
                files, count = files + 1, count + len(rows)
                total += int(rows.sum())
                squares += int((rows.astype(object) ** 2).sum())
            return files, count, total, squares

        def on_write_complete(self, write_result: Any) -> None:  # on the driver
            self.returns = list(write_result.write_returns)

    return Predictions()


def check_written(returns: list[tuple[int, int, int, int]], n: int, folder: Path) -> int:
    """The number of files, after checking that rows 0 … n−1 were each written once (count, Σ and Σ² agree)."""
    files = sum(r[0] for r in returns)
    count, total, squares = (sum(r[k] for r in returns) for k in (1, 2, 3))
    if (count, total, squares) != (n, n * (n - 1) // 2, (n - 1) * n * (2 * n - 1) // 6):
        raise DataError(f"{folder}: {count} prediction rows written for {n} input rows; a row is missing or doubled")
    return files
