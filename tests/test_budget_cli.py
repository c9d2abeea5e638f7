"""`nextbest budget …` end to end on a seeded synthetic history: fit (default settings), recovery of the
true parameters, allocation against the true optimum, report, PPO allocator, and every error path."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from nextbest.simulators.response import ResponseParameters


def _main(*args: object) -> None:
    """Run the CLI outside a test function (for the module fixture); fail on a non-zero exit."""
    from nextbest.cli import main

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["nextbest", *map(str, args)])
        try:
            main()
        except SystemExit as exit_:
            assert not exit_.code, f"nextbest {' '.join(map(str, args))} exited {exit_.code}"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget")
    _main("budget", "synthesize", "--channels", 3, "--days", 365, "--seed", 11, "--model", "power",
          "--output", root / "history.csv", "--truth", root / "truth.json")
    _main("budget", "fit", root / "history.csv", "--experiment-dir", root / "exp", "--json", root / "fit.json", "--quiet",
          "--model", "power")
    return root


def _truth(root) -> ResponseParameters:
    return ResponseParameters.from_dict(json.loads((root / "truth.json").read_text()))


def test_fit_saves_inference_data_with_predictive_check_and_passing_diagnostics(fitted):
    import arviz as az

    idata = az.from_netcdf(fitted / "exp" / "posterior.nc")
    assert {"posterior", "sample_stats", "posterior_predictive", "observed_data"} <= set(idata.groups())
    assert idata.posterior["beta"].shape == (2, 2000, 3)  # the defaults: 2 chains × 2000 draws
    np.testing.assert_array_equal(idata.observed_data["clicks"].values.shape, (365, 3))
    report = json.loads((fitted / "fit.json").read_text())
    assert report["diagnostics"]["passed"] and report["diagnostics"]["max_rhat"] <= 1.01
    coverage = [c["coverage_90"] for metric in report["predictive_check"].values() for c in metric.values()]
    assert min(coverage) > 0.8 and max(coverage) < 0.98  # a well-specified model covers ≈ 90% of days


def test_fit_recovers_the_true_parameters(fitted):
    from nextbest.budget.experiment import BudgetExperiment

    posterior, truth = BudgetExperiment.open(fitted / "exp").parameters, _truth(fitted)
    for name in ("beta", "holiday", "ctr", "dispersion"):
        values, true = getattr(posterior, name), getattr(truth, name)[0]
        z = np.abs(values.mean(0) - true) / values.std(0)
        assert np.all(z < 3), f"{name}: posterior means {values.mean(0)} vs truth {true}"
    low, high = np.quantile(posterior.beta, [0.05, 0.95], axis=0)
    assert np.all(high - low < 0.25)  # a year of days pins β down


def test_experiment_makes_its_environment_on_the_historys_budget_range(fitted):
    from nextbest.budget.experiment import BudgetExperiment

    experiment = BudgetExperiment.open(fitted / "exp")
    env = experiment.make_env(reward="clicks")
    assert env.budget_range == experiment.budget_range
    assert env.parameters is experiment.parameters and env.reward_name == "clicks"
    assert experiment.make_env(budget=800.0).budget_range == (800.0, 800.0)


def test_allocate_reports_the_contract_and_beats_the_baselines_in_truth(fitted, run_cli):
    result = run_cli("budget", "allocate", fitted / "exp", "--budget", 1000, "--truth", fitted / "truth.json",
                     "--json", fitted / "allocate.json")
    assert result.exit_code == 0, result.output
    assert "optimizer" in result.stdout and "historical" in result.stdout
    data = json.loads((fitted / "allocate.json").read_text())
    assert {"allocation", "expected_clicks", "clicks_interval", "cost_per_click", "baselines"} <= set(data)
    assert sum(data["allocation"].values()) == pytest.approx(1000.0, abs=0.02)
    low, high = data["clicks_interval"]
    assert low < data["expected_clicks"] < high
    assert data["cost_per_click"] == pytest.approx(1000.0 / data["expected_clicks"])
    true = {name: row["true_clicks"] for name, row in data["baselines"].items()}
    assert true["optimizer"] >= 0.97 * true["true_optimum"]
    assert true["optimizer"] > true["historical"] and true["optimizer"] > true["equal"]


def test_holiday_changes_the_recommended_split(fitted, run_cli):
    regular = run_cli("budget", "allocate", fitted / "exp", "--budget", 1000, "--json", fitted / "r.json", "--quiet")
    holiday = run_cli("budget", "allocate", fitted / "exp", "--budget", 1000, "--holiday", "--date", "2026-12-24",
                      "--json", fitted / "h.json", "--quiet")
    assert regular.exit_code == holiday.exit_code == 0
    r, h = (json.loads((fitted / f"{n}.json").read_text()) for n in ("r", "h"))
    assert max(abs(r["allocation"][c] - h["allocation"][c]) for c in r["allocation"]) > 10
    assert h["date"] == "2026-12-24" and h["holiday"] is True


def test_allocate_accepts_a_slashed_date_and_notes_a_day_the_history_never_had(fitted, run_cli, tmp_path):
    import pandas as pd

    shutil.copytree(fitted / "exp", tmp_path / "exp")
    history = pd.read_parquet(tmp_path / "exp" / "history.parquet")
    history.assign(holiday=0).to_parquet(tmp_path / "exp" / "history.parquet")  # as if fitted without holidays
    result = run_cli("budget", "allocate", tmp_path / "exp", "--budget", 1000, "--holiday", "--date", "2026/12/24",
                     "--json", tmp_path / "a.json", "--quiet")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["date"] == "2026-12-24"
    assert "note: the history has no holiday: the holiday lift is not learned" in result.stderr
    assert any("no holiday" in note for note in data["notes"])


def test_allocate_notes_spend_beyond_the_history(fitted, run_cli):
    result = run_cli("budget", "allocate", fitted / "exp", "--budget", 10**6, "--json", fitted / "big.json", "--quiet")
    assert result.exit_code == 0, result.output
    assert "above any daily spend of the history" in result.stderr
    regular = run_cli("budget", "allocate", fitted / "exp", "--budget", 300, "--json", fitted / "small.json", "--quiet")
    assert json.loads((fitted / "small.json").read_text())["notes"] == [], regular.stderr


def test_allocate_respects_minimums_and_maximums(fitted, run_cli):
    result = run_cli("budget", "allocate", fitted / "exp", "--budget", 1000, "--min", "search=300",
                     "--max", "social=250", "--json", fitted / "b.json", "--quiet")
    assert result.exit_code == 0, result.output
    data = json.loads((fitted / "b.json").read_text())
    for row in data["baselines"].values():
        assert row["allocation"]["search"] >= 300 - 0.01 and row["allocation"]["social"] <= 250 + 0.01
        assert sum(row["allocation"].values()) == pytest.approx(1000.0, abs=0.02)


def test_train_learns_an_allocator_better_than_the_baselines(fitted, run_cli):
    result = run_cli("budget", "train", fitted / "exp", "--steps", 8192, "--seed", 0, "--json", fitted / "train.json",
                     "--quiet")
    assert result.exit_code == 0, result.output
    data = json.loads((fitted / "train.json").read_text())
    assert data["ratio_to_optimizer"] > max(data["baselines_ratio_to_optimizer"].values()) + 0.02
    assert list((fitted / "exp" / "tensorboard").glob("events.out.tfevents.*"))
    allocated = run_cli("budget", "allocate", fitted / "exp", "--budget", 1000, "--json", fitted / "a.json", "--quiet")
    assert allocated.exit_code == 0
    assert sum(json.loads((fitted / "a.json").read_text())["baselines"]["allocator"]["allocation"].values()) == \
        pytest.approx(1000.0, abs=0.02)


def test_report_writes_every_figure(fitted, run_cli):
    result = run_cli("budget", "report", fitted / "exp", "--truth", fitted / "truth.json", "--output", fitted / "fig")
    assert result.exit_code == 0, result.output
    for name in ("response_curves", "predictive_check", "allocation"):
        assert (fitted / "fig" / f"{name}.png").stat().st_size > 10_000


def test_a_fit_with_failing_diagnostics_is_refused_with_advice(fitted, run_cli, tmp_path):
    broken = tmp_path / "exp"
    shutil.copytree(fitted / "exp", broken)
    summary = json.loads((broken / "budget.json").read_text())
    summary["diagnostics"]["problems"] = ["R-hat 1.200 for beta (search) is above 1.01: the chains disagree; try …"]
    (broken / "budget.json").write_text(json.dumps(summary))
    result = run_cli("budget", "allocate", broken, "--budget", 1000)
    assert result.exit_code == 2
    assert "diagnostics failed, so it is not used for decisions: R-hat 1.200 for beta (search)" in result.stderr


def test_diagnostics_fail_on_chains_that_disagree():
    import arviz as az

    from nextbest.simulators.checks import diagnose
    from nextbest.simulators.fit import FitConfig

    rng = np.random.default_rng(0)
    beta = rng.normal(0, 1, (2, 500, 3)) + np.array([0.0, 3.0])[:, None, None]  # chain 2 elsewhere
    idata = az.from_dict(posterior={"beta": beta}, sample_stats={"diverging": np.zeros((2, 500), bool)},
                         coords={"channel": ["a", "b", "c"]}, dims={"beta": ["channel"]})
    diagnostics = diagnose(idata, FitConfig())
    assert not diagnostics.passed and diagnostics.max_rhat > 1.5
    assert "the chains disagree; try more chains (--chains 4)" in diagnostics.advice()


def test_bad_history_row_exits_2_naming_the_row(tmp_path, run_cli):
    from nextbest.simulators.synthesize import synthesize

    table = synthesize(3, 30, seed=0)[0].to_table()
    table.loc[6, "clicks"] = table.loc[6, "impressions"] + 1
    table.to_csv(tmp_path / "h.csv", index=False)
    result = run_cli("budget", "fit", tmp_path / "h.csv", "--experiment-dir", tmp_path / "exp")
    assert result.exit_code == 2
    assert f"{tmp_path / 'h.csv'}: row 7: clicks" in result.stderr and "cannot exceed impressions" in result.stderr
    assert not (tmp_path / "exp" / "budget.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit", "{tmp}/missing.csv", "--experiment-dir", "{tmp}/e"], "missing.csv: file not found"),
        (["fit", "{tmp}/h.csv", "--experiment-dir", "{tmp}/e", "--draws", 5], "--draws 5: input should be greater than or equal to 10"),
        (["allocate", "{tmp}/nothing", "--budget", 1000], "holds no fitted response model"),
        (["synthesize", "--output", "{tmp}/h.txt"], "expected a .csv or .parquet file"),
        (["synthesize", "--output", "{tmp}/h.csv", "--days", 10], "--days 10: expected at least 28 days"),
        (["train", "{tmp}/nothing"], "holds no fitted response model"),
        (["train", "{tmp}/nothing", "--steps", 0], "--steps 0: expected a positive number of simulated days"),
        (["report", "{tmp}/nothing"], "holds no fitted response model"),
    ],
)
def test_cli_errors_exit_2_with_one_message(tmp_path, run_cli, args, message):
    result = run_cli("budget", *[str(a).format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min", "search:100"], "--min 'search:100': expected channel=amount pairs"),
        (["--max", "tv=100"], "maximum for unknown channel 'tv'"),
        (["--min", "search=900,social=900"], "minimums add up to 1800, more than the budget 1000"),
        (["--date", "tomorrow"], "--date 'tomorrow' is not a date; expected YYYY-MM-DD"),
        (["--truth", "{tmp}/nope.json"], "nope.json: file not found"),
        (["--truth", "{history}"], "not a truth file from `nextbest budget synthesize --truth`"),
    ],
)
def test_allocate_errors_exit_2_with_one_message(fitted, tmp_path, run_cli, args, message):
    args = [a.format(tmp=tmp_path, history=fitted / "fit.json") for a in args]
    result = run_cli("budget", "allocate", fitted / "exp", "--budget", 1000, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_fit_refuses_to_overwrite_without_the_flag(fitted, run_cli):
    result = run_cli("budget", "fit", fitted / "history.csv", "--experiment-dir", fitted / "exp", "--model", "power")
    assert result.exit_code == 2
    assert "already holds a fitted response model; pass --overwrite" in result.stderr
