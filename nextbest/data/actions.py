"""Action spaces: one choice set ([16]) or several at once ([2, 2]).

Agents that score every combination (the bandits) work on the joint index of the product
space; tables hold one column per choice set (`action`, or `action_0`, `action_1`, …).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.data.encoding import numeric_column, shown
from nextbest.errors import ConfigError, SchemaError


@dataclass(frozen=True)
class ActionSpace:
    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.sizes or any(int(s) < 1 for s in self.sizes):
            raise ConfigError(f"action space must be a list of positive integers like [16] or [2, 2], got {list(self.sizes)}")

    @classmethod
    def parse(cls, text: str | list[int]) -> ActionSpace:
        """'16', '4,4', '[4, 4]' or a list → ActionSpace."""
        if isinstance(text, str):
            try:
                sizes = [int(part) for part in text.strip().strip("[]").split(",") if part.strip()]
            except ValueError:
                raise ConfigError(f"action space {text!r} must be integers separated by commas, like 16 or 4,4") from None
        else:
            sizes = [int(s) for s in text]
        return cls(tuple(sizes))

    @property
    def n_choices(self) -> int:
        return len(self.sizes)

    @property
    def n_joint(self) -> int:
        return int(np.prod(self.sizes))

    def column_names(self, prefix: str = "action") -> list[str]:
        return [prefix] if self.n_choices == 1 else [f"{prefix}_{i}" for i in range(self.n_choices)]

    def to_joint(self, actions: np.ndarray) -> np.ndarray:
        """(n, n_choices) → (n,) joint index (row-major, the last choice varies fastest)."""
        return np.ravel_multi_index(tuple(np.asarray(actions, dtype=np.int64).T), self.sizes)

    def from_joint(self, joint: np.ndarray) -> np.ndarray:
        """(n,) joint index → (n, n_choices)."""
        return np.stack(np.unravel_index(np.asarray(joint, dtype=np.int64), self.sizes), axis=1)

    def read(self, table: pd.DataFrame, *, prefix: str = "action", source: str = "the table") -> np.ndarray:
        """(n, n_choices) int64 from the action columns, each checked to lie in its choice set."""
        columns = self.column_names(prefix)
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise SchemaError(f"{source}: missing column(s) {missing} for action space {list(self.sizes)}")
        out = np.empty((len(table), self.n_choices), dtype=np.int64)
        for j, (name, size) in enumerate(zip(columns, self.sizes)):
            values = numeric_column(table[name], name, source=source)
            bad = (values != np.round(values)) | (values < 0) | (values >= size)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise SchemaError(
                    f"{source}: column '{name}' has {shown(table[name].iloc[row])} in row {row + 1}; "
                    f"expected an integer action from 0 to {size - 1}"
                )
            out[:, j] = values.astype(np.int64)
        return out

    def write(self, table: pd.DataFrame, actions: np.ndarray, *, prefix: str = "action") -> None:
        for j, name in enumerate(self.column_names(prefix)):
            table[name] = actions[:, j]
