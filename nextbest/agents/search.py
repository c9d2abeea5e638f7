"""Search spaces of agent settings, declared by each settings model beside its defaults (for `nextbest tune`).

    class LinUCBSettings(LinearSettings):
        alpha: float = Field(1.0, ge=0)
        search_space: ClassVar[SearchSpace] = LinearSettings.search_space | {"alpha": Range(0.1, 3.0, log=True)}

    sample_settings(LinUCB.Config.search_space, np.random.default_rng(0))   # {"ridge": 0.73, "alpha": 1.9}

Plain Python, no Ray: `nextbest tune` draws its trials with this whether it runs them on Ray or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Range:
    """Numbers from low to high, uniform (or uniform in log when `log`), rounded when `integer`."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def sample(self, rng: np.random.Generator) -> float | int:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return int(round(value)) if self.integer else float(value)


@dataclass(frozen=True)
class Choice:
    """One of `values`, each as likely."""

    values: tuple[Any, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.integers(len(self.values)))]


SearchSpace = dict[str, Range | Choice]


def sample_settings(space: SearchSpace, rng: np.random.Generator) -> dict[str, Any]:
    """One draw of every setting of `space` (in its order, so the same rng gives the same draw)."""
    return {name: dimension.sample(rng) for name, dimension in space.items()}
