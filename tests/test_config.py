"""Hyperparameters: defaults, overrides (nested, flat, file), validation, save/load."""

from __future__ import annotations

import json

import pytest

from nextbest.agents.settings import build_hyperparameters, default_hyperparameters, load_hyperparameters
from nextbest.config import Hyperparameters
from nextbest.errors import ConfigError


def test_defaults_include_the_agents_own_settings():
    hp = default_hyperparameters("linucb")
    assert hp.agent_name == "linucb"
    assert hp.agent["alpha"] == 1.0
    assert hp.reward.reward_name == "reaction"


def test_flat_keys_from_the_optimus_readme_are_accepted():
    hp = build_hyperparameters(
        "epsilon-greedy",
        '{"action_space": [2], "columns": ["browser", "price"], "categorical_columns": ["browser"],'
        ' "categorical_dimensions": {"browser": 3}, "epsilon": 0.2}',
    )
    assert hp.actions.action_space == [2]
    assert hp.data.categorical_dimensions == {"browser": 3}
    assert hp.agent["epsilon"] == 0.2


def test_nested_keys_and_json_files_are_accepted(tmp_path):
    path = tmp_path / "hp.json"
    path.write_text(json.dumps({"agent": {"alpha": 0.25}, "trainer": {"checkpoints_to_keep": 2}}))
    hp = build_hyperparameters("linucb", str(path))
    assert hp.agent["alpha"] == 0.25
    assert hp.trainer.checkpoints_to_keep == 2


def test_later_settings_override_the_json():
    hp = build_hyperparameters("linucb", '{"action_space": [4]}', action_space=[16])
    assert hp.actions.action_space == [16]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ('{"alpha": ', "not valid JSON"),
        ("[1, 2]", "neither a JSON object nor an existing file"),
        ('{"alpha": "wide"}', "'alpha' input should be a valid number"),
        ('{"learning_rate": 0.1}', "unknown hyperparameter 'learning_rate'; known keys are"),
        ('{"agent": {"gamma": 1}}', r"unknown hyperparameter 'agent.gamma'"),
        ('{"action_space": [0]}', "'actions.action_space.0' input should be greater than 0"),
        ("no-such-file.json", "neither a JSON object nor an existing file"),
    ],
)
def test_bad_overrides_say_what_is_wrong(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_hyperparameters("linucb", overrides)


def test_unknown_agent_lists_the_registry():
    with pytest.raises(ConfigError, match=r"unknown agent 'dqn'; choose one of \["):
        build_hyperparameters("dqn")


def test_use_case_settings_fail_early():
    with pytest.raises(ConfigError, match="set the action space"):
        default_hyperparameters("linucb").require_use_case()
    with pytest.raises(ConfigError, match="set the context columns"):
        build_hyperparameters("linucb", action_space=[2]).require_use_case()
    with pytest.raises(ConfigError, match=r"categorical column\(s\) \['b'\] are not among the columns"):
        build_hyperparameters("linucb", action_space=[2], columns=["a"], categorical_columns=["b"]).require_use_case()


def test_hyperparameters_round_trip_through_their_file(tmp_path):
    hp = build_hyperparameters("thompson", '{"scale": 0.5}', action_space=[2, 2], columns=["a"], seed=7)
    hp.save(tmp_path / "hyperparameters.json")
    assert Hyperparameters.load(tmp_path / "hyperparameters.json") == hp


def test_loading_checks_the_agents_settings(tmp_path):
    hp = build_hyperparameters("linucb", action_space=[2], columns=["a"])
    data = hp.model_dump(mode="json")
    data["agent"]["alpha"] = "wide"
    (tmp_path / "hyperparameters.json").write_text(json.dumps(data))
    assert Hyperparameters.load(tmp_path / "hyperparameters.json").agent["alpha"] == "wide"  # config stays generic
    with pytest.raises(ConfigError, match="agent: 'alpha' input should be a valid number"):
        load_hyperparameters(tmp_path / "hyperparameters.json")
