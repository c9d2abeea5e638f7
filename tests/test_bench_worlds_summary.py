"""benchmarks/bench_worlds.py's summary: wins / ties / losses by the seeds' noise, against the best peer of each
world, and the worlds the default agent loses to ε-greedy, on hand-made runs whose answers are worked out here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_path = Path(__file__).parent.parent / "benchmarks" / "bench_worlds.py"
_spec = importlib.util.spec_from_file_location("bench_worlds", _path)
bench_worlds = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_worlds", bench_worlds)
_spec.loader.exec_module(bench_worlds)

KIND = {"reward": "revenue", "form": "linear", "actions": "single", "noise": "medium"}
SCORES = {  # world → agent → the 3,000-example score of seeds 0 and 1
    1: {"neural": (0.80, 0.82), "epsilon-greedy": (0.60, 0.62), "mabwiser-lints": (0.70, 0.70), "vw-bagging": (0.50, 0.52)},
    2: {"neural": (0.50, 0.52), "epsilon-greedy": (0.70, 0.72), "mabwiser-lints": (0.40, 0.40), "vw-bagging": (0.60, 0.60)},
    3: {"neural": (0.30, 0.90), "epsilon-greedy": (0.50, 0.50), "mabwiser-lints": (0.55, 0.55), "vw-bagging": (0.20, 0.20)},
}


@pytest.fixture
def summary():
    cells = {(world, agent, seed): {"kind": KIND, "scores": {"3000": scores[seed]}}
             for world, agents in SCORES.items() for agent, scores in agents.items() for seed in (0, 1)}
    return bench_worlds.summarize(cells, list(SCORES), list(SCORES[1]), [3000])


def test_a_difference_within_twice_its_standard_error_is_a_tie(summary):
    # World 3: neural's seeds 0.30 and 0.90 give a standard error of the difference of 0.3, so 0.60 vs 0.50 ties.
    versus = summary["versus"]["neural"]["epsilon-greedy"]["3000"]
    assert (versus["wins"], versus["ties"], versus["losses"]) == (1, 1, 1)
    assert versus["lost"] == [{"world": 2, "kind": "revenue/linear/single/medium", "by": pytest.approx(0.20)}]


def test_the_best_peer_of_each_world_is_the_one_that_scored_best_there(summary):
    # World 1: neural beats LinTS (0.70) by 0.11; world 2: VW (0.60) beats neural by 0.09; world 3: a tie with LinTS.
    versus = summary["versus"]["neural"][bench_worlds.BEST_PEER]["3000"]
    assert (versus["wins"], versus["ties"], versus["losses"]) == (1, 1, 1)
    medians = summary["points"]["3000"]
    assert medians["neural"]["median"] == pytest.approx(np.median([0.81, 0.51, 0.60]))
    assert summary["best_of_all"]["3000"]["median"] == pytest.approx(np.median([0.81, 0.71, 0.60]))


def test_the_readme_lists_the_worlds_the_default_agent_loses_to_epsilon_greedy(summary):
    settings = {"seeds": [0, 1]}
    text = bench_worlds.readme({"tuning": summary}, list(SCORES[1]), [3000], settings)
    assert "| agent | 3,000 examples: median (p10), worlds | vs mabwiser-lints | vs the best peer of each world |" in text
    assert "below `epsilon-greedy` at 3,000 examples: 2 (revenue/linear/single/medium, by 0.20)." in text


def test_the_reference_is_what_live_data_alone_allowed():
    # A pretrained agent saw 5,000 more rows: it is scored, but it does not raise the best-agent reference.
    cells = {(world, agent, seed): {"kind": KIND, "scores": {"3000": scores[seed]}}
             for world, agents in SCORES.items() for agent, scores in agents.items() for seed in (0, 1)}
    cells |= {(1, "neural+history", seed): {"kind": KIND, "scores": {"0": 0.95, "3000": 0.99}} for seed in (0, 1)}
    summary = bench_worlds.summarize(cells, list(SCORES), [*SCORES[1], "neural+history"], [0, 3000])
    assert summary["points"]["3000"]["neural+history"]["median"] == pytest.approx(0.99)
    assert summary["best_of_all"]["3000"]["median"] == pytest.approx(np.median([0.81, 0.71, 0.60]))
    assert summary["best_of_all"]["0"] is None


def test_pretrained_runs_are_compared_with_cold_runs_of_the_same_worlds_seeds_and_length():
    def run(examples, to_09):
        return {"kind": KIND, "examples": examples, "scores": {"3000": 0.9}, "examples_to": {"0.8": None, "0.9": to_09}}
    cells = {(1, "neural+history", 0): run(3000, 0), (2, "neural+history", 0): run(3000, 500),
             (1, "neural", 0): run(3000, 1500), (2, "neural", 0): run(10_000, 6000),  # reached only after 3,000
             (3, "neural", 0): run(3000, 1000)}  # no pretrained twin
    summary = bench_worlds.summarize(cells, [1, 2, 3], ["neural", "neural+history"], [3000])
    assert summary["examples_to"]["neural+history"]["0.9"] == {"median": 250.0, "reached": 2, "runs": 2}
    assert summary["examples_to"]["neural+history cold"]["0.9"] == {"median": 1500.0, "reached": 1, "runs": 2}
