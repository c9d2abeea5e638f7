"""Synthetic customers: deep generative models of mixed-type tables, and how good their copies are.

One interface (`fit(table, schema)`, `sample(n, seed, conditions)`, `save`, `load`), one registry:

    from nextbest.generative import GENERATORS, load_generator
    generator = GENERATORS["made"]({"epochs": 30}).fit(customers)
    generator.save("runs/made")
    draw = contexts_sampler("runs/made")      # (n, rng) → DataFrame, for the personalization simulators
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.checkpoints import read_checkpoint
from nextbest.errors import ConfigError, ExperimentError
from nextbest.generative.base import Generator, GeneratorConfig
from nextbest.generative.columns import Column, TableSpec, infer_spec
from nextbest.generative.gan import TabularGAN
from nextbest.generative.made import MADE
from nextbest.generative.vae import TabularVAE

GENERATORS: dict[str, type[Generator]] = {model.name: model for model in (TabularVAE, TabularGAN, MADE)}


def generator_class(name: str) -> type[Generator]:
    try:
        return GENERATORS[name]
    except KeyError:
        raise ConfigError(f"unknown generative model {name!r}; choose one of {sorted(GENERATORS)}") from None


def load_generator(directory: str | Path) -> Generator:
    """The generator fitted into `directory` by `Generator.save` (or `nextbest synth fit`)."""
    directory = Path(directory)
    hint = f"fit one first: nextbest synth fit DATA --model made --experiment-dir {directory}"
    if not directory.is_dir():
        raise ExperimentError(f"{directory}: no such directory; {hint}")
    found = read_checkpoint(directory / "checkpoints")
    if found is None or "generator" not in found[1]:
        raise ExperimentError(f"{directory}: holds no fitted generator; {hint}")
    state = found[1]
    generator = generator_class(state["generator"])(state["config"])
    generator.spec = TableSpec.model_validate(state["spec"])
    generator.history, generator.summary = state["history"], state["summary"]
    generator._restore(state["model"])
    return generator


def contexts_sampler(
    directory: str | Path, columns: list[str] | None = None
) -> Callable[[int, np.random.Generator], pd.DataFrame]:
    """`draw(n, rng)`: n synthetic customers from the generator fitted in `directory`, seeded by `rng`.

    With `columns` (e.g. a scenario's context columns) the draw holds exactly those, in that order,
    and a generator that does not make all of them is an error now rather than deep inside a run."""
    generator = load_generator(directory)
    if columns is not None:
        missing = [c for c in columns if c not in generator.spec.names]
        if missing:
            raise ConfigError(f"{directory}: the generator makes columns {generator.spec.names}, not {missing}; "
                              f"fit it on a table with the columns {list(columns)}")

    def draw(n: int, rng: np.random.Generator) -> pd.DataFrame:
        rows = generator.sample(n, seed=int(rng.integers(2**63 - 1)))
        return rows if columns is None else rows[list(columns)]

    return draw


__all__ = [
    "GENERATORS", "MADE", "Column", "Generator", "GeneratorConfig", "TableSpec", "TabularGAN", "TabularVAE",
    "contexts_sampler", "generator_class", "infer_spec", "load_generator",
]
