"""`nextbest pretrain`: the history contract, every error path, checkpoints, resuming, seeds; the reward models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_ppo_fixtures import one_thread  # noqa: F401  (autouse: one CPU thread)

from nextbest.data.encoding import Features
from nextbest.envs import make_scenario
from nextbest.simulators.reward_models import fit_reward_model, held_out_metrics

COLUMNS = "loyalty,device,basket_value,visits_30d,days_since_purchase"


@pytest.fixture
def history(tmp_path):
    world, rng = make_scenario("discount"), np.random.default_rng(0)
    table = world.sample_contexts(400, rng)
    table["action"] = rng.integers(0, 2, 400)
    table["outcome"] = world.sample_reactions(table, table[["action"]].to_numpy(), rng)
    table["logging_probability"] = 0.5
    path = tmp_path / "history.csv"
    table.to_csv(path, index=False)
    return path


def init(run_cli, directory, history):
    result = run_cli("init", directory, "--action-space", "2", "--columns", COLUMNS, "--categorical-columns",
                     "loyalty,device", "--schema-from", history, "--agent", "ppo-mlp",
                     "--hyperparameters", '{"checkpoint_every": 2}')
    assert result.exit_code == 0, result.output
    return directory


@pytest.fixture
def experiment(tmp_path, history, run_cli):
    return init(run_cli, tmp_path / "exp", history)


def pretrain(run_cli, directory, history, *args):
    return run_cli("pretrain", directory, "--history", history, "--batch-size", "100", "--quiet", *args)


def test_pretrain_reports_the_reward_model_check_and_writes_checkpoints(run_cli, experiment, history, tmp_path):
    result = run_cli("pretrain", experiment, "--history", history, "--steps", "5", "--batch-size", "100",
                     "--json", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    assert "reward model neural: held-out log-loss" not in result.output  # revenue outcomes are not 0/1
    assert "reward model neural: held-out rmse" in result.output
    assert "pretrained 5 steps on 400 history rows (update 5)" in result.output
    report = json.loads((tmp_path / "out.json").read_text())
    check = report["reward_model_check"]
    assert check["rows"] == 400 and check["held_out_rows"] == 80 and check["metric"] == "rmse"
    assert report["steps"] == 5 and report["updates"] == 5 and len(report["metrics"]) == 5
    assert report["model_reward_greedy"] <= report["model_reward_best"] + 1e-9
    names = sorted(p.name for p in (experiment / "checkpoints").glob("checkpoint-*.pt"))
    assert names == ["checkpoint-000002.pt", "checkpoint-000004.pt", "checkpoint-000005.pt"]
    assert (experiment / "checkpoints" / "latest").read_text().strip() == "checkpoint-000005.pt"
    assert any((experiment / "tensorboard" / "pretrain").iterdir())


def test_pretrain_resumes_from_the_latest_or_a_named_checkpoint(run_cli, experiment, history, tmp_path):
    assert pretrain(run_cli, experiment, history, "--steps", "4").exit_code == 0
    assert pretrain(run_cli, experiment, history, "--steps", "1", "--json", tmp_path / "a.json").exit_code == 0
    assert json.loads((tmp_path / "a.json").read_text())["updates"] == 5
    result = pretrain(run_cli, experiment, history, "--steps", "1", "--from-checkpoint", "2", "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b.json").read_text())["updates"] == 3


def test_prediction_seed_in_the_history_is_honoured(run_cli, history, tmp_path):
    import pandas as pd

    table = pd.read_csv(history)
    states = {}
    for name, seeds in (("a", np.arange(400)), ("b", np.arange(400)), ("c", np.arange(400) + 7)):
        table.assign(prediction_seed=seeds).to_csv(tmp_path / f"{name}.csv", index=False)
        directory = init(run_cli, tmp_path / name, history)
        result = pretrain(run_cli, directory, tmp_path / f"{name}.csv", "--steps", "2")
        assert result.exit_code == 0, result.output
        states[name] = torch.load(directory / "checkpoints" / "checkpoint-000002.pt", weights_only=False)["agent"]["network"]
    assert all(torch.equal(states["a"][k], states["b"][k]) for k in states["a"])  # same seeds, same agent
    assert any(not torch.equal(states["a"][k], states["c"][k]) for k in states["a"])  # other seeds, other draws


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns="outcome"), "missing column(s) ['outcome']"),
    (lambda t: t.assign(extra=1), "unexpected column(s) ['extra']"),
    (lambda t: t.assign(action=t["action"].where(t.index != 2, 5)), "column 'action' has 5 in row 3; expected an integer action from 0 to 1"),
    (lambda t: t.assign(outcome=t["outcome"].where(t.index != 4, np.nan)), "column 'outcome' is empty in row 5; expected a finite number"),
    (lambda t: t.assign(logging_probability=t["logging_probability"].where(t.index != 6, 0.0)),
     "column 'logging_probability' has 0 in row 7; expected a probability in (0, 1]"),
    (lambda t: t.assign(prediction_seed=1.5), "column 'prediction_seed' is not an integer in row 1"),
    (lambda t: t.assign(loyalty=t["loyalty"].where(t.index != 0, "platinum")), "column 'loyalty' has value 'platinum' in row 1"),
])
def test_a_bad_history_is_refused_with_the_file_row_and_expectation(run_cli, experiment, history, tmp_path, change, message):
    import pandas as pd

    bad = tmp_path / "bad.csv"
    change(pd.read_csv(history)).to_csv(bad, index=False)
    result = pretrain(run_cli, experiment, bad, "--steps", "1")
    assert result.exit_code == 2
    assert str(bad) in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (("--reward-model", "forest"), "unknown reward model 'forest'; choose one of ['gbm', 'neural', 'ridge']"),
    (("--steps", "-1"), "steps must be ≥ 0 and batch size positive, got -1 and 100"),
    (("--held-out", "1.5"), "held_out must be in [0, 1), got 1.5"),
    (("--threads", "0"), "--threads must be at least 1, got 0"),
    (("--from-checkpoint", "9"), "checkpoint '9' not found"),
])
def test_bad_options_exit_2_with_one_clear_message(run_cli, experiment, history, args, message):
    result = pretrain(run_cli, experiment, history, *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_missing_history_file_and_missing_experiment_exit_2(run_cli, experiment, tmp_path, history):
    result = pretrain(run_cli, experiment, tmp_path / "nope.csv")
    assert result.exit_code == 2 and "nope.csv: file not found" in result.stderr
    result = pretrain(run_cli, tmp_path / "nowhere", history)
    assert result.exit_code == 2 and "is not an experiment directory" in result.stderr
    rl_run = tmp_path / "cartpole"
    assert run_cli("rl", "CartPole-v1", "--steps", "64", "--hyperparameters", '{"n_steps": 64}', "--eval-episodes", "0",
                   "--experiment-dir", rl_run, "--quiet").exit_code == 0
    result = pretrain(run_cli, rl_run, history)
    assert result.exit_code == 2 and "is a `nextbest rl` run" in result.stderr, result.output


def test_train_quiet_prints_nothing(run_cli, experiment, tmp_path):
    world = make_scenario("discount")
    predictions = tmp_path / "p.csv"
    world.sample_contexts(50, np.random.default_rng(3)).to_csv(tmp_path / "c.csv", index=False)
    assert run_cli("predict", experiment, "--contexts", tmp_path / "c.csv", "--output", predictions, "--seed", "1").exit_code == 0
    import pandas as pd

    table = pd.read_csv(predictions)
    table.assign(reaction=1.0).to_csv(tmp_path / "e.csv", index=False)
    result = run_cli("train", experiment, "--experiences", tmp_path / "e.csv", "--quiet")
    assert result.exit_code == 0 and result.stdout == "", result.output


# --- the reward models ----------------------------------------------------------------------------


def test_held_out_metrics_match_scikit_learn():
    from sklearn.metrics import log_loss, roc_auc_score

    rng = np.random.default_rng(0)
    outcome = rng.integers(0, 2, 500).astype(float)
    predicted = np.clip(0.3 * outcome + rng.uniform(0, 0.7, 500), 0.01, 0.99)
    metrics = held_out_metrics(outcome, predicted, 0.4, binary=True)
    assert metrics["model"] == pytest.approx(log_loss(outcome, predicted))
    assert metrics["constant"] == pytest.approx(log_loss(outcome, np.full(500, 0.4)))
    assert metrics["auc"] == pytest.approx(roc_auc_score(outcome, predicted))
    continuous = held_out_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]), 2.0, binary=False)
    assert continuous["model"] == pytest.approx(np.sqrt(1 / 3)) and continuous["constant"] == pytest.approx(np.sqrt(2 / 3))


@pytest.mark.parametrize("name, tolerance", [("neural", 0.08), ("gbm", 0.2), ("ridge", 0.1)])
def test_reward_models_learn_which_action_pays_in_which_segment(name, tolerance):
    # outcome ~ Bernoulli(0.8) when the action matches the segment, else Bernoulli(0.2); one noise column
    rng = np.random.default_rng(1)
    segment = rng.integers(0, 3, 3000)
    action = rng.integers(0, 3, (3000, 1))
    outcome = (rng.random(3000) < np.where(action[:, 0] == segment, 0.8, 0.2)).astype(float)
    features = Features(segment[:, None], rng.normal(size=(3000, 1)).astype(np.float32), (3,))
    model, check = fit_reward_model(name, features, action[:, 0], outcome, 3, seed=0)
    assert check["improvement"] > 0.15 and check["auc"] > 0.75
    predicted = model.predict(features)  # every action for every row, counterfactuals included
    by_segment = np.stack([predicted[segment == s].mean(axis=0) for s in range(3)])
    np.testing.assert_array_equal(by_segment.argmax(axis=1), [0, 1, 2])
    np.testing.assert_allclose(np.diag(by_segment), 0.8, atol=tolerance)
    np.testing.assert_allclose(by_segment[~np.eye(3, dtype=bool)], 0.2, atol=tolerance)


@pytest.mark.parametrize("name", ["ridge", "gbm"])
def test_reward_model_weights_of_zero_ignore_their_rows(name):
    # 1,000 rows where action 1 pays in segment 1, then 1,000 contradicting rows with a negligible weight
    rng = np.random.default_rng(2)
    segment = rng.integers(0, 2, 2000)
    action = rng.integers(0, 2, 2000)
    truth = (action == segment).astype(float)
    outcome = np.concatenate([truth[:1000], 1.0 - truth[1000:]])
    features = Features(segment[:, None], np.zeros((2000, 0), dtype=np.float32), (2,))
    weights = np.concatenate([np.ones(1000), np.full(1000, 1e-9)])
    model, _ = fit_reward_model(name, features, action, outcome, 2, weights=weights, held_out=0.0)
    predicted = model.predict(features.take(np.arange(2)))  # rows of segments segment[0], segment[1]
    expected = np.eye(2)[segment[:2]]
    np.testing.assert_allclose(predicted, expected, atol=0.1)
    unweighted, _ = fit_reward_model(name, features, action, outcome, 2, held_out=0.0)
    np.testing.assert_allclose(unweighted.predict(features.take(np.arange(2))), 0.5, atol=0.1)  # the contradiction
