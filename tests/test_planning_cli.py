"""`nextbest plan`: the JSON contract, the grid printout, round trips through files, and every error path."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_planning_models import JOURNEY as SPEC  # one example journey for both files

from nextbest.planning import from_gymnasium, policy_evaluation, value_iteration


def test_plan_frozenlake_writes_the_json_contract_and_prints_the_grid(run_cli, tmp_path):
    result = run_cli("plan", "FrozenLake-v1", "--json", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out.json").read_text())
    assert {"values", "policy", "q_values", "iterations", "residual", "seconds"} <= set(report)
    expected = value_iteration(from_gymnasium("FrozenLake-v1", 0.99))
    np.testing.assert_allclose(report["values"], expected.values, atol=1e-12)
    assert report["policy"] == expected.policy.tolist() and np.shape(report["q_values"]) == (16, 4)
    assert report["iterations"] == expected.iterations and 0 <= report["residual"] <= 1e-8 and report["seconds"] >= 0
    assert report["gamma"] == 0.99 and report["method"] == "value-iteration" and report["terminal"] == [5, 7, 11, 12, 15]
    lines = result.stdout.splitlines()
    policy_rows = lines[lines.index("policy") + 1:][:4]
    # The well-known optimal policy of slippery FrozenLake at γ = 0.99.
    assert policy_rows == ["← ↑ ↑ ↑", "← H ← H", "↑ ↓ ← H", "H → ↓ G"]
    assert "FrozenLake-v1: 16 states, 5 terminal × 4 actions, gamma 0.99" in result.stdout


def test_plan_grid_map_prints_walls_and_terminals_and_plots(run_cli, tmp_path):
    result = run_cli("plan", "nextbest/GridMap-v0", "--gamma", "1", "--method", "policy-iteration", "--plot", tmp_path / "g.png")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    policy_rows = [row.split() for row in lines[lines.index("policy") + 1:][:5]]
    assert policy_rows[1][:2] == ["■", "+1"] and policy_rows[2][:3] == ["■", "■", "-1"] and policy_rows[3][0] == "-1"
    assert policy_rows[4][0] == "→"  # from the start cell: right, away from the danger above
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_policy_evaluation_of_the_planned_policy_round_trips_through_json(run_cli, tmp_path):
    assert run_cli("plan", "CliffWalking-v1", "--json", tmp_path / "plan.json").exit_code == 0
    result = run_cli("plan", "CliffWalking-v1", "--method", "policy-evaluation", "--policy", tmp_path / "plan.json",
                     "--json", tmp_path / "eval.json")
    assert result.exit_code == 0, result.output
    planned, evaluated = (json.loads((tmp_path / f).read_text()) for f in ("plan.json", "eval.json"))
    np.testing.assert_allclose(evaluated["values"], planned["values"], atol=1e-9)
    assert evaluated["iterations"] == 1 and evaluated["residual"] < 1e-9


def test_plan_a_spec_file_lists_named_states_and_saves_the_model(run_cli, tmp_path):
    (tmp_path / "journey.yaml").write_text(SPEC)
    result = run_cli("plan", tmp_path / "journey.yaml", "--save-model", tmp_path / "copy.json", "--json", tmp_path / "o.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o.json").read_text())
    assert report["states"] == ["new", "active", "churned"] and report["actions"] == ["wait", "email"]
    assert report["values"][1] == pytest.approx(1.75 / (1 - 0.9 * 0.9), abs=1e-7)
    assert "active" in result.stdout and "(terminal)" in result.stdout
    again = run_cli("plan", tmp_path / "copy.json", "--json", tmp_path / "o2.json")
    assert again.exit_code == 0
    assert json.loads((tmp_path / "o2.json").read_text())["values"] == pytest.approx(report["values"], abs=1e-12)


def test_plan_an_experience_table_reports_what_it_could_not_see(run_cli, tmp_path):
    pd.DataFrame({"state": ["a", "a", "b", "b"], "action": [0, 1, 0, 0], "reward": [1.0, 0.0, 2.0, 0.0],
                  "next_state": ["b", "a", "a", None], "done": [0, 0, 0, 1]}).to_csv(tmp_path / "log.csv", index=False)
    result = run_cli("plan", tmp_path / "log.csv", "--prior", "0", "--gamma", "0.5", "--json", tmp_path / "o.json")
    assert result.exit_code == 0, result.output
    assert "1 state-action pairs never tried (modelled on the state's other actions): ('b', 1)" in result.stdout
    report = json.loads((tmp_path / "o.json").read_text())
    assert report["estimate"]["unseen_pairs"] == [["b", 1]] and report["estimate"]["rows"] == 4


def test_taxi_v3_is_served_by_taxi_v4(run_cli, tmp_path):
    result = run_cli("plan", "Taxi-v3", "--json", tmp_path / "t.json")
    assert result.exit_code == 0, result.output
    assert "Taxi-v3 is Taxi-v4 in this Gymnasium (same dynamics)" in result.stdout
    report = json.loads((tmp_path / "t.json").read_text())
    mdp = from_gymnasium("Taxi-v4", 0.99)
    np.testing.assert_allclose(report["values"], policy_evaluation(mdp, np.array(report["policy"])).values, atol=1e-7)


def test_env_kwargs_reach_gymnasium(run_cli, tmp_path):
    result = run_cli("plan", "FrozenLake-v1", "--env-kwargs", '{"is_slippery": false}', "--gamma", "1", "--json", tmp_path / "o.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o.json").read_text())["values"][0] == 1.0  # a sure path exists without slipping


def test_help_lists_every_flag(run_cli):
    result = run_cli("plan", "--help")
    assert result.exit_code == 0
    for flag in ("--method", "--gamma", "--tolerance", "--policy", "--json", "--plot", "--prior", "--save-model"):
        assert flag in result.stdout


@pytest.fixture
def files(tmp_path):
    (tmp_path / "journey.yaml").write_text(SPEC)
    (tmp_path / "notes.txt").write_text("hello")
    pd.DataFrame({"state": ["new"], "action": ["email"]}).to_csv(tmp_path / "partial.csv", index=False)
    pd.DataFrame({"state": ["a"], "action": [0]}).to_csv(tmp_path / "nolog.csv", index=False)
    (tmp_path / "left.json").write_text(json.dumps({"policy": [0] * 16}))
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["NoSuchEnv-v0"], r"NoSuchEnv-v0: not a Gymnasium environment here"),
    (["Blackjack-v1"], r"Blackjack-v1: not a tabular environment"),
    (["{d}/missing.yaml"], r"missing.yaml: file not found"),
    (["{d}/notes.txt"], r"notes.txt: expected an MDP spec \(.yaml, .yml, .json\) or an experience table"),
    (["{d}/nolog.csv"], r"nolog.csv: missing columns reward, next_state, done"),
    (["FrozenLake-v1", "--gamma", "1.5"], r"gamma must be in \(0, 1\], got 1.5"),
    (["FrozenLake-v1", "--tolerance", "0"], r"tolerance must be positive, got 0.0"),
    (["FrozenLake-v1", "--max-iterations", "0"], r"max_iterations must be at least 1, got 0"),
    (["FrozenLake-v1", "--method", "magic"], r"unknown planning method 'magic'; choose one of value-iteration, policy-iteration"),
    (["FrozenLake-v1", "--method", "policy-evaluation"], r"policy-evaluation needs a policy to evaluate \(--policy FILE\)"),
    (["FrozenLake-v1", "--policy", "{d}/left.json"], r"value-iteration does not take a policy"),
    (["{d}/journey.yaml", "--method", "policy-evaluation", "--policy", "{d}/partial.csv"],
     r"partial.csv: no action for state 'active'; every non-terminal state needs one"),
    (["FrozenLake-v1", "--env-kwargs", '{"is_slippery": false}', "--gamma", "1", "--method", "policy-evaluation",
      "--policy", "{d}/left.json"], r"with gamma=1, the policy never reaches a terminal state from states 0, 1, 2, 3, 4"),
    (["FrozenLake-v1", "--env-kwargs", "{oops"], r"--env-kwargs: not valid JSON"),
    (["FrozenLake-v1", "--env-kwargs", '{"bogus": 1}'], r"FrozenLake-v1: bad environment option"),
    (["FrozenLake-v1", "--prior", "2"], r"--prior applies to experience tables \(.csv, .parquet\) only"),
])
def test_bad_input_exits_2_with_one_clear_line(run_cli, files, args, message):
    result = run_cli("plan", *[a.replace("{d}", str(files)) for a in args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    import re

    assert re.search(message, result.stderr), result.stderr
