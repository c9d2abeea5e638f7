"""`nextbest report DIR`: figures and numbers from the experiment directory, regret from the oracle."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nextbest.envs import make_scenario
from nextbest.evaluation import plots
from nextbest.evaluation.history import History
from nextbest.evaluation.simulation import load_simulation, save_simulation
from nextbest.training.simulate import simulate


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    directory = tmp_path_factory.mktemp("report") / "run"
    result = simulate("discount", "thompson", examples=900, batch_size=300, seed=2, experiment_dir=directory)
    save_simulation(result, directory)
    return directory, result


def test_simulation_record_round_trips(simulated):
    directory, result = simulated
    assert load_simulation(directory).to_dict() == result.to_dict()
    assert load_simulation(directory / "nowhere") is None


def test_html_report_has_every_figure_and_the_regret_of_the_oracle(run_cli, simulated, tmp_path):
    directory, result = simulated
    out = run_cli("report", directory, "--bootstrap", "100", "--json", tmp_path / "report.json", "--quiet")
    assert out.exit_code == 0, out.output
    page = (directory / "report" / "report.html").read_text()
    for name in ("learning_curve.png", "regret.png", "actions.png", "ope.png"):
        assert f'src="{name}"' in page
        assert Image.open(directory / "report" / name).size[0] > 400
    summary = json.loads((tmp_path / "report.json").read_text())

    # regret of the decisions taken, recomputed from the experience store and the scenario's oracle
    world = make_scenario("discount")
    lost = 0.0
    for part in sorted((directory / "experiences").glob("part-*.parquet")):
        table = pd.read_parquet(part)
        q = world.expected_rewards(table[world.columns])
        lost += (q.max(axis=1) - q[np.arange(len(table)), table["action"].to_numpy()]).sum()
    assert summary["regret"]["cumulative_regret"] == pytest.approx(lost)
    last = result.batches[-1]
    assert summary["regret"]["greedy_regret_per_decision"] == pytest.approx(last.oracle - last.agent)
    assert summary["simulation"]["final_normalized_score"] == pytest.approx(result.final_score)

    ope = summary["ope"]
    assert set(ope) == {"exploring", "greedy"}
    for target in ope.values():
        assert {"dm", "ips", "snips", "dr"} <= set(target["estimators"])
        dr = target["estimators"]["dr"]
        assert dr["ci_low"] - 3 < target["true_value"] < dr["ci_high"] + 3  # revenue per decision; loose: a few seeds
    assert ope["greedy"]["estimators"]["ips"]["effective_sample_size"] < 900


def test_markdown_report_without_a_simulation(run_cli, tmp_path):
    """A real (not simulated) experiment: rewards per batch instead of the oracle's lines, no regret."""
    directory = tmp_path / "live"
    assert run_cli("init", directory, "--action-space", "3", "--columns", "segment,spend", "--categorical-columns",
                   "segment", "--categorical-dimensions", "2", "--agent", "epsilon-greedy").exit_code == 0
    rng = np.random.default_rng(0)
    for batch in range(2):
        contexts = pd.DataFrame({"segment": rng.integers(0, 2, 200), "spend": rng.random(200)})
        contexts.to_csv(tmp_path / "c.csv", index=False)
        assert run_cli("predict", directory, "--contexts", tmp_path / "c.csv", "--output", tmp_path / "p.csv",
                       "--seed", str(batch * 1000)).exit_code == 0
        predictions = pd.read_csv(tmp_path / "p.csv")
        predictions["reaction"] = (rng.random(200) < 0.2 + 0.2 * predictions["action"]).astype(int)
        predictions.to_csv(tmp_path / "e.csv", index=False)
        assert run_cli("train", directory, "--experiences", tmp_path / "e.csv").exit_code == 0
    out = run_cli("report", directory, "--format", "markdown", "--reward-model", "ridge", "--bootstrap", "100",
                  "--json", tmp_path / "r.json", "--quiet")
    assert out.exit_code == 0, out.output
    page = (directory / "report" / "report.md").read_text()
    assert "![Learning curve](batch_rewards.png)" in page and "## Regret" not in page
    assert "## Off-policy estimates" in page and "| exploring | dr |" in page
    summary = json.loads((tmp_path / "r.json").read_text())
    assert "regret" not in summary and "simulation" not in summary


def test_report_of_an_untrained_experiment_says_so(run_cli, tmp_path):
    directory = tmp_path / "new"
    assert run_cli("init", directory, "--action-space", "2", "--columns", "x").exit_code == 0
    out = run_cli("report", directory, "--quiet")
    assert out.exit_code == 0, out.output
    page = (directory / "report" / "report.html").read_text()
    assert "No experiences yet" in page and "<img" not in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{d}"], "is not an experiment directory (no hyperparameters.json)"),
        (["{run}", "--format", "pdf"], "report format must be 'html' or 'markdown'"),
        (["{run}", "--estimators", "psychic"], "unknown estimator(s) ['psychic']"),
        (["{run}", "--reward-model", "crystal-ball"], "unknown reward model 'crystal-ball'"),
    ],
)
def test_bad_report_requests_exit_2(run_cli, simulated, tmp_path, args, message):
    directory, _ = simulated
    out = run_cli("report", *[a.format(d=tmp_path, run=directory) for a in args], "--quiet")
    assert out.exit_code == 2
    assert message in out.stderr, out.stderr


def test_a_corrupt_simulation_record_is_named(run_cli, tmp_path):
    directory = tmp_path / "run"
    simulate("optimus-poc", "random", examples=100, batch_size=100, seed=0, experiment_dir=directory)
    (directory / "simulation.json").write_text('{"scenario": "optimus-poc"}')
    out = run_cli("report", directory, "--no-ope", "--quiet")
    assert out.exit_code == 2 and "simulation.json: not a simulation record" in out.stderr


def test_regret_figure_draws_the_numbers_it_is_given():
    history = History(examples=np.array([100, 200]), rows=np.array([100, 100]), mean_reward=np.array([0.2, 0.3]),
                      action_counts=np.array([[50, 50], [20, 80]]), action_labels=["0", "1"],
                      expected_reward=np.array([0.25, 0.35]), oracle=np.array([0.4, 0.4]), random=np.array([0.2, 0.2]))
    figure = plots.regret(history)
    line = figure.axes[0].lines[0]
    assert list(line.get_xdata()) == [0, 100] and np.allclose(line.get_ydata(), [0.15, 0.05])
    assert history.cumulative_regret.tolist() == pytest.approx([15.0, 20.0])
    shares = plots.action_distribution(history).axes[0].patches
    assert [p.get_height() for p in shares] == pytest.approx([0.5, 0.2, 0.5, 0.8])


def test_a_report_on_a_generated_world_uses_its_oracle(run_cli, tmp_path):
    directory = tmp_path / "world"
    result = simulate("world:3", "linucb", examples=600, batch_size=300, seed=0, experiment_dir=directory)
    save_simulation(result, directory)
    out = run_cli("report", directory, "--bootstrap", "50", "--format", "markdown", "--json", tmp_path / "r.json", "--quiet")
    assert out.exit_code == 0, out.output
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["regret"]["cumulative_regret"] > 0  # from world:3's oracle, which only the scenario knows
    assert all(target["true_value"] is not None for target in summary["ope"].values())
