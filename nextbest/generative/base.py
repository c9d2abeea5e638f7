"""The interface every tabular generator shares: `fit(table, schema)`, `sample(n, seed)`, `save`, `load`.

    generator = GENERATORS["vae"]({"epochs": 50})
    generator.fit(customers)                      # columns, kinds and missing values inferred
    synthetic = generator.sample(10_000, seed=1, conditions="segment=gold")
    generator.save("runs/vae"); same = load_generator("runs/vae")

A subclass implements `_fit`, `_sample`, `_state` and `_restore`; this class does what they
share: column inference and validation, the held-out split, seeds, conditions (exact, by
rejection of the rows that miss them), sampling in chunks, and the experiment directory:

    DIR/hyperparameters.json   the model name and every setting: refitting from it repeats the run
    DIR/fit.json               rows, seconds, per-epoch losses, held-out scores
    DIR/checkpoints/           the fitted generator (atomic write, `latest` pointer)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, ValidationError

from nextbest.checkpoints import write_checkpoint
from nextbest.config import Section, parse_overrides
from nextbest.data.schema import Schema
from nextbest.errors import ConfigError, DataError, ExperimentError
from nextbest.generative.columns import TableSpec, infer_spec, matches, parse_conditions, spec_for_schema
from nextbest.io import write_json
from nextbest.nets.device import default_device

EpochCallback = Callable[[int, dict[str, float]], None]
CHUNK_ROWS = 50_000  # rows generated per forward pass when sampling: bounds memory for millions of rows
MAX_REJECTION = 200  # give up on conditions met by fewer than 1 in this many generated rows


class GeneratorConfig(Section):
    epochs: PositiveInt | None = Field(None, description="passes over the training rows (default: enough for `steps`)")
    steps: PositiveInt = Field(4000, description="gradient steps to aim for when epochs is not set (5 to 300 epochs)")
    batch_size: PositiveInt = Field(500, description="rows per gradient step")
    learning_rate: PositiveFloat = Field(1e-3, description="Adam step size")
    validation_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="rows held out for held-out scores")
    categorical_columns: list[str] = Field(default_factory=list, description="columns to treat as categories even if numeric")
    max_categories: PositiveInt = Field(100, description="a categorical column with more distinct values is an error")
    seed: NonNegativeInt = Field(0, description="initialization, shuffling and the held-out split")
    patience: NonNegativeInt = Field(10, description="stop after this many epochs without a better held-out score "
                                     "and keep the best epoch's weights (0: never stop early; needs validation rows)")
    threads: PositiveInt = Field(1, description="CPU threads of torch while fitting and sampling (small networks "
                                 "run fastest on one, and a busy machine slows several threads down most)")


class Generator:
    """A generative model of a customer table (see the module docstring)."""

    name: ClassVar[str]
    summary_text: ClassVar[str]
    Config: ClassVar[type[GeneratorConfig]] = GeneratorConfig

    def __init__(self, config: GeneratorConfig | dict | str | Path | None = None):
        self.config = config if isinstance(config, self.Config) else make_config(self.Config, config, self.name)
        self.spec: TableSpec | None = None
        self.history: list[dict[str, float]] = []
        self.summary: dict[str, Any] = {}
        self.device = default_device()

    # ----------------------------------------------------------------- the interface
    def fit(
        self,
        table: pd.DataFrame,
        schema: TableSpec | Schema | None = None,
        *,
        source: str = "the table",
        on_epoch: EpochCallback | None = None,
    ) -> Generator:
        """Learn the joint distribution of `table`'s rows (of `schema`'s columns when given)."""
        options = {"max_categories": self.config.max_categories, "source": source}
        if isinstance(schema, TableSpec):
            self.spec = schema
            table = _columns_of(table, schema.names, source)
        elif isinstance(schema, Schema):
            self.spec = spec_for_schema(table, schema, **options)
            table = table[schema.columns]
        else:
            self.spec = infer_spec(table, self.config.categorical_columns, **options)
        table = table.reset_index(drop=True)
        rng = np.random.default_rng(self.config.seed)
        torch.manual_seed(self.config.seed)
        order = rng.permutation(len(table))
        held_out = int(len(table) * self.config.validation_fraction)
        train, valid = table.iloc[order[held_out:]], table.iloc[order[:held_out]]
        self.history = []

        def record(epoch: int, metrics: dict[str, float]) -> None:
            self.history.append({"epoch": epoch, **{k: float(v) for k, v in metrics.items()}})
            if on_epoch:
                on_epoch(epoch, metrics)

        self.epochs = self.epochs_for(len(table))
        started = time.perf_counter()
        with torch_threads(self.config.threads):
            held_out_scores = self._fit(train.reset_index(drop=True), valid.reset_index(drop=True), rng, record)
        self.summary = {
            "model": self.name, "rows": len(table), "training_rows": len(train), "validation_rows": len(valid),
            "columns": len(self.spec.columns), "categorical_columns": len(self.spec.categorical),
            "epochs": len(self.history), "seconds": time.perf_counter() - started, **(held_out_scores or {}),
        }
        return self

    def sample(
        self,
        n: int,
        seed: int | None = None,
        conditions: str | dict[str, str] | None = None,
        *,
        on_rows: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """`n` synthetic rows with the real table's columns and dtypes; all meet `conditions` (e.g. 'segment=gold')."""
        if self.spec is None:
            raise ExperimentError(f"the {self.name} generator is not fitted yet; call fit(table) first")
        if n < 1:
            raise ConfigError(f"the number of rows to sample must be positive, got {n}")
        conditions = parse_conditions(conditions, self.spec)
        rng = np.random.default_rng(seed)
        parts, kept, drawn, rate = [], 0, 0, 1.0
        with torch.no_grad(), torch_threads(self.config.threads):
            while kept < n:
                chunk = int(min(CHUNK_ROWS, max(64, (n - kept) / rate * 1.1)))
                rows = self._sample(chunk, rng, conditions)
                drawn += chunk
                if conditions:
                    rows = rows[matches(rows, conditions)]
                    rate = max(kept + len(rows), 1) / drawn
                    if drawn >= MAX_REJECTION * n and kept + len(rows) < n:
                        wanted = ", ".join(f"{k}={v}" for k, v in conditions.items())
                        raise DataError(f"only {kept + len(rows)} of {drawn} generated rows have {wanted}; the model "
                                        "rarely generates them: fit longer, or use the 'gan' model, which samples conditionally")
                parts.append(rows)
                kept += len(rows)
                if on_rows:
                    on_rows(min(kept, n))
        return pd.concat(parts, ignore_index=True).iloc[:n].reset_index(drop=True)

    def save(self, directory: str | Path) -> Path:
        """Write the fitted generator into `directory` (see the module docstring for the files)."""
        if self.spec is None:
            raise ExperimentError(f"the {self.name} generator is not fitted yet; nothing to save")
        directory = Path(directory)
        state = {
            "generator": self.name, "config": self.config.model_dump(mode="json"), "spec": self.spec.model_dump(),
            "history": self.history, "summary": self.summary, "model": self._state(),
        }
        write_checkpoint(directory / "checkpoints", self.summary.get("epochs", 0), state, keep=1)
        write_json(directory / "hyperparameters.json", {"model": self.name, **self.config.model_dump(mode="json")})
        write_json(directory / "fit.json", {**self.summary, "history": self.history})
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Generator:
        from nextbest.generative import load_generator

        return load_generator(directory)

    def epochs_for(self, rows: int) -> int:
        """Epochs a fit on `rows` rows runs: the configured number, else about `steps` gradient steps."""
        if self.config.epochs:
            return self.config.epochs
        training = rows - int(rows * self.config.validation_fraction)
        per_epoch = max(1, training // min(self.config.batch_size, max(training, 1)))
        return int(np.clip(np.ceil(self.config.steps / per_epoch), 5, 300))

    # ----------------------------------------------------------------- what each model implements
    def _fit(self, train: pd.DataFrame, valid: pd.DataFrame, rng: np.random.Generator,
             on_epoch: EpochCallback) -> dict[str, float] | None:
        """Train on `train`; return held-out scores computed on `valid` (which may have no rows)."""
        raise NotImplementedError

    def _sample(self, n: int, rng: np.random.Generator, conditions: dict[str, str]) -> pd.DataFrame:
        """`n` rows; `conditions` is a hint a model may use (rows that miss it are dropped by `sample`)."""
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _restore(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------- helpers for subclasses
    def minibatches(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Shuffled row indices in batches of `batch_size` (a last batch of one row joins the one before)."""
        order = rng.permutation(n)
        size = min(self.config.batch_size, n)
        batches = [order[i : i + size] for i in range(0, n, size)]
        if len(batches) > 1 and len(batches[-1]) < 2:  # batch normalization needs two rows
            batches[-2] = np.concatenate(batches[-2:])
            batches.pop()
        return batches

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=torch.float32, device=self.device)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on `n` CPU threads inside the block, and restore the previous number after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def make_config(model: type[GeneratorConfig], overrides: Any, name: str = "generator") -> GeneratorConfig:
    """`model` from defaults and overrides (a dict, a JSON object string or a JSON file path)."""
    data = parse_overrides(overrides)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            raise ConfigError(f"unknown hyperparameter '{where}' for the {name} model; "
                              f"known keys are {sorted(model.model_fields)}") from None
        raise ConfigError(f"hyperparameter '{where}': {first['msg'].lower()} (got {first.get('input')!r})") from None


def _columns_of(table: pd.DataFrame, names: list[str], source: str) -> pd.DataFrame:
    missing = [c for c in names if c not in table.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; expected columns {names}")
    return table[names]
