"""Every agent on many generated worlds (nextbest.envs.worlds): the benchmark defaults are chosen on.

    python benchmarks/bench_worlds.py                              # both sets, everything (hours; resumable)
    python benchmarks/bench_worlds.py --set tuning --worlds 3 --agents linucb neural --seeds 0 --points 1000 --long-examples 0

Two sets of worlds: seeds 1000–1099 for choosing and tuning, seeds 5000–5099 for reporting only.
Every agent — nextbest's bandits (nextbest.agents.AGENTS, numbers encoded as `--numeric-encoding`
says, by default the library's default) and the peers installed here (MABWiser LinUCB and LinTS;
Vowpal Wabbit `--cb_explore_adf` with SquareCB and with bagging; all on one-hot categories and
z-scored numbers, as their users would give them; wrappers from bench_peers.py) — plays each world through the loop of
`nextbest simulate`: the same customers in the same batches of 500, the same reaction draws (a
world's reactions use one uniform and one normal number per customer whatever the action), and
its greedy policy scored by the world's exact oracle on the same 2,000 held-out customers:
(agent − random) / (oracle − random). Scores are read after 1,000 and 3,000 examples with 2 seeds
each, and after 10,000 on a fixed subset of 30 worlds per set (the first 30), where the PPO agents
join the bandits. An agent named `neural+history` is first pretrained (`nextbest pretrain`) on 5,000
rows of a uniform logger's history of the world; its score at 0 examples is the one before live data.

Reported per set and agent: the median and 10th percentile over worlds of the score (mean over
seeds) at each point; wins / ties / losses against every other agent (a tie: the difference is
within twice its standard error from the seeds' spread, and at least 0.02); the worlds where it
loses most to the best agent there, with their kind, and the mean loss by kind.

Every finished (world, agent, seed) run is appended to benchmarks/.cache/worlds.jsonl and skipped
the next time (`--rerun` ignores the cache), so the run can be stopped and resumed; worlds.json
and the figure are written from everything in the cache for the chosen sets.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peers import MABWiser, Peer, VowpalWabbit, peer_versions, variant  # noqa: E402

from nextbest.agents import AGENTS, DEFAULT_AGENT  # noqa: E402
from nextbest.envs import make_scenario  # noqa: E402
from nextbest.evaluation.report import markdown_table  # noqa: E402
from nextbest.io import write_json  # noqa: E402
from nextbest.training.pretrain import pretrain  # noqa: E402
from nextbest.training.simulate import scenario_experiment, simulate  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "benchmarks" / "results" / "worlds.json"
CACHE = ROOT / "benchmarks" / ".cache" / "worlds.jsonl"
SETS = {"tuning": range(1000, 1100), "reporting": range(5000, 5100)}
BATCH_SIZE = 500
POINTS = (1000, 3000)  # every world
LONG_EXAMPLES, LONG_WORLDS = 10_000, 30  # the first 30 worlds of each set
SEEDS = (0, 1)
TARGETS = (0.8, 0.9)  # examples to these scores are recorded
PRETRAINED, HISTORY_ROWS = "+history", 5000  # `neural+history`: pretrained on 5,000 rows of a uniform logger first
TIE_FLOOR = 0.02
KIND_KEYS = ("reward", "form", "actions", "noise")

PEERS: list[type[Peer]] = [
    variant(MABWiser, "mabwiser-linucb", "MABWiser LinUCB (alpha 1)", learning_policy="LinUCB"),
    variant(MABWiser, "mabwiser-lints", "MABWiser LinTS (alpha 1)", learning_policy="LinTS"),
    variant(VowpalWabbit, "vw-squarecb", "Vowpal Wabbit --cb_explore_adf --squarecb", arguments="--squarecb --gamma_scale 10"),
    variant(VowpalWabbit, "vw-bagging", "Vowpal Wabbit --cb_explore_adf --bag 5", arguments="--bag 5"),
]
PEER_NAMES = [p.name for p in PEERS]
BEST_PEER = "best peer of each world"


def is_ppo(agent: str) -> bool:
    return agent.startswith("ppo")


def kind_label(kind: dict[str, Any]) -> str:
    return "/".join(str(kind[k]) for k in KIND_KEYS)


# --- running ---------------------------------------------------------------------------------------
def run_cell(world: int, agent: str, seed: int, examples: int, points: list[int], encoding: str = "quantile") -> dict[str, Any]:
    """One (world, agent, seed) run to `examples`; the greedy score at every batch boundary in `points`.
    nextbest's agents encode numbers with `encoding`; the peers get them z-scored, as their users would."""
    torch.set_num_threads(1)
    _register_peers()
    scenario = make_scenario(f"world:{world}")
    encoding = "standard" if agent in PEER_NAMES else encoding
    cell = {"world": world, "agent": agent, "seed": seed, "examples": examples, "batch_size": BATCH_SIZE,
            "numeric_encoding": encoding, "kind": scenario.kind, "best_fixed": best_fixed_score(scenario, seed),
            "scores": {}, "seconds": 0.0}
    base = agent.removesuffix(PRETRAINED)
    try:
        experiment = None
        if base != agent:  # pretrained on a uniform logger's history first; its score at 0 is before live data
            experiment = scenario_experiment(scenario, base, hyperparameters={"numeric_encoding": encoding}, seed=seed)
            started = time.perf_counter()
            pretrain(experiment, uniform_history(scenario, HISTORY_ROWS, seed))
            cell["pretrain_seconds"] = time.perf_counter() - started
            points = [0, *points]
        result = simulate(scenario, base, examples=examples, batch_size=BATCH_SIZE, seed=seed,
                          hyperparameters={"numeric_encoding": encoding}, experiment=experiment)
    except Exception as error:  # one failing run is reported, not the end of hours of others
        return cell | {"error": f"{type(error).__name__}: {error}"}
    scores = {b.examples: b.normalized_score for b in result.batches}
    return cell | {"scores": {str(p): scores[p] for p in points if p in scores}, "seconds": result.batches[-1].seconds,
                   "examples_to": {str(t): result.examples_to(t) for t in TARGETS}}


def uniform_history(scenario: Any, rows: int, seed: int) -> Any:
    """`rows` customers of the world under a uniformly random logger: the context, `action` (or `action_0`, …),
    `outcome` and `logging_probability` columns of `nextbest pretrain`'s history."""
    rng = np.random.default_rng([seed, 3])
    history = scenario.sample_contexts(rows, rng)
    actions = scenario.actions.from_joint(rng.integers(scenario.actions.n_joint, size=rows))
    scenario.actions.write(history, actions)
    history["outcome"] = scenario.sample_reactions(history, actions, rng)
    history["logging_probability"] = 1.0 / scenario.actions.n_joint
    return history


def best_fixed_score(scenario: Any, seed: int) -> float:
    """Normalized score of the one action best on average, on the held-out customers `simulate` scores on:
    what a policy earns that does not personalize at all (1.0 in a world where one action is best for all)."""
    expected = scenario.expected_rewards(scenario.sample_contexts(2000, np.random.default_rng([seed, 1])))
    oracle, random = expected.max(axis=1).mean(), expected.mean()
    return float((expected.mean(axis=0).max() - random) / (oracle - random))


def _register_peers() -> list[str]:
    """Register the installed peers as agents; the names of those missing."""
    versions = peer_versions()
    missing = []
    for peer in PEERS:
        if versions.get(peer.package, "not installed") == "not installed":
            missing.append(peer.name)
        else:
            AGENTS[peer.name] = peer
    return missing


def read_cache(path: Path, encoding: str = "quantile") -> dict[tuple[int, str, int], dict[str, Any]]:
    """Finished runs by (world, agent, seed) with nextbest's agents on `encoding`; a damaged line (an interrupted
    write) is passed over."""
    cells: dict[tuple[int, str, int], dict[str, Any]] = {}
    if not path.exists():
        return cells
    for line in path.read_text().splitlines():
        try:
            cell = json.loads(line)
            key = (int(cell["world"]), str(cell["agent"]), int(cell["seed"]))
        except (ValueError, KeyError, TypeError):
            continue
        wanted = "standard" if key[1] in PEER_NAMES else encoding
        if (cell.get("batch_size") == BATCH_SIZE and cell.get("numeric_encoding", "standard") == wanted
                and cell["examples"] >= cells.get(key, {"examples": -1})["examples"]):
            cells[key] = cell
    return cells


def append_cache(path: Path, cell: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as file:
        file.write(json.dumps(cell) + "\n")
        file.flush()
        os.fsync(file.fileno())


def plan(sets: list[str], n_worlds: int | None, world_seeds: list[int] | None, agents: list[str], seeds: list[int],
         points: list[int], long_examples: int, long_worlds: int) -> list[tuple[int, str, int, int, list[int]]]:
    """(world, agent, seed, examples, points) of every run the chosen sets need."""
    runs = []
    for name in sets:
        worlds = list(SETS[name])
        long = set(worlds[:long_worlds]) if long_examples else set()
        chosen = [w for w in worlds if w in world_seeds] if world_seeds else worlds[:n_worlds]
        for world in chosen:
            for agent in agents:
                if is_ppo(agent) and world not in long:
                    continue  # PPO is compared at 10,000 examples only
                examples = long_examples if world in long else max(points)
                for seed in seeds:
                    runs.append((world, agent, seed, examples, sorted({*points, examples})))
    return runs


# --- summarizing ------------------------------------------------------------------------------------
def summarize(cells: dict[tuple[int, str, int], dict[str, Any]], worlds: list[int], agents: list[str],
              points: list[int]) -> dict[str, Any]:
    """Medians, 10th percentiles, wins / ties / losses and worst worlds over `worlds` from finished runs."""
    per_seed: dict[tuple[str, int, str], list[float]] = defaultdict(list)  # (agent, world, point) → scores
    kinds: dict[int, dict[str, Any]] = {}
    for (world, agent, _), cell in cells.items():
        if world in worlds and agent in agents:
            kinds[world] = cell["kind"]
            for point, score in cell["scores"].items():
                per_seed[agent, world, point].append(score)
    fixed: dict[int, list[float]] = defaultdict(list)
    for (world, agent, _), cell in cells.items():
        if world in worlds and agent in agents and "best_fixed" in cell:
            fixed[world].append(cell["best_fixed"])
    mean = {key: float(np.mean(v)) for key, v in per_seed.items()}
    for world, point in {(w, p) for (_, w, p) in per_seed}:  # in each world, the peer that scored best there
        scored = [peer for peer in PEER_NAMES if (peer, world, point) in mean]
        if scored:
            per_seed[BEST_PEER, world, point] = per_seed[max(scored, key=lambda peer: mean[peer, world, point]), world, point]
    out: dict[str, Any] = {"worlds": sorted(kinds), "points": {}, "versus": {}, "worst": {}, "loss_by_kind": {},
                           "best_fixed_action": _spread([float(np.mean(v)) for v in fixed.values()]), "best_of_all": {},
                           "examples_to": {}, "pretrain_seconds": {}}
    for agent in agents:
        runs = [c for (w, a, _), c in cells.items() if a == agent and w in worlds and "examples_to" in c]
        out["examples_to"][agent] = _examples_to(runs)
        if agent.endswith(PRETRAINED):  # the same agent without history, on the same worlds, seeds and examples
            cold = []
            for (w, a, s), warm in cells.items():
                twin = cells.get((w, agent.removesuffix(PRETRAINED), s), {})
                if a == agent and w in worlds and "examples_to" in twin:
                    cold.append({"examples_to": {t: n if n is not None and n <= warm["examples"] else None
                                                 for t, n in twin["examples_to"].items()}})
            out["examples_to"][agent + " cold"] = _examples_to(cold)
        seconds = [c["pretrain_seconds"] for c in runs if "pretrain_seconds" in c]
        if seconds:
            out["pretrain_seconds"][agent] = {"median": float(np.median(seconds)), "max": float(np.max(seconds))}
    live_only = [a for a in agents if not a.endswith(PRETRAINED)]  # the reference: what live data alone allowed
    for point in map(str, points):
        out["points"][point] = {}
        best = {w: max(mean[a, w, point] for a in live_only if (a, w, point) in mean) for w in kinds
                if any((a, w, point) in mean for a in live_only)}
        out["best_of_all"][point] = _spread(list(best.values()))
        for agent in agents:
            scores = {w: mean[agent, w, point] for w in kinds if (agent, w, point) in mean}
            if not scores:
                continue
            values = np.array(list(scores.values()))
            out["points"][point][agent] = {"median": float(np.median(values)), "p10": float(np.percentile(values, 10)),
                                           "worlds": len(values)}
            for other in [*agents, BEST_PEER]:
                if other != agent:
                    tally = _versus(per_seed, agent, other, point, kinds, record_lost=agent == DEFAULT_AGENT)
                    out["versus"].setdefault(agent, {}).setdefault(other, {})[point] = tally
            gaps = sorted(((best[w] - s, w) for w, s in scores.items() if w in best), reverse=True)
            out["worst"].setdefault(agent, {})[point] = [
                {"world": w, "kind": kind_label(kinds[w]), "score": scores[w], "best": best[w], "gap": gap}
                for gap, w in gaps[:5]]
            by_kind: dict[str, dict[str, float]] = {}
            for key in KIND_KEYS:
                groups = defaultdict(list)
                for w, s in scores.items():
                    if w in best:
                        groups[str(kinds[w][key])].append(best[w] - s)
                by_kind[key] = {value: float(np.mean(g)) for value, g in sorted(groups.items())}
            out["loss_by_kind"].setdefault(agent, {})[point] = by_kind
    return out


def _examples_to(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For every target score: the median examples over the runs that reached it, how many did, of how many."""
    tallies = {}
    for target in map(str, TARGETS):
        found = [c["examples_to"][target] for c in runs if c["examples_to"][target] is not None]
        tallies[target] = {"median": float(np.median(found)) if found else None, "reached": len(found), "runs": len(runs)}
    return tallies


def _reached(tally: dict[str, Any] | None) -> str:
    """'1,500 (7/10 runs)': the median over the runs that reached a score, and how many did."""
    if not tally or not tally["runs"]:
        return ""
    median = "—" if tally["median"] is None else f"{tally['median']:,.0f}"
    return f"{median} ({tally['reached']}/{tally['runs']} runs)"


def _spread(values: list[float]) -> dict[str, float] | None:
    """Median, 10th percentile and count of per-world values (None without any)."""
    if not values:
        return None
    return {"median": float(np.median(values)), "p10": float(np.percentile(values, 10)), "worlds": len(values)}


def _versus(per_seed: dict, agent: str, other: str, point: str, kinds: dict, record_lost: bool = False) -> dict[str, Any]:
    """Wins / ties / losses of `agent` against `other` over the worlds, a tie within the seeds' noise; with
    `record_lost`, also which worlds it lost and by how much."""
    tally: dict[str, Any] = {"wins": 0, "ties": 0, "losses": 0} | ({"lost": []} if record_lost else {})
    for world in kinds:
        a, b = per_seed.get((agent, world, point)), per_seed.get((other, world, point))
        if not a or not b:
            continue
        difference = np.mean(a) - np.mean(b)
        variance = sum(np.var(x, ddof=1) / len(x) for x in (a, b) if len(x) > 1)  # of the difference, from the seeds
        noise = max(TIE_FLOOR, 2 * float(np.sqrt(variance)))
        tally["ties" if abs(difference) <= noise else "wins" if difference > 0 else "losses"] += 1
        if difference < -noise and "lost" in tally:
            tally["lost"].append({"world": world, "kind": kind_label(kinds[world]), "by": float(-difference)})
    return tally


def readme(summary: dict[str, Any], agents: list[str], points: list[int], settings: dict[str, Any]) -> str:
    blocks = ["### Generated worlds: every agent on worlds nobody tuned for",
              f"Worlds drawn by `nextbest.envs.worlds` (seeds 1000–1099 tune, 5000–5099 only report); batches of "
              f"{BATCH_SIZE}, seeds {settings['seeds']}; the score is (agent − random) / (oracle − random) of the greedy "
              f"policy on 2,000 held-out customers, mean over seeds; median (10th percentile) over worlds. "
              f"Wins / ties / losses at 3,000 examples against the peer with the best median, and against whichever peer scored "
              f"best in each world; a tie is within the seeds' noise (twice the standard error of the difference, at least "
              f"{TIE_FLOOR}). "
              f"The last rows are references: the one action best on average (no personalization), and in each world "
              f"the score of whichever agent did best there (an optimistic bound on what this much data allowed). "
              f"The peers get one-hot categories, z-scored numbers and the raw rewards, as their users would give them."]
    if settings.get("long_examples") and settings.get("long_seeds"):
        blocks[-1] += (f" At {settings['long_examples']:,} examples: the first {settings['long_worlds']} worlds of each set, "
                       f"seeds {settings['long_seeds']}, where the PPO agents join the bandits.")
    for name, result in summary.items():
        table_points = [p for p in map(str, points) if result["points"].get(p)]
        if not table_points:
            continue
        peers = [p for p in PEER_NAMES if p in result["points"].get("3000", {})]
        best_peer = max(peers, key=lambda p: result["points"]["3000"][p]["median"]) if peers else None
        rows = []
        for agent in agents:
            cells = [result["points"][p].get(agent) for p in table_points]
            if not any(cells):
                continue
            row = [agent, *("" if c is None else f"{c['median']:.3f} ({c['p10']:.3f}), {c['worlds']}" for c in cells)]
            if best_peer:
                for other in (best_peer, BEST_PEER):
                    v = result["versus"].get(agent, {}).get(other, {}).get("3000")
                    row.append("" if agent == other or not v else f"{v['wins']} / {v['ties']} / {v['losses']}")
            rows.append(row)
        if result.get("best_fixed_action"):
            fixed = result["best_fixed_action"]
            rows.append(["*best fixed action (oracle's choice)*", *(f"{fixed['median']:.3f} ({fixed['p10']:.3f})" for _ in table_points),
                         *(["", ""] if best_peer else [])])
        best_of_all = [result.get("best_of_all", {}).get(p) for p in table_points]
        if any(best_of_all):
            rows.append(["*the best agent of each world (reference)*",
                         *("" if c is None else f"{c['median']:.3f} ({c['p10']:.3f})" for c in best_of_all), *(["", ""] if best_peer else [])])
        header = ["agent", *(f"{int(p):,} examples: median (p10), worlds" for p in table_points)]
        if best_peer:
            header += [f"vs {best_peer}", f"vs the {BEST_PEER}"]
        blocks += [f"**{name} set** ({len(result['worlds'])} worlds)", markdown_table(header, rows)]
        lost = result["versus"].get(DEFAULT_AGENT, {}).get("epsilon-greedy", {}).get("3000", {}).get("lost")
        if lost:
            blocks.append(f"Worlds where {DEFAULT_AGENT} ends more than the seeds' noise below `epsilon-greedy` at 3,000 examples: "
                          + "; ".join(f"{c['world']} ({c['kind']}, by {c['by']:.2f})" for c in sorted(lost, key=lambda c: -c["by"])) + ".")
        pretrained = [a for a in agents if a.endswith(PRETRAINED) and a in result["pretrain_seconds"]]
        if pretrained:
            rows = []
            for agent in pretrained:
                warm = result["examples_to"][agent]["0.9"]
                before = result["points"].get("0", {}).get(agent)
                rows.append([agent, f"{result['pretrain_seconds'][agent]['median']:.1f} ({result['pretrain_seconds'][agent]['max']:.1f})",
                             "" if before is None else f"{before['median']:.3f} ({before['p10']:.3f})",
                             _reached(warm), _reached(result["examples_to"].get(agent + " cold", {}).get("0.9"))])
            blocks += [f"Pretraining on {HISTORY_ROWS:,} rows of a uniform logger's history ({name} set):",
                       markdown_table(["agent", "pretraining seconds: median (max)", "score before live data: median (p10)",
                                       "live examples to 0.9: pretrained", "cold (the same worlds and seeds)"], rows)]
    blocks.append("![scores over worlds, every agent](benchmarks/results/worlds.png)")
    return "\n\n".join(blocks)


def figure(summary: dict[str, Any], cells: dict, agents: list[str], points: list[int], path: Path) -> None:
    """One panel per set and point: each agent's scores over worlds as a box."""
    from nextbest.evaluation import plots

    panels = [(name, str(p)) for name in summary for p in points if summary[name]["points"].get(str(p))]
    if not panels:
        return
    fig, axes = plots.plt.subplots(1, len(panels), figsize=(4 * len(panels) + 2, 0.4 * len(agents) + 2),
                                   layout="constrained", squeeze=False, sharey=True)
    for ax, (name, point) in zip(axes[0], panels):
        worlds = set(summary[name]["worlds"])
        data = []
        for agent in agents:
            per_world = defaultdict(list)
            for (world, a, _), cell in cells.items():
                if a == agent and world in worlds and point in cell["scores"]:
                    per_world[world].append(cell["scores"][point])
            data.append([float(np.mean(v)) for v in per_world.values()] or [np.nan])
        ax.boxplot(data[::-1], orientation="horizontal", tick_labels=agents[::-1], showfliers=True,  # first agent on top
                   flierprops={"markersize": 3})
        ax.axvline(1.0, color="gray", linewidth=0.8, linestyle=":")
        ax.set_title(f"{name} · {int(point):,} examples")
        ax.set_xlabel("normalized score")
        ax.set_xlim(-0.5, 1.05)
        ax.grid(alpha=0.3)
    plots.save(fig, path)


# --- the command ------------------------------------------------------------------------------------
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=[*SETS, "both"], default="both", help="which worlds (default: both sets)")
    parser.add_argument("--worlds", type=int, help="only the first N worlds of each set")
    parser.add_argument("--world-seeds", type=int, nargs="+", help="only these worlds (seeds within the chosen sets)")
    parser.add_argument("--agents", nargs="+", help="default: every nextbest agent and every installed peer")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--points", type=int, nargs="+", default=list(POINTS), help="examples at which to score")
    parser.add_argument("--long-examples", type=int, default=LONG_EXAMPLES, help="0: no long runs")
    parser.add_argument("--long-worlds", type=int, default=LONG_WORLDS)
    parser.add_argument("--workers", type=int, default=1, help="runs side by side (one thread each)")
    parser.add_argument("--numeric-encoding", choices=["quantile", "standard"], default="quantile",
                        help="how nextbest's agents encode numbers (the peers always get z-scores)")
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--rerun", action="store_true", help="ignore finished runs in the cache")
    parser.add_argument("--summarize-only", action="store_true", help="run nothing; write the results from the cache")
    parser.add_argument("--output", type=Path, default=RESULT, help="results JSON; the figure goes beside it (.png)")
    args = parser.parse_args(argv)
    if any(p % BATCH_SIZE for p in args.points) or args.long_examples % BATCH_SIZE:
        parser.error(f"--points and --long-examples must be multiples of the batch size, {BATCH_SIZE}")

    missing = _register_peers()
    if missing:
        print(f"note: peers not installed here, skipped: {', '.join(missing)} (they live in .venv-bench)", flush=True)
    available = [a for a in AGENTS if a not in PEER_NAMES] + [p for p in PEER_NAMES if p in AGENTS]
    agents = args.agents or available
    unknown = [a for a in agents if a.removesuffix(PRETRAINED) not in AGENTS or a.endswith(PRETRAINED) and a in PEER_NAMES]
    if unknown:
        parser.error(f"unknown or uninstalled agents {unknown}; available: {available}")
    sets = list(SETS) if args.set == "both" else [args.set]
    runs = plan(sets, args.worlds, args.world_seeds, agents, args.seeds, args.points, args.long_examples, args.long_worlds)
    cells = {} if args.rerun else read_cache(args.cache, args.numeric_encoding)
    todo = [] if args.summarize_only else [
        (*r, args.numeric_encoding) for r in runs if cells.get((r[0], r[1], r[2]), {"examples": -1})["examples"] < r[3]]
    print(f"{len(runs)} runs, {len(runs) - len(todo)} already in {args.cache}, {len(todo)} to go", flush=True)

    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) if args.workers > 1 else _Serial() as pool:
        for done, cell in enumerate(pool.map(_run, todo), 1):
            append_cache(args.cache, cell)
            cells[cell["world"], cell["agent"], cell["seed"]] = cell
            elapsed = time.perf_counter() - started
            scores = " ".join(f"{int(p):,}→{s:.3f}" for p, s in cell["scores"].items()) or f"FAILED ({cell['error']})"
            print(f"[{done}/{len(todo)}] world:{cell['world']} ({kind_label(cell['kind'])}) {cell['agent']} seed {cell['seed']}: "
                  f"{scores} in {cell['seconds']:.1f} s; elapsed {elapsed / 60:.1f} min, "
                  f"about {elapsed / done * (len(todo) - done) / 60:.0f} min to go", flush=True)

    all_points = sorted({*args.points, *([args.long_examples] if args.long_examples else []),
                         *([0] if any(a.endswith(PRETRAINED) for a in agents) else [])})
    chosen = {name: [r[0] for r in runs if r[0] in SETS[name]] for name in sets}
    cells = {key: cell for key, cell in cells.items() if key[2] in args.seeds}  # the seeds asked for, alike for every agent
    summary = {name: summarize(cells, sorted(set(worlds)), agents, all_points) for name, worlds in chosen.items()}
    settings = {"batch_size": BATCH_SIZE, "seeds": args.seeds, "numeric_encoding": args.numeric_encoding, "points": args.points, "long_examples": args.long_examples,
                "long_worlds": args.long_worlds, "evaluation_rows": 2000, "threads": 1,
                "sets": {name: [SETS[name].start, SETS[name].stop - 1] for name in sets}}
    if args.long_examples:
        settings["long_seeds"] = sorted({seed for (_, _, seed), c in cells.items() if str(args.long_examples) in c["scores"]})
    figure(summary, cells, agents, all_points, args.output.with_suffix(".png"))
    failed = [{k: c[k] for k in ("world", "agent", "seed", "error")} for c in cells.values() if "error" in c]
    write_json(args.output, {"settings": settings, "versions": peer_versions(), "agents": agents, "sets": summary, "failed": failed,
                             "seconds": time.perf_counter() - started, "readme": readme(summary, agents, all_points, settings)})
    for name, result in summary.items():
        if result.get("best_fixed_action"):
            print(f"{name} · the best fixed action (no personalization) scores {result['best_fixed_action']['median']:.3f} "
                  f"(median over worlds)")
        for point, by_agent in result["points"].items():
            print(f"{name} · {int(point):,} examples: " + ", ".join(
                f"{agent} {s['median']:.3f} (p10 {s['p10']:.3f}, {s['worlds']} worlds)" for agent, s in by_agent.items()))
    print(f"wrote {args.output} in {time.perf_counter() - started:.0f} s")
    return 0


def _run(run: tuple[int, str, int, int, list[int], str]) -> dict[str, Any]:
    return run_cell(*run)


class _Serial:
    """The executor interface, in this process (--workers 1)."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, function, items):
        return map(function, items)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
