"""`nextbest tune`: choose the agent and its settings from many trials, against a scenario's oracle or on logged data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from nextbest.cli.app import JSON_HELP, QUIET_HELP, RAY_HELP, SEED_HELP, app, console, progress_bar, save_json, split_names
from nextbest.envs import scenario_choices
from nextbest.errors import ConfigError
from nextbest.io import write_json


@app.command()
def tune(
    output: Path = typer.Option(..., "--output", help="Best agent and settings (JSON), as `nextbest init --hyperparameters` takes them."),
    scenario: str | None = typer.Option(None, "--scenario", help=f"Score against this scenario's oracle: one of {', '.join(scenario_choices())}."),
    logs: Path | None = typer.Option(None, "--logs", help="Or score by the doubly robust estimate on these logged decisions "
                                     "(context columns, action, reward, logging_probability)."),
    agents: str = typer.Option("neural,linucb,ppo-mlp", "--agents", help="Agents to try, comma-separated; each searches its own settings."),
    examples: int = typer.Option(3000, "--examples", help="Decisions each trial learns from."),
    batch_size: int = typer.Option(500, "--batch-size", help="Decisions per training round (a scheduler may stop a trial after any)."),
    num_samples: int = typer.Option(64, "--num-samples", help="Trials in all, the agents in turn."),
    ray: str | None = typer.Option(None, "--ray", help=RAY_HELP + " Trials then run in parallel, and ASHA stops the weak ones early; "
                                   "without --ray every trial runs to the end, one after the other."),
    figure: Path | None = typer.Option(None, "--figure", help="Score against trials (PNG); default: beside --output."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Try agents and settings drawn from their search spaces; keep the best one."""
    import time

    from nextbest.evaluation import plots
    from nextbest.evaluation.tuning import LogsObjective, ScenarioObjective, best_trial, plan_trials, run_serial

    if (scenario is None) == (logs is None):
        raise ConfigError("give what to score trials against: --scenario S (its oracle) or --logs LOGS (off-policy), one of them")
    if examples < 1 or batch_size < 1:
        raise ConfigError(f"--examples and --batch-size must be positive, got {examples} and {batch_size}")
    trials = plan_trials(split_names(agents) or [], num_samples, seed)
    if scenario is not None:
        objective = ScenarioObjective(scenario, examples=examples, batch_size=batch_size, seed=seed)
    else:
        from nextbest.data.tables import read_table

        with progress_bar("reward model of the held-out logs", None, quiet=quiet):
            objective = LogsObjective(read_table(logs), examples=examples, batch_size=batch_size, seed=seed, source=str(logs))
    started = time.perf_counter()
    with progress_bar(f"{len(trials)} trials" + (" on Ray (ASHA)" if ray else ""), len(trials), quiet=quiet) as bar:
        if ray is not None:
            from nextbest.scale.cluster import ray_session
            from nextbest.scale.tune import tune_trials

            with ray_session(ray):
                results = tune_trials(trials, objective, batches=objective.batches, on_trial=lambda _: bar.advance())
        else:
            results = run_serial(trials, objective, on_trial=lambda _: bar.advance())
    seconds = time.perf_counter() - started
    best = best_trial(results)
    write_json(output, best.hyperparameters())
    figure = figure or output.with_name(f"{output.stem}_trials.png")
    plots.save(plots.tune_trials(results), figure)
    if not quiet:
        table = Table(title=f"{len(results)} trials · {'scenario ' + scenario if scenario else f'logs {logs}'}",
                      caption="score after the trial's last batch: " + ("normalized against the oracle" if scenario else
                              "doubly robust reward per decision of the greedy policy, held-out logs"))
        for name in ("trial", "agent", "batches", "score", "seconds", "settings"):
            table.add_column(name, justify="left" if name == "settings" else "right")
        for r in sorted(results, key=lambda r: -r.score)[:20]:
            settings = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.settings.items())
            table.add_row(str(r.index), r.agent, f"{len(r.scores) - 1}" + ("" if r.complete else " (stopped)"),
                          f"{r.score:.3f}", f"{r.seconds:.1f}", settings)
        console.print(table)
        console.print(f"best: trial {best.index}, {best.agent}, score {best.score:.3f}; wrote {output} and {figure} "
                      f"({seconds:.0f} s)")
    save_json(json_path, {"seconds": seconds, "scheduler": "asha" if ray else "none (every trial to the end)",
                          "best": best.to_dict(), "trials": [r.to_dict() for r in results]})
