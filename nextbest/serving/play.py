"""A scenario's customers played against a running server: decide → the simulator reacts → reaction.

`nextbest simulate --server URL` runs this: the whole live loop over HTTP, the learner training as
it would on real traffic. After each batch it waits for the learner to train on the batch (so the
curve is comparable with the in-process `simulate`), then scores the greedy policy on held-out
customers by asking for greedy decisions that are deferred and never activated — stored, but never
learned from.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import numpy as np

from nextbest.client import Client
from nextbest.data.actions import ActionSpace
from nextbest.envs import ContextualScenario, make_scenario
from nextbest.errors import ConfigError
from nextbest.training.simulate import BatchResult, SimulationResult

_CHUNK = 500  # contexts per decision request


def play(
    scenario: str | ContextualScenario,
    url: str,
    experiment: str,
    *,
    examples: int = 3000,
    batch_size: int = 500,
    seed: int = 0,
    evaluation_rows: int = 2000,
    api_key: str | None = None,
    learner_timeout: float = 300.0,
    on_batch: Callable[[BatchResult], None] | None = None,
) -> SimulationResult:
    """Play `examples` customers of `scenario` in batches against the served `experiment` and score the
    served greedy policy after each batch (normalized: 0 random, 1 the oracle)."""
    world = make_scenario(scenario) if isinstance(scenario, str) else scenario
    space = ActionSpace(tuple(world.sizes))
    with Client(url, experiment, api_key=api_key, timeout=60.0) as client:
        status = client.status()
        if list(status["columns"]) != list(world.columns) or list(status["action_space"]) != list(world.sizes):
            raise ConfigError(f"experiment {experiment!r} at {url} has columns {status['columns']} and action space "
                              f"{status['action_space']}; scenario {world.name} needs {world.columns} and {list(world.sizes)}")
        rng = np.random.default_rng(seed)
        held_out = world.sample_contexts(evaluation_rows, np.random.default_rng([seed, 1]))
        expected = world.expected_rewards(held_out)
        oracle, random = float(expected.max(axis=1).mean()), float(expected.mean())
        result = SimulationResult(world.name, status["agent"], seed, batch_size)
        started, trained_before = time.perf_counter(), status["learner"]["trained"]

        def decide(table, **flags) -> list[dict]:
            records = table.to_dict("records")
            return [d for start in range(0, len(records), _CHUNK) for d in client.decide(records[start : start + _CHUNK], **flags)]

        def score(batch: int, examples_seen: int, mean_reward: float | None) -> None:
            greedy = decide(held_out, greedy=True, defer_activation=True)
            joint = space.to_joint(np.array([[d[c] for c in space.column_names()] for d in greedy]))
            value = float(expected[np.arange(len(joint)), joint].mean())
            record = BatchResult(batch, examples_seen, mean_reward, oracle, random, value,
                                 (value - random) / (oracle - random) if oracle > random else 1.0, time.perf_counter() - started)
            result.batches.append(record)
            if on_batch:
                on_batch(record)

        score(0, 0, None)
        seen = 0
        for batch in range(1, -(-examples // batch_size) + 1):
            customers = world.sample_contexts(min(batch_size, examples - seen), rng)
            decisions = decide(customers)
            actions = np.array([[d[c] for c in space.column_names()] for d in decisions])
            reactions = world.sample_reactions(customers, actions, rng)
            for decision, reaction in zip(decisions, reactions):
                client.react(decision["event_id"], float(reaction))
            seen += len(customers)
            _wait_for_learner(client, trained_before + seen, learner_timeout)
            score(batch, seen, float(np.mean(reactions)))
    return result


def served_experiment(url: str) -> str:
    """The name of the only experiment `url` serves (ConfigError when it serves several or none)."""
    try:
        names = httpx.get(f"{url.rstrip('/')}/healthz", timeout=10).json()["experiments"]
    except (httpx.HTTPError, ValueError, KeyError) as error:
        raise ConfigError(f"{url}: not a running `nextbest serve` ({error})") from None
    if len(names) != 1:
        raise ConfigError(f"{url} serves {names}; choose one with --experiment")
    return names[0]


def _wait_for_learner(client: Client, trained: int, timeout: float) -> None:
    """Until the learner has trained `trained` events and the server decides with that checkpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.status()
        if status["learner"]["trained"] >= trained and status["checkpoint"] == status["learner"]["checkpoint"]:
            return
        time.sleep(0.1)
    raise ConfigError(f"the server's learner has not trained {trained} events after {timeout:.0f} s; is it running "
                      "(`nextbest serve` without --no-learner, or `nextbest learn`) with learner_batch_size ≤ the batch size?")
