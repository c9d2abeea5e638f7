"""The predict → train loop through the `nextbest` command, and every bad input it refuses."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nextbest.envs import make_scenario

COLUMNS = "browser,device,basket_value,visits_30d,days_since_visit"


@pytest.fixture
def contexts(tmp_path):
    table = make_scenario("optimus-poc").sample_contexts(300, np.random.default_rng(0))
    table.to_csv(tmp_path / "contexts.csv", index=False)
    return tmp_path / "contexts.csv"


@pytest.fixture
def experiment(tmp_path, contexts, run_cli):
    directory = tmp_path / "exp"
    result = run_cli("init", directory, "--action-space", "16", "--columns", COLUMNS,
                     "--categorical-columns", "browser,device", "--schema-from", contexts, "--agent", "linucb")
    assert result.exit_code == 0, result.output
    return directory


def _react(predictions_path, experiences_path, seed=0):
    """Simulated customers react to the logged actions (conversions from the scenario's oracle)."""
    scenario = make_scenario("optimus-poc")
    table = pd.read_csv(predictions_path)
    table["reaction"] = scenario.sample_reactions(table[scenario.columns], table[["action"]].to_numpy(), np.random.default_rng(seed))
    table.to_csv(experiences_path, index=False)
    return table


def test_init_writes_the_experiment_directory(experiment):
    assert {p.name for p in experiment.iterdir()} >= {"hyperparameters.json", "schema.json", "checkpoints", "experiences"}
    hyperparameters = json.loads((experiment / "hyperparameters.json").read_text())
    assert hyperparameters["actions"]["action_space"] == [16]
    assert hyperparameters["agent_name"] == "linucb"


def test_prediction_table_has_one_row_per_context_in_order(run_cli, experiment, contexts, tmp_path):
    result = run_cli("predict", experiment, "--contexts", contexts, "--output", tmp_path / "p.csv", "--seed", "5")
    assert result.exit_code == 0, result.output
    predictions = pd.read_csv(tmp_path / "p.csv")
    source = pd.read_csv(contexts)
    assert list(predictions.columns) == [*COLUMNS.split(","), "action", "value", "log_probability", "done",
                                         "attentive_transformer_loss", "prediction_seed"]
    pd.testing.assert_frame_equal(predictions[source.columns], source)
    assert predictions["prediction_seed"].tolist() == list(range(5, 305))
    assert predictions["action"].between(0, 15).all() and (predictions["log_probability"] <= 0).all()


def test_predict_train_rounds_improve_the_greedy_policy(run_cli, experiment, tmp_path):
    scenario = make_scenario("optimus-poc")
    held_out = scenario.sample_contexts(1000, np.random.default_rng(99))
    held_out.to_csv(tmp_path / "held_out.csv", index=False)
    expected = scenario.expected_rewards(held_out)

    def greedy_value() -> float:
        assert run_cli("predict", experiment, "--contexts", tmp_path / "held_out.csv", "--output", tmp_path / "g.csv", "--greedy").exit_code == 0
        actions = pd.read_csv(tmp_path / "g.csv")["action"].to_numpy()
        return float(expected[np.arange(len(actions)), actions].mean())

    before = greedy_value()
    for round_ in range(4):
        scenario.sample_contexts(500, np.random.default_rng(round_)).to_csv(tmp_path / "c.csv", index=False)
        assert run_cli("predict", experiment, "--contexts", tmp_path / "c.csv", "--output", tmp_path / "p.csv", "--seed", round_ * 1000).exit_code == 0
        _react(tmp_path / "p.csv", tmp_path / f"e{round_}.csv", seed=round_)
        result = run_cli("train", experiment, "--experiences", tmp_path / f"e{round_}.csv")
        assert result.exit_code == 0, result.output
    after = greedy_value()
    oracle, random = expected.max(axis=1).mean(), expected.mean()
    assert (after - random) / (oracle - random) > 0.6 > (before - random) / (oracle - random)
    stored = pd.concat(pd.read_parquet(p) for p in sorted((experiment / "experiences").glob("part-*.parquet")))
    assert len(stored) == 2000 and "reward" in stored.columns  # nothing dropped, nothing duplicated


def test_training_the_same_file_twice_is_refused(run_cli, experiment, contexts, tmp_path):
    run_cli("predict", experiment, "--contexts", contexts, "--output", tmp_path / "p.csv")
    _react(tmp_path / "p.csv", tmp_path / "e.csv")
    assert run_cli("train", experiment, "--experiences", tmp_path / "e.csv").exit_code == 0
    again = run_cli("train", experiment, "--experiences", tmp_path / "e.csv")
    assert again.exit_code == 2
    assert "300 of 300 rows were already trained" in again.stderr and "--allow-duplicates" in again.stderr
    assert run_cli("train", experiment, "--experiences", tmp_path / "e.csv", "--allow-duplicates").exit_code == 0


def test_multi_choice_action_spaces_write_one_column_per_choice(run_cli, tmp_path):
    table = make_scenario("multi-offer").sample_contexts(50, np.random.default_rng(0))
    table.to_parquet(tmp_path / "c.parquet")
    columns = ",".join(table.columns)
    assert run_cli("init", tmp_path / "x", "--action-space", "4,4", "--columns", columns, "--categorical-columns",
                   "segment,device", "--schema-from", tmp_path / "c.parquet", "--agent", "thompson").exit_code == 0
    assert run_cli("predict", tmp_path / "x", "--contexts", tmp_path / "c.parquet", "--output", tmp_path / "p.parquet").exit_code == 0
    predictions = pd.read_parquet(tmp_path / "p.parquet")
    assert {"action_0", "action_1"} <= set(predictions.columns) and "action" not in predictions.columns
    predictions.assign(reaction=1.0).to_parquet(tmp_path / "e.parquet")
    assert run_cli("train", tmp_path / "x", "--experiences", tmp_path / "e.parquet").exit_code == 0


def test_init_with_dimensions_freezes_numeric_statistics_on_the_first_training_batch_not_a_predict(run_cli, tmp_path):
    """A small prediction call (one request, one row) must never set the standardization; the first training batch does."""
    pd.DataFrame({"a": [0, 2, 1], "x": [1.0, 2.0, 6.0]}).to_csv(tmp_path / "c.csv", index=False)
    assert run_cli("init", tmp_path / "d", "--action-space", "2", "--columns", "a,x", "--categorical-columns", "a",
                   "--categorical-dimensions", "3", "--agent", "epsilon-greedy").exit_code == 0
    assert json.loads((tmp_path / "d" / "schema.json").read_text())["numeric"]["x"] is None
    assert run_cli("predict", tmp_path / "d", "--contexts", tmp_path / "c.csv", "--output", tmp_path / "p.csv").exit_code == 0
    assert json.loads((tmp_path / "d" / "schema.json").read_text())["numeric"]["x"] is None
    pd.read_csv(tmp_path / "p.csv").assign(reaction=1.0).to_csv(tmp_path / "e.csv", index=False)
    assert run_cli("train", tmp_path / "d", "--experiences", tmp_path / "e.csv").exit_code == 0
    stats = json.loads((tmp_path / "d" / "schema.json").read_text())["numeric"]["x"]
    assert stats["mean"] == pytest.approx(3.0) and stats["std"] == pytest.approx(np.std([1.0, 2.0, 6.0]))


def _edit(contexts, tmp_path, change):
    table = pd.read_csv(contexts)
    table = change(table)
    path = tmp_path / "bad.csv"
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="device"), r"missing column\(s\) \['device'\]"),
        (lambda t: t.assign(age=1), r"unexpected column\(s\) \['age'\]"),
        (lambda t: t.assign(browser=["fridge"] + t["browser"].tolist()[1:]), "column 'browser' has value 'fridge' in row 1"),
        (lambda t: t.assign(basket_value=[np.nan, *t["basket_value"].tolist()[1:]]), "column 'basket_value' is empty in row 1"),
        (lambda t: t.astype({"visits_30d": object}).assign(visits_30d=["x", *t["visits_30d"].tolist()[1:]]), "column 'visits_30d' has 'x' in row 1"),
    ],
)
def test_bad_contexts_exit_2_naming_file_and_row(run_cli, experiment, contexts, tmp_path, change, message):
    path = _edit(contexts, tmp_path, change)
    result = run_cli("predict", experiment, "--contexts", path, "--output", tmp_path / "p.csv")
    assert result.exit_code == 2
    assert str(path) in result.stderr
    assert pd.Series([result.stderr]).str.contains(message).all(), result.stderr
    assert "Traceback" not in result.output


def test_bad_experiences_exit_2(run_cli, experiment, contexts, tmp_path):
    run_cli("predict", experiment, "--contexts", contexts, "--output", tmp_path / "p.csv")
    table = _react(tmp_path / "p.csv", tmp_path / "e.csv")
    table.loc[4, "action"] = 16
    table.to_csv(tmp_path / "bad_action.csv", index=False)
    result = run_cli("train", experiment, "--experiences", tmp_path / "bad_action.csv")
    assert result.exit_code == 2 and "column 'action' has 16 in row 5; expected an integer action from 0 to 15" in result.stderr
    table.drop(columns="reaction").to_csv(tmp_path / "no_reaction.csv", index=False)
    result = run_cli("train", experiment, "--experiences", tmp_path / "no_reaction.csv")
    assert result.exit_code == 2 and "missing column(s) ['reaction']" in result.stderr
    table.assign(action=1, reaction=["maybe"] * len(table)).to_csv(tmp_path / "words.csv", index=False)
    result = run_cli("train", experiment, "--experiences", tmp_path / "words.csv")
    assert result.exit_code == 2 and "column 'reaction' has 'maybe' in row 1" in result.stderr
    table.assign(action=1, done=["1", "0", "later"] + ["1"] * (len(table) - 3)).to_csv(tmp_path / "bad_done.csv", index=False)
    result = run_cli("train", experiment, "--experiences", tmp_path / "bad_done.csv")
    assert result.exit_code == 2 and "column 'done' has 'later' in row 3; expected 0 or 1" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--action-space", "sixteen"], "action space 'sixteen' must be integers"),
        (["--action-space", "16", "--hyperparameters", "{nope"], "not valid JSON"),
        (["--action-space", "16", "--agent", "linucb", "--hyperparameters", '{"alpha": -1}'], "'alpha' input should be greater than or equal to 0"),
        (["--action-space", "16", "--agent", "dqn"], "unknown agent 'dqn'"),
    ],
)
def test_bad_init_settings_exit_2(run_cli, tmp_path, contexts, arguments, message):
    result = run_cli("init", tmp_path / "z", "--columns", COLUMNS, "--categorical-columns", "browser,device",
                     "--schema-from", contexts, *arguments)
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_file_problems_exit_2(run_cli, experiment, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "ragged.csv").write_text('a,b\n1,2\n3,4,5,6\n"x\n')
    for path, message in [(tmp_path / "empty.csv", "the file is empty"), (tmp_path / "ragged.csv", "malformed CSV"),
                          (tmp_path / "none.csv", "file not found")]:
        result = run_cli("predict", experiment, "--contexts", path, "--output", tmp_path / "p.csv")
        assert result.exit_code == 2 and f"{path}: {message}" in result.stderr
    result = run_cli("predict", tmp_path / "nowhere", "--contexts", tmp_path / "none.csv", "--output", tmp_path / "p.csv")
    assert result.exit_code == 2 and "is not an experiment directory" in result.stderr


def test_init_refuses_an_existing_experiment(run_cli, experiment, contexts):
    result = run_cli("init", experiment, "--action-space", "16", "--columns", COLUMNS, "--categorical-columns",
                     "browser,device", "--schema-from", contexts)
    assert result.exit_code == 2 and "already holds an experiment" in result.stderr


def test_evaluate_reports_accuracy_against_target_actions(run_cli, experiment, contexts, tmp_path):
    table = pd.read_csv(contexts)
    assert run_cli("predict", experiment, "--contexts", contexts, "--output", tmp_path / "g.csv", "--greedy").exit_code == 0
    greedy = pd.read_csv(tmp_path / "g.csv")["action"]
    target = greedy.where(np.arange(len(table)) % 4 != 0, (greedy + 1) % 16)  # every fourth row wrong
    table.assign(target_action=target).to_csv(tmp_path / "eval.csv", index=False)
    result = run_cli("evaluate", experiment, "--evaluation", tmp_path / "eval.csv", "--json", tmp_path / "eval.json")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["accuracy"] == pytest.approx(0.75)
    assert sum(row["rows"] for row in report["per_action"]) == len(table)


def test_registries_are_listed(run_cli):
    assert "optimus-poc" in run_cli("scenarios").stdout
    listed = run_cli("agents").stdout
    assert "linucb" in listed and "(default)" in listed
    defaults = run_cli("hyperparameters", "--agent", "thompson")
    assert defaults.exit_code == 0 and json.loads(defaults.stdout)["agent"]["draws"] == 100
