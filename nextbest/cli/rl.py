"""`nextbest rl ENV_ID`: PPO on any Gymnasium environment (episodic problems, continuous actions).

The run itself (directory, resume, checkpoints) is `nextbest.training.rl_run.RLRun`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from nextbest.cli.app import JSON_HELP, QUIET_HELP, SEED_HELP, app, console, progress_bar, save_json
from nextbest.errors import ConfigError

THREADS_HELP = "CPU threads for PyTorch; the small networks of RL run fastest on one."


def set_threads(threads: int) -> None:
    import torch

    if threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)


@app.command()
def rl(
    env_id: str = typer.Argument(..., help="Gymnasium environment id, e.g. CartPole-v1, Pendulum-v1, nextbest/OptimusPoc-v0."),
    steps: int = typer.Option(100_000, "--steps", help="Environment steps to train (rounded up to whole rollouts)."),
    hyperparameters: str | None = typer.Option(
        None, "--hyperparameters", help="PPO settings as a JSON object or file, e.g. '{\"n_envs\": 4, \"n_steps\": 128}'."
    ),
    simplex: bool = typer.Option(False, "--simplex", help="Box actions are shares of a whole (on the probability simplex)."),
    experiment_dir: Path | None = typer.Option(
        None, "--experiment-dir", help="Keep hyperparameters, checkpoints and TensorBoard logs here; resumes if it has checkpoints."
    ),
    checkpoint_every: int = typer.Option(10, "--checkpoint-every", help="Updates between checkpoints (with --experiment-dir)."),
    eval_episodes: int = typer.Option(10, "--eval-episodes", help="Episodes of the deterministic policy to score at the end."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    threads: int = typer.Option(1, "--threads", help=THREADS_HELP),
    json_path: Path | None = typer.Option(None, "--json", help=JSON_HELP),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Train PPO on a Gymnasium environment and score its deterministic policy."""
    import numpy as np

    from nextbest.training.rl_run import RLRun

    if steps < 1 or checkpoint_every < 1 or eval_episodes < 0:
        raise ConfigError("--steps and --checkpoint-every must be positive and --eval-episodes at least 0, "
                          f"got {steps}, {checkpoint_every} and {eval_episodes}")
    set_threads(threads)
    run = RLRun.open_or_create(env_id, experiment_dir, hyperparameters=hyperparameters, seed=seed, simplex=simplex)
    if run.resumed_from is not None and not quiet:
        console.print(f"resuming {experiment_dir} from {run.resumed_from.name} ({run.ppo.steps} steps so far)")
    start = run.ppo.steps
    with progress_bar(f"{env_id} · PPO", steps, quiet=quiet) as bar:
        history = run.train(steps, checkpoint_every=checkpoint_every,
                            callback=lambda metrics: bar.update(completed=min(metrics["steps"] - start, steps)))
    returns = run.evaluate(eval_episodes)

    if not quiet:
        _print_history(env_id, history)
        if returns:
            console.print(f"deterministic policy: mean return {np.mean(returns):.4g} ± {np.std(returns):.2g} "
                          f"over {len(returns)} episodes; {run.ppo.steps} steps in all")
    save_json(json_path, {
        "env_id": env_id, "seed": seed, "steps": run.ppo.steps, "updates": run.ppo.updates,
        "seconds": history[-1]["seconds"] if history else 0.0,
        "evaluation": {"episodes": len(returns), "mean_return": float(np.mean(returns)) if returns else None,
                       "std_return": float(np.std(returns)) if returns else None, "returns": returns},
        "history": history,
    })


def _print_history(env_id: str, history: list[dict[str, Any]]) -> None:
    table = Table(title=f"{env_id}: PPO updates (episode return = mean of the last 100 episodes)")
    columns = ("steps", "episode return", "entropy", "approx KL", "clip fraction", "explained var.", "steps/s")
    for name in columns:
        table.add_column(name, justify="right")
    shown = history[:: max(1, len(history) // 10)]
    if history and shown[-1] is not history[-1]:
        shown.append(history[-1])
    for m in shown:
        table.add_row(str(m["steps"]), f"{m['episode_return_mean']:.4g}", f"{m['entropy']:.3f}", f"{m['approx_kl']:.4f}",
                      f"{m['clip_fraction']:.3f}", f"{m['explained_variance']:.3f}", f"{m['steps_per_second']:.0f}")
    console.print(table)
