"""`nextbest pretrain DIR --history history.csv`: a bandit learns from the history; PPO practises on a reward model of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from nextbest.cli.app import JSON_HELP, QUIET_HELP, app, console, open_experiment, progress_bar, save_json
from nextbest.cli.rl import THREADS_HELP, set_threads
from nextbest.simulators.reward_models import REWARD_MODELS


@app.command()
def pretrain(
    directory: Path = typer.Argument(..., help="Experiment directory (from `nextbest init`)."),
    history: Path = typer.Option(
        ..., "--history", help="Context columns, the historical 'action' (or action_0, …) and 'outcome'; "
                               "optionally 'logging_probability' and 'prediction_seed'."
    ),
    steps: int = typer.Option(200, "--steps", help="PPO agents: simulated updates against the reward model."),
    batch_size: int = typer.Option(500, "--batch-size", help="PPO agents: history contexts per simulated update."),
    reward_model: str = typer.Option("neural", "--reward-model", help=f"One of: {', '.join(REWARD_MODELS)}."),
    held_out: float = typer.Option(0.2, "--held-out", help="Share of the history kept aside to check the reward model."),
    checkpoint: str | None = typer.Option(None, "--from-checkpoint", help="Start from this checkpoint instead of the latest."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default: the experiment's)."),
    threads: int = typer.Option(1, "--threads", help=THREADS_HELP),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Start an agent from historical decisions. A bandit learns from them directly, once; a PPO agent trains against a
    reward model fitted on them. The reward model's held-out check and its score of the pretrained policy are printed."""
    from nextbest.data.tables import read_table
    from nextbest.training.pretrain import learns_from_history
    from nextbest.training.pretrain import pretrain as run

    set_threads(threads)
    experiment = open_experiment(directory, checkpoint)
    table = read_table(history)

    def report_model(check: dict[str, Any]) -> None:
        if not quiet:
            console.print(describe_check(check))

    direct = learns_from_history(experiment.agent)
    with progress_bar(f"pretraining {experiment.hyperparameters.agent_name}", 1 if direct else steps, quiet=quiet) as bar:
        result = run(experiment, table, steps=steps, batch_size=batch_size, reward_model=reward_model,
                     held_out=held_out, seed=seed, source=str(history), on_model=report_model,
                     on_step=lambda metrics: bar.advance())
    experiment.close()
    if not quiet:
        how = "learned from" if direct else f"pretrained {steps} steps on"
        console.print(
            f"{how} {result.history_rows} history rows (update {result.updates}); by the reward model "
            f"the greedy policy earns {result.model_reward_greedy:.4g} per decision (best {result.model_reward_best:.4g}, "
            f"history {result.history_mean_reward:.4g}); checkpoint {result.checkpoint}"
        )
    save_json(json_path, result.to_dict())


def describe_check(check: dict[str, Any]) -> str:
    """One line on the reward model's held-out check."""
    name = check["reward_model"]
    if "metric" not in check:
        return f"reward model {name}: too few rows ({check['rows']}) for a held-out check"
    line = (f"reward model {name}: held-out {check['metric'].replace('_', '-')} {check['model']:.4g} vs {check['constant']:.4g} "
            f"for the average ({check['improvement']:.0%} better) on {check['held_out_rows']} rows")
    if "auc" in check:
        line += f", AUC {check['auc']:.3f}"
    if check["improvement"] <= 0:
        line += " — [yellow]no better than the average: the pretrained policy will not be either[/yellow]"
    return line
