"""One writer per experiment, the experience store and its duplicate key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.agents.settings import build_hyperparameters
from nextbest.data.schema import Schema
from nextbest.envs import make_scenario
from nextbest.errors import ExperimentError
from nextbest.training.experiment import Experiment

SCENARIO = make_scenario("optimus-poc")


@pytest.fixture
def directory(tmp_path):
    hp = build_hyperparameters("linucb", action_space=[16], columns=SCENARIO.columns,
                               categorical_columns=list(SCENARIO.categorical))
    Experiment.create(tmp_path / "exp", hp, SCENARIO.schema())
    return tmp_path / "exp"


def _experiences(directory: Path, n: int, first_seed: int, seed: int = 0) -> pd.DataFrame:
    """n experience rows whose prediction seeds are first_seed … first_seed + n − 1 (so every row is distinct)."""
    experiment = Experiment.open(directory)
    rng = np.random.default_rng(seed)
    table = experiment.predict(SCENARIO.sample_contexts(n, rng), seed=first_seed)
    table["reaction"] = SCENARIO.sample_reactions(table, experiment.action_space.read(table), rng)
    return table


def _train_processes(directory: Path, *files: Path) -> list[subprocess.CompletedProcess]:
    """`nextbest train` on each file, all started at once, each a process of its own."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    started = [
        subprocess.Popen([sys.executable, "-m", "nextbest", "train", str(directory), "--experiences", str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for path in files
    ]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in started]


# --- the duplicate key ---------------------------------------------------------------------------
def test_csv_and_parquet_copies_and_1_vs_1_0_hash_alike_and_other_rows_do_not(directory, tmp_path):
    experiment = Experiment.open(directory)
    table = _experiences(directory, 300, first_seed=0)
    table.to_csv(tmp_path / "e.csv", index=False)
    table.to_parquet(tmp_path / "e.parquet", index=False)
    hashes = experiment.row_hashes(table)
    assert len(set(hashes.tolist())) == 300  # different rows, different keys
    np.testing.assert_array_equal(experiment.row_hashes(pd.read_csv(tmp_path / "e.csv")), hashes)
    np.testing.assert_array_equal(experiment.row_hashes(pd.read_parquet(tmp_path / "e.parquet")), hashes)
    as_floats = table.astype({"action": float, "visits_30d": float, "done": float, "prediction_seed": float, "reaction": float})
    as_text = table.assign(reaction=table["reaction"].astype(str), done=table["done"].astype(str))
    np.testing.assert_array_equal(experiment.row_hashes(as_floats), hashes)
    np.testing.assert_array_equal(experiment.row_hashes(as_text), hashes)
    for column, changed in [("action", (table["action"] + 1) % 16), ("basket_value", table["basket_value"] + 0.01),
                            ("browser", table["browser"].iloc[::-1].to_numpy()), ("reaction", 1 - table["reaction"]),
                            ("prediction_seed", table["prediction_seed"] + 1000)]:
        other = experiment.row_hashes(table.assign(**{column: changed}))
        differs = (table[column].to_numpy() != np.asarray(changed))
        assert (other[differs] != hashes[differs]).all(), column


def test_a_category_code_and_its_label_hash_alike():
    schema = Schema.from_dimensions(["segment", "spend"], ["segment"], [3])
    hp = build_hyperparameters("linucb", action_space=[2], columns=schema.columns, categorical_columns=["segment"])
    experiment = Experiment.create(None, hp, schema)
    rows = pd.DataFrame({"segment": [0, 1, 2], "spend": [1, 2, 3], "action": [0, 1, 1], "value": 0.5,
                         "log_probability": -0.69, "done": 1, "attentive_transformer_loss": 0.0,
                         "prediction_seed": [7, 8, 9], "reaction": [1, 0, 1]})
    hashes = experiment.row_hashes(rows)
    np.testing.assert_array_equal(experiment.row_hashes(rows.assign(segment=["0", "1", "2"])), hashes)
    np.testing.assert_array_equal(experiment.row_hashes(rows.assign(segment=[0.0, 1.0, 2.0], spend=[1.0, 2.0, 3.0])), hashes)
    assert (experiment.row_hashes(rows.assign(segment=["1", "2", "0"])) != hashes).all()


def test_the_duplicate_check_reads_the_index_not_every_part(directory, monkeypatch):
    experiment = Experiment.open(directory)
    first, second = _experiences(directory, 200, 0), _experiences(directory, 200, 1000)
    experiment.train(first)
    assert (directory / "experiences" / ".index.parquet").is_file()
    from nextbest.training import store as store_module

    reads = []
    real_read = store_module.read_table
    monkeypatch.setattr(store_module, "read_table", lambda path, **kw: reads.append(Path(path).name) or real_read(path, **kw))
    reopened = Experiment.open(directory)
    reopened.train(second)
    assert reads == [".index.parquet"]  # one file, not part-000001.parquet
    with pytest.raises(ExperimentError, match=r"200 of 200 rows were already trained .*first: row 1.*--allow-duplicates"):
        Experiment.open(directory).train(first)
    assert len(Experiment.open(directory).experiences()) == 400


def test_a_directory_without_an_index_is_indexed_from_its_parts(directory):
    experiment = Experiment.open(directory)
    first = _experiences(directory, 100, 0)
    experiment.train(first)
    (directory / "experiences" / ".index.parquet").unlink()  # as written before the index existed
    with pytest.raises(ExperimentError, match="already trained"):
        Experiment.open(directory).train(first)


# --- one writer at a time ------------------------------------------------------------------------
def test_a_writer_that_opened_before_another_committed_trains_on_top_of_it(directory):
    a, b = Experiment.open(directory), Experiment.open(directory)
    first, second = _experiences(directory, 200, 0), _experiences(directory, 200, 1000)
    a.train(first)
    b.train(second)  # b read the directory before a's update: it catches up under the lock
    assert b.progress.updates == 2 and b.progress.examples == 400 and b.checkpoint.name == "checkpoint-000002.pt"
    assert len(b.progress.experience_parts) == 2
    with pytest.raises(ExperimentError, match="already trained"):
        b.train(first)


def test_a_second_writer_gives_up_after_the_timeout_naming_the_directory_and_the_holder(directory):
    holder, waiter = Experiment.open(directory), Experiment.open(directory)
    waiter.lock_timeout = 0.3
    batch = _experiences(directory, 50, 0)
    with holder.writing():
        with pytest.raises(ExperimentError, match=rf"{directory} is being written by another writer \(pid {os.getpid()} .*waited 0.3 s"):
            waiter.train(batch)
    waiter.train(batch)  # free again
    assert Experiment.open(directory).progress.updates == 1


@pytest.mark.slow  # two processes that each start Python, torch and pandas
def test_two_train_processes_at_once_both_land(directory, tmp_path):
    table = _experiences(directory, 1200, first_seed=0)
    table.iloc[:600].to_csv(tmp_path / "a.csv", index=False)
    table.iloc[600:].to_parquet(tmp_path / "b.parquet", index=False)
    results = _train_processes(directory, tmp_path / "a.csv", tmp_path / "b.parquet")
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    experiment = Experiment.open(directory)
    assert experiment.progress.updates == 2 and experiment.progress.examples == 1200
    stored = experiment.experiences()
    assert len(stored) == 1200 and sorted(stored["prediction_seed"]) == list(range(1200))  # every row exactly once
    assert experiment.checkpoint.name == "checkpoint-000002.pt" and len(experiment.progress.experience_parts) == 2


@pytest.mark.slow  # two processes that each start Python, torch and pandas
def test_the_same_rows_trained_twice_at_once_land_once_and_the_second_is_refused(directory, tmp_path):
    _experiences(directory, 600, first_seed=0).to_csv(tmp_path / "same.csv", index=False)
    results = _train_processes(directory, tmp_path / "same.csv", tmp_path / "same.csv")
    assert sorted(r.returncode for r in results) == [0, 2], [r.stderr for r in results]
    refused = next(r for r in results if r.returncode == 2)
    assert "600 of 600 rows were already trained" in refused.stderr and "--allow-duplicates" in refused.stderr
    experiment = Experiment.open(directory)
    assert experiment.progress.updates == 1 and len(experiment.experiences()) == 600
