"""Checkpoints are atomic; a killed run resumes from the last complete one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nextbest.agents import AGENTS
from nextbest.agents.settings import build_hyperparameters
from nextbest.checkpoints import checkpoint_files, read_checkpoint, write_checkpoint
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


# --- weights-only: opening a checkpoint cannot run code ------------------------------------------
class _RunsCode:
    """Pickles as a call of os.system: what a planted checkpoint would do on an unsafe load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_not_run(world, tmp_path):
    import torch

    scenario, directory = world
    experiment = Experiment.open(directory)
    experiment.train(_batch(scenario, experiment, 1))
    marker = tmp_path / "ran"
    planted = directory / "checkpoints" / "checkpoint-000002.pt"
    torch.save({"agent": _RunsCode(marker), "schema": {}, "progress": {}}, planted)
    (directory / "checkpoints" / "latest").write_text("checkpoint-000002.pt\n")
    with pytest.raises(ExperimentError, match=r"checkpoint-000002.pt: refused to load: it holds posix.system"):
        read_checkpoint(directory / "checkpoints", "2")
    reopened = Experiment.open(directory)  # passed over, as a damaged newest file is, with a warning
    assert reopened.checkpoint.name == "checkpoint-000001.pt" and "refused to load" in reopened.skipped_checkpoints[0]
    with pytest.raises(ExperimentError, match="refused to load"):
        reopened.agent.load(planted)
    assert not marker.exists()


def test_numpy_arrays_and_scalars_come_back_as_numpy(tmp_path):
    import torch

    state = {"a": np.arange(6, dtype=np.uint64).reshape(2, 3), "s": np.float32(1.5), "t": torch.ones(2),
             "nested": [(np.array(["x", "yy"]), {"generator": np.random.default_rng(0).bit_generator.state})]}
    write_checkpoint(tmp_path, 1, state, keep=1)
    loaded = read_checkpoint(tmp_path)[1]
    np.testing.assert_array_equal(loaded["a"], state["a"])
    assert loaded["a"].dtype == np.uint64 and type(loaded["s"]) is np.float32 and loaded["s"] == 1.5
    assert loaded["nested"][0][0].tolist() == ["x", "yy"] and loaded["nested"][0][1] == state["nested"][0][1]
    assert torch.equal(loaded["t"], state["t"])
    torch.load(tmp_path / "checkpoint-000001.pt", weights_only=True)  # plain torch reads it weights-only too


def test_a_checkpoint_written_before_the_tagged_format_still_opens(tmp_path):
    import torch

    torch.save({"A": np.eye(3), "count": np.float64(2.0)}, tmp_path / "checkpoint-000001.pt")  # numpy pickled as such
    loaded = read_checkpoint(tmp_path)[1]
    np.testing.assert_array_equal(loaded["A"], np.eye(3))
    assert loaded["count"] == 2.0


@pytest.mark.parametrize("agent", sorted(AGENTS))
def test_every_agent_round_trips_through_a_weights_only_checkpoint(tmp_path, agent):
    import torch

    scenario = make_scenario("discount")
    hp = build_hyperparameters(agent, action_space=[2], columns=scenario.columns, categorical_columns=list(scenario.categorical))
    experiment = Experiment.create(tmp_path / agent, hp, scenario.schema())
    experiment.train(_batch(scenario, experiment, 1))
    torch.load(experiment.checkpoint, weights_only=True)
    contexts = scenario.sample_contexts(100, np.random.default_rng(5))
    reopened = Experiment.open(tmp_path / agent)
    assert reopened.predict(contexts, seed=3).equals(experiment.predict(contexts, seed=3))
    experiment.agent.save(tmp_path / "agent.pt")
    fresh = Experiment.create(None, hp, experiment.schema).agent
    fresh.load(tmp_path / "agent.pt")
    np.testing.assert_array_equal(fresh.act(reopened.features(contexts), np.arange(100)).action,
                                  reopened.agent.act(reopened.features(contexts), np.arange(100)).action)


def test_the_gymnasium_ppo_round_trips_with_its_spaces_as_plain_dicts(tmp_path):
    import torch
    from gymnasium import spaces

    from nextbest.agents.gym_ppo import PPO, PPOConfig

    observation_space = spaces.Dict({"day": spaces.Discrete(7), "spend": spaces.Box(0.0, 1.0, (2,)),
                                     "segments": spaces.MultiDiscrete([2, 3])})
    ppo = PPO(observation_space, spaces.Box(0.0, 1.0, (3,)), PPOConfig(normalize_observations=True), seed=4, simplex=True)
    write_checkpoint(tmp_path, 1, ppo.state_dict(), keep=1)
    torch.load(tmp_path / "checkpoint-000001.pt", weights_only=True)
    loaded = PPO.from_state(read_checkpoint(tmp_path)[1])
    assert loaded.observation_space == observation_space and loaded.action_space == ppo.action_space
    batch = {"day": np.array([0, 6]), "spend": np.array([[0.1, 0.2], [0.9, 0.5]], np.float32), "segments": np.array([[0, 2], [1, 0]])}
    np.testing.assert_array_equal(loaded.predict(batch), ppo.predict(batch))
    np.testing.assert_array_equal(PPO.load(ppo.save(tmp_path / "ppo.pt")).predict(batch), ppo.predict(batch))
