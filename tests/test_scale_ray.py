"""nextbest on Ray, in local mode, against the single-process commands: batch scoring, many seeds, sweeps, served
replicas. One small local Ray serves every test of this module (the two-node cluster: tests/test_scale_cluster.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]' (make test installs it)")

from nextbest.envs import make_scenario  # noqa: E402
from nextbest.training.simulate import scenario_experiment  # noqa: E402

SCENARIO = "optimus-poc"


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One Ray for the module: 2 CPUs, a 200 MB object store, no dashboard, its files under a short /tmp path."""
    temp = tempfile.mkdtemp(prefix="nbr", dir="/tmp")
    ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, _temp_dir=temp,
             logging_level="ERROR", log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An experiment of the default agent on optimus-poc after one training round (a checkpoint to score with)."""
    directory = tmp_path_factory.mktemp("scale") / "exp"
    world = make_scenario(SCENARIO)
    experiment = scenario_experiment(world, directory=directory, seed=0)
    rng = np.random.default_rng(0)
    customers = world.sample_contexts(400, rng)
    predictions = experiment.predict(customers, seed=0)
    predictions["reaction"] = world.sample_reactions(customers, experiment.action_space.read(predictions), rng)
    experiment.train(predictions)
    experiment.close()
    return directory


def contexts_folder(folder, rows: int, seed: int = 1) -> pd.DataFrame:
    """`rows` customers written as two Parquet files of several row groups each; → the whole table in order."""
    table = make_scenario(SCENARIO).sample_contexts(rows, np.random.default_rng(seed))
    folder.mkdir()
    half = rows // 3
    table.iloc[:half].to_parquet(folder / "part-a.parquet", index=False, row_group_size=170)
    table.iloc[half:].to_parquet(folder / "part-b.parquet", index=False, row_group_size=450)
    return table


# --- batch scoring ------------------------------------------------------------------------------------
def test_ray_scoring_gives_the_single_process_predictions_row_for_row(run_cli, trained, tmp_path):
    table = contexts_folder(tmp_path / "in", 1500)
    table.to_parquet(tmp_path / "all.parquet", index=False)
    single = run_cli("predict", trained, "--contexts", tmp_path / "all.parquet", "--output", tmp_path / "one.parquet", "--seed", "7")
    assert single.exit_code == 0, single.output
    result = run_cli("predict", trained, "--contexts", tmp_path / "in", "--output", tmp_path / "out", "--seed", "7",
                     "--ray", "--batch-size", "200")
    assert result.exit_code == 0, result.output
    assert "wrote 1500 predictions" in result.stdout
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files[0] == "part-000000000000.parquet" and len(files) >= 4  # several batches, named by their first row
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out"), pd.read_parquet(tmp_path / "one.parquet"))


def test_ray_scoring_keeps_the_tables_own_prediction_seeds(run_cli, trained, tmp_path):
    table = make_scenario(SCENARIO).sample_contexts(300, np.random.default_rng(2))
    table["prediction_seed"] = np.random.default_rng(3).permutation(10_000)[:300]
    table.to_parquet(tmp_path / "seeded.parquet", index=False)
    assert run_cli("predict", trained, "--contexts", tmp_path / "seeded.parquet", "--output", tmp_path / "a.parquet").exit_code == 0
    result = run_cli("predict", trained, "--contexts", tmp_path / "seeded.parquet", "--output", tmp_path / "b", "--ray",
                     "--batch-size", "64", "--workers", "1")
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b"), pd.read_parquet(tmp_path / "a.parquet"))


def test_ray_scoring_refuses_bad_input_with_one_line(run_cli, trained, tmp_path):
    table = contexts_folder(tmp_path / "in", 600)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "old.parquet").write_bytes(b"x")
    result = run_cli("predict", trained, "--contexts", tmp_path / "in", "--output", tmp_path / "taken", "--ray")
    assert result.exit_code == 2 and "taken: already exists; expected a new (or empty) folder" in result.stderr

    table.drop(columns=["device"]).to_parquet(tmp_path / "in" / "part-c.parquet", index=False)
    result = run_cli("predict", trained, "--contexts", tmp_path / "in", "--output", tmp_path / "o1", "--ray")
    assert result.exit_code == 2 and "part-c.parquet: missing column(s) ['device']" in result.stderr
    (tmp_path / "in" / "part-c.parquet").unlink()

    broken = table.copy()
    broken.loc[450, "basket_value"] = np.nan  # read and found by a scoring actor, not by the driver
    broken.to_parquet(tmp_path / "bad.parquet", index=False)
    result = run_cli("predict", trained, "--contexts", tmp_path / "bad.parquet", "--output", tmp_path / "o2", "--ray",
                     "--batch-size", "100", "--workers", "1")
    assert result.exit_code == 2, result.output
    assert "rows 401–500" in result.stderr and "column 'basket_value' is empty in row 51" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "o2").exists()  # nothing under the output's name

    result = run_cli("predict", trained, "--contexts", tmp_path / "nowhere", "--output", tmp_path / "o3", "--ray")
    assert result.exit_code == 2 and "nowhere: no such file or folder" in result.stderr


def scoring_workers() -> list:
    import psutil

    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if "MapBatches(Scorer)" in " ".join(process.cmdline()):
                found.append(process)
        except psutil.Error:  # gone, or a zombie, meanwhile
            pass
    return found


def test_a_scoring_worker_killed_mid_job_loses_and_doubles_no_row(trained, tmp_path):
    from nextbest.scale.scoring import score_parquet
    from nextbest.training.experiment import Experiment

    table = contexts_folder(tmp_path / "in", 3000)
    reference = Experiment.open(trained).predict(table, seed=3)
    outcome: dict = {}
    job = threading.Thread(target=lambda: outcome.update(result=score_parquet(
        trained, tmp_path / "in", tmp_path / "out", seed=3, batch_size=50, workers=2)))
    job.start()
    deadline = time.monotonic() + 180  # Ray's start-up alone can take a minute on a busy machine
    killed = None
    while killed is None and job.is_alive() and time.monotonic() < deadline:
        staged = list(tmp_path.glob(".out.partial-*/part-*.parquet"))
        workers = scoring_workers()
        if len(staged) >= 3 and workers:  # part of the job is done, the rest is still to score
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    job.join(180)
    assert killed is not None, "the job ended before a worker could be killed"
    assert outcome["result"].rows == 3000
    out = pd.read_parquet(tmp_path / "out")
    assert out["prediction_seed"].tolist() == list(range(3, 3003))  # every row once, in order
    pd.testing.assert_frame_equal(out, reference)


# --- many seeds -------------------------------------------------------------------------------------
def test_seeds_on_ray_give_the_serial_runs_and_their_median(run_cli, tmp_path):
    common = ("simulate", "--scenario", SCENARIO, "--agent", "linucb", "--examples", "600", "--batch-size", "200",
              "--seeds", "0-2", "--quiet")
    serial = run_cli(*common, "--json", tmp_path / "serial.json")
    on_ray = run_cli(*common, "--ray", "--json", tmp_path / "ray.json", "--figure", tmp_path / "curves.png")
    assert serial.exit_code == 0 and on_ray.exit_code == 0, serial.output + on_ray.output
    a, b = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("serial", "ray"))
    for run_a, run_b in zip(a["runs"], b["runs"]):
        assert [x["normalized_score"] for x in run_a["batches"]] == [x["normalized_score"] for x in run_b["batches"]]
    alone = run_cli("simulate", "--scenario", SCENARIO, "--agent", "linucb", "--examples", "600", "--batch-size", "200",
                    "--seed", "1", "--quiet", "--json", tmp_path / "one.json")
    assert alone.exit_code == 0
    one = json.loads((tmp_path / "one.json").read_text())  # seed 1 alone: the same run as seed 1 of the three
    assert [x["normalized_score"] for x in one["batches"]] == [x["normalized_score"] for x in b["runs"][1]["batches"]]
    finals = sorted(run["final_normalized_score"] for run in b["runs"])
    assert b["seeds"] == [0, 1, 2] and b["final_median_score"] == finals[1]
    assert (b["final_low"], b["final_high"]) == (finals[0], finals[2])
    assert (tmp_path / "curves.png").stat().st_size > 10_000


def test_seeds_refuse_a_bad_range(run_cli):
    result = run_cli("simulate", "--seeds", "5-2", "--ray")
    assert result.exit_code == 2 and "--seeds '5-2': expected a range such as 0-9" in result.stderr
    result = run_cli("simulate", "--ray")
    assert result.exit_code == 2 and "give --seeds" in result.stderr


# --- sweeps -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_tune_on_ray_scores_each_trial_as_the_serial_run_and_asha_stops_some(run_cli, tmp_path):
    common = ("tune", "--scenario", SCENARIO, "--agents", "linucb,epsilon-greedy", "--examples", "400", "--batch-size", "100",
              "--num-samples", "6", "--quiet")
    serial = run_cli(*common, "--output", tmp_path / "serial.json", "--json", tmp_path / "serial-all.json")
    on_ray = run_cli(*common, "--output", tmp_path / "best.json", "--json", tmp_path / "ray-all.json", "--ray")
    assert serial.exit_code == 0 and on_ray.exit_code == 0, serial.output + on_ray.output
    a, b = (json.loads((tmp_path / name).read_text())["trials"] for name in ("serial-all.json", "ray-all.json"))
    assert [t["settings"] for t in a] == [t["settings"] for t in b]
    for full, scheduled in zip(a, b):  # ASHA only cuts a trial short: the scores it saw are the serial run's
        assert scheduled["scores"] == full["scores"][: len(scheduled["scores"])]
    assert all(t["complete"] for t in a) and not all(t["complete"] for t in b)
    best = json.loads((tmp_path / "best.json").read_text())
    top = max((t for t in b if t["complete"]), key=lambda t: t["score"])
    assert best == {"agent_name": top["agent"], "agent": top["settings"]}
    assert max(t["score"] for t in a if t["complete"]) >= top["score"]
    assert (tmp_path / "best_trials.png").is_file()
    init = run_cli("init", tmp_path / "exp", "--action-space", "16", "--columns", "browser,device,basket_value,visits_30d,days_since_visit",
                   "--categorical-columns", "browser,device", "--categorical-dimensions", "3,3", "--hyperparameters", tmp_path / "best.json")
    assert init.exit_code == 0, init.output
    assert json.loads((tmp_path / "exp" / "hyperparameters.json").read_text())["agent_name"] == top["agent"]


def test_tune_on_logs_scores_by_the_doubly_robust_estimate(run_cli, tmp_path):
    world = make_scenario(SCENARIO)
    rng = np.random.default_rng(0)
    logs = world.sample_contexts(1500, rng)
    logs["action"] = rng.integers(0, 16, len(logs))
    logs["reward"] = world.sample_reactions(logs[world.columns], logs[["action"]].to_numpy(), rng)
    logs["logging_probability"] = 1 / 16
    logs.to_parquet(tmp_path / "logs.parquet", index=False)
    result = run_cli("tune", "--logs", tmp_path / "logs.parquet", "--agents", "linucb", "--examples", "1000", "--batch-size", "250",
                     "--num-samples", "2", "--output", tmp_path / "best.json", "--json", tmp_path / "all.json", "--quiet")
    assert result.exit_code == 0, result.output
    from nextbest.evaluation.tuning import LogsObjective, plan_trials, run_trial

    objective = LogsObjective(pd.read_parquet(tmp_path / "logs.parquet"), examples=1000, batch_size=250, seed=0)
    expected = [run_trial(t, objective).scores for t in plan_trials(["linucb"], 2, 0)]
    assert [t["scores"] for t in json.loads((tmp_path / "all.json").read_text())["trials"]] == expected
    assert all(len(s) == 5 for s in expected)  # untrained, then after each of 4 batches


def test_tune_needs_one_objective(run_cli, tmp_path):
    result = run_cli("tune", "--output", tmp_path / "b.json")
    assert result.exit_code == 2 and "--scenario S (its oracle) or --logs LOGS" in result.stderr


# --- served replicas ----------------------------------------------------------------------------------
def test_ray_serve_replicas_answer_as_plain_serve_and_commit_to_one_postgresql(trained, tmp_path):
    import asyncio

    import httpx
    from fastapi.testclient import TestClient
    from ray import serve
    from servers import free_port, postgres

    from nextbest.errors import ConfigError
    from nextbest.scale.serve import start_service
    from nextbest.serving.events import EventStore
    from nextbest.serving.server import Deployment

    name = trained.name
    route = f"/v1/experiments/{name}"
    customers = make_scenario(SCENARIO).sample_contexts(24, np.random.default_rng(5)).to_dict("records")
    bad = {"contexts": [customers[0] | {"device": "fridge"}]}
    with postgres(tmp_path / "pg") as database:
        plain = Deployment.build([trained], database)
        try:
            with TestClient(plain.app()) as client:  # what plain `nextbest serve` answers to the bad request
                expected = client.post(f"{route}/decisions", json=bad)
        finally:
            plain.close()
        service = start_service([trained], database, replicas=2, port=free_port(), replica_cpus=0.5)
        try:
            async def decide_all() -> list[dict]:  # concurrent: each replica batches what reaches it
                async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
                    answers = await asyncio.gather(*(client.post(f"{route}/decisions", json={"contexts": customers[i: i + 2]})
                                                     for i in range(0, 24, 2)))
                assert all(a.status_code == 200 for a in answers), answers[0].text
                return [d for a in answers for d in a.json()["decisions"]]

            decisions = asyncio.run(decide_all())
            with httpx.Client(base_url=service.url, timeout=30) as client:
                for decision in decisions[:5]:
                    reacted = client.post(f"{route}/events/{decision['event_id']}/reaction", json={"reaction": 1})
                    assert reacted.json() == {"event_id": decision["event_id"], "status": "joined"}
                refused = client.post(f"{route}/decisions", json=bad)
                assert client.get(route).json()["events"]["logged"] == 24
            assert expected.status_code == 422 and expected.json()["field"] == "contexts[0].device"
            assert (refused.status_code, refused.json()) == (expected.status_code, expected.json())
            assert serve.status().applications["nextbest"].deployments["decisions"].replica_states == {"RUNNING": 2}
            with pytest.raises(ConfigError, match=r"Ray Serve already runs on this Ray cluster \(applications: \['nextbest'\]\)"):
                start_service([trained], database)  # a second one would stop this one's Serve at its end
        finally:
            service.close()
        store = EventStore(database)
        try:
            rows = {row.event_id: row for row in store.rows(name, joined_only=False)}
            assert set(rows) == {d["event_id"] for d in decisions}  # every answered decision committed, once
            assert [json.loads(rows[d["event_id"]].action) for d in decisions] == [[d["action"]] for d in decisions]
            assert [json.loads(rows[d["event_id"]].context) for d in decisions] == customers  # in request order
            assert {e for e, row in rows.items() if row.reaction == 1.0} == {d["event_id"] for d in decisions[:5]}
            assert store.learner_state(name)["checkpoint"] is not None  # the learner actor started: round 0 recorded
        finally:
            store.close()


def test_serve_on_ray_refuses_what_it_cannot_run_with_one_line(run_cli, trained):
    result = run_cli("serve", trained, "--ray")
    assert result.exit_code == 2 and "--ray needs --database-url postgresql+psycopg://" in result.stderr
    result = run_cli("serve", trained, "--ray", "--replicas", "0", "--database-url", "postgresql+psycopg://u@h/db")
    assert result.exit_code == 2 and "--replicas must be at least 1, got 0" in result.stderr
    result = run_cli("serve", trained, "--replicas", "2")
    assert result.exit_code == 2 and "--replicas applies to --ray only; without it use --workers" in result.stderr
    result = run_cli("serve", trained, "--ray", "--workers", "2", "--database-url", "postgresql+psycopg://u@h/db")
    assert result.exit_code == 2 and "--workers applies to plain serve; with --ray use --replicas" in result.stderr
    result = run_cli("serve", trained, "--ray", "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem", "--database-url",
                     "postgresql+psycopg://u@h/db")
    assert result.exit_code == 2 and "with --ray put TLS on the load balancer in front" in result.stderr
