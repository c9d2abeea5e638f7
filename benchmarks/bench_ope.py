"""Off-policy estimators on real logs (Open Bandit Dataset) and on a simulator whose truth is known.

    python benchmarks/bench_ope.py                       # writes benchmarks/results/ope.json
    python benchmarks/bench_ope.py --extract obp-0.5.7.tar.gz   # rebuilds tests/data/obd/ from obp's sdist

1. Open Bandit Dataset (ZOZOTOWN, campaign "all", the small sample in obp 0.5.7's source
   distribution): estimate the click rate of the Bernoulli Thompson sampling policy (with ZOZOTOWN's
   production prior, as obp does) from the logs of the uniform-random policy, and compare with the
   click rate that policy actually earned in its own logs (on-policy), each with a 95% interval.
   obp itself requires Python < 3.11 and is not run here; its data and prior are.
2. optimus-poc with a known oracle: bias, RMSE and interval coverage of every estimator over seeds.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nextbest.data.actions import ActionSpace
from nextbest.data.tables import read_table
from nextbest.envs import make_scenario
from nextbest.evaluation.estimators import Terms, summarize
from nextbest.evaluation.logs import read_logs, read_target
from nextbest.evaluation.ope import off_policy_evaluation
from nextbest.evaluation.report import markdown_table
from nextbest.io import write_json
from nextbest.seeding import sample_categorical

ROOT = Path(__file__).resolve().parent.parent
OBD = ROOT / "tests" / "data" / "obd"
RESULT = ROOT / "benchmarks" / "results" / "ope.json"
ATTRIBUTION = """# Open Bandit Dataset extract

`random.parquet` and `bts.parquet` are the small sample of the Open Bandit Dataset (campaign "all")
shipped in obp 0.5.7's source distribution: 10,000 impressions each, logged on ZOZOTOWN by the
uniform-random policy and by Bernoulli Thompson sampling, with the propensity of each shown item.
Kept: the four user features, `position` (1–3), `action` (item_id), `reward` (click) and
`logging_probability` (propensity_score); the 80 user–item affinity columns and timestamps are
dropped, rows are in time order.

Open Bandit Dataset © ZOZO, Inc., licensed under CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/). Saito, Aihara, Matsutani, Narita: "Open Bandit
Dataset and Pipeline: Towards Realistic and Reproducible Off-Policy Evaluation", NeurIPS 2021
Datasets and Benchmarks.

`bts_prior.json` is ZOZOTOWN's production Beta prior of the Bernoulli TS policy (campaign "all")
from obp's `policy/conf/prior_bts.yaml` (obp © Yuta Saito, Yusuke Narita and ZOZO Technologies,
Apache License 2.0). `bts_target.parquet` gives, for every row of `random.parquet`, the probability
that this policy shows each item at that row's position, by Monte Carlo ({draws:,} draws, seed 0).

Rebuild with `python benchmarks/bench_ope.py --extract obp-0.5.7.tar.gz`.
"""


# --- the extract ---------------------------------------------------------------------------------
def extract(sdist: Path, draws: int = 1_000_000) -> None:
    """Write tests/data/obd/ from obp's sdist (`pip download --no-deps --no-binary :all: obp==0.5.7`)."""
    import yaml

    with tarfile.open(sdist) as tar:
        root = tar.getnames()[0].split("/")[0]
        read = lambda member: tar.extractfile(f"{root}/{member}").read()
        prior = yaml.safe_load(read("obp/policy/conf/prior_bts.yaml"))["all"]
        logs = {p: pd.read_csv(io.BytesIO(read(f"obp/dataset/obd/{p}/all/all.csv")), index_col=0) for p in ("random", "bts")}
    OBD.mkdir(parents=True, exist_ok=True)
    for policy, raw in logs.items():
        raw = raw.sort_values("timestamp", kind="stable")
        table = pd.DataFrame({
            **{f"user_feature_{j}": raw[f"user_feature_{j}"].astype(str) for j in range(4)},
            "position": raw["position"].astype(np.int64), "action": raw["item_id"].astype(np.int64),
            "reward": raw["click"].astype(np.int64), "logging_probability": raw["propensity_score"].astype(float),
        })
        table.to_parquet(OBD / f"{policy}.parquet", index=False)
    alpha, beta = np.asarray(prior["alpha"], float), np.asarray(prior["beta"], float)
    write_json(OBD / "bts_prior.json", {"campaign": "all", "alpha": alpha, "beta": beta})
    distribution = bts_distribution(alpha, beta, positions=3, draws=draws)
    position = pd.read_parquet(OBD / "random.parquet")["position"].to_numpy() - 1
    target = pd.DataFrame(distribution[:, position].T, columns=[f"probability_{a}" for a in range(len(alpha))])
    target.to_parquet(OBD / "bts_target.parquet", index=False)
    (OBD / "README.md").write_text(ATTRIBUTION.format(draws=draws))


def bts_distribution(alpha: np.ndarray, beta: np.ndarray, positions: int, draws: int, seed: int = 0) -> np.ndarray:
    """(n_items, positions): probability that Bernoulli TS ranks each item at each position (Monte Carlo)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(alpha), positions))
    for start in range(0, draws, 100_000):
        sampled = rng.beta(alpha, beta, size=(min(100_000, draws - start), len(alpha)))
        top = np.argsort(-sampled, axis=1)[:, :positions]
        for position in range(positions):
            counts[:, position] += np.bincount(top[:, position], minlength=len(alpha))
    return counts / draws


# --- 1. Open Bandit Dataset ----------------------------------------------------------------------
def open_bandit(bootstrap: int) -> dict:
    logs_table = read_table(OBD / "random.parquet")
    space, target = read_target(read_table(OBD / "bts_target.parquet"), logs_table, source="bts_target.parquet")
    logs = read_logs(logs_table, space, source="random.parquet", categorical_columns=["position"])
    started = time.perf_counter()
    result = off_policy_evaluation(logs, target, bootstrap_samples=bootstrap, target="Bernoulli TS")
    seconds = time.perf_counter() - started
    clicks = read_table(OBD / "bts.parquet")["reward"].to_numpy(float)
    on_policy = summarize("on-policy", Terms(clicks), bootstrap_samples=bootstrap)
    out = result.to_dict()
    out["on_policy"] = {"mean_reward": on_policy.estimate, "ci_low": on_policy.ci_low, "ci_high": on_policy.ci_high,
                        "rows": len(clicks)}
    out["seconds"] = seconds
    for e in out["estimators"].values():
        e["covers_on_policy"] = e["ci_low"] <= on_policy.estimate <= e["ci_high"]
        e["relative_error"] = e["estimate"] / on_policy.estimate - 1
    return out


# --- 2. a simulator with a known truth -----------------------------------------------------------
def simulated(seeds: int, rows: int, bootstrap: int) -> dict:
    """Logs of a softmax policy on optimus-poc; target: a sharper softmax of a different score."""
    world = make_scenario("optimus-poc")
    space = ActionSpace(world.sizes)
    skew = np.random.default_rng(7).normal(0, 0.15, world.actions.n_joint)  # the logging policy's misbeliefs

    def policies(contexts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        q = world.expected_rewards(contexts)
        logging = 0.5 * _softmax(8 * (q + skew)) + 0.5 / q.shape[1]
        target = 0.9 * _softmax(30 * q) + 0.1 / q.shape[1]
        return q, logging, target

    population = world.sample_contexts(200_000, np.random.default_rng(123))
    q, _, target = policies(population)
    truth = float((target * q).sum(axis=1).mean())
    errors: dict[str, list[float]] = {}
    covered: dict[str, list[bool]] = {}
    widths: dict[str, list[float]] = {}
    ess: dict[str, list[float]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng([seed, 99])
        contexts = world.sample_contexts(rows, rng)
        q, logging, target = policies(contexts)
        joint = sample_categorical(logging, rng.random(rows))
        table = contexts.assign(action=joint, reward=(rng.random(rows) < q[np.arange(rows), joint]).astype(float),
                                logging_probability=logging[np.arange(rows), joint])
        result = off_policy_evaluation(read_logs(table, space), target, seed=seed, bootstrap_samples=bootstrap)
        for name, e in result.estimates.items():
            errors.setdefault(name, []).append(e.estimate - truth)
            covered.setdefault(name, []).append(e.ci_low <= truth <= e.ci_high)
            widths.setdefault(name, []).append(e.ci_high - e.ci_low)
            ess.setdefault(name, []).append(e.effective_sample_size)
    summary = {
        name: {"bias": float(np.mean(err)), "rmse": float(np.sqrt(np.mean(np.square(err)))),
               "coverage": float(np.mean(covered[name])), "interval_width": float(np.mean(widths[name])),
               "effective_sample_size": float(np.mean(ess[name]))}
        for name, err in errors.items()
    }
    return {"scenario": "optimus-poc", "rows": rows, "seeds": seeds, "true_value": truth, "estimators": summary}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def readme(obd: dict, sim: dict) -> str:
    on = obd["on_policy"]
    rows = [[name, f"{e['estimate']:.5f}", f"{e['ci_low']:.5f} … {e['ci_high']:.5f}", f"{e['relative_error']:+.0%}",
             "yes" if e["covers_on_policy"] else "no", f"{e['effective_sample_size']:.0f}"]
            for name, e in obd["estimators"].items()]
    rows.append(["*on-policy (BTS's own logs)*", f"{on['mean_reward']:.5f}", f"{on['ci_low']:.5f} … {on['ci_high']:.5f}", "", "", ""])
    logging = obd["logging_policy"]
    rows.append(["*uniform random (logging policy)*", f"{logging['mean_reward']:.5f}",
                 f"{logging['ci_low']:.5f} … {logging['ci_high']:.5f}", "", "", ""])
    sim_rows = [[name, f"{e['bias']:+.4f}", f"{e['rmse']:.4f}", f"{e['coverage']:.0%}", f"{e['interval_width']:.3f}",
                 f"{e['effective_sample_size']:.0f}"] for name, e in sim["estimators"].items()]
    return "\n\n".join([
        "### Off-policy evaluation on real logs: Open Bandit Dataset",
        f"Click rate of ZOZOTOWN's Bernoulli Thompson sampling policy estimated by `nextbest ope` from "
        f"{obd['rows']:,} impressions logged by the uniform-random policy ({obd['actions']} items), against the click "
        f"rate it earned in {on['rows']:,} impressions of its own logs (95% bootstrap intervals; obp 0.5.7's "
        f"sample of the dataset, CC BY 4.0, ZOZO, Inc.; {obd['seconds']:.0f} s).",
        markdown_table(["estimator", "click rate", "95% interval", "vs on-policy", "covers on-policy",
                        "effective sample size"], rows),
        f"### Estimators against a known truth: {sim['scenario']}",
        f"{sim['seeds']} logs of {sim['rows']:,} decisions from a softmax logging policy; the target is a sharper "
        f"softmax. True value {sim['true_value']:.4f} (oracle, 200,000 customers). Coverage of the nominal 95% "
        f"intervals; DM's interval ignores the reward model's bias.",
        markdown_table(["estimator", "bias", "RMSE", "coverage", "interval width", "effective sample size"], sim_rows),
    ])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extract", type=Path, help="obp-0.5.7.tar.gz: rebuild tests/data/obd/ and stop")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.extract:
        extract(args.extract)
        print(f"wrote {OBD}")
        return 0
    started = time.perf_counter()
    obd = open_bandit(args.bootstrap)
    print(json.dumps({k: v for k, v in obd.items() if k != "settings"}, indent=1, default=str)[:2000])
    sim = simulated(args.seeds, args.rows, min(args.bootstrap, 300))
    print(json.dumps(sim, indent=1))
    write_json(RESULT, {"open_bandit_dataset": obd, "simulated": sim, "seconds": time.perf_counter() - started,
                        "readme": readme(obd, sim)})
    print(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
