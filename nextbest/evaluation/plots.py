"""Figures drawn from results; nothing here fits or simulates anything.

Each function takes a result and an optional matplotlib `ax`, and returns the figure.
"""

from __future__ import annotations

import numpy as np

from nextbest.evaluation.history import History
from nextbest.evaluation.ope import OpeResult
from nextbest.evaluation.seeds import SeedsSummary
from nextbest.evaluation.tuning import TrialResult
from nextbest.figures import Figure, plt, save  # noqa: F401  (save: callers draw and save from one module)
from nextbest.figures import axes as _axes
from nextbest.training.simulate import SimulationResult


def _finish(ax: plt.Axes, xlabel: str, ylabel: str, title: str, legend: str = "best") -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc=legend, fontsize="small")
    ax.grid(alpha=0.3)


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
    _finish(ax, "examples trained on", "expected reward per customer", f"{result.scenario}: {result.agent}, seed {result.seed}",
            "lower right")
    return figure


def batch_rewards(history: History, ax: plt.Axes | None = None) -> Figure:
    """Mean reward of the decisions in each trained batch; with an oracle also their expected reward and
    the oracle's and random's on the same customers."""
    figure, ax = _axes(ax)
    before = history.examples - history.rows  # a batch's decisions were made before training on it
    ax.plot(before, history.mean_reward, "x-", color="tab:orange", label="mean reward (realized)")
    if history.oracle is not None:
        ax.plot(before, history.expected_reward, "o-", color="tab:blue", label="expected reward of the actions taken")
        ax.plot(before, history.oracle, "--", color="tab:green", label="oracle")
        ax.plot(before, history.random, ":", color="tab:gray", label="random")
    _finish(ax, "examples trained on when deciding", "reward per decision", "reward per training batch")
    return figure


def regret(history: History, result: SimulationResult | None = None, ax: plt.Axes | None = None) -> Figure:
    """Expected regret per decision (oracle − policy) after each batch: of the exploring decisions taken
    (from the experience store) and, from a simulation, of the greedy policy on held-out customers."""
    figure, ax = _axes(ax)
    if history.regret is not None:
        ax.plot(history.examples - history.rows, history.regret, "x-", color="tab:orange", label="exploring decisions taken")
    if result is not None:
        ax.plot([b.examples for b in result.batches], [b.oracle - b.agent for b in result.batches], "o-",
                color="tab:blue", label="greedy policy, held-out customers")
    ax.axhline(0.0, color="tab:green", linestyle="--", label="oracle")
    _finish(ax, "examples trained on", "regret per decision (expected reward lost)", "regret against the oracle",
            "upper right")
    return figure


def action_distribution(history: History, ax: plt.Axes | None = None) -> Figure:
    """Share of each action in every trained batch (stacked), to see exploration narrow over time."""
    figure, ax = _axes(ax, (8, 4))
    shares = history.action_counts / np.maximum(history.action_counts.sum(axis=1, keepdims=True), 1)
    batches = np.arange(1, len(history) + 1)
    colors = plt.get_cmap("tab20" if shares.shape[1] > 10 else "tab10").colors
    bottom = np.zeros(len(history))
    for j, label in enumerate(history.action_labels):
        ax.bar(batches, shares[:, j], bottom=bottom, color=colors[j % len(colors)], width=0.9, label=label)
        bottom += shares[:, j]
    ax.set_xlabel("training batch")
    ax.set_ylabel("share of decisions")
    ax.set_ylim(0, 1)
    ax.set_title("actions taken, batch by batch")
    if shares.shape[1] <= 20:
        ax.legend(title="action", loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    return figure


def ope_estimates(results: list[OpeResult], ax: plt.Axes | None = None) -> Figure:
    """Each estimator's value of each target policy with its interval; the logging policy's mean reward
    as a dashed line and, where known, the true value as a dotted line."""
    figure, ax = _axes(ax, (7, 1.2 + 0.45 * sum(len(r.estimates) + 1 for r in results)))
    y, ticks, labels = 0, [], []
    for index, result in enumerate(results):
        color, top = f"C{index}", y
        for name, estimate in result.estimates.items():
            ax.errorbar(estimate.estimate, y, xerr=[[estimate.estimate - estimate.ci_low], [estimate.ci_high - estimate.estimate]],
                        fmt="o", color=color, capsize=3)
            ticks.append(y)
            labels.append(f"{result.target}: {name}")
            y -= 1
        if result.true_value is not None:
            ax.vlines(result.true_value, y + 0.5, top + 0.5, color=color, linestyle=":", linewidth=2,
                      label=f"{result.target}: true value {result.true_value:.4g}")
        y -= 1
    logging = results[0].logging_policy
    ax.axvline(logging.estimate, color="tab:gray", linestyle="--", label=f"logging policy {logging.estimate:.4g}")
    ax.set_yticks(ticks, labels)
    _finish(ax, f"expected reward per decision ({logging.confidence:.0%} intervals)", "", "off-policy estimates")
    return figure


def seeds_learning_curves(summary: SeedsSummary, ax: plt.Axes | None = None) -> Figure:
    """The normalized score of every seed after each batch (thin lines), their median and range."""
    figure, ax = _axes(ax)
    for run in summary.runs:
        ax.plot([b.examples for b in run.batches], [b.normalized_score for b in run.batches], color="tab:blue", alpha=0.25, lw=1)
    examples = [b.examples for b in summary.batches]
    ax.fill_between(examples, [b.low for b in summary.batches], [b.high for b in summary.batches], color="tab:blue",
                    alpha=0.12, label="range over the seeds")
    ax.plot(examples, [b.median for b in summary.batches], "o-", color="tab:blue", label="median")
    ax.axhline(1.0, ls="--", color="tab:green", label="oracle")
    _finish(ax, "examples trained on", "normalized score (greedy, held out)",
            f"{summary.scenario}: {summary.agent}, {len(summary.seeds)} seeds", "lower right")
    return figure


def tune_trials(results: list[TrialResult], ax: plt.Axes | None = None) -> Figure:
    """Each trial's last score against its number, by agent; hollow markers: stopped early by the scheduler."""
    figure, ax = _axes(ax)
    for k, agent in enumerate(dict.fromkeys(r.agent for r in results)):
        color = f"C{k}"
        for complete in (True, False):
            chosen = [r for r in results if r.agent == agent and r.complete == complete]
            if chosen:
                ax.scatter([r.index for r in chosen], [r.score for r in chosen], color=color if complete else "none",
                           edgecolors=color, label=agent + ("" if complete else " (stopped early)"))
    best = max(r.score for r in results if r.complete) if any(r.complete for r in results) else None
    if best is not None:
        ax.axhline(best, ls="--", color="tab:gray", lw=1, label="best complete trial")
    _finish(ax, "trial", "score after its last batch", f"{len(results)} trials")
    return figure
