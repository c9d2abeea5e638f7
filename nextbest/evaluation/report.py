"""`nextbest report DIR`: an HTML or Markdown report with PNG figures, written into DIR/report/.

Sections: overview, learning curve (with oracle and random lines when the run was simulated),
regret, actions taken batch by batch, and off-policy estimates of the agent's exploring and greedy
policies on its own experience store. Numbers are computed here; figures come from nextbest.evaluation.plots.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from matplotlib.figure import Figure

from nextbest.envs import make_scenario
from nextbest.errors import ConfigError, NextbestError
from nextbest.evaluation import plots
from nextbest.evaluation.estimators import make_estimators
from nextbest.evaluation.history import History, experience_history
from nextbest.evaluation.logs import read_logs
from nextbest.evaluation.ope import fit_expected_reward, off_policy_evaluation, target_from_experiment
from nextbest.evaluation.simulation import load_simulation
from nextbest.io import atomic_write_bytes
from nextbest.simulators.reward_models import FOLDS, reward_model_class
from nextbest.training.experiment import Experiment, describe
from nextbest.training.simulate import TARGET_SCORE, SimulationResult

Format = Literal["html", "markdown"]


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    table: tuple[list[str], list[list[Any]]] | None = None
    figure: str | None = None


@dataclass
class Report:
    path: Path
    figures: list[Path]
    summary: dict[str, Any]


def write_report(
    directory: str | Path,
    *,
    format: Format = "html",
    ope: bool = True,
    estimators: list[str] | None = None,
    reward_model: str = "gbm",
    bootstrap_samples: int = 1000,
    seed: int = 0,
    on_step: Callable[[str], None] | None = None,
) -> Report:
    """Write DIR/report/report.html (or report.md) and its figures; returns paths and the numbers shown."""
    if format not in ("html", "markdown"):
        raise ConfigError(f"report format must be 'html' or 'markdown', got {format!r}")
    make_estimators(estimators)  # a typo fails here, not as a note inside the report
    reward_model_class(reward_model)
    step = on_step or (lambda _: None)
    directory = Path(directory)
    experiment = Experiment.open(directory)
    simulation = load_simulation(directory)
    scenario = _scenario(simulation.scenario) if simulation else None
    history = experience_history(experiment, scenario)
    step("experience store")
    out = directory / "report"
    figures: dict[str, Figure] = {}
    summary: dict[str, Any] = {"experiment": describe(experiment)}
    sections = [_overview(experiment, simulation, summary)]
    sections.append(_learning(history, simulation, figures))
    if history.regret is not None or simulation is not None:
        sections.append(_regret(history, simulation, figures, summary))
    if len(history):
        sections.append(_actions(history, figures))
    if ope:
        sections.append(_ope(experiment, scenario, figures, summary, estimators=estimators, reward_model=reward_model,
                             bootstrap_samples=bootstrap_samples, seed=seed, step=step))

    paths = [plots.save(figure, out / name) for name, figure in figures.items()]
    path = out / ("report.html" if format == "html" else "report.md")
    title = f"nextbest report: {directory.name}"
    atomic_write_bytes(path, (render_html(title, sections) if format == "html" else render_markdown(title, sections)).encode())
    summary |= {"report": str(path), "figures": [str(p) for p in paths]}
    return Report(path, paths, summary)


# --- sections --------------------------------------------------------------------------------
def _overview(experiment: Experiment, simulation: SimulationResult | None, summary: dict[str, Any]) -> Section:
    hp = experiment.hyperparameters
    rows = [["agent", hp.agent_name], ["action space", hp.actions.action_space],
            ["context columns", ", ".join(experiment.schema.columns)], ["training updates", experiment.progress.updates],
            ["examples trained on", experiment.progress.examples]]
    if simulation is not None:
        reached = simulation.examples_to()
        rows += [["scenario", f"{simulation.scenario} (seed {simulation.seed})"],
                 ["final normalized score", f"{simulation.final_score:.3f}"],
                 [f"examples to a score of {TARGET_SCORE}", reached if reached is not None else "not reached"]]
        summary["simulation"] = {k: v for k, v in simulation.to_dict().items() if k != "batches"}
    text = ["Normalized score = (agent − random) / (oracle − random) of the greedy policy on held-out customers; "
            "1 is the best possible."] if simulation else []
    return Section("Overview", text, (["", "value"], rows))


def _learning(history: History, simulation: SimulationResult | None, figures: dict[str, Figure]) -> Section:

    if simulation is not None:
        figures["learning_curve.png"] = plots.learning_curve(simulation)
        return Section("Learning curve", ["Expected reward per customer of the greedy policy after each batch, "
                                          "with the oracle and uniformly random actions."], figure="learning_curve.png")
    if not len(history):
        return Section("Learning curve", ["No experiences yet: train the agent first (`nextbest train`)."])
    figures["batch_rewards.png"] = plots.batch_rewards(history)
    return Section("Learning curve", ["Mean reward of the decisions in each training batch. The oracle and random "
                                      "lines need a simulated run (`nextbest simulate --experiment-dir`)."],
                   figure="batch_rewards.png")


def _regret(history: History, simulation: SimulationResult | None, figures: dict[str, Figure], summary: dict[str, Any]) -> Section:

    figures["regret.png"] = plots.regret(history, simulation)
    rows, numbers = [], {}
    if simulation is not None:
        last = simulation.batches[-1]
        numbers["greedy_regret_per_decision"] = last.oracle - last.agent
        rows.append(["greedy policy, held-out customers, after the last batch", f"{last.oracle - last.agent:.4g}"])
    if history.regret is not None:
        numbers |= {"exploring_regret_per_decision": float(history.regret[-1]),
                    "cumulative_regret": float(history.cumulative_regret[-1])}
        rows += [["exploring decisions of the last batch", f"{history.regret[-1]:.4g}"],
                 [f"all {int(history.examples[-1])} decisions, summed", f"{history.cumulative_regret[-1]:.4g}"]]
    summary["regret"] = numbers
    return Section("Regret", ["Regret is the expected reward lost against the oracle, per decision."],
                   (["regret", "value"], rows), "regret.png")


def _actions(history: History, figures: dict[str, Figure]) -> Section:

    figures["actions.png"] = plots.action_distribution(history)
    first, last = history.action_counts[0], history.action_counts[-1]
    top = np.argsort(-last)[:5]
    rows = [[history.action_labels[a], f"{first[a] / first.sum():.1%}", f"{last[a] / last.sum():.1%}"] for a in top]
    return Section("Actions taken over time", ["The most frequent actions of the last batch:"],
                   (["action", "first batch", "last batch"], rows), "actions.png")


def _ope(experiment: Experiment, scenario: Any, figures: dict[str, Figure], summary: dict[str, Any], *,
         estimators: list[str] | None, reward_model: str, bootstrap_samples: int, seed: int,
         step: Callable[[str], None]) -> Section:

    title = "Off-policy estimates"
    experiences = experiment.experiences()
    if not len(experiences):
        return Section(title, ["No experiences to evaluate on yet."])
    try:
        logs = read_logs(experiences, experiment.action_space, schema=experiment.schema, source="the experience store")
        q_hat = fit_expected_reward(logs, reward_model=reward_model, seed=seed)
        results = []
        for greedy in (False, True):
            target = target_from_experiment(experiment, logs, greedy=greedy, seed=seed)
            result = off_policy_evaluation(logs, target, estimators=estimators, expected_reward=q_hat, seed=seed,
                                           bootstrap_samples=bootstrap_samples, reward_model=reward_model,
                                           target="greedy" if greedy else "exploring")
            if scenario is not None:
                result.true_value = float((target * scenario.expected_rewards(logs.contexts)).sum(axis=1).mean())
            results.append(result)
            step(f"off-policy estimates ({result.target})")
    except NextbestError as error:  # e.g. logs without exploration: say why instead of failing the report
        return Section(title, [f"Not available: {error}"])
    figures["ope.png"] = plots.ope_estimates(results)
    summary["ope"] = {r.target: r.to_dict() for r in results}
    header = ["policy", "estimator", "estimate", "interval", "effective sample size"]
    rows = [[r.target, name, f"{e.estimate:.4g}", f"{e.ci_low:.4g} … {e.ci_high:.4g}", f"{e.effective_sample_size:.0f}"]
            for r in results for name, e in r.estimates.items()]
    logging = results[0].logging_policy
    text = [f"Value per decision of the agent's current policies, estimated from the {len(logs)} decisions it logged "
            f"(the logging policy earned {logging.estimate:.4g} per decision, interval {logging.ci_low:.4g} … "
            f"{logging.ci_high:.4g}). The reward model ({reward_model}) is cross-fitted ({FOLDS} folds); intervals are "
            f"{logging.confidence:.0%} bootstrap intervals. The agent learned from these same decisions, so the "
            "estimates lean optimistic (the more so the fewer the decisions per action): before a launch, log fresh "
            "decisions and run `nextbest ope` on them."]
    if scenario is not None:
        text.append("True values from the scenario's oracle: " + ", ".join(f"{r.target} {r.true_value:.4g}" for r in results) + ".")
    return Section(title, text, (header, rows), "ope.png")


# --- rendering -------------------------------------------------------------------------------
def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        parts += section.text
        if section.table:
            parts.append(markdown_table(*section.table))
        if section.figure:
            parts.append(f"![{section.title}]({section.figure})")
    return "\n\n".join(parts) + "\n"


def render_html(title: str, sections: list[Section]) -> str:
    e = html.escape
    body = [f"<h1>{e(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{e(section.title)}</h2>")
        body += [f"<p>{e(t)}</p>" for t in section.text]
        if section.table:
            header, rows = section.table
            cells = "".join(f"<th>{e(str(h))}</th>" for h in header)
            lines = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><thead><tr>{cells}</tr></thead><tbody>{lines}</tbody></table>")
        if section.figure:
            body.append(f'<img src="{e(section.figure)}" alt="{e(section.title)}">')
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
             "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}"
             "img{max-width:100%}")
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{e(title)}</title><style>{style}</style></head>"
            f"<body>\n" + "\n".join(body) + "\n</body></html>\n")


def _scenario(name: str) -> Any:
    """The simulation's scenario (built-in or `world:<seed>`) for its oracle; None for a name this version does not
    know (the report then goes without the true values)."""
    try:
        return make_scenario(name)
    except ConfigError:
        return None
