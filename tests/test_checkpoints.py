"""Checkpoints are atomic; a killed run resumes from the last complete one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nextbest.checkpoints import checkpoint_files, read_checkpoint, write_checkpoint
from nextbest.config import build_hyperparameters
from nextbest.envs import make_scenario
from nextbest.errors import ExperimentError
from nextbest.training import experiment as experiment_module
from nextbest.training.experiment import Experiment


@pytest.fixture
def world(tmp_path):
    scenario = make_scenario("discount")
    hp = build_hyperparameters("thompson", action_space=[2], columns=scenario.columns, categorical_columns=list(scenario.categorical))
    Experiment.create(tmp_path / "exp", hp, scenario.schema())
    return scenario, tmp_path / "exp"


def _batch(scenario, experiment, seed):
    rng = np.random.default_rng(seed)
    table = experiment.predict(scenario.sample_contexts(200, rng), seed=seed)
    table["reaction"] = scenario.sample_reactions(table, experiment.action_space.read(table), rng)
    return table


def test_only_the_newest_checkpoints_are_kept_and_latest_points_at_the_newest(tmp_path):
    for number in range(1, 8):
        write_checkpoint(tmp_path, number, {"n": number}, keep=3)
    assert [p.name for p in checkpoint_files(tmp_path)] == [f"checkpoint-00000{n}.pt" for n in (5, 6, 7)]
    assert (tmp_path / "latest").read_text().strip() == "checkpoint-000007.pt"
    assert read_checkpoint(tmp_path)[1] == {"n": 7}
    assert read_checkpoint(tmp_path, "6")[1] == {"n": 6}
    with pytest.raises(ExperimentError, match="checkpoint '2' not found"):
        read_checkpoint(tmp_path, "2")


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(world, run_cli):
    scenario, directory = world
    experiment = Experiment.open(directory)
    experiment.train(_batch(scenario, experiment, 1))
    # a crash left a torn file that `latest` names, and a temporary file
    (directory / "checkpoints" / "checkpoint-000002.pt").write_bytes(b"\x80\x02torn")
    (directory / "checkpoints" / "latest").write_text("checkpoint-000002.pt\n")
    (directory / "checkpoints" / ".checkpoint-000003.pt.tmp-123").write_bytes(b"partial")
    reopened = Experiment.open(directory)
    assert reopened.checkpoint.name == "checkpoint-000001.pt"
    assert reopened.progress.updates == 1 and reopened.skipped_checkpoints
    result = run_cli("show", directory, "--json", directory / "show.json")
    assert result.exit_code == 0 and "unreadable checkpoint" in result.stderr
    summary = json.loads((directory / "show.json").read_text())
    assert summary["checkpoint"] == "checkpoint-000001.pt" and summary["updates"] == 1
    assert "checkpoint-000002.pt" in summary["checkpoints"]  # listed, though unreadable


def test_a_run_killed_after_storing_experiences_resumes_and_trains_them_once(world, monkeypatch):
    scenario, directory = world
    experiment = Experiment.open(directory)
    first, second = _batch(scenario, experiment, 1), _batch(scenario, experiment, 2)
    experiment.train(first)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies between storing the experiences and the checkpoint

    monkeypatch.setattr(experiment_module, "write_checkpoint", killed)
    with pytest.raises(KeyboardInterrupt):
        experiment.train(second)
    monkeypatch.undo()

    resumed = Experiment.open(directory)
    assert resumed.progress.updates == 1  # the killed update never happened
    resumed.train(second)  # not refused as a duplicate: it was never committed
    assert len(resumed.experiences()) == 400
    with pytest.raises(ExperimentError, match="already trained"):
        Experiment.open(directory).train(second)


def test_agent_state_survives_a_checkpoint_round_trip(world):
    scenario, directory = world
    experiment = Experiment.open(directory)
    experiment.train(_batch(scenario, experiment, 1))
    contexts = scenario.sample_contexts(100, np.random.default_rng(5))
    before = experiment.predict(contexts, seed=3)
    after = Experiment.open(directory).predict(contexts, seed=3)
    assert before.equals(after)
