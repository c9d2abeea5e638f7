"""`nextbest serve` as a real uvicorn process on 127.0.0.1 and a free port: the API, bad input, learning, kill -9.

Every server is started by the test that uses it and stopped by its process id, whatever happens.
"""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from servers import make_experiment, postgres, server

from nextbest.serving.events import EventStore

pytestmark = pytest.mark.slow


def context(device: str = "mobile", basket: float = 20.0) -> dict:
    return {"device": device, "basket": basket}


@pytest.fixture
def shop(tmp_path) -> Path:
    return make_experiment(tmp_path)


def test_decide_react_and_status_through_http(shop):
    with server(shop) as (url, _):
        with httpx.Client(base_url=url) as client:
            answer = client.post("/v1/experiments/shop/decisions", json={"contexts": [context(), context("desktop", 3.0)]})
            assert answer.status_code == 200
            decisions = answer.json()["decisions"]
            assert len(decisions) == 2 and {"event_id", "action", "probability", "log_probability", "value",
                                            "checkpoint"} <= decisions[0].keys()
            assert math.isclose(decisions[0]["probability"], math.exp(decisions[0]["log_probability"]))
            reaction = client.post(f"/v1/experiments/shop/events/{decisions[0]['event_id']}/reaction", json={"reaction": 1})
            assert reaction.json() == {"event_id": decisions[0]["event_id"], "status": "joined"}
            status = client.get("/v1/experiments/shop").json()
            assert status["agent"] == "linucb" and status["events"]["logged"] == 2 and status["events"]["joined"] == 1
            assert "nextbest_events" in client.get("/metrics").text


def test_a_retry_with_the_same_event_ids_gets_the_stored_decisions(shop):
    with server(shop) as (url, _), httpx.Client(base_url=url) as client:
        body = {"contexts": [context(), context("desktop")], "event_ids": ["a-1", "a-2"]}
        first = client.post("/v1/experiments/shop/decisions", json=body).json()
        again = client.post("/v1/experiments/shop/decisions", json=body).json()
        assert first == again
        assert client.get("/v1/experiments/shop").json()["events"]["logged"] == 2


def test_excluded_actions_never_come_out_and_the_probability_is_renormalized(shop):
    with server(shop) as (url, _), httpx.Client(base_url=url) as client:
        contexts = [context() | {"excluded_actions": [0, 1, 2]}, context() | {"excluded_actions": [3]}]
        decisions = client.post("/v1/experiments/shop/decisions", json={"contexts": contexts * 20}).json()["decisions"]
        assert all(d["action"] == 3 and d["probability"] == 1.0 for d in decisions[::2])
        assert all(d["action"] != 3 and math.isclose(d["probability"], 1 / 3) for d in decisions[1::2])  # untrained: uniform


@pytest.mark.parametrize(("contexts", "status", "field"), [
    ([context(), {"device": "mobile"}], 422, "contexts[1].basket"),
    ([context() | {"colour": "red"}], 422, "contexts[0].colour"),
    ([context("fridge")], 422, "contexts[0].device"),
    ([context(basket="cheap")], 422, "contexts[0].basket"),
    ([context(basket=None)], 422, "contexts[0].basket"),
    ([context() | {"excluded_actions": [7]}], 422, "contexts[0].excluded_actions"),
    ([], 422, "contexts"),
    ("mobile", 422, "contexts"),
])
def test_bad_input_is_a_4xx_naming_the_field_and_stores_nothing(shop, contexts, status, field):
    with server(shop) as (url, _), httpx.Client(base_url=url) as client:
        answer = client.post("/v1/experiments/shop/decisions", json={"contexts": contexts})
        assert answer.status_code == status and answer.json()["field"] == field, answer.text
        assert client.get("/v1/experiments/shop").json()["events"]["logged"] == 0


def test_unknown_names_oversized_bodies_and_conflicts(shop):
    with server(shop, args=("--max-body-bytes", "2000")) as (url, _), httpx.Client(base_url=url) as client:
        assert client.post("/v1/experiments/elsewhere/decisions", json={"contexts": [context()]}).status_code == 404
        assert client.post("/v1/experiments/shop/events/nope/reaction", json={"reaction": 1}).status_code == 404
        assert client.post("/v1/experiments/shop/decisions", json={"contexts": [context()] * 100}).status_code == 413
        nan = client.post("/v1/experiments/shop/decisions", content=b'{"contexts": [{"device": "mobile", "basket": NaN}]}',
                          headers={"content-type": "application/json"})
        assert nan.status_code == 422, nan.text
        event = client.post("/v1/experiments/shop/decisions", json={"contexts": [context()]}).json()["decisions"][0]["event_id"]
        assert client.post(f"/v1/experiments/shop/events/{event}/reaction", json={"reaction": 1}).status_code == 200
        assert client.post(f"/v1/experiments/shop/events/{event}/reaction", json={"reaction": 1}).json()["status"] == "repeated"
        assert client.post(f"/v1/experiments/shop/events/{event}/reaction", json={"reaction": 0}).status_code == 409
        assert client.post(f"/v1/experiments/shop/events/{event}/reaction", json={"reaction": "maybe"}).status_code == 422
        lost = client.get("/v2/experiments/shop")  # no such route: the API's error form too, not FastAPI's {"detail"}
        assert lost.status_code == 404 and lost.json() == {
            "error": "GET /v2/experiments/shop: not found; the routes are listed at /docs", "field": None}
        wrong = client.delete("/healthz")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET" and wrong.json()["error"].startswith("DELETE /healthz")


def test_the_learner_trains_while_serving_and_the_new_checkpoint_decides_within_seconds(tmp_path):
    shop = make_experiment(tmp_path, overrides={"learner_batch_size": 100, "learner_interval_seconds": 60})
    with server(shop) as (url, _), httpx.Client(base_url=url) as client:
        first = client.post("/v1/experiments/shop/decisions", json={"contexts": [context()] * 100}).json()["decisions"]
        for decision in first[:-1]:
            client.post(f"/v1/experiments/shop/events/{decision['event_id']}/reaction", json={"reaction": 1})
        assert client.get("/v1/experiments/shop").json()["learner"]["trained"] == 0  # 99 joined: no round yet
        started = time.monotonic()
        client.post(f"/v1/experiments/shop/events/{first[-1]['event_id']}/reaction", json={"reaction": 0})
        trained_by = None
        while time.monotonic() - started < 10:
            learner = client.get("/v1/experiments/shop").json()["learner"]
            decision = client.post("/v1/experiments/shop/decisions", json={"contexts": [context()]}).json()["decisions"][0]
            if learner["trained"] == 100 and decision["checkpoint"] == learner["checkpoint"]:
                trained_by = decision["checkpoint"]
                break
            time.sleep(0.05)
        refresh = time.monotonic() - started
        assert trained_by is not None and refresh < 5.0, f"no decision by the trained checkpoint after {refresh:.1f} s"


def test_kill_9_under_load_loses_no_acknowledged_decision(shop):
    acknowledged: list[str] = []
    with server(shop) as (url, process), httpx.Client(base_url=url, timeout=5) as client:
        for i in range(60):
            if i == 40:
                os.kill(process.pid, signal.SIGKILL)  # the server this test started, by its id
            try:
                answer = client.post("/v1/experiments/shop/decisions", json={"contexts": [context()], "event_ids": [f"k{i}"]})
            except httpx.TransportError:
                continue
            if answer.status_code == 200:
                acknowledged.append(answer.json()["decisions"][0]["event_id"])
    assert len(acknowledged) >= 40
    store = EventStore.sqlite(str(shop / "events.sqlite"))
    try:
        stored = {row.event_id for row in store.rows("shop", joined_only=False)}
    finally:
        store.close()
    assert set(acknowledged) <= stored
    with server(shop) as (url, _), httpx.Client(base_url=url) as client:  # restarts on the same store
        assert client.get("/v1/experiments/shop").json()["events"]["logged"] == len(stored)


def test_apprentice_mode_serves_the_baseline_and_reports_agreement(tmp_path):
    shop = make_experiment(tmp_path, overrides={"mode": "apprentice"})
    with server(shop) as (url, _), httpx.Client(base_url=url) as client:
        missing = client.post("/v1/experiments/shop/decisions", json={"contexts": [context()]})
        assert missing.status_code == 422 and missing.json()["field"] == "contexts[0].baseline_action"
        answer = client.post("/v1/experiments/shop/decisions", json={"contexts": [context() | {"baseline_action": b}
                                                                                   for b in (0, 1, 2, 3) * 5]})
        decisions = answer.json()["decisions"]
        assert [d["action"] for d in decisions] == [0, 1, 2, 3] * 5 and all(d["probability"] == 1.0 for d in decisions)
        agreed = sum(d["agent_action"] == [d["action"]] for d in decisions)
        assert client.get("/v1/experiments/shop").json()["apprentice_agreement"] == pytest.approx(agreed / 20)


def test_two_worker_processes_on_postgresql_store_every_decision_once(shop, tmp_path):
    with postgres(tmp_path / "pg") as database:
        with server(shop, args=("--workers", "2", "--database-url", database)) as (url, _):
            with httpx.Client(base_url=url) as client:
                ids = [f"w{i}" for i in range(120)]
                for start in range(0, 120, 3):  # new connections spread over both workers
                    body = {"contexts": [context()] * 3, "event_ids": ids[start : start + 3]}
                    with httpx.Client(base_url=url) as fresh:
                        assert fresh.post("/v1/experiments/shop/decisions", json=body).status_code == 200
                retry = client.post("/v1/experiments/shop/decisions", json={"contexts": [context()] * 3, "event_ids": ids[:3]})
                assert retry.status_code == 200
                assert client.get("/v1/experiments/shop").json()["events"]["logged"] == 120
