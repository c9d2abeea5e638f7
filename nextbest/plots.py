"""Figures drawn from results; nothing here fits or simulates anything.

Each function takes a result and an optional matplotlib `ax`, and returns the figure.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nextbest.training.simulate import SimulationResult  # noqa: E402


def _axes(ax: plt.Axes | None, size: tuple[float, float] = (7, 4)) -> tuple[Figure, plt.Axes]:
    if ax is not None:
        return ax.figure, ax
    figure, ax = plt.subplots(figsize=size, layout="constrained")
    return figure, ax


def learning_curve(result: SimulationResult, ax: plt.Axes | None = None) -> Figure:
    """Expected reward per customer of the greedy policy after each batch, with oracle and random lines."""
    figure, ax = _axes(ax)
    examples = [b.examples for b in result.batches]
    ax.plot(examples, [b.oracle for b in result.batches], "--", color="tab:green", label="oracle")
    ax.plot(examples, [b.random for b in result.batches], ":", color="tab:gray", label="random")
    ax.plot(examples, [b.agent for b in result.batches], "o-", color="tab:blue", label=f"{result.agent} (greedy, held out)")
    explored = [(b.examples, b.mean_reward) for b in result.batches if b.mean_reward is not None]
    if explored:
        ax.plot(*zip(*explored), "x", color="tab:orange", alpha=0.7, label="mean reward while exploring")
    ax.set_xlabel("examples trained on")
    ax.set_ylabel("expected reward per customer")
    ax.set_title(f"{result.scenario}: {result.agent}, seed {result.seed}")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return figure


def save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
