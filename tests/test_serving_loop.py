"""The whole live loop over HTTP: optimus-poc's customers against `nextbest serve` with its learner, then
`nextbest events export` and `nextbest ope` on that traffic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from servers import server

from nextbest.envs import make_scenario
from nextbest.serving.play import play
from nextbest.training.simulate import scenario_experiment

pytestmark = pytest.mark.slow


def test_the_default_agent_learns_through_the_server_and_its_traffic_evaluates_off_policy(tmp_path, run_cli):
    directory = tmp_path / "poc"
    scenario_experiment("optimus-poc", directory=directory, seed=0).close()
    with server(directory) as (url, _):
        result = play("optimus-poc", url, "poc", examples=3000, batch_size=500, seed=0)
    assert result.final_score >= 0.9, [round(b.normalized_score, 3) for b in result.batches]

    exported = tmp_path / "events.parquet"
    assert run_cli("events", "export", directory, "--output", exported).exit_code == 0
    logs = pd.read_parquet(exported)
    assert len(logs) == 3000 and logs["event_id"].is_unique  # held-out scoring decisions were never activated
    world = make_scenario("optimus-poc")
    truth = world.expected_rewards(logs[world.columns])[np.arange(len(logs)), logs["action"].to_numpy()].mean()
    answer = run_cli("ope", exported, "--target-experiment", directory, "--estimators", "snips,dr", "--json", tmp_path / "ope.json")
    assert answer.exit_code == 0, answer.output
    report = json.loads((tmp_path / "ope.json").read_text())
    logging = report["logging_policy"]  # the served (learning) policy: its true value is the oracle's mean over the logs
    assert logging["ci_low"] <= truth <= logging["ci_high"], (logging, truth)
    dr = report["estimators"]["dr"]  # and the greedy target's estimate is finite with an interval around it
    assert dr["ci_low"] <= dr["estimate"] <= dr["ci_high"]
