"""Figures of a planning result; nothing here solves anything.

Grid worlds get their values as a heat map with the greedy action as an arrow in each cell;
other MDPs get a bar per state. Each function takes an optional matplotlib `ax` and returns the figure.
"""

from __future__ import annotations

import numpy as np

from nextbest.figures import Figure, plt, save  # noqa: F401  (save: callers draw and save from one module)
from nextbest.figures import axes as _axes
from nextbest.planning.mdp import FiniteMDP
from nextbest.planning.solvers import PlanningResult

ARROWS = {"up": "↑", "north": "↑", "down": "↓", "south": "↓", "left": "←", "west": "←", "right": "→", "east": "→"}


def action_symbol(label: object) -> str:
    """An arrow for a compass action, else the action's label."""
    return ARROWS.get(str(label).lower(), str(label))


def value_grid(result: PlanningResult, mdp: FiniteMDP, ax: plt.Axes | None = None) -> Figure:
    """Values as a heat map on the grid, the greedy action as an arrow, marks (holes, walls, goals) as text."""
    layout = mdp.layout
    if layout is None:
        raise ValueError(f"{mdp.name} has no grid layout; use value_bars")
    figure, ax = _axes(ax, (1.1 * layout.cols + 1.5, 1.1 * layout.rows + 0.6))
    grid = result.values.reshape(layout.rows, layout.cols)
    walls = np.isin(np.arange(mdp.n_states), list(layout.walls)).reshape(grid.shape)
    colours = plt.get_cmap("viridis").with_extremes(bad="0.8")  # walls in grey
    image = ax.imshow(np.ma.masked_array(grid, walls), cmap=colours)
    figure.colorbar(image, ax=ax, shrink=0.8, label="value")
    for s in set(range(mdp.n_states)) - layout.walls:
        row, col = divmod(s, layout.cols)
        text = layout.marks.get(s) or action_symbol(mdp.actions[result.policy[s]])
        ax.text(col, row - 0.12, text, ha="center", va="center", fontsize=14, color="white")
        ax.text(col, row + 0.28, f"{result.values[s]:.2f}", ha="center", va="center", fontsize=7, color="white")
    ax.set_xticks(range(layout.cols))
    ax.set_yticks(range(layout.rows))
    ax.set_title(f"{mdp.name}: {result.method}, gamma {result.gamma:g}")
    return figure


def value_bars(result: PlanningResult, mdp: FiniteMDP, ax: plt.Axes | None = None) -> Figure:
    """One bar per state (its value), labelled with the greedy action."""
    figure, ax = _axes(ax, (max(6.0, 0.35 * mdp.n_states), 4))
    positions = np.arange(mdp.n_states)
    ax.bar(positions, result.values, color=np.where(mdp.terminal, "tab:gray", "tab:blue"))
    if mdp.n_states <= 60:
        ax.set_xticks(positions, [str(s) for s in mdp.states], rotation=90 if mdp.n_states > 12 else 0)
        for s in positions:
            if not mdp.terminal[s]:
                ax.annotate(action_symbol(mdp.actions[result.policy[s]]), (s, result.values[s]), ha="center",
                            va="bottom" if result.values[s] >= 0 else "top", fontsize=8)
    ax.set_xlabel("state")
    ax.set_ylabel("value")
    ax.set_title(f"{mdp.name}: {result.method}, gamma {result.gamma:g}")
    ax.grid(alpha=0.3, axis="y")
    return figure


def plot_result(result: PlanningResult, mdp: FiniteMDP, ax: plt.Axes | None = None) -> Figure:
    """value_grid for grid worlds, value_bars otherwise."""
    return (value_grid if mdp.layout is not None else value_bars)(result, mdp, ax)
