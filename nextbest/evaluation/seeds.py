"""Many seeds of one simulation: the median and the spread of the normalized score after each batch.

    runs = [simulate("optimus-poc", seed=s) for s in parse_seeds("0-9")]     # or nextbest.scale.seeds on Ray
    summary = seeds_summary(runs)
    summary.batches[-1].median, summary.batches[-1].low, summary.batches[-1].high

The spread is the range of the seeds' scores (low = min, high = max) and their interquartile range.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from nextbest.errors import ConfigError
from nextbest.training.simulate import SimulationResult


def parse_seeds(text: str) -> list[int]:
    """'0-9' → 0 … 9; '1,4,7' → those; ranges and lists combine ('0-2,8')."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            low, _, high = part.partition("-") if not part.startswith("-") else (part, "", "")
            first, last = int(low), int(high) if high else int(low)
            if last < first:
                raise ValueError
            seeds.extend(range(first, last + 1))
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected a range such as 0-9 or a list such as 1,4,7 of whole numbers") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: expected at least one seed, each once")
    return seeds


@dataclass
class SeedsBatch:
    batch: int
    examples: int
    median: float  # normalized score, median over the seeds
    low: float  # min over the seeds
    high: float  # max
    q25: float
    q75: float


@dataclass
class SeedsSummary:
    scenario: str
    agent: str
    seeds: list[int]
    batches: list[SeedsBatch]
    runs: list[SimulationResult]

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "agent": self.agent, "seeds": self.seeds,
                "final_median_score": self.batches[-1].median, "final_low": self.batches[-1].low,
                "final_high": self.batches[-1].high, "batches": [asdict(b) for b in self.batches],
                "runs": [r.to_dict() for r in self.runs]}


def seeds_summary(runs: list[SimulationResult]) -> SeedsSummary:
    """Per batch, the median, range and quartiles of the seeds' normalized scores (runs of one scenario and agent)."""
    scores = np.array([[b.normalized_score for b in run.batches] for run in runs])  # (seeds, batches)
    first = runs[0]
    batches = [
        SeedsBatch(b.batch, b.examples, float(np.median(column)), float(column.min()), float(column.max()),
                   float(np.quantile(column, 0.25)), float(np.quantile(column, 0.75)))
        for b, column in zip(first.batches, scores.T)
    ]
    return SeedsSummary(first.scenario, first.agent, [r.seed for r in runs], batches, runs)
