"""`nextbest rl ENV_ID`: training, checkpoints, resuming, JSON, and every error path."""

from __future__ import annotations

import json

import pytest

FAST = '{"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2}'


def test_rl_trains_writes_checkpoints_and_json_and_resumes(run_cli, tmp_path):
    directory, report = tmp_path / "cartpole", tmp_path / "rl.json"
    result = run_cli("rl", "CartPole-v1", "--steps", "640", "--hyperparameters", FAST, "--experiment-dir", directory,
                     "--checkpoint-every", "2", "--eval-episodes", "2", "--json", report)
    assert result.exit_code == 0, result.output
    assert "CartPole-v1: PPO updates" in result.stdout and "deterministic policy: mean return" in result.stdout
    data = json.loads(report.read_text())
    assert data["steps"] == 640 and data["updates"] == 5 and len(data["history"]) == 5
    assert data["evaluation"]["episodes"] == 2 and len(data["evaluation"]["returns"]) == 2
    assert {"approx_kl", "clip_fraction", "explained_variance", "entropy", "episode_return_mean"} <= data["history"][0].keys()
    checkpoints = sorted(p.name for p in (directory / "checkpoints").glob("checkpoint-*.pt"))
    assert checkpoints == ["checkpoint-000002.pt", "checkpoint-000004.pt", "checkpoint-000005.pt"]
    assert json.loads((directory / "hyperparameters.json").read_text())["ppo"]["n_steps"] == 64
    assert any((directory / "tensorboard").iterdir())

    again = run_cli("rl", "CartPole-v1", "--steps", "256", "--experiment-dir", directory, "--eval-episodes", "0",
                    "--json", report)
    assert again.exit_code == 0, again.output
    assert "resuming" in again.stdout and "checkpoint-000005.pt (640 steps so far)" in again.stdout
    assert json.loads(report.read_text())["steps"] == 896


def test_rl_runs_a_continuous_box_environment_quietly(run_cli, tmp_path):
    result = run_cli("rl", "Pendulum-v1", "--steps", "256", "--hyperparameters", FAST, "--eval-episodes", "1", "--quiet",
                     "--json", tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert json.loads((tmp_path / "p.json").read_text())["evaluation"]["mean_return"] < 0


@pytest.mark.parametrize("args, message", [
    (("NoSuchEnv-v0",), "cannot make Gymnasium environment 'NoSuchEnv-v0'"),
    (("CartPole-v1", "--hyperparameters", '{"n_stepz": 4}'), "hyperparameters: 'n_stepz' extra inputs are not permitted"),
    (("CartPole-v1", "--hyperparameters", '{"clip_range": -1}'), "hyperparameters: 'clip_range' input should be greater than 0"),
    (("CartPole-v1", "--hyperparameters", "[1, 2]"), "neither a JSON object nor an existing file"),
    (("CartPole-v1", "--steps", "0"), "--steps and --checkpoint-every must be positive"),
    (("CartPole-v1", "--simplex"), "simplex=True needs a Box action space"),
    (("CartPole-v1", "--threads", "0"), "--threads must be at least 1, got 0"),
])
def test_rl_errors_exit_2_with_one_clear_message(run_cli, args, message):
    result = run_cli("rl", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_rl_refuses_a_file_a_personalization_experiment_and_another_environments_run(run_cli, tmp_path):
    (tmp_path / "file").write_text("")
    run = tmp_path / "run"
    assert run_cli("rl", "CartPole-v1", "--steps", "128", "--hyperparameters", FAST, "--experiment-dir", run,
                   "--eval-episodes", "0", "--quiet").exit_code == 0
    assert run_cli("simulate", "--scenario", "discount", "--agent", "linucb", "--examples", "100", "--batch-size", "50",
                   "--experiment-dir", tmp_path / "shop", "--quiet").exit_code == 0
    for directory, env_id, message in ((tmp_path / "file", "CartPole-v1", "is a file, not a directory"),
                                       (tmp_path / "shop", "CartPole-v1", "is a personalization experiment"),
                                       (run, "Pendulum-v1", "holds a run on CartPole-v1, not Pendulum-v1")):
        result = run_cli("rl", env_id, "--steps", "128", "--experiment-dir", directory)
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1


def test_show_summarizes_an_rl_run(run_cli, tmp_path):
    run = tmp_path / "run"
    assert run_cli("rl", "CartPole-v1", "--steps", "128", "--hyperparameters", FAST, "--experiment-dir", run,
                   "--eval-episodes", "0", "--quiet").exit_code == 0
    result = run_cli("show", run)
    assert result.exit_code == 0, result.output
    for expected in ("CartPole-v1", "steps", "128", "approx_kl", "clip_fraction", "checkpoint-000001.pt"):
        assert expected in result.stdout


def test_rl_refuses_new_hyperparameters_for_an_existing_run(run_cli, tmp_path):
    directory = tmp_path / "run"
    assert run_cli("rl", "CartPole-v1", "--steps", "128", "--hyperparameters", FAST, "--experiment-dir", directory,
                   "--eval-episodes", "0", "--quiet").exit_code == 0
    result = run_cli("rl", "CartPole-v1", "--hyperparameters", FAST, "--experiment-dir", directory)
    assert result.exit_code == 2 and "already holds a run" in result.stderr


def test_rl_and_pretrain_have_help(run_cli):
    for command in ("rl", "pretrain"):
        result = run_cli(command, "--help")
        assert result.exit_code == 0 and "--json" in result.stdout and "--quiet" in result.stdout
