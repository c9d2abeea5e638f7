"""The matplotlib set-up every figure module shares: a file-only backend, new axes, atomic-enough saving.

Kept free of nextbest imports so that drawing a planning or budget figure never loads torch.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["Figure", "axes", "plt", "save"]


def axes(ax: plt.Axes | None, size: tuple[float, float] = (7, 4)) -> tuple[Figure, plt.Axes]:
    """The given axes and their figure, or a new figure of `size` inches."""
    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=size, layout="constrained")


def save(figure: Figure, path: str | Path) -> Path:
    """Write `figure` as PNG (creating the directory) and release its memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
