"""A PPO run on any Gymnasium environment, kept in a directory: created or resumed, checkpointed.

    run = RLRun.open_or_create("CartPole-v1", "runs/cartpole", hyperparameters={"n_envs": 4})
    history = run.train(100_000, checkpoint_every=10)      # one metrics dict per PPO update
    returns = run.evaluate(episodes=10)                     # the deterministic policy's returns

    DIR/hyperparameters.json   env_id, seed, simplex and the PPO settings (written when the run starts)
    DIR/checkpoints/           checkpoint-NNNNNN.pt: the PPO state and the last update's metrics; `latest`
    DIR/tensorboard/           every update's metrics

Opening a directory that holds checkpoints of the same environment resumes from the latest one,
with the settings it was started with; new PPO settings are refused then. A run without a
directory lives in memory. `nextbest rl` is this module plus a progress bar.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium

import nextbest.envs  # noqa: F401  (registers the nextbest/… environments)
from nextbest.agents.gym_ppo import PPO, PPOConfig
from nextbest.checkpoints import checkpoint_files, read_checkpoint, write_checkpoint
from nextbest.config import TrainerConfig, parse_overrides, validate_model
from nextbest.errors import ConfigError
from nextbest.io import write_json

EVALUATION_SEED_OFFSET = 1_000_000  # evaluation episodes are seeded apart from the training ones


def make_env_fn(env_id: str) -> Callable[[], gymnasium.Env]:
    """A factory for `env_id`, checked once by making (and closing) one environment."""
    try:
        gymnasium.make(env_id).close()
    except gymnasium.error.Error as error:
        raise ConfigError(f"cannot make Gymnasium environment {env_id!r} ({error}); try CartPole-v1 or nextbest/OptimusPoc-v0") from None
    return lambda: gymnasium.make(env_id)


def read_run(directory: str | Path, env_id: str | None = None) -> dict[str, Any] | None:
    """The settings of the run kept in `directory` (its hyperparameters.json), None for a new one.

    Refuses a path that is a file, a personalization experiment, and a run on another environment."""
    directory = Path(directory)
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


def rl_summary(directory: str | Path) -> dict[str, Any] | None:
    """Environment, progress, last metrics and checkpoints of the run in `directory`; None when it holds none."""
    directory = Path(directory)
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
    path = directory / "hyperparameters.json"
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: not readable JSON ({error})") from None
    return settings if isinstance(settings, dict) else {}


class RLRun:
    """PPO on one Gymnasium environment, with the directory it is kept in (or None)."""

    def __init__(self, env_id: str, ppo: PPO, directory: str | Path | None = None, *, seed: int = 0,
                 resumed_from: Path | None = None):
        self.env_id, self.ppo, self.seed = env_id, ppo, seed
        self.directory = Path(directory) if directory is not None else None
        self.resumed_from = resumed_from  # the checkpoint the run continued from; None for a new run
        self.env_fn: Callable[[], gymnasium.Env] = lambda: gymnasium.make(env_id)
        self.last_metrics: dict[str, float] = {}

    @classmethod
    def open_or_create(
        cls,
        env_id: str,
        directory: str | Path | None = None,
        *,
        hyperparameters: str | Path | dict | None = None,
        seed: int = 0,
        simplex: bool = False,
    ) -> RLRun:
        """Resume the run in `directory` from its latest checkpoint, or start one (and write its
        hyperparameters.json). hyperparameters: PPO settings (a JSON object, a JSON file or a dict),
        refused when resuming; simplex: Box actions are shares of a whole."""
        env_fn = make_env_fn(env_id)
        found = None
        if directory is not None and read_run(directory, env_id) is not None:
            found = read_checkpoint(Path(directory) / "checkpoints")
        if found is not None:
            path, state = found
            if "observation_space" not in state:
                raise ConfigError(f"{path}: not a checkpoint of `nextbest rl`")
            if hyperparameters is not None:
                raise ConfigError(f"{directory} already holds a run (resumed from {path.name}); "
                                  "its hyperparameters.json applies, drop --hyperparameters or choose a new directory")
            return cls(env_id, PPO.from_state(state), directory, seed=seed, resumed_from=path)
        config = validate_model(PPOConfig, parse_overrides(hyperparameters), "hyperparameters")
        env = env_fn()
        try:
            ppo = PPO(env.observation_space, env.action_space, config, seed=seed, simplex=simplex)
        finally:
            env.close()
        if directory is not None:
            write_json(Path(directory) / "hyperparameters.json",
                       {"env_id": env_id, "seed": seed, "simplex": simplex, "ppo": config.model_dump(mode="json")})
        return cls(env_id, ppo, directory, seed=seed)

    def train(self, steps: int, *, checkpoint_every: int = 10,
              callback: Callable[[dict[str, Any]], Any] | None = None) -> list[dict[str, Any]]:
        """Train `steps` more environment steps (rounded up to whole rollouts). With a directory, a
        checkpoint is written every `checkpoint_every` updates and at the end, with TensorBoard curves.
        callback(metrics) runs after every update (and its checkpoint); returning False stops training.
        Returns every update's metrics."""
        if steps < 1 or checkpoint_every < 1:
            raise ConfigError(f"steps and checkpoint_every must be positive, got {steps} and {checkpoint_every}")

        def on_update(metrics: dict[str, Any]) -> Any:
            self.last_metrics = {k: float(v) for k, v in metrics.items()}
            if self.directory is not None and self.ppo.updates % checkpoint_every == 0:
                self.save()
            return callback(metrics) if callback is not None else None

        history = self.ppo.learn(self.env_fn, steps, callback=on_update,
                                 tensorboard_dir=self.directory / "tensorboard" if self.directory is not None else None)
        if self.directory is not None:
            self.save()
        return history

    def save(self) -> Path:
        """A checkpoint of the PPO state and the last update's metrics (the newest `checkpoints_to_keep` are kept)."""
        if self.directory is None:
            raise ConfigError("this run has no directory to save checkpoints in")
        state = self.ppo.state_dict() | {"last_metrics": self.last_metrics}
        return write_checkpoint(self.directory / "checkpoints", self.ppo.updates, state, TrainerConfig().checkpoints_to_keep)

    def evaluate(self, episodes: int = 10, *, seed: int | None = None) -> list[float]:
        """Undiscounted returns of the deterministic policy over `episodes` episodes, seeded from
        `seed` (default: the run's seed + 1,000,000, apart from the training episodes)."""
        if episodes < 0:
            raise ConfigError(f"episodes must be at least 0, got {episodes}")
        seed = self.seed + EVALUATION_SEED_OFFSET if seed is None else seed
        return self.ppo.evaluate(self.env_fn, episodes, seed=seed) if episodes else []
