"""`nextbest rl ENV_ID`: PPO on any Gymnasium environment (episodic problems, continuous actions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from nextbest.cli.app import JSON_HELP, QUIET_HELP, SEED_HELP, app, console, progress_bar, save_json
from nextbest.errors import ConfigError

THREADS_HELP = "CPU threads for PyTorch; the small networks of RL run fastest on one."


def make_env_fn(env_id: str):
    """A factory for `env_id`, checked once; nextbest's own environments are registered first."""
    import gymnasium

    import nextbest.envs  # noqa: F401  (registers nextbest/… environments)

    try:
        gymnasium.make(env_id).close()
    except gymnasium.error.Error as error:
        raise ConfigError(f"cannot make Gymnasium environment {env_id!r} ({error}); try CartPole-v1 or nextbest/OptimusPoc-v0") from None
    return lambda: gymnasium.make(env_id)


def read_run(directory: Path, env_id: str | None = None) -> dict[str, Any] | None:
    """The settings of the `rl` run kept in `directory` (its hyperparameters.json), None for a new one.

    Refuses a path that is a file, a personalization experiment, and a run on another environment."""
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--experiment-dir {directory} is a file, not a directory")
    settings = _settings(directory)
    if settings is None:
        return None
    if "env_id" not in settings:
        raise ConfigError(f"{directory} is a personalization experiment (nextbest init or simulate), not an `rl` run; "
                          "choose another --experiment-dir")
    if env_id is not None and settings["env_id"] != env_id:
        raise ConfigError(f"{directory} holds a run on {settings['env_id']}, not {env_id}; choose another --experiment-dir")
    return settings


def rl_summary(directory: Path) -> dict[str, Any] | None:
    """What `nextbest show` prints for an `rl` run: environment, progress, last metrics, checkpoints;
    None when `directory` is not one."""
    from nextbest.checkpoints import checkpoint_files, read_checkpoint

    settings = _settings(directory) if directory.is_dir() else None
    if settings is None or "env_id" not in settings:
        return None
    found = read_checkpoint(directory / "checkpoints")
    state = found[1] if found else {}
    return {
        "directory": str(directory), "agent": "ppo (nextbest rl)", "environment": settings["env_id"],
        "seed": settings.get("seed"), "steps": state.get("steps", 0), "updates": state.get("updates", 0),
        "last_metrics": state.get("last_metrics", {}),
        "checkpoint": found[0].name if found else None,
        "checkpoints": [p.name for p in checkpoint_files(directory / "checkpoints")],
    }


def _settings(directory: Path) -> dict[str, Any] | None:
    """DIR/hyperparameters.json as a dict; None when there is none."""
    import json

    path = directory / "hyperparameters.json"
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: not readable JSON ({error})") from None
    return settings if isinstance(settings, dict) else {}


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

    from nextbest.agents.ppo_core import PPO, PPOConfig
    from nextbest.checkpoints import read_checkpoint, write_checkpoint
    from nextbest.config import TrainerConfig, _validate, parse_overrides
    from nextbest.io import write_json

    if steps < 1 or checkpoint_every < 1 or eval_episodes < 0:
        raise ConfigError("--steps and --checkpoint-every must be positive and --eval-episodes at least 0, "
                          f"got {steps}, {checkpoint_every} and {eval_episodes}")
    set_threads(threads)
    env_fn = make_env_fn(env_id)
    found = None
    if experiment_dir is not None and read_run(experiment_dir, env_id) is not None:
        found = read_checkpoint(experiment_dir / "checkpoints")
    if found is not None:
        if "observation_space" not in found[1]:
            raise ConfigError(f"{found[0]}: not a checkpoint of `nextbest rl`")
        if hyperparameters is not None:
            raise ConfigError(f"{experiment_dir} already holds a run (resumed from {found[0].name}); "
                              "its hyperparameters.json applies, drop --hyperparameters or choose a new directory")
        ppo = PPO.from_state(found[1])
        if not quiet:
            console.print(f"resuming {experiment_dir} from {found[0].name} ({ppo.steps} steps so far)")
    else:
        config = _validate(PPOConfig, parse_overrides(hyperparameters), "hyperparameters")
        env = env_fn()
        ppo = PPO(env.observation_space, env.action_space, config, seed=seed, simplex=simplex)
        env.close()
        if experiment_dir is not None:
            write_json(experiment_dir / "hyperparameters.json",
                       {"env_id": env_id, "seed": seed, "simplex": simplex, "ppo": config.model_dump(mode="json")})
    keep = TrainerConfig().checkpoints_to_keep
    start = ppo.steps

    last: dict[str, float] = {}

    def save() -> None:
        state = ppo.state_dict() | {"last_metrics": {k: float(v) for k, v in last.items()}}
        write_checkpoint(experiment_dir / "checkpoints", ppo.updates, state, keep)

    with progress_bar(f"{env_id} · PPO", steps, quiet=quiet) as bar:
        def on_update(metrics: dict[str, Any]) -> None:
            last.clear()
            last.update(metrics)
            bar.update(completed=min(metrics["steps"] - start, steps))
            if experiment_dir is not None and ppo.updates % checkpoint_every == 0:
                save()

        history = ppo.learn(env_fn, steps, callback=on_update,
                            tensorboard_dir=experiment_dir / "tensorboard" if experiment_dir is not None else None)
    if experiment_dir is not None:
        save()
    returns = ppo.evaluate(env_fn, eval_episodes, seed=seed + 1_000_000) if eval_episodes else []

    if not quiet:
        _print_history(env_id, history)
        if returns:
            console.print(f"deterministic policy: mean return {np.mean(returns):.4g} ± {np.std(returns):.2g} "
                          f"over {len(returns)} episodes; {ppo.steps} steps in all")
    save_json(json_path, {
        "env_id": env_id, "seed": seed, "steps": ppo.steps, "updates": ppo.updates,
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
