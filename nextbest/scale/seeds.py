"""Many seeds of a simulation at once on Ray: one task per seed, each the single-process `simulate`.

    runs = simulate_seeds("optimus-poc", "neural", [0, 1, 2], examples=3000)   # inside ray_session(...)

A seed gives the same run here as alone (`nextbest simulate --seed S`): each task is that call, on one core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nextbest.scale.cluster import user_errors
from nextbest.training.simulate import SimulationResult, simulate


def _one_seed(scenario: str, agent: str, seed: int, settings: dict[str, Any]) -> SimulationResult:
    import torch

    torch.set_num_threads(1)  # one core per seed: the seeds are the parallelism
    return simulate(scenario, agent, seed=seed, **settings)


def simulate_seeds(
    scenario: str, agent: str, seeds: list[int], *, on_done: Callable[[SimulationResult], None] | None = None, **settings: Any
) -> list[SimulationResult]:
    """`simulate(scenario, agent, seed=s, **settings)` for every seed, as Ray tasks of one CPU each; in seed order."""
    import ray

    task = ray.remote(num_cpus=1, max_retries=3)(_one_seed)
    with user_errors():
        pending = {task.remote(scenario, agent, seed, settings): seed for seed in seeds}
        results: dict[int, SimulationResult] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            result = ray.get(done[0])
            results[pending.pop(done[0])] = result
            if on_done:
                on_done(result)
    return [results[seed] for seed in seeds]
