"""How fast each bandit agent learns, side by side, and how fast the neural agent predicts.

    python benchmarks/bench_personalization.py            # writes benchmarks/results/personalization.json
    python benchmarks/bench_personalization.py --seeds 2 --scenarios optimus-poc   # a quick look

1. Learning: every scenario × every bandit agent × seeds, the predict → react → train loop of
   `nextbest simulate` (3,000 examples in batches of 500). `optimus-poc@w` is another world of the
   same shape (`make_scenario("optimus-poc", world_seed=w)`): a check that nothing is tuned to one world. After each batch the greedy policy
   is scored on 2,000 held-out customers: (agent − random) / (oracle − random). Reported per
   agent: the median over seeds of the examples needed to reach 0.95 (a seed that never gets
   there counts as never), the median final score, and the seconds a run takes.
2. Prediction: `Experiment.predict` on 100,000 rows (table in, table out: checks, encoding,
   the ensemble, sampling) with the neural agent after it has learned optimus-poc.

Runs use one torch thread each and `--workers` processes (default 2) side by side.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from nextbest.agents import DEFAULT_AGENT
from nextbest.agents.settings import build_hyperparameters
from nextbest.envs import make_scenario
from nextbest.evaluation.report import markdown_table
from nextbest.io import write_json
from nextbest.training.experiment import Experiment
from nextbest.training.simulate import TARGET_SCORE, simulate

ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "personalization.json"
AGENTS = ["neural", "linucb", "thompson", "epsilon-greedy", "random"]  # the bandits; PPO has its own benchmark
SCENARIOS = ["optimus-poc", "discount", "multi-offer", "optimus-poc@1", "optimus-poc@2", "optimus-poc@3"]  # name@world_seed
EXAMPLES, BATCH_SIZE = 3000, 500
PREDICT_ROWS = 100_000


def run(scenario: str, agent: str, seed: int) -> dict:
    torch.set_num_threads(1)
    name, _, world = scenario.partition("@")
    result = simulate(make_scenario(name, world_seed=int(world or 0)), agent, examples=EXAMPLES, batch_size=BATCH_SIZE,
                      seed=seed)
    return {"seed": seed, "scores": [b.normalized_score for b in result.batches],
            "examples_to_target": result.examples_to(), "seconds": result.batches[-1].seconds}


def summarize(runs: list[dict]) -> dict:
    never = EXAMPLES + 1  # sorts after every reachable count
    reached = [r["examples_to_target"] or never for r in runs]
    median = float(np.median(reached))
    scores = np.array([r["scores"] for r in runs])
    return {
        "examples_to_target": None if median > EXAMPLES else median,
        "final_score": float(np.median(scores[:, -1])),
        "median_scores": np.median(scores, axis=0).round(4).tolist(),
        "seconds": float(np.median([r["seconds"] for r in runs])),
        "runs": runs,
    }


def learning(scenarios: list[str], agents: list[str], seeds: int, workers: int) -> dict:
    jobs = [(s, a, seed) for s in scenarios for a in agents for seed in range(seeds)]
    with ProcessPoolExecutor(workers) as pool:
        done = dict(zip(jobs, pool.map(run, *zip(*jobs))))
    return {s: {a: summarize([done[s, a, seed] for seed in range(seeds)]) for a in agents} for s in scenarios}


def predict_throughput(agent: str = "neural", rows: int = PREDICT_ROWS, repeats: int = 5) -> dict:
    """Rows per second of Experiment.predict after the agent learned optimus-poc (best of `repeats`)."""
    world = make_scenario("optimus-poc")
    hp = build_hyperparameters(agent, None, action_space=list(world.sizes), columns=world.columns,
                               categorical_columns=list(world.categorical), seed=0)
    experiment = Experiment.create(None, hp, world.schema())
    rng = np.random.default_rng(0)
    for batch in range(EXAMPLES // BATCH_SIZE):
        customers = world.sample_contexts(BATCH_SIZE, rng)
        predictions = experiment.predict(customers, seed=batch * BATCH_SIZE)
        predictions["reaction"] = world.sample_reactions(customers, experiment.action_space.read(predictions), rng)
        experiment.train(predictions, allow_duplicates=True)
    contexts = world.sample_contexts(rows, rng)
    out = {"agent": agent, "rows": rows, "torch_threads": torch.get_num_threads()}
    for mode, greedy in (("explore", False), ("greedy", True)):
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            table = experiment.predict(contexts, seed=0, greedy=greedy)
            seconds.append(time.perf_counter() - started)
        assert len(table) == rows
        out[mode] = {"seconds": min(seconds), "rows_per_second": rows / min(seconds)}
    return out


def readme(results: dict, speed: dict, seeds: int) -> str:
    parts = [
        "### Personalization: how fast the bandits learn",
        f"Examples to a normalized score of {TARGET_SCORE} (median of {seeds} seeds; '—' when the median run does not "
        f"get there within {EXAMPLES:,}), median final score after {EXAMPLES:,} examples in batches of {BATCH_SIZE}, "
        f"and seconds per run (one torch thread, two runs side by side on a shared 2-core machine). `optimus-poc@w`: "
        f"another world of the same shape (world seed w). Default agent: `{DEFAULT_AGENT}`."
    ]
    for scenario, agents in results.items():
        rows = [[f"`{name}`", "—" if r["examples_to_target"] is None else f"{r['examples_to_target']:,.0f}",
                 f"{r['final_score']:.3f}", f"{r['seconds']:.1f}"] for name, r in agents.items()]
        parts += [f"**{scenario}**", markdown_table(["agent", f"examples to {TARGET_SCORE}", "final score", "seconds"], rows)]
    parts.append(
        f"`Experiment.predict` with `{speed['agent']}` on {speed['rows']:,} rows ({speed['torch_threads']} torch threads): "
        f"{speed['explore']['rows_per_second']:,.0f} rows/s exploring, {speed['greedy']['rows_per_second']:,.0f} rows/s greedy."
    )
    return "\n\n".join(parts)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--agents", default=",".join(AGENTS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = learning(args.scenarios.split(","), args.agents.split(","), args.seeds, args.workers)
    speed = predict_throughput()
    write_json(args.output, {
        "readme": readme(results, speed, args.seeds),
        "settings": {"examples": EXAMPLES, "batch_size": BATCH_SIZE, "seeds": args.seeds, "target": TARGET_SCORE,
                     "default_agent": DEFAULT_AGENT, "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
                     "seconds": time.perf_counter() - started},
        "learning": results,
        "predict": speed,
    })
    print(readme(results, speed, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
