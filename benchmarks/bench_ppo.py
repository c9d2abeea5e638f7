"""PPO benchmarks, side by side with Stable-Baselines3 in one run; writes benchmarks/results/ppo.json.

    python benchmarks/bench_ppo.py                      # every section
    python benchmarks/bench_ppo.py throughput cartpole  # only these (the others stay as they were in the JSON)
    python benchmarks/bench_ppo.py --readme             # only regenerate the "readme" key from the numbers

Sections:
  throughput  PPO update samples/s, same MLP (64, 64, tanh; separate actor and critic), rollout 2048,
              minibatch 64, 10 epochs, one CPU thread each; repetitions interleaved, median ratio.
  cartpole    CartPole-v1 with SB3's default hyperparameters for both libraries, same seeds: episode
              return (mean of the last 100) versus environment steps and wall time.
  cartpole-tuned  CartPole-v1 with rl-zoo's tuned PPO settings for both: steps until the training
              return reaches 475 (Gymnasium's threshold) and the deterministic policy's return (max 500).
  cartpole-cleanrl  nextbest with CleanRL ppo.py's published CartPole hyperparameters and its default length,
              500,000 steps. CleanRL is a single-file script, not a library, and is not run here: the row
              checks that nextbest reaches 500 with CleanRL's settings, not a side-by-side measurement.
  optimus     Examples until the normalized score reaches 0.95 on optimus-poc: ppo-tabnet, ppo-mlp and
              two linear bandit agents, 3 seeds, batches of 500.
  pretrain    5,000 rows of uniform-logger history on optimus-poc → pretrained agent (PPO against a reward
              model, the neural and linucb bandits from the history directly): its normalized score before
              live data and the seconds it took, then live examples to 0.95, against starting cold.

SB3 is the `bench` extra (make bench installs it in .venv-bench); without it the SB3 columns are skipped.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from nextbest.agents.gym_ppo import PPO, PPOConfig
from nextbest.agents.settings import build_hyperparameters
from nextbest.envs import make_scenario
from nextbest.io import write_json
from nextbest.training.experiment import Experiment
from nextbest.training.pretrain import pretrain
from nextbest.training.simulate import TARGET_SCORE, simulate

RESULTS = Path(__file__).parent / "results" / "ppo.json"
SEEDS = [0, 1, 2]
# rl-baselines3-zoo's hyperparameters for CartPole-v1 (clip range schedule left constant at 0.2).
ZOO_CARTPOLE = dict(n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                    learning_rate=1e-3, lr_schedule="linear")
# CleanRL ppo.py's published defaults (4 envs × 128 steps, 4 minibatches, 4 epochs, annealed 2.5e-4, clipped value
# loss); CleanRL's value loss is ½·MSE with weight 0.5, which is SB3's MSE with weight 0.25.
CLEANRL_CARTPOLE = dict(n_envs=4, n_steps=128, batch_size=128, n_epochs=4, learning_rate=2.5e-4, lr_schedule="linear",
                        ent_coef=0.01, vf_coef=0.25, clip_range_vf=0.2)
CLEANRL_STEPS = 500_000  # ppo.py's default --total-timesteps


def sb3():
    try:
        import stable_baselines3
    except ImportError:
        return None
    return stable_baselines3


# --- throughput -----------------------------------------------------------------------------------


def throughput(repetitions: int = 5) -> dict[str, Any]:
    env = gym.make("CartPole-v1")
    ours = PPO(env.observation_space, env.action_space, PPOConfig(), seed=0)
    envs = [gym.make("CartPole-v1")]
    observations = [envs[0].reset(seed=0)[0]]
    rollout, _, _ = ours._collect(envs, observations, np.zeros(1), np.zeros(1, dtype=np.int64))
    samples = PPOConfig().n_steps * PPOConfig().n_epochs
    lib = sb3()
    if lib is not None:
        peer = lib.PPO("MlpPolicy", "CartPole-v1", seed=0, device="cpu")
        _, callback = peer._setup_learn(2048, callback=None)
        callback.on_training_start(locals(), globals())
        peer.collect_rollouts(peer.env, callback, peer.rollout_buffer, n_rollout_steps=peer.n_steps)
    times: dict[str, list[float]] = {"nextbest": [], "sb3": []}
    for _ in range(repetitions):  # interleaved, so that load on the machine hits both alike
        started = time.perf_counter()
        ours._update(rollout)
        times["nextbest"].append(time.perf_counter() - started)
        if lib is not None:
            started = time.perf_counter()
            peer.train()
            times["sb3"].append(time.perf_counter() - started)
    result = {"samples_per_update": samples, "nextbest_samples_per_second": samples / float(np.median(times["nextbest"]))}
    if lib is not None:
        result["sb3_samples_per_second"] = samples / float(np.median(times["sb3"]))
        result["ratio"] = float(np.median(np.array(times["sb3"]) / np.array(times["nextbest"])))
    return result


# --- CartPole -------------------------------------------------------------------------------------


def cartpole_ours(seed: int, steps: int, config: PPOConfig) -> dict[str, Any]:
    env = gym.make("CartPole-v1")
    ppo = PPO(env.observation_space, env.action_space, config, seed=seed)
    history = ppo.learn(lambda: gym.make("CartPole-v1"), steps)
    curve = [(m["steps"], m["episode_return_mean"], m["seconds"]) for m in history]
    return {"curve": curve, "evaluation": float(np.mean(ppo.evaluate(lambda: gym.make("CartPole-v1"), 10, seed=10_000)))}


def cartpole_sb3(seed: int, steps: int, settings: dict[str, Any]) -> dict[str, Any] | None:
    lib = sb3()
    if lib is None:
        return None
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    settings = dict(settings)
    n_envs = settings.pop("n_envs", 1)
    if settings.pop("lr_schedule", "constant") == "linear":
        start = settings["learning_rate"]
        settings["learning_rate"] = lambda remaining: remaining * start
    curve: list[tuple[int, float, float]] = []
    started = time.perf_counter()

    class Record(BaseCallback):
        def _on_rollout_end(self) -> None:
            returns = [e["r"] for e in self.model.ep_info_buffer]
            curve.append((self.num_timesteps, float(np.mean(returns)) if returns else float("nan"),
                          time.perf_counter() - started))

        def _on_step(self) -> bool:
            return True

    model = lib.PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed), seed=seed, device="cpu", **settings)
    model.learn(steps, callback=Record())
    env, returns = gym.make("CartPole-v1"), []
    for episode in range(10):
        observation, _ = env.reset(seed=10_000 + episode)
        total, over = 0.0, False
        while not over:
            observation, reward, terminated, truncated, _ = env.step(int(model.predict(observation, deterministic=True)[0]))
            total, over = total + reward, terminated or truncated
        returns.append(total)
    return {"curve": curve, "evaluation": float(np.mean(returns))}


def first_at(curve: list, threshold: float) -> int | None:
    return next((steps for steps, value, _ in curve if value >= threshold), None)


def cartpole(steps: int = 100_000, settings: dict[str, Any] | None = None, with_sb3: bool = True) -> dict[str, Any]:
    settings = settings or {}
    runs = []
    for seed in SEEDS:
        ours = cartpole_ours(seed, steps, PPOConfig(**settings))
        peer = cartpole_sb3(seed, steps, settings) if with_sb3 else None
        runs.append({"seed": seed, "nextbest": ours, "sb3": peer})
        print(f"  cartpole seed {seed}: nextbest eval {ours['evaluation']:.0f} in "
              f"{ours['curve'][-1][2]:.0f} s" + (f", sb3 eval {peer['evaluation']:.0f} in {peer['curve'][-1][2]:.0f} s" if peer else ""),
              flush=True)
    return {"steps": steps, "hyperparameters": settings or "SB3 defaults", "runs": runs}


# --- optimus-poc ----------------------------------------------------------------------------------


def optimus(budgets: dict[str, int] | None = None) -> dict[str, Any]:
    """Examples to the target per agent; each agent gets a budget of examples it needs with room to spare."""
    # The neural bandit (the default agent, ~9 minutes per seed here) is measured in bench_personalization.py.
    budgets = budgets or {"ppo-tabnet": 15_000, "ppo-mlp": 10_000, "linucb": 6_000, "thompson": 6_000}
    out = {}
    for agent, examples in budgets.items():
        runs = []
        for seed in SEEDS:
            result = simulate("optimus-poc", agent, examples=examples, batch_size=500, seed=seed)
            runs.append({"seed": seed, "examples_to_target": result.examples_to(), "final": result.final_score,
                         "seconds": result.batches[-1].seconds,
                         "curve": [(b.examples, b.normalized_score) for b in result.batches]})
            print(f"  optimus {agent} seed {seed}: {result.examples_to()} examples to {TARGET_SCORE}", flush=True)
        out[agent] = {"examples": examples, "runs": runs}
    return {"batch_size": 500, "agents": out}


# --- pretraining ----------------------------------------------------------------------------------


def live(experiment: Experiment, world, seed: int, examples: int, batch_size: int = 500) -> list[tuple[int, float]]:
    """predict → react → train on fresh customers; the greedy policy's normalized score after every batch."""
    rng = np.random.default_rng([seed, 2])
    held_out = world.sample_contexts(2000, np.random.default_rng([seed, 1]))
    expected = world.expected_rewards(held_out)
    oracle, random = expected.max(axis=1).mean(), expected.mean()

    def score() -> float:
        joint = experiment.action_space.to_joint(experiment.action_space.read(experiment.predict(held_out, seed=0, greedy=True)))
        return float((expected[np.arange(len(joint)), joint].mean() - random) / (oracle - random))

    curve, seen = [(0, score())], 0
    while seen < examples:
        customers = world.sample_contexts(batch_size, rng)
        table = experiment.predict(customers, seed=int(rng.integers(2**31)))
        table["reaction"] = world.sample_reactions(customers, experiment.action_space.read(table), rng)
        experiment.train(table, allow_duplicates=True)
        seen += batch_size
        curve.append((seen, score()))
    return curve


def pretraining(history_rows: int = 5000, steps: int = 200, examples: int = 12_000,
                agents: tuple[str, ...] = ("ppo-mlp", "ppo-tabnet", "neural", "linucb")) -> dict[str, Any]:
    world = make_scenario("optimus-poc")
    out = {}
    for agent in agents:
        runs = []
        for seed in SEEDS:
            rng = np.random.default_rng([seed, 3])
            history = world.sample_contexts(history_rows, rng)
            history["action"] = rng.integers(0, 16, history_rows)  # a uniform logger
            history["outcome"] = world.sample_reactions(history, history[["action"]].to_numpy(), rng)
            history["logging_probability"] = 1 / 16
            curves = {}
            for start in ("cold", "pretrained"):
                hp = build_hyperparameters(agent, action_space=[16], columns=world.columns,
                                           categorical_columns=list(world.categorical), seed=seed)
                experiment = Experiment.create(None, hp, world.schema())
                started = time.perf_counter()
                check = pretrain(experiment, history, steps=steps).reward_model_check if start == "pretrained" else None
                pretrain_seconds = time.perf_counter() - started
                curve = live(experiment, world, seed, examples)
                curves[start] = {"curve": curve, "examples_to_target": first_at([(e, s, 0) for e, s in curve], TARGET_SCORE)}
                if check is not None:
                    curves[start] |= {"reward_model_check": check, "pretrain_seconds": pretrain_seconds}
            runs.append({"seed": seed, **curves})
            print(f"  pretrain {agent} seed {seed}: before live data {curves['pretrained']['curve'][0][1]:.3f}; "
                  f"to {TARGET_SCORE}: pretrained {curves['pretrained']['examples_to_target']}, "
                  f"cold {curves['cold']['examples_to_target']}", flush=True)
        out[agent] = {"runs": runs}
    return {"history_rows": history_rows, "steps": steps, "live_examples": examples, "agents": out}


# --- the README table -----------------------------------------------------------------------------


def median_or_none(values: list) -> str:
    found = [v for v in values if v is not None]
    text = f"{int(np.median(found)):,}" if found else "—"
    return text + ("" if len(found) == len(values) else f" ({len(found)}/{len(values)} seeds)")


def table(title: str, columns: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table under a title line; the first column left-aligned, the others right."""
    return [title, "", "| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1),
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def readme(results: dict[str, Any]) -> str:
    lines = []
    if "throughput" in results and "ratio" in results["throughput"]:
        t = results["throughput"]
        lines += [f"**PPO update throughput** (MLP 64×64, rollout 2048, minibatch 64, 10 epochs, 1 CPU thread): "
                  f"nextbest {t['nextbest_samples_per_second']:,.0f} samples/s, Stable-Baselines3 "
                  f"{t['sb3_samples_per_second']:,.0f} samples/s — **{t['ratio']:.2f}×**.", ""]
    for key, title in (("cartpole", "SB3 default hyperparameters"), ("cartpole-tuned", "rl-zoo's tuned hyperparameters"),
                       ("cartpole-cleanrl", "CleanRL ppo.py's hyperparameters")):
        if key in results:
            c = results[key]
            rows = []
            for lib, name in (("nextbest", "nextbest"), ("sb3", "Stable-Baselines3")):
                runs = [r[lib] for r in c["runs"] if r.get(lib)]
                if runs:
                    rows.append([name, median_or_none([first_at(r["curve"], 475) for r in runs]),
                                 f"{np.mean([r['curve'][-1][1] for r in runs]):.0f}",
                                 f"{np.mean([r['evaluation'] for r in runs]):.0f}",
                                 f"{np.mean([r['curve'][-1][2] for r in runs]):.0f}"])
            note = (" CleanRL is a single-file script, not a library, and was not run here: the row checks nextbest "
                    "with CleanRL's published settings and its default length." if key == "cartpole-cleanrl" else "")
            lines += table(f"**CartPole-v1, {title}**, {c['steps']:,} steps, seeds {SEEDS} (return = mean of the last "
                           f"100 training episodes; deterministic = 10 evaluation episodes, max 500).{note}",
                           ["library", "steps to return 475 (median)", "final return", "deterministic return",
                            "wall time (s)"], rows)
    if "optimus" in results:
        o = results["optimus"]
        rows = [[agent, median_or_none([r["examples_to_target"] for r in data["runs"]]),
                 f"{np.mean([r['final'] for r in data['runs']]):.3f} after {data.get('examples', o.get('examples')):,}",
                 f"{np.mean([r['seconds'] for r in data['runs']]):.0f}"] for agent, data in o["agents"].items()]
        lines += table(f"**optimus-poc** (16 actions, batches of 500, seeds {SEEDS}): examples until the greedy "
                       f"policy's normalized score reaches {TARGET_SCORE} (Optimus needed 8,000–12,000 on a "
                       f"comparable task; the neural bandit, nextbest's default agent, is measured in "
                       f"personalization.json):", ["agent", "examples to 0.95 (median)", "final score", "seconds"], rows)
    if "pretrain" in results:
        p = results["pretrain"]
        def at(runs: list, start: str, examples: int) -> str:
            return f"{np.mean([dict(r[start]['curve'])[examples] for r in runs]):.3f}"

        rows = [[agent, f"{np.mean([r['pretrained']['reward_model_check']['auc'] for r in data['runs']]):.3f}",
                 f"{np.median([r['pretrained']['pretrain_seconds'] for r in data['runs']]):.0f}",
                 at(data["runs"], "pretrained", 0), f"{at(data['runs'], 'pretrained', 1000)} / {at(data['runs'], 'cold', 1000)}",
                 f"{at(data['runs'], 'pretrained', 3000)} / {at(data['runs'], 'cold', 3000)}",
                 median_or_none([r["pretrained"]["examples_to_target"] for r in data["runs"]]),
                 median_or_none([r["cold"]["examples_to_target"] for r in data["runs"]])]
                for agent, data in p["agents"].items()]
        lines += table(f"**Pretraining** on {p['history_rows']:,} rows of uniform-logger history (PPO: {p['steps']} steps "
                       f"against the reward model; the bandits learn from the history directly), then live batches of "
                       f"500 on optimus-poc, seeds {SEEDS} (normalized scores, pretrained / cold):",
                       ["agent", "reward model held-out AUC", "pretraining seconds (median)", "score before live data", "after 1,000 live",
                        "after 3,000 live", f"live examples to {TARGET_SCORE}: pretrained", "cold"], rows)
    return "\n".join(lines).strip() + "\n"


SECTIONS = {
    "throughput": throughput,
    "cartpole": lambda: cartpole(),
    "cartpole-tuned": lambda: cartpole(settings=ZOO_CARTPOLE),
    "cartpole-cleanrl": lambda: cartpole(CLEANRL_STEPS, CLEANRL_CARTPOLE, with_sb3=False),
    "optimus": optimus,
    "pretrain": pretraining,
}


def main(names: list[str]) -> None:
    torch.set_num_threads(1)  # both libraries alike: small networks run fastest on one thread
    unknown = [n for n in names if n not in SECTIONS and n != "--readme"]
    if unknown:
        sys.exit(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if names == ["--readme"]:
        names = []
    else:
        names = names or list(SECTIONS)
        lib = sb3()
        results["machine"] = {"torch": torch.__version__, "threads": 1, "sb3": lib.__version__ if lib else None}
    for name in names:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        results[name] = SECTIONS[name]()
        results[name]["section_seconds"] = time.perf_counter() - started
        results["readme"] = readme(results)
        write_json(RESULTS, results)  # after every section: an interrupted run keeps what it measured
    results["readme"] = readme(results)
    write_json(RESULTS, results)
    print(results["readme"])


if __name__ == "__main__":
    main(sys.argv[1:])
