"""Figures of synthetic-data quality and of training; drawn from results, nothing is refitted."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from nextbest.figures import axes as _axes
from nextbest.figures import plt
from nextbest.generative.quality import QualityReport

REAL, SYNTHETIC = "tab:blue", "tab:orange"


def marginal(report: QualityReport, column: str, ax: plt.Axes | None = None) -> Figure:
    """Real against synthetic distribution of one column: step histograms, or bars per category."""
    figure, ax = _axes(ax, (4, 3))
    m = report.marginals[column]
    score = next(s for s in report.column_shapes if s["column"] == column)
    if m["kind"] == "numeric":
        edges = np.asarray(m["edges"])
        ax.stairs(m["real"], edges, color=REAL, label="real", fill=True, alpha=0.35)
        ax.stairs(m["synthetic"], edges, color=SYNTHETIC, label="synthetic", linewidth=1.5)
        if m["empty_real"] or m["empty_synthetic"]:
            ax.text(0.98, 0.95, f"empty: {m['empty_real']:.0%} / {m['empty_synthetic']:.0%}", transform=ax.transAxes,
                    ha="right", va="top", fontsize=7)
    else:
        shown = np.argsort(m["real"])[::-1][:12]  # the 12 largest real categories
        x = np.arange(len(shown))
        ax.bar(x - 0.2, np.asarray(m["real"])[shown], 0.4, color=REAL, label="real")
        ax.bar(x + 0.2, np.asarray(m["synthetic"])[shown], 0.4, color=SYNTHETIC, label="synthetic")
        ax.set_xticks(x, [str(m["labels"][i])[:12] for i in shown], rotation=45, ha="right", fontsize=7)
    ax.set_title(f"{column} ({score['metric']} score {score['score']:.3f})", fontsize=9)
    ax.tick_params(labelsize=7)
    return figure


def marginals(report: QualityReport, columns: list[str] | None = None, per_row: int = 4) -> Figure:
    """A grid of `marginal` panels, one per column (all columns by default)."""
    columns = columns or list(report.marginals)
    rows = math.ceil(len(columns) / per_row)
    figure, axes = plt.subplots(rows, per_row, figsize=(3.2 * per_row, 2.6 * rows), layout="constrained", squeeze=False)
    for ax, column in zip(axes.flat, columns):
        marginal(report, column, ax)
    for ax in axes.flat[len(columns) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    return figure


def pair_differences(report: QualityReport, ax: plt.Axes | None = None) -> Figure:
    """Heat map of 1 − pair-trend score: |Δ correlation| / 2 for two numeric columns, else the contingency TV."""
    names, matrix = report.pair_difference_matrix()
    size = max(4.0, 0.35 * len(names) + 2)
    figure, ax = _axes(ax, (size + 1, size))
    image = ax.imshow(matrix, cmap="magma_r", vmin=0.0, vmax=max(0.2, float(matrix.max())))
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    figure.colorbar(image, ax=ax, shrink=0.8, label="difference (0: relation kept)")
    ax.set_title(f"pair trends: mean score {report.scores['pair_trends']:.3f}")
    return figure


def training_curve(history: list[dict[str, Any]], ax: plt.Axes | None = None) -> Figure:
    """Every per-epoch number a generator recorded while fitting (ELBO, losses, log-likelihoods)."""
    figure, ax = _axes(ax)
    epochs = [h["epoch"] for h in history]
    for key in [k for k in history[0] if k != "epoch"] if history else []:
        ax.plot(epochs, [h[key] for h in history], label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure
