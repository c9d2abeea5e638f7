"""`nextbest ope`: JSON contract, agents as target policies, the Open Bandit Dataset, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.training.simulate import simulate

OBD = Path(__file__).parent / "data" / "obd"


@pytest.fixture
def tiny(tmp_path):
    """A 3-row log with 2 actions and its target; IPS by hand is (0.4·1 + 2·0 + 1.8·2) / 3."""
    logs = pd.DataFrame({"segment": ["a", "b", "a"], "basket": [10.0, 20.0, 30.0], "action": [0, 1, 1],
                         "reward": [1.0, 0.0, 2.0], "logging_probability": [0.5, 0.25, 0.5]})
    target = pd.DataFrame({"probability_0": [0.2, 0.5, 0.1], "probability_1": [0.8, 0.5, 0.9]})
    logs.to_csv(tmp_path / "logs.csv", index=False)
    target.to_csv(tmp_path / "target.csv", index=False)
    return tmp_path, logs, target


def test_json_has_every_estimator_and_the_logging_policy(run_cli, tiny):
    path, logs, _ = tiny
    result = run_cli("ope", path / "logs.csv", "--target", path / "target.csv", "--estimators", "ips,snips,dr",
                     "--reward-model", "ridge", "--folds", "2", "--json", path / "ope.json", "--quiet")
    assert result.exit_code == 0, result.output
    out = json.loads((path / "ope.json").read_text())
    assert set(out["estimators"]) == {"ips", "snips", "dr"}
    for estimate in out["estimators"].values():
        assert {"estimate", "ci_low", "ci_high", "effective_sample_size"} <= set(estimate)
        assert estimate["ci_low"] <= estimate["estimate"] <= estimate["ci_high"]
    assert out["estimators"]["ips"]["estimate"] == pytest.approx((0.4 * 1 + 2 * 0 + 1.8 * 2) / 3)
    assert out["estimators"]["snips"]["estimate"] == pytest.approx((0.4 + 3.6) / (0.4 + 2 + 1.8))
    assert out["logging_policy"]["mean_reward"] == pytest.approx(logs["reward"].mean())


def test_the_table_shows_each_estimate(run_cli, tiny):
    path, _, _ = tiny
    result = run_cli("ope", path / "logs.csv", "--target", path / "target.csv", "--estimators", "ips", "--interval", "normal")
    assert result.exit_code == 0, result.output
    assert "1.333" in result.stdout and "logging policy: mean reward 1" in result.stdout


def test_an_agent_evaluated_on_its_own_logs_has_weights_of_one(run_cli, tmp_path):
    """The exploring policy at the checkpoint that logged a batch is the logging policy itself: every
    weight is 1, so IPS and SNIPS equal the batch's mean reward and the effective sample size is n."""
    directory = tmp_path / "run"
    simulate("optimus-poc", "thompson", examples=600, batch_size=200, seed=0, experiment_dir=directory)
    part = directory / "experiences" / "part-000002.parquet"  # logged by the agent of checkpoint 1
    result = run_cli("ope", part, "--target-experiment", directory, "--from-checkpoint", "checkpoint-000001.pt",
                     "--estimators", "ips,snips", "--json", tmp_path / "ope.json", "--quiet")
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "ope.json").read_text())
    mean = pd.read_parquet(part)["reward"].mean()
    for name in ("ips", "snips"):
        assert out["estimators"][name]["estimate"] == pytest.approx(mean, abs=1e-9)
        assert out["estimators"][name]["effective_sample_size"] == pytest.approx(200)
    assert "exploring" in out["target"]


def test_the_greedy_policy_differs_from_the_exploring_one(run_cli, tmp_path):
    directory = tmp_path / "run"
    simulate("discount", "epsilon-greedy", examples=400, batch_size=200, seed=1, experiment_dir=directory)
    part = directory / "experiences" / "part-000002.parquet"
    estimates = {}
    for flag in ([], ["--greedy"]):
        result = run_cli("ope", part, "--target-experiment", directory, "--estimators", "ips", *flag,
                         "--json", tmp_path / "ope.json", "--quiet")
        assert result.exit_code == 0, result.output
        estimates[bool(flag)] = json.loads((tmp_path / "ope.json").read_text())["estimators"]["ips"]
    assert estimates[True]["effective_sample_size"] < estimates[False]["effective_sample_size"]


def test_open_bandit_dataset_estimate_covers_the_on_policy_click_rate(run_cli, tmp_path):
    """Bernoulli TS's click rate from the uniform-random logs, against the rate it earned on-policy."""
    result = run_cli("ope", OBD / "random.parquet", "--target", OBD / "bts_target.parquet", "--categorical-columns",
                     "position", "--estimators", "ips,snips,dr", "--reward-model", "ridge", "--bootstrap", "300",
                     "--json", tmp_path / "obd.json", "--quiet")
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "obd.json").read_text())
    logs, target = pd.read_parquet(OBD / "random.parquet"), pd.read_parquet(OBD / "bts_target.parquet")
    chosen = target.to_numpy()[np.arange(len(logs)), logs["action"].to_numpy()]
    assert out["estimators"]["ips"]["estimate"] == pytest.approx(np.mean(chosen / (1 / 80) * logs["reward"]))
    on_policy = pd.read_parquet(OBD / "bts.parquet")["reward"].mean()
    for estimate in out["estimators"].values():
        assert estimate["ci_low"] <= on_policy <= estimate["ci_high"]
    assert out["actions"] == 80 and out["rows"] == 10_000


# --- bad input: one clear line, exit code 2 ---------------------------------------------------------
def _edit(path: Path, name: str, change) -> Path:
    table = pd.read_csv(path / name)
    change(table)
    table.to_csv(path / name, index=False)
    return path / name


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        ("target.csv", lambda t: t.loc.__setitem__((2, "probability_1"), 0.5), "target.csv: the probabilities in row 3 sum to 0.6 instead of 1"),
        ("logs.csv", lambda t: t.loc.__setitem__((1, "logging_probability"), 0.0), "logs.csv: column 'logging_probability' is 0 in row 2"),
        ("logs.csv", lambda t: t.loc.__setitem__((1, "logging_probability"), None), "logs.csv: column 'logging_probability' is empty in row 2"),
        ("logs.csv", lambda t: t.loc.__setitem__((0, "logging_probability"), 1.5), "logs.csv: column 'logging_probability' is 1.5 in row 1"),
        ("logs.csv", lambda t: t.__setitem__("logging_probability", t["logging_probability"].astype(object)) or t.loc.__setitem__((2, "logging_probability"), "high"), "column 'logging_probability' has 'high' in row 3"),
        ("logs.csv", lambda t: t.pop("logging_probability"), "logs.csv: missing column 'logging_probability'"),
        ("logs.csv", lambda t: t.pop("reward"), "logs.csv: missing column 'reward'"),
        ("logs.csv", lambda t: t.loc.__setitem__((1, "action"), 5), "target.csv: missing column 'probability_5' for the action the logs' column 'action' holds in row 2"),
        ("logs.csv", lambda t: t.loc.__setitem__((1, "action"), -1), "target.csv: missing column 'probability_-1' for the action the logs' column 'action' holds in row 2"),
        ("target.csv", lambda t: t.pop("probability_1"), "target.csv: missing column 'probability_1' for the action the logs' column 'action' holds in row 2"),
        ("target.csv", lambda t: t.__init__(t.iloc[:2]), "target.csv: 2 rows, but the logs have 3"),
        ("target.csv", lambda t: t.loc.__setitem__((0, "probability_0"), None), "target.csv: column 'probability_0' is empty in row 1"),
        ("logs.csv", lambda t: t.loc.__setitem__((0, "logging_probability"), 1.0), "row 1: the logging policy chose action 0 with probability 1"),
    ],
)
def test_bad_input_exits_2_with_one_clear_message(run_cli, tiny, file, change, message):
    path, _, _ = tiny
    _edit(path, file, change)
    result = run_cli("ope", path / "logs.csv", "--target", path / "target.csv", "--estimators", "ips", "--quiet")
    assert result.exit_code == 2
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_a_target_that_never_takes_a_logged_action_has_no_support_for_ips(run_cli, tiny):
    path, _, _ = tiny
    pd.DataFrame({"probability_0": [0.0, 1.0, 1.0], "probability_1": [1.0, 0.0, 0.0]}).to_csv(path / "target.csv", index=False)
    result = run_cli("ope", path / "logs.csv", "--target", path / "target.csv", "--estimators", "dm,ips", "--quiet")
    assert result.exit_code == 2
    assert "the target policy gives probability 0 to the logged action in every row, so 'ips'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give the target policy either as --target TABLE or as --target-experiment DIR"),
        (["--target", "{p}/target.csv", "--target-experiment", "{p}"], "either as --target TABLE or as --target-experiment DIR"),
        (["--target", "{p}/target.csv", "--greedy"], "--greedy applies to --target-experiment only"),
        (["--target", "{p}/target.csv", "--estimators", "ips,magic"], "unknown estimator(s) ['magic']"),
        (["--target", "{p}/target.csv", "--reward-model", "oracle"], "unknown reward model 'oracle'"),
        (["--target", "{p}/target.csv", "--clip", "0"], "clip must be a positive maximum weight"),
        (["--target", "{p}/target.csv", "--interval", "wide"], "interval must be 'bootstrap' or 'normal'"),
        (["--target", "{p}/target.csv", "--folds", "1"], "cross-fitting needs at least 2 folds"),
        (["--target", "{p}/target.csv", "--columns", "segment,age"], "logs.csv: no column(s) ['age']"),
        (["--target", "{p}/missing.csv"], "missing.csv: file not found"),
        (["--target-experiment", "{p}"], "is not an experiment directory"),
    ],
)
def test_bad_options_exit_2(run_cli, tiny, args, message):
    path, _, _ = tiny
    result = run_cli("ope", path / "logs.csv", *[a.format(p=path) for a in args], "--quiet")
    assert result.exit_code == 2
    assert message in result.stderr, result.stderr


def test_an_identifier_column_is_refused_as_context(run_cli, tmp_path):
    n = 120
    rng = np.random.default_rng(0)
    logs = pd.DataFrame({"customer": [f"c{i}" for i in range(n)], "segment": rng.choice(["a", "b"], n),
                         "action": rng.integers(0, 2, n),
                         "reward": rng.random(n), "logging_probability": 0.5})
    logs.to_csv(tmp_path / "logs.csv", index=False)
    pd.DataFrame({"probability_0": [0.5] * n, "probability_1": [0.5] * n}).to_csv(tmp_path / "target.csv", index=False)
    result = run_cli("ope", tmp_path / "logs.csv", "--target", tmp_path / "target.csv", "--quiet")
    assert result.exit_code == 2
    assert "column 'customer' has 120 distinct values in 120 rows" in result.stderr
    ok = run_cli("ope", tmp_path / "logs.csv", "--target", tmp_path / "target.csv", "--columns", "segment", "--estimators", "dm,ips", "--reward-model", "ridge", "--quiet")
    assert ok.exit_code == 0, ok.output


def test_several_choice_sets_use_joint_probability_columns(run_cli, tmp_path):
    rng = np.random.default_rng(1)
    n = 200
    logs = pd.DataFrame({"x": rng.random(n), "action_0": rng.integers(0, 2, n), "action_1": rng.integers(0, 3, n),
                         "reward": rng.random(n), "logging_probability": 1 / 6})
    target = pd.DataFrame({f"probability_{i}_{j}": [1 / 6] * n for i in range(2) for j in range(3)})
    logs.to_csv(tmp_path / "logs.csv", index=False)
    target.to_csv(tmp_path / "target.csv", index=False)
    out = _ope_json(run_cli, tmp_path, "ips")
    assert out["actions"] == 6
    assert out["estimators"]["ips"]["estimate"] == pytest.approx(logs["reward"].mean())  # the target is the logger


def _ope_json(run_cli, path: Path, estimators: str) -> dict:
    """`nextbest ope path/logs.csv --target path/target.csv` succeeds; its --json output."""
    result = run_cli("ope", path / "logs.csv", "--target", path / "target.csv", "--estimators", estimators,
                     "--json", path / "out.json", "--quiet")
    assert result.exit_code == 0, result.output
    return json.loads((path / "out.json").read_text())


def _labelled_logs(tmp_path, labels, n=60):
    """Logs whose actions carry the given labels, logged uniformly, and the uniform target over those labels."""
    rng = np.random.default_rng(4)
    logs = pd.DataFrame({"segment": rng.choice(["Gold tier", "silver"], n), "store": rng.choice([7, 12], n),
                         "action": rng.choice(labels, n), "reward": rng.integers(0, 2, n),
                         "logging_probability": 1 / len(labels)})
    target = pd.DataFrame({f"probability_{label}": [round(1 / len(labels), 3)] * n for label in reversed(labels)})
    logs.to_csv(tmp_path / "logs.csv", index=False)
    target.to_csv(tmp_path / "target.csv", index=False)
    return logs


@pytest.mark.parametrize("labels", [["email", "sms", "push"], [1, 2, 3], [0, 5, 10]])
def test_actions_are_the_labels_of_the_target_columns(run_cli, tmp_path, labels):
    logs = _labelled_logs(tmp_path, labels)  # also: 0.333 three times sums to 0.999, within rounding
    out = _ope_json(run_cli, tmp_path, "ips,snips")
    assert out["actions"] == 3
    assert out["estimators"]["snips"]["estimate"] == pytest.approx(logs["reward"].mean())  # the target is the logger


def test_a_logged_label_without_a_target_column_is_named(run_cli, tmp_path):
    _labelled_logs(tmp_path, ["email", "sms", "push"])
    pd.read_csv(tmp_path / "target.csv").drop(columns="probability_push").to_csv(tmp_path / "target.csv", index=False)
    result = run_cli("ope", tmp_path / "logs.csv", "--target", tmp_path / "target.csv", "--quiet")
    assert result.exit_code == 2
    assert "target.csv: missing column 'probability_push' for the action the logs' column 'action' holds in row" in result.stderr
    assert "the target gives probabilities for the actions ['email', 'sms']" in result.stderr


def test_ten_probabilities_of_a_tenth_sum_to_one_and_a_row_off_by_a_percent_is_refused(run_cli, tmp_path):
    n = 50
    rng = np.random.default_rng(5)
    pd.DataFrame({"x": rng.random(n), "action": rng.integers(0, 10, n), "reward": rng.random(n),
                  "logging_probability": 0.1}).to_csv(tmp_path / "logs.csv", index=False)
    target = pd.DataFrame({f"probability_{a}": [0.1] * n for a in range(10)})
    target.to_csv(tmp_path / "target.csv", index=False)
    ok = run_cli("ope", tmp_path / "logs.csv", "--target", tmp_path / "target.csv", "--estimators", "ips", "--quiet")
    assert ok.exit_code == 0, ok.output
    target.loc[3, "probability_0"] = 0.09
    target.to_csv(tmp_path / "target.csv", index=False)
    bad = run_cli("ope", tmp_path / "logs.csv", "--target", tmp_path / "target.csv", "--estimators", "ips", "--quiet")
    assert bad.exit_code == 2
    assert "target.csv: the probabilities in row 4 sum to 0.99 instead of 1" in bad.stderr
