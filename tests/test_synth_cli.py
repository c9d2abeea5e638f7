"""`nextbest synth fit|sample|report|data|models` end to end, and every bad input with its message and exit 2."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nextbest.data.tables import read_table
from nextbest.generative.datasets import crm_customers

FAST = '{"hidden": [16], "batch_size": 100}'


@pytest.fixture
def crm_csv(tmp_path):
    path = tmp_path / "crm.csv"
    crm_customers(400, seed=0).to_csv(path, index=False)
    return path


@pytest.fixture
def fitted(run_cli, crm_csv, tmp_path):
    directory = tmp_path / "made"
    result = run_cli("synth", "fit", crm_csv, "--model", "made", "--experiment-dir", directory, "--epochs", "3",
                     "--hyperparameters", FAST, "--json", tmp_path / "fit.json", "--quiet")
    assert result.exit_code == 0, result.output
    return directory


def test_fit_sample_report_round_trip(run_cli, crm_csv, fitted, tmp_path):
    summary = json.loads((tmp_path / "fit.json").read_text())
    assert summary["model"] == "made" and summary["epochs"] == 3 and summary["rows"] == 400
    assert summary["validation_log_likelihood"] < 0
    assert json.loads((fitted / "hyperparameters.json").read_text())["hidden"] == [16]
    assert (fitted / "training_curve.png").stat().st_size > 1000

    out = tmp_path / "synthetic.parquet"
    result = run_cli("synth", "sample", fitted, "--rows", "300", "--output", out, "--seed", "4", "--conditions", "segment=silver")
    assert result.exit_code == 0, result.output
    synthetic = read_table(out)
    assert len(synthetic) == 300 and (synthetic["segment"] == "silver").all()
    assert list(synthetic.columns) == list(pd.read_csv(crm_csv).columns)

    result = run_cli("synth", "report", crm_csv, out, "--target", "churned", "--json", tmp_path / "r.json",
                     "--html", tmp_path / "r.html", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report["scores"]) == {"quality", "column_shapes", "pair_trends", "detection", "ml_efficacy", "privacy"}
    assert all(0.0 <= v <= 1.0 for v in report["scores"].values())
    assert report["detection"]["auc"] > 0.6  # only silver customers: easy to tell apart
    assert report["ml_efficacy"]["target"] == "churned"
    page = (tmp_path / "r.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "Pair trends" in page


def test_fit_prints_held_out_log_likelihood_and_refuses_to_overwrite(run_cli, crm_csv, fitted):
    again = run_cli("synth", "fit", crm_csv, "--model", "vae", "--experiment-dir", fitted, "--epochs", "1")
    assert again.exit_code == 2
    assert "already holds a fitted generator; pass --overwrite" in again.stderr
    result = run_cli("synth", "fit", crm_csv, "--model", "made", "--experiment-dir", fitted, "--epochs", "1",
                     "--hyperparameters", FAST, "--overwrite")
    assert result.exit_code == 0
    assert "held-out log-likelihood" in result.stdout and "independent columns" in result.stdout


def test_data_writes_the_builtin_tables(run_cli, tmp_path):
    assert run_cli("synth", "data", "crm-wide", "--output", tmp_path / "w.csv", "--rows", "50").exit_code == 0
    assert read_table(tmp_path / "w.csv").shape == (50, 30)
    assert run_cli("synth", "data", "cdnow", "--output", tmp_path / "c.parquet", "--rows", "100").exit_code == 0
    real = read_table(tmp_path / "c.parquet")
    assert real.shape == (100, 10) and set(real["cohort"]) <= {"1997-01", "1997-02", "1997-03"}
    listing = run_cli("synth", "models")
    assert listing.exit_code == 0 and all(name in listing.stdout for name in ("vae", "gan", "made", "cdnow"))


@pytest.mark.parametrize(
    "content, message",
    [
        ("segment,age\n", "has a header but no rows"),
        ("segment,age\n" + "gold,1\n" * 5, "has 5 row(s); a generator needs at least 10"),
        ("segment,age\n" + "".join(f"gold,{i}\n" for i in range(20)), "column 'segment' has one value ('gold') in all 20 rows"),
        ("id,age\n" + "".join(f"c{i},{i}\n" for i in range(120)), "column 'id' has 120 distinct values, more than max_categories=100"),
        ("segment,age\n" + "".join(f"{'ab'[i % 2]},{i}\n" for i in range(40)) + "a,unknown\n", "column 'age' has 'unknown' in row 41; expected a number"),
    ],
)
def test_fit_rejects_bad_tables(run_cli, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = run_cli("synth", "fit", path, "--model", "vae", "--experiment-dir", tmp_path / "out", "--epochs", "1")
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--model", "diffusion"], "unknown generative model 'diffusion'; choose one of ['gan', 'made', 'vae']"),
        (["--model", "vae", "--hyperparameters", '{"latent": 4}'], "unknown hyperparameter 'latent' for the vae model"),
        (["--model", "vae", "--hyperparameters", '{"batch_size": 0}'], "hyperparameter 'batch_size': input should be greater than 0"),
        (["--model", "gan", "--hyperparameters", "missing.json"], "is neither a JSON object nor an existing file"),
        (["--model", "made", "--categorical-columns", "colour"], "categorical column(s) ['colour'] are not in"),
    ],
)
def test_fit_rejects_bad_settings(run_cli, crm_csv, tmp_path, arguments, message):
    result = run_cli("synth", "fit", crm_csv, "--experiment-dir", tmp_path / "out", "--epochs", "1", *arguments)
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--conditions", "segment=diamond"], "'diamond' is not a category of 'segment'; one of ['bronze', 'gold', 'platinum', 'silver']"),
        (["--conditions", "colour=red"], "unknown column 'colour'"),
        (["--conditions", "segment"], "expected column=value pairs"),
        (["--rows", "0"], "the number of rows to sample must be positive, got 0"),
        (["--output", "out.txt"], "expected a .csv or .parquet file"),
    ],
)
def test_sample_rejects_bad_requests(run_cli, fitted, tmp_path, arguments, message):
    options = {"--rows": "10", "--output": str(tmp_path / "s.csv")} | dict(zip(arguments[::2], arguments[1::2]))
    options = [part for flag, value in options.items() for part in (flag, value)]
    result = run_cli("synth", "sample", fitted, *options)
    assert result.exit_code == 2
    assert message in result.stderr


def test_sample_from_a_directory_without_a_generator(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("synth", "sample", tmp_path / "empty", "--rows", "5", "--output", tmp_path / "s.csv")
    assert result.exit_code == 2
    assert "holds no fitted generator; fit one first: nextbest synth fit" in result.stderr
    missing = run_cli("synth", "sample", tmp_path / "nowhere", "--rows", "5", "--output", tmp_path / "s.csv")
    assert missing.exit_code == 2 and "no such directory" in missing.stderr


def test_report_rejects_mismatched_tables(run_cli, crm_csv, tmp_path):
    other = tmp_path / "other.csv"
    crm_customers(100, seed=1).drop(columns=["churned"]).to_csv(other, index=False)
    result = run_cli("synth", "report", crm_csv, other)
    assert result.exit_code == 2
    assert f"{other}: missing column(s) ['churned']" in result.stderr
    result = run_cli("synth", "report", crm_csv, crm_csv, "--target", "ltv")
    assert result.exit_code == 2 and "target 'ltv' is not a column" in result.stderr
    result = run_cli("synth", "data", "iris", "--output", tmp_path / "x.csv")
    assert result.exit_code == 2 and "unknown dataset 'iris'" in result.stderr


def test_simulate_draws_customers_from_a_fitted_generator(run_cli, fitted, tmp_path):
    import numpy as np

    from nextbest.envs import make_scenario
    from nextbest.generative import GENERATORS

    contexts = make_scenario("optimus-poc").sample_contexts(400, np.random.default_rng(0))
    GENERATORS["made"]({"epochs": 2, "hidden": [16]}).fit(contexts).save(tmp_path / "customers")
    result = run_cli("simulate", "--scenario", "optimus-poc", "--agent", "random", "--examples", "200",
                     "--batch-size", "100", "--contexts-from", tmp_path / "customers", "--quiet", "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "s.json").read_text())["examples"] == 200
    wrong = run_cli("simulate", "--scenario", "optimus-poc", "--examples", "100", "--contexts-from", fitted, "--quiet")
    assert wrong.exit_code == 2
    assert "the generator makes columns" in wrong.stderr and "'browser'" in wrong.stderr
