"""`RLRun`: a PPO run on a Gymnasium environment, created, checkpointed, resumed, refused."""

from __future__ import annotations

import json

import pytest

from nextbest.errors import ConfigError
from nextbest.training.rl_run import RLRun, read_run, rl_summary

FAST = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2}


def test_a_new_run_writes_its_settings_and_checkpoints(tmp_path):
    directory = tmp_path / "run"
    run = RLRun.open_or_create("CartPole-v1", directory, hyperparameters=FAST, seed=3)
    assert run.resumed_from is None
    assert json.loads((directory / "hyperparameters.json").read_text()) == {
        "env_id": "CartPole-v1", "seed": 3, "simplex": False, "ppo": run.ppo.config.model_dump(mode="json")}
    seen = []
    history = run.train(640, checkpoint_every=2, callback=lambda metrics: seen.append(metrics["steps"]))
    assert len(history) == 5 and seen == [128, 256, 384, 512, 640]
    checkpoints = sorted(p.name for p in (directory / "checkpoints").glob("checkpoint-*.pt"))
    assert checkpoints == ["checkpoint-000002.pt", "checkpoint-000004.pt", "checkpoint-000005.pt"]
    summary = rl_summary(directory)
    assert summary["steps"] == 640 and summary["updates"] == 5 and summary["checkpoint"] == "checkpoint-000005.pt"
    assert summary["last_metrics"]["steps"] == 640.0


def test_a_run_resumes_from_its_latest_checkpoint(tmp_path):
    directory = tmp_path / "run"
    first = RLRun.open_or_create("CartPole-v1", directory, hyperparameters=FAST)
    first.train(128)
    again = RLRun.open_or_create("CartPole-v1", directory)
    assert again.resumed_from.name == "checkpoint-000001.pt"
    assert again.ppo.steps == 128 and again.ppo.config == first.ppo.config
    again.train(128)
    assert rl_summary(directory)["steps"] == 256


def test_a_run_in_memory_trains_evaluates_and_cannot_save():
    run = RLRun.open_or_create("CartPole-v1", hyperparameters=FAST)
    run.train(128)
    assert len(run.evaluate(2)) == 2 and run.evaluate(0) == []
    with pytest.raises(ConfigError, match="no directory"):
        run.save()


def test_new_hyperparameters_are_refused_on_resume(tmp_path):
    directory = tmp_path / "run"
    RLRun.open_or_create("CartPole-v1", directory, hyperparameters=FAST).train(128)
    with pytest.raises(ConfigError, match="already holds a run \\(resumed from checkpoint-000001.pt\\)"):
        RLRun.open_or_create("CartPole-v1", directory, hyperparameters=FAST)


def test_another_environments_run_a_file_and_an_experiment_are_refused(tmp_path):
    directory = tmp_path / "run"
    RLRun.open_or_create("CartPole-v1", directory, hyperparameters=FAST)
    with pytest.raises(ConfigError, match="holds a run on CartPole-v1, not Pendulum-v1"):
        RLRun.open_or_create("Pendulum-v1", directory)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        read_run(tmp_path / "file")
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "hyperparameters.json").write_text('{"agent_name": "linucb"}')
    with pytest.raises(ConfigError, match="is a personalization experiment"):
        read_run(tmp_path / "shop")
    assert rl_summary(tmp_path / "shop") is None


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="cannot make Gymnasium environment 'NoSuchEnv-v0'"):
        RLRun.open_or_create("NoSuchEnv-v0")
    with pytest.raises(ConfigError, match="hyperparameters: 'n_stepz' extra inputs are not permitted"):
        RLRun.open_or_create("CartPole-v1", hyperparameters={"n_stepz": 4})
    run = RLRun.open_or_create("CartPole-v1", hyperparameters=FAST)
    with pytest.raises(ConfigError, match="steps and checkpoint_every must be positive, got 0 and 10"):
        run.train(0)
