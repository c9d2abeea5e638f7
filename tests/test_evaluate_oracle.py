"""`nextbest evaluate` with the oracle's expected rewards: expected reward, regret and per-action tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nextbest.evaluation.target import ORACLE_PREFIX, oracle_table
from nextbest.training.simulate import simulate


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    directory = tmp_path_factory.mktemp("evaluate") / "run"
    simulate("optimus-poc", "linucb", examples=1000, batch_size=500, seed=0, experiment_dir=directory)
    return directory


def test_evaluation_table_holds_the_oracle(run_cli, tmp_path):
    result = run_cli("evaluation-table", "--scenario", "discount", "--rows", "50", "--output", tmp_path / "eval.csv")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "eval.csv")
    expected = table[[f"{ORACLE_PREFIX}0", f"{ORACLE_PREFIX}1"]].to_numpy()
    assert (table["target_action"].to_numpy() == expected.argmax(axis=1)).all()
    assert len(table) == 50


def test_expected_reward_and_regret_match_an_independent_computation(run_cli, trained, tmp_path):
    oracle_table("optimus-poc", 400, seed=3).to_csv(tmp_path / "eval.csv", index=False)
    table = pd.read_csv(tmp_path / "eval.csv")
    result = run_cli("evaluate", trained, "--evaluation", tmp_path / "eval.csv", "--json", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "out.json").read_text())

    contexts = table.iloc[:, :5]
    contexts.to_csv(tmp_path / "contexts.csv", index=False)
    assert run_cli("predict", trained, "--contexts", tmp_path / "contexts.csv", "--output", tmp_path / "greedy.csv",
                   "--greedy", "--seed", "0").exit_code == 0
    chosen = pd.read_csv(tmp_path / "greedy.csv")["action"].to_numpy()
    q = table[[f"{ORACLE_PREFIX}{a}" for a in range(16)]].to_numpy()
    policy, oracle = q[np.arange(len(q)), chosen].mean(), q.max(axis=1).mean()
    summary = out["expected_reward"]
    assert summary["policy"] == pytest.approx(policy)
    assert summary["oracle"] == pytest.approx(oracle)
    assert summary["random"] == pytest.approx(q.mean())
    assert summary["regret"] == pytest.approx(oracle - policy)
    assert summary["normalized_score"] == pytest.approx((policy - q.mean()) / (oracle - q.mean()))
    assert summary["random"] < summary["exploring"] <= summary["oracle"]
    assert out["accuracy"] == pytest.approx(np.mean(chosen == table["target_action"].to_numpy()))
    assert sum(row["rows"] for row in out["per_action"]) == 400
    assert sum(row["chosen"] for row in out["per_action"]) == 400
    for row in out["per_action"]:
        rows = table["target_action"].to_numpy() == row["target_action"]
        if rows.any():
            assert row["regret"] == pytest.approx((q[rows].max(axis=1) - q[rows, chosen[rows]]).mean())
    assert "regret" in result.stdout and "normalized score" in result.stdout


def test_without_target_action_the_oracle_picks_the_target(run_cli, trained, tmp_path):
    table = oracle_table("optimus-poc", 100, seed=4)
    table.drop(columns="target_action").to_csv(tmp_path / "eval.csv", index=False)
    with_target = tmp_path / "with.csv"
    table.to_csv(with_target, index=False)
    a = run_cli("evaluate", trained, "--evaluation", tmp_path / "eval.csv", "--json", tmp_path / "a.json")
    b = run_cli("evaluate", trained, "--evaluation", with_target, "--json", tmp_path / "b.json")
    assert a.exit_code == b.exit_code == 0, a.output + b.output
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())


def test_target_actions_alone_still_give_accuracy(run_cli, trained, tmp_path):
    table = oracle_table("optimus-poc", 100, seed=5)
    table[[*table.columns[:5], "target_action"]].to_csv(tmp_path / "eval.csv", index=False)
    result = run_cli("evaluate", trained, "--evaluation", tmp_path / "eval.csv", "--json", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "out.json").read_text())
    assert "expected_reward" not in out and 0 <= out["accuracy"] <= 1


def test_several_choice_sets_use_joint_oracle_columns(run_cli, tmp_path):
    directory = tmp_path / "multi"
    simulate("multi-offer", "epsilon-greedy", examples=400, batch_size=400, seed=0, experiment_dir=directory)
    oracle_table("multi-offer", 200, seed=1).to_csv(tmp_path / "eval.csv", index=False)
    assert f"{ORACLE_PREFIX}3_2" in pd.read_csv(tmp_path / "eval.csv").columns
    result = run_cli("evaluate", directory, "--evaluation", tmp_path / "eval.csv", "--json", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "out.json").read_text())
    assert len(out["per_choice_accuracy"]) == 2 and out["expected_reward"]["regret"] >= 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns=f"{ORACLE_PREFIX}7"), f"missing column(s) ['{ORACLE_PREFIX}7']"),
        (lambda t: t.assign(**{f"{ORACLE_PREFIX}16": 0.1}), f"unexpected column(s) ['{ORACLE_PREFIX}16']"),
        (lambda t: t.assign(**{f"{ORACLE_PREFIX}3": ["high"] + [0.1] * (len(t) - 1)}), f"column '{ORACLE_PREFIX}3' has 'high' in row 1"),
        (lambda t: t.drop(columns="browser"), "missing column(s) ['browser']"),
        (lambda t: t.assign(target_action=[16] + [0] * (len(t) - 1)), "column 'target_action' has 16 in row 1"),
    ],
)
def test_bad_evaluation_tables_exit_2(run_cli, trained, tmp_path, change, message):
    change(oracle_table("optimus-poc", 20, seed=6)).to_csv(tmp_path / "eval.csv", index=False)
    result = run_cli("evaluate", trained, "--evaluation", tmp_path / "eval.csv")
    assert result.exit_code == 2
    assert "eval.csv" in result.stderr and message in result.stderr, result.stderr


def test_evaluation_table_refuses_unknown_scenarios_and_empty_tables(run_cli, tmp_path):
    bad = run_cli("evaluation-table", "--scenario", "moon", "--output", tmp_path / "e.csv")
    assert bad.exit_code == 2 and "unknown scenario 'moon'" in bad.stderr
    empty = run_cli("evaluation-table", "--scenario", "discount", "--rows", "0", "--output", tmp_path / "e.csv")
    assert empty.exit_code == 2 and "--rows must be positive" in empty.stderr
