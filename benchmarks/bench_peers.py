"""nextbest's agents against the contextual-bandit libraries people would otherwise use, in one run.

    python benchmarks/bench_peers.py                         # writes benchmarks/results/peers.json + peers.png
    python benchmarks/bench_peers.py --seeds 0 1 2 --examples 5000 --agents linucb vw-squarecb

Every agent plays the same built-in scenarios through the same loop (nextbest.training.simulate):
the same customers in the same batches, the same reaction draws, and after every batch its greedy
policy is scored by the scenario's oracle on the same held-out customers. Peers are wrapped as
nextbest agents (a `scores`, `policy` and `update` each), so nothing but the learner differs.

- nextbest: every agent registered in nextbest.agents.AGENTS when the script runs.
- Vowpal Wabbit: `--cb_explore_adf` with ε-greedy (ε = 0.05) and SquareCB (γ scale 10), shared
  context features crossed with the action's (`-q sa`), cost = −reward.
- MABWiser: LinUCB (α = 1) and LinTS (α = 1) on the one-hot design matrix, one arm per joint action.
- Stable-Baselines3: PPO (MlpPolicy, defaults) on one-step episodes; each batch fills its rollout
  buffer (one step in n parallel episodes) and runs PPO's own `train()`.
Peers get rewards divided by the standard deviation of the first batch (the scale nextbest's own
agents infer themselves), since their defaults assume rewards of order one. Everything runs on one
thread (OMP/MKL/torch), which on a busy 2-core machine is many times faster than two.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nextbest.agents import AGENTS, Agent, AgentSettings, Experience  # noqa: E402
from nextbest.agents.base import PolicyOutput  # noqa: E402
from nextbest.data.encoding import Features  # noqa: E402
from nextbest.evaluation.report import markdown_table  # noqa: E402
from nextbest.io import write_json  # noqa: E402
from nextbest.training.simulate import TARGET_SCORE, simulate  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SCENARIOS = ["optimus-poc", "discount", "multi-offer"]


class PeerSettings(AgentSettings):
    exploration_floor: float = 0.0  # peers explore their own way


class Peer(Agent):
    """A peer library behind nextbest's agent interface. Subclasses implement `_scores`, `_policy`, `_learn`."""

    Config = PeerSettings
    package: str

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.reward_scale: float | None = None
        self.trained = False

    def distribution(self, features: Features, seeds: np.ndarray) -> PolicyOutput:
        """The peer's own policy and scores; uniform with all-zero scores until it has learned."""
        n, k = len(features), self.action_space.n_joint
        if not self.trained:
            scores, policy = np.zeros((n, k)), np.full((n, k), 1.0 / k)
        else:
            scores, policy = self._scores(features), self._policy(features, seeds)
        return PolicyOutput(probabilities=(self.with_floor(policy),), greedy_scores=(scores,), action_values=scores)

    def update(self, experience: Experience) -> dict[str, float]:
        if self.reward_scale is None:
            self.reward_scale = float(experience.reward.std()) or 1.0
        joint = self.action_space.to_joint(experience.action)
        self._learn(experience, joint, experience.reward / self.reward_scale)
        self.trained = True
        self.updates += 1
        self.examples += len(joint)
        return {}

    def _scores(self, features: Features) -> np.ndarray: ...
    def _policy(self, features: Features, seeds: np.ndarray) -> np.ndarray: ...
    def _learn(self, experience: Experience, joint: np.ndarray, reward: np.ndarray) -> None: ...


# --- Vowpal Wabbit ------------------------------------------------------------------------------
class VowpalWabbit(Peer):
    package = "vowpalwabbit"
    arguments: str

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from vowpalwabbit import Workspace

        self.vw = Workspace(f"--cb_explore_adf {self.arguments} -q sa --quiet --random_seed {self.seed}")
        names = self.schema.categorical_columns
        sizes = self.action_space.sizes
        self.actions = [" ".join([f"a={a}", *(f"c{j}={c}" for j, c in enumerate(combo))] if len(sizes) > 1 else [f"a={a}"])
                        for a, combo in enumerate(self.action_space.from_joint(np.arange(self.action_space.n_joint)))]
        self._categorical = names
        self.trained = True  # VW explores uniformly before it has learned anything

    def _shared(self, features: Features) -> list[str]:
        numeric = self.schema.numeric_columns
        rows = []
        for codes, numbers in zip(features.categorical, features.numeric):
            parts = [f"{name}={code}" for name, code in zip(self._categorical, codes)]
            parts += [f"{name}:{value:.5g}" for name, value in zip(numeric, numbers)]
            rows.append("shared |s " + " ".join(parts))
        return rows

    def _pmf(self, features: Features) -> np.ndarray:
        out = np.empty((len(features), self.action_space.n_joint))
        for i, shared in enumerate(self._shared(features)):
            out[i] = self.vw.predict([shared, *(f"|a {a}" for a in self.actions)])
        return out / out.sum(axis=1, keepdims=True)

    def _scores(self, features: Features) -> np.ndarray:
        return self._pmf(features)  # the greedy action carries the largest probability

    def _policy(self, features: Features, seeds: np.ndarray) -> np.ndarray:
        return self._pmf(features)

    def _learn(self, experience: Experience, joint: np.ndarray, reward: np.ndarray) -> None:
        probability = np.exp(experience.log_probability)
        for shared, a, r, p in zip(self._shared(experience.features), joint, reward, probability):
            lines = [f"|a {name}" for name in self.actions]
            lines[a] = f"0:{-r:.6g}:{p:.6g} |a {self.actions[a]}"
            self.vw.learn([shared, *lines])


# --- MABWiser ---------------------------------------------------------------------------------
class MABWiser(Peer):
    package = "mabwiser"
    learning_policy: str

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        from mabwiser.mab import MAB, LearningPolicy

        policy = getattr(LearningPolicy, self.learning_policy)(alpha=1.0)
        self.mab = MAB(list(range(self.action_space.n_joint)), policy, seed=self.seed)

    def _scores(self, features: Features) -> np.ndarray:
        """Greedy: the ridge mean x·β of every arm (MABWiser exposes only UCBs or samples)."""
        from mabwiser.linear import _RidgeRegression

        X = features.design_matrix()
        models = self.mab._imp.arm_to_model
        return np.stack([_RidgeRegression.predict(models[a], X) for a in range(self.action_space.n_joint)], axis=1)

    def _policy(self, features: Features, seeds: np.ndarray) -> np.ndarray:
        chosen = np.atleast_1d(self.mab.predict(features.design_matrix()))
        return np.eye(self.action_space.n_joint)[np.asarray(chosen, dtype=np.int64)]

    def _learn(self, experience: Experience, joint: np.ndarray, reward: np.ndarray) -> None:
        X = experience.features.design_matrix()
        (self.mab.partial_fit if self.trained else self.mab.fit)(joint.tolist(), reward, X)


# --- Stable-Baselines3 PPO ----------------------------------------------------------------------
class StableBaselinesPPO(Peer):
    name = "sb3-ppo"
    summary = "Stable-Baselines3 PPO (MlpPolicy) on one-step episodes"
    package = "stable-baselines3"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        import gymnasium as gym
        from stable_baselines3 import PPO
        from stable_baselines3.common.logger import configure

        width = sum(self.schema.cardinalities()) + len(self.schema.numeric_columns)
        observations = gym.spaces.Box(-np.inf, np.inf, (width,), np.float32)
        sizes = self.action_space.sizes
        actions = gym.spaces.Discrete(sizes[0]) if len(sizes) == 1 else gym.spaces.MultiDiscrete(list(sizes))

        class Spaces(gym.Env):  # PPO wants an environment for its spaces; the loop supplies the data
            observation_space, action_space = observations, actions

        self.model = PPO("MlpPolicy", Spaces(), seed=self.seed, device="cpu", verbose=0)
        self.model.set_logger(configure(None, []))
        self.trained = True  # PPO's initial policy is its own (near-uniform) one

    def _obs(self, features: Features) -> torch.Tensor:
        return torch.as_tensor(features.design_matrix()[:, :-1], dtype=torch.float32)  # one-hot + numbers

    @torch.no_grad()
    def _probabilities(self, features: Features) -> np.ndarray:
        distribution = self.model.policy.get_distribution(self._obs(features)).distribution
        if isinstance(distribution, list):  # MultiDiscrete: independent choices → joint, first choice slowest
            joint = distribution[0].probs
            for part in distribution[1:]:
                joint = (joint[:, :, None] * part.probs[:, None, :]).reshape(len(joint), -1)
            return joint.numpy().astype(np.float64)
        return distribution.probs.numpy().astype(np.float64)

    def _scores(self, features: Features) -> np.ndarray:
        return self._probabilities(features)

    def _policy(self, features: Features, seeds: np.ndarray) -> np.ndarray:
        return self._probabilities(features)

    def _learn(self, experience: Experience, joint: np.ndarray, reward: np.ndarray) -> None:
        from stable_baselines3.common.buffers import RolloutBuffer

        model, n = self.model, len(reward)
        obs = self._obs(experience.features)
        actions = torch.as_tensor(experience.action if self.action_space.n_choices > 1 else experience.action[:, 0])
        with torch.no_grad():
            values, log_prob, _ = model.policy.evaluate_actions(obs, actions)
        buffer = RolloutBuffer(1, model.observation_space, model.action_space, device="cpu",
                               gae_lambda=model.gae_lambda, gamma=model.gamma, n_envs=n)
        buffer.add(obs.numpy(), actions.numpy().reshape(n, -1), reward.astype(np.float32), np.ones(n, dtype=np.float32),
                   values.flatten(), log_prob)
        buffer.compute_returns_and_advantage(last_values=torch.zeros(n), dones=np.ones(n))
        model.rollout_buffer = buffer
        model.train()


def variant(base: type[Peer], name: str, summary: str, **settings: str) -> type[Peer]:
    """A named configuration of a peer, registered like any agent."""
    return type(name.title().replace("-", ""), (base,), {"name": name, "summary": summary, **settings})


PEERS: list[type[Peer]] = [
    variant(VowpalWabbit, "vw-epsilon-greedy", "Vowpal Wabbit --cb_explore_adf --epsilon 0.05", arguments="--epsilon 0.05"),
    variant(VowpalWabbit, "vw-squarecb", "Vowpal Wabbit --cb_explore_adf --squarecb", arguments="--squarecb --gamma_scale 10"),
    variant(MABWiser, "mabwiser-linucb", "MABWiser LinUCB (alpha 1)", learning_policy="LinUCB"),
    variant(MABWiser, "mabwiser-lints", "MABWiser LinTS (alpha 1)", learning_policy="LinTS"),
    StableBaselinesPPO,
]


def peer_versions() -> dict[str, str]:
    versions = {}
    for package in sorted({p.package for p in PEERS}):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


TARGETS = (0.9, TARGET_SCORE)  # nextbest's target; 0.9 tells apart agents that stop short of it


def run(scenario: str, agent: str, seeds: list[int], examples: int, batch_size: int) -> dict[str, Any]:
    as_given = None if agent in NEXTBEST else {"numeric_encoding": "standard"}  # peers get z-scores, as their users would
    runs = [simulate(scenario, agent, examples=examples, batch_size=batch_size, seed=seed, hyperparameters=as_given)
            for seed in seeds]
    return {
        "scenario": scenario,
        "agent": agent,
        "library": "nextbest" if agent in NEXTBEST else next(p.package for p in PEERS if p.name == agent),
        "final_normalized_score": float(np.mean([r.final_score for r in runs])),
        "final_normalized_score_per_seed": [r.final_score for r in runs],
        "examples_to": {str(target): [r.examples_to(target) for r in runs] for target in TARGETS},
        "seconds": float(np.mean([r.batches[-1].seconds for r in runs])),
        "curve": {"examples": [b.examples for b in runs[0].batches],
                  "normalized_score": np.mean([[b.normalized_score for b in r.batches] for r in runs], axis=0).tolist()},
    }


NEXTBEST = list(AGENTS)


def _median_examples(reached: list[int | None]) -> str:
    """Median over seeds of the examples needed, counting a seed that never got there as infinite."""
    needed = sorted(np.inf if x is None else x for x in reached)
    median = float(np.median(needed))
    return "—" if not np.isfinite(median) else f"{int(median):,}"


def readme(results: list[dict], settings: dict, versions: dict) -> str:
    scenarios = list(dict.fromkeys(r["scenario"] for r in results))
    agents = list(dict.fromkeys(r["agent"] for r in results))
    cell = {(r["agent"], r["scenario"]): r for r in results}
    library = {r["agent"]: r["library"] for r in results}
    scores, speed = [], []
    for agent in agents:
        row = [cell[agent, s] for s in scenarios if (agent, s) in cell]
        scores.append([agent, library[agent], *(f"{r['final_normalized_score']:.3f}" for r in row),
                       f"{np.mean([r['seconds'] for r in row]):.1f}"])
        speed.append([agent, *(" / ".join(_median_examples(r["examples_to"][str(t)]) for t in TARGETS) for r in row)])
    skipped = [f"{k}" for k, v in versions.items() if v == "not installed"]
    installed = ", ".join(f"{k} {v}" for k, v in versions.items() if v != "not installed")
    return "\n\n".join([
        "### Against the peers: Vowpal Wabbit, MABWiser, Stable-Baselines3",
        f"Every agent plays the same customers, seeds {settings['seeds']}, {settings['examples']:,} examples in "
        f"batches of {settings['batch_size']}; the score is (agent − random) / (oracle − random) for the greedy "
        f"policy on 2,000 held-out customers, mean over seeds; wall time per run on one thread, scoring included "
        f"({installed}" + (f"; not installed here: {', '.join(skipped)}" if skipped else "") + ").",
        markdown_table(["agent", "library", *(f"{s} score" for s in scenarios), "seconds per run"], scores),
        f"Examples until the score first reached {' / '.join(map(str, TARGETS))} (median over seeds; — when at least half the "
        f"seeds did not get there within {settings['examples']:,}):",
        markdown_table(["agent", *scenarios], speed),
        "![normalized score against examples, every agent and scenario](benchmarks/results/peers.png)",
    ])


def figure(results: list[dict], path: Path) -> None:
    from nextbest.evaluation import plots

    scenarios = list(dict.fromkeys(r["scenario"] for r in results))
    agents = list(dict.fromkeys(r["agent"] for r in results))
    colors = plots.plt.get_cmap("tab20").colors
    fig, axes = plots.plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios) + 2, 4.5), layout="constrained",
                                   squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        for r in (x for x in results if x["scenario"] == scenario):
            style = "-" if r["library"] == "nextbest" else "--"
            ax.plot(r["curve"]["examples"], r["curve"]["normalized_score"], style,
                    color=colors[agents.index(r["agent"]) % len(colors)], label=r["agent"])
        ax.axhline(TARGET_SCORE, color="gray", linewidth=0.8, linestyle=":")
        ax.set_title(scenario)
        ax.set_xlabel("examples")
        ax.set_ylim(-0.2, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("normalized score (greedy, held out)")
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", title="solid: nextbest")
    plots.save(fig, path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", nargs="+", default=SCENARIOS)
    parser.add_argument("--agents", nargs="+", help="default: every registered nextbest agent and every installed peer")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args(argv)
    versions = peer_versions()
    for peer in PEERS:
        if versions[peer.package] != "not installed":
            AGENTS[peer.name] = peer
    agents = args.agents or [*NEXTBEST, *(p.name for p in PEERS if p.name in AGENTS)]
    settings = {"seeds": args.seeds, "examples": args.examples, "batch_size": args.batch_size, "threads": 1}
    results, started = [], time.perf_counter()
    for scenario in args.scenarios:
        for agent in agents:
            result = run(scenario, agent, args.seeds, args.examples, args.batch_size)
            results.append(result)
            print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)
    figure(results, RESULTS / "peers.png")
    write_json(RESULTS / "peers.json", {"settings": settings, "versions": versions, "results": results,
                                        "seconds": time.perf_counter() - started, "readme": readme(results, settings, versions)})
    print(f"wrote {RESULTS / 'peers.json'} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
