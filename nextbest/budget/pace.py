"""The PPO pacer: nextbest's PPO trained in nextbest/BudgetPacing-v0 on a posterior, for one flight.

    result = train_pacer(experiment.parameters, budget=28_000, days=28, first=start, history=history)
    result["plan"]              # (days, channels): the deterministic policy's flight

Each episode draws one posterior draw, so the policy learns a pacing that is good under the
model's uncertainty; its deterministic plan is the same for every draw (the observation is the
day, the budget left and the carried-over adstock under the posterior-mean decay).
"""

from __future__ import annotations

import time

import numpy as np

from nextbest.budget.plan import carry_in, recurring_holidays
from nextbest.config import parse_overrides, validate_model
from nextbest.data.channels import ChannelHistory
from nextbest.envs.budget_pacing import BudgetPacingEnv
from nextbest.errors import ConfigError
from nextbest.simulators.optimize import Bounds
from nextbest.simulators.response import Metric, ResponseParameters

# Undiscounted flights (the return is the objective), rollouts of whole flights, a start near even pacing.
DEFAULTS = {"gamma": 1.0, "gae_lambda": 0.95, "n_envs": 4, "n_steps": 256, "batch_size": 256, "n_epochs": 10,
            "learning_rate": 1e-3, "lr_schedule": "linear", "hidden_sizes": [64, 64], "log_std_init": -0.5, "ent_coef": 0.0}


def train_pacer(
    parameters: ResponseParameters,
    budget: float,
    days: int,
    *,
    first: np.datetime64,
    history: ChannelHistory,
    bounds: Bounds | None = None,
    metric: Metric = "clicks",
    steps: int = 50_000,
    seed: int = 0,
    hyperparameters: str | dict | None = None,
) -> dict:
    """Train PPO on the flight of `days` days from `first` after `history`; its plan, steps and seconds."""
    from nextbest.agents.gym_ppo import PPO, PPOConfig

    if steps < 1:
        raise ConfigError(f"--ppo-steps {steps}: expected a positive number of simulated days")
    config = validate_model(PPOConfig, DEFAULTS | parse_overrides(hyperparameters), "PPO settings")
    dates = first + np.arange(days + parameters.max_lag)
    bounds = bounds or Bounds.none(len(parameters.channels))
    settings = {"budget": budget, "days": days, "start": first, "carry_in": carry_in(history, first, parameters.max_lag),
                "holiday": recurring_holidays(history, dates), "metric": metric,
                "minimum": dict(zip(parameters.channels, bounds.minimum)),
                "maximum": {c: m for c, m in zip(parameters.channels, bounds.maximum) if np.isfinite(m)}}

    def make_env() -> BudgetPacingEnv:
        return BudgetPacingEnv(parameters, **settings)

    env = make_env()
    ppo = PPO(env.observation_space, env.action_space, config, seed=seed)
    started = time.perf_counter()
    ppo.learn(make_env, steps)
    observation, _ = env.reset(seed=seed)
    for _ in range(days):
        observation, *_ = env.step(ppo.predict(observation[None], deterministic=True)[0])
    return {"plan": env.plan, "steps": ppo.steps, "seconds": time.perf_counter() - started, "ppo": config.model_dump(mode="json")}
