"""The experience store: every experience trained so far, one row each, keyed by a canonical row hash.

    store = ParquetExperienceStore(DIR / "experiences", row_hash, parts=progress.experience_parts)
    store.repeated(table)      # rows already stored or repeated within the table → refuse them
    name = store.append(table) # durable when it returns; the caller commits `store.parts` with its checkpoint
    store.read(); len(store); store.contains(hashes)

The key is `row_hashes` of the experience columns read the way the schema reads them (numeric
columns as float64, categories as their category text, actions and seeds as integers), so a CSV's
`1` and a Parquet's `1.0`, or a category code and its label, are the same row.

The Parquet store (what the CLI uses) writes one part per training call, `part-NNNNNN.parquet`, and
an index `.index.parquet` (part, row_hash) rewritten atomically after each part, so the duplicate
check reads one file rather than every part. Which parts count is the caller's list (`parts`: those
the experiment's checkpoint names), so a part written by a run killed before its checkpoint is
ignored. A database store implements the same five members.
"""

from __future__ import annotations

import io
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import flag_column, numeric_column
from nextbest.data.schema import Schema, category_text
from nextbest.data.tables import read_table
from nextbest.errors import ExperimentError
from nextbest.io import atomic_write_bytes
from nextbest.rewards import reaction_values

_PART = re.compile(r"^part-(\d+)\.parquet$")
INDEX = ".index.parquet"  # hidden: `DIR/experiences/*.parquet` stays the experiences alone


class ExperienceStore(ABC):
    """Experiences, unique by row hash unless appended with `allow_duplicates`."""

    row_hash: Callable[[pd.DataFrame], np.ndarray]

    @abstractmethod
    def append(self, table: pd.DataFrame, *, allow_duplicates: bool = False, source: str = "experiences") -> str:
        """Store `table` (experience columns plus `reward`); returns the part's name once it is durable.
        Rows already stored or repeated raise ExperimentError unless `allow_duplicates`."""

    @abstractmethod
    def read(self) -> pd.DataFrame:
        """Every stored experience, in the order appended."""

    @abstractmethod
    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """(n,) bool: which of the (n,) uint64 row hashes are stored."""

    @abstractmethod
    def __len__(self) -> int:
        """Rows stored."""

    def repeated(self, table: pd.DataFrame) -> np.ndarray:
        """Indices of rows of `table` already stored or equal to an earlier row of `table`."""
        hashes = self.row_hash(table)
        again = pd.Series(hashes).duplicated().to_numpy() | self.contains(hashes)
        return np.flatnonzero(again)

    def refuse_duplicates(self, table: pd.DataFrame, source: str) -> None:
        """Raise ExperimentError naming the first repeated row, if any."""
        repeated = self.repeated(table)
        if len(repeated):
            raise duplicates_error(repeated, len(table), source)


def duplicates_error(repeated: np.ndarray, rows: int, source: str) -> ExperimentError:
    """The refusal of `repeated` (0-based row indices) among `rows` rows of `source`."""
    return ExperimentError(
        f"{source}: {len(repeated)} of {rows} rows were already trained or appear twice "
        f"(first: row {repeated[0] + 1}); pass --allow-duplicates to train them anyway"
    )


def row_hashes(table: pd.DataFrame, schema: Schema, action_space: ActionSpace) -> np.ndarray:
    """(n,) uint64: one hash per experience row, of its values as the schema reads them.

    Numeric context columns, `value`, `log_probability`, `attentive_transformer_loss` and `reaction`
    as float64; categorical columns as their category text (3, 3.0 and '3' alike); actions, `done`
    and `prediction_seed` as integers. Other columns (`reward`) are not part of the key."""
    canonical: dict[str, object] = {}
    for name in schema.columns:
        values = table[name]
        if name in schema.categorical:
            canonical[name] = values.astype(str) if pd.api.types.is_integer_dtype(values) else values.map(category_text).astype(str)
        else:
            canonical[name] = numeric_column(values, name) + 0.0  # + 0.0: −0.0 and 0.0 are one value
    for name in action_space.column_names():
        canonical[name] = numeric_column(table[name], name).astype(np.int64)
    for name in ("value", "log_probability", "attentive_transformer_loss"):
        canonical[name] = numeric_column(table[name], name) + 0.0
    canonical["done"] = flag_column(table["done"], "done").astype(np.int64)
    seeds = table["prediction_seed"]
    canonical["prediction_seed"] = (
        seeds.to_numpy(dtype=np.int64) if pd.api.types.is_integer_dtype(seeds)
        else np.round(numeric_column(seeds, "prediction_seed")).astype(np.int64)
    )
    canonical["reaction"] = reaction_values(table["reaction"]) + 0.0
    frame = pd.DataFrame({i: np.asarray(column) for i, column in enumerate(canonical.values())})
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


class ParquetExperienceStore(ExperienceStore):
    """Parts `part-NNNNNN.parquet` and an index of their row hashes in one directory.

    `parts`: the committed parts, in order (a checkpoint's list); `append` adds to it. Appending is
    for the experiment's single writer (see `Experiment.writing`): part numbers come from the files
    on disk, so a writer never overwrites another's part."""

    def __init__(self, directory: Path, row_hash: Callable[[pd.DataFrame], np.ndarray], parts: list[str] | None = None):
        self.directory = Path(directory)
        self.row_hash = row_hash
        self.parts: list[str] = list(parts or [])
        self._index: pd.DataFrame | None = None  # part, row_hash of every indexed part (committed or not)
        self._stored: np.ndarray | None = None  # sorted uint64 hashes of the committed parts

    # --- the interface --------------------------------------------------------------------------
    def append(self, table: pd.DataFrame, *, allow_duplicates: bool = False, source: str = "experiences") -> str:
        if not allow_duplicates:
            self.refuse_duplicates(table, source)
        hashes = self.row_hash(table)
        index, stored = self._load_index(), self._committed_hashes()
        name = f"part-{self._next_number():06d}.parquet"
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        atomic_write_bytes(self.directory / name, buffer.getvalue())
        index = pd.concat([index, pd.DataFrame({"part": name, "row_hash": hashes})], ignore_index=True)
        buffer = io.BytesIO()
        index.to_parquet(buffer, index=False)
        atomic_write_bytes(self.directory / INDEX, buffer.getvalue())
        self._index = index
        self.parts.append(name)
        self._stored = np.sort(np.concatenate([stored, hashes]))
        return name

    def read(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame()
        return pd.concat([read_table(self.directory / name) for name in self.parts], ignore_index=True)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        stored = self._committed_hashes()
        hashes = np.asarray(hashes, dtype=np.uint64)
        if not len(stored):
            return np.zeros(len(hashes), dtype=bool)
        at = np.minimum(np.searchsorted(stored, hashes), len(stored) - 1)
        return stored[at] == hashes

    def __len__(self) -> int:
        return len(self._committed_hashes())

    # --- the index ------------------------------------------------------------------------------
    def refresh(self, parts: list[str]) -> None:
        """Committed parts changed (another writer's checkpoint): re-read the index on next use."""
        self.parts = list(parts)
        self._index = self._stored = None

    def _committed_hashes(self) -> np.ndarray:
        if self._stored is None:
            index = self._load_index()
            self._stored = np.sort(index["row_hash"][index["part"].isin(self.parts)].to_numpy(dtype=np.uint64))
        return self._stored

    def _load_index(self) -> pd.DataFrame:
        """The index file, with the hashes of committed parts it lacks (directories written before it) added."""
        if self._index is None:
            path = self.directory / INDEX
            index = read_table(path, allow_empty=True) if path.is_file() else pd.DataFrame({"part": [], "row_hash": []})
            index = index.astype({"part": str, "row_hash": np.uint64})
            indexed = set(index["part"])
            missing = [name for name in self.parts if name not in indexed]
            added = [pd.DataFrame({"part": name, "row_hash": self.row_hash(read_table(self.directory / name))}) for name in missing]
            self._index = pd.concat([index, *added], ignore_index=True) if added else index
        return self._index

    def _next_number(self) -> int:
        numbers = [int(match.group(1)) for p in self.directory.glob("part-*.parquet") if (match := _PART.match(p.name))]
        return max(numbers, default=0) + 1
