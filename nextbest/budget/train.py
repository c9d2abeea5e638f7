"""The PPO allocator: a squashed-Gaussian policy on the simplex, trained in the fitted response model.

    result = train_allocator("runs/budget", steps=30_000)
    Allocator.load("runs/budget/allocator").allocate(budget=1000, holiday=True)

Each day is independent of the next (spend today does not change tomorrow's response), so the
default discount is 0: the critic learns the expected reward of a day from its calendar and
budget, and the advantage is how much better an allocation did than that. Progress is measured
where it matters: on held-out days (budgets across the range, with and without a holiday), the
allocator's posterior-mean expected clicks as a share of the optimizer's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nextbest.budget.experiment import BudgetExperiment
from nextbest.config import parse_overrides, validate_model
from nextbest.envs.budget import BudgetAllocationEnv
from nextbest.errors import ConfigError, ExperimentError
from nextbest.io import write_json
from nextbest.simulators.optimize import Bounds, allocate_shares, optimize

# PPO settings for one-day episodes: no discount, large batches (the reward is noisy across
# posterior draws), a starting policy close to the equal split.
DEFAULTS = {"gamma": 0.0, "gae_lambda": 1.0, "n_envs": 4, "n_steps": 256, "batch_size": 256, "n_epochs": 10,
            "learning_rate": 1e-3, "lr_schedule": "linear", "hidden_sizes": [64, 64], "log_std_init": -0.5,
            "ent_coef": 0.0}
EVALUATION_BUDGETS = 5


class Allocator:
    """A trained PPO policy and what it needs to turn a day into an observation."""

    def __init__(self, ppo, channels: list[str], budget_range: tuple[float, float]):
        self.ppo, self.channels, self.budget_range = ppo, channels, budget_range

    def shares(self, budget: float, holiday: bool, weekday: int = 0) -> np.ndarray:
        observation = np.zeros((1, 9), np.float32)
        observation[0, weekday], observation[0, 7], observation[0, 8] = 1.0, float(holiday), budget / self.budget_range[1]
        return self.ppo.predict(np.clip(observation, 0.0, 1.0), deterministic=True)[0]

    def allocate(self, budget: float, holiday: bool, date: str | None = None, bounds: Bounds | None = None) -> np.ndarray:
        """(channels,) the policy's deterministic allocation of `budget`."""
        weekday = 0 if date is None else int((np.datetime64(date, "D").astype(np.int64) + 3) % 7)
        return allocate_shares(self.shares(budget, holiday, weekday), budget, bounds or Bounds.none(len(self.channels)))

    def save(self, directory: Path, extra: dict) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.ppo.save(directory / "ppo.pt")
        write_json(directory / "allocator.json", {"channels": self.channels, "budget_range": list(self.budget_range)} | extra)

    @classmethod
    def load(cls, directory: str | Path) -> Allocator:
        import json

        from nextbest.agents.gym_ppo import PPO

        directory = Path(directory)
        if not (directory / "allocator.json").is_file():
            raise ExperimentError(f"{directory}: no trained allocator; run `nextbest budget train DIR` first")
        meta = json.loads((directory / "allocator.json").read_text())
        return cls(PPO.load(directory / "ppo.pt"), meta["channels"], tuple(meta["budget_range"]))


class Benchmark:
    """Held-out days and the optimizer's expected clicks on each: the yardstick of an allocator."""

    def __init__(self, experiment: BudgetExperiment, budget_range: tuple[float, float]):
        self.days = [(float(b), h) for h in (False, True) for b in np.linspace(*budget_range, EVALUATION_BUDGETS)]
        self.responses = {h: experiment.parameters.day(h) for h in (False, True)}
        self.optimum = np.array([self.responses[h].mean().value(optimize(self.responses[h], b)) for b, h in self.days])
        self.history = experiment.history

    def ratio(self, allocate: Callable[[float, bool], np.ndarray]) -> float:
        """Mean over the held-out days of (expected clicks of `allocate(budget, holiday)`) / (the optimizer's)."""
        values = np.array([self.responses[h].mean().value(allocate(b, h)) for b, h in self.days])
        return float(np.mean(values / self.optimum))

    def baselines(self) -> dict[str, float]:
        n = len(self.history.channels)
        return {"equal": self.ratio(lambda b, h: np.full(n, b / n)),
                "historical": self.ratio(lambda b, h: self.history.shares(holiday=h) * b)}


def train_allocator(
    directory: str | Path,
    *,
    steps: int = 30_000,
    reward: str = "neg_log_cpc",
    seed: int = 0,
    hyperparameters: str | dict | None = None,
    on_update: Callable[[dict], Any] | None = None,
) -> dict:
    """Train PPO in `BudgetAllocationEnv` built from the experiment's posterior; save it in DIR/allocator."""
    from nextbest.agents.gym_ppo import PPO, PPOConfig

    if steps < 1:
        raise ConfigError(f"--steps {steps}: expected a positive number of simulated days to train on")
    directory = Path(directory)
    experiment = BudgetExperiment.open(directory)
    if experiment.parameters.kind == "hill":
        raise ConfigError(f"{directory}: the one-day allocator needs the power model (fit --model power); for a carryover "
                          "model train the pacer with `nextbest budget plan DIR --ppo-steps N`")
    config = validate_model(PPOConfig, DEFAULTS | parse_overrides(hyperparameters), "PPO settings")

    def make_env() -> BudgetAllocationEnv:
        return experiment.make_env(reward=reward)

    budget_range = experiment.budget_range
    env = make_env()
    ppo = PPO(env.observation_space, env.action_space, config, seed=seed, simplex=True)
    allocator = Allocator(ppo, experiment.channels, budget_range)
    benchmark = Benchmark(experiment, budget_range)
    curve: list[dict] = []
    every = max(1, int(np.ceil(steps / (config.n_envs * config.n_steps) / 20)))  # about 20 points on the curve

    def callback(metrics: dict) -> None:
        row = {k: metrics[k] for k in ("steps", "seconds", "episode_return_mean", "learning_rate")}
        row["reward_per_day"] = metrics["episode_return_mean"] / env.episode_days
        if len(curve) % every == 0 or metrics["steps"] >= steps:
            row["ratio_to_optimizer"] = benchmark.ratio(lambda b, h: allocator.allocate(b, h))
        curve.append(row)
        if on_update:
            on_update(row)

    started = time.perf_counter()
    ppo.learn(make_env, steps, callback=callback, tensorboard_dir=directory / "tensorboard")
    result = {
        "steps": ppo.steps,
        "seconds": time.perf_counter() - started,
        "reward": reward,
        "evaluation_days": len(benchmark.days),
        "ratio_to_optimizer": benchmark.ratio(lambda b, h: allocator.allocate(b, h)),
        "baselines_ratio_to_optimizer": benchmark.baselines(),
        "ppo": config.model_dump(mode="json"),
    }
    allocator.save(directory / "allocator", result | {"learning_curve": curve})
    return result
