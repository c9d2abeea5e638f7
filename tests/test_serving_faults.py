"""Faults under load against a real `nextbest serve`: PostgreSQL killed, the SQLite disk full, the learner killed
mid-round, a corrupt newest checkpoint. Clients see errors (503 JSON), never wrong answers or hangs; nothing
acknowledged is lost; service resumes by itself once the fault is repaired. The scenarios live in tests/faults.py
(benchmarks/bench_faults.py measures the same ones); `kill -9` of the server is tests/test_serving_http.py's."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import pytest
from faults import CONTEXT, LEARNER, corrupt_checkpoint, database_killed, disk_full, experiment, learner_killed
from servers import free_port

from nextbest.agents.settings import load_hyperparameters
from nextbest.serving.events import EventStore, StoreUnavailable
from nextbest.serving.service import DecisionRequest, ServedExperiment

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return experiment(tmp_path_factory.mktemp("template"))  # `nextbest init` once: a copy per test


@pytest.fixture
def shop(template, tmp_path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "shop"))


def store_error(answer: dict, store: str) -> None:
    """A 503 body: JSON naming the store (password hidden) and no field."""
    assert answer["field"] is None and answer["error"].startswith(f"event store {store}") and "unavailable" in answer["error"]


def test_postgresql_killed_under_load_answers_503_loses_nothing_and_recovers_by_itself(shop, tmp_path):
    record = database_killed(shop, tmp_path / "pg", load_seconds=1.0, outage_seconds=1.5)
    assert set(record["clients_saw"]) == {"200", "503"}, record["clients_saw"]  # errors, not wrong answers, not silence
    assert record["slowest_answer_seconds"] < 5  # no hang while the database is down
    store_error(record["error"], "postgresql+psycopg://postgres:***@")
    assert record["status_route"] == 503
    store_error(record["status_route_error"], "postgresql+psycopg://postgres:***@")
    assert record["lost"] == 0 and record["acknowledged"] > 0
    assert record["recover_seconds"] is not None and record["recover_seconds"] < 10  # the writer thread lived on


def test_a_full_sqlite_disk_answers_503_keeps_answering_reads_and_recovers(shop):
    record = disk_full(shop, load_seconds=0.5, full_seconds=1.0)
    assert set(record["clients_saw"]) == {"200", "503"}, record["clients_saw"]
    assert record["error_status"] == 503 and "database or disk is full" in record["error"]["error"]
    store_error(record["error"], "sqlite:///")
    assert record["status_route"] == 200  # reads go on while writes are refused
    assert record["lost"] == 0 and record["stored_unacknowledged"] == 0
    assert record["recover_seconds"] is not None and record["recover_seconds"] < 5 and record["writer_alive"]


def test_a_learner_killed_mid_round_trains_each_joined_event_once(shop):
    record = learner_killed(shop, kills=1, pause=0.02)
    assert record["clients_saw"] == {"200": record["requests"]}  # serving never noticed
    assert record["lost"] == 0 and record["joined"] == record["acknowledged"]
    assert record["trained"] == record["learner_trained"] == record["checkpoint_examples"] == record["joined"]
    assert record["rounds_contiguous"] and record["rounds"] == record["rounds_with_events"]


def test_a_corrupt_newest_checkpoint_keeps_serving_the_previous_one_and_the_learner_refuses(shop):
    record = corrupt_checkpoint(shop)
    assert record["clients_saw"] == {"200": record["requests"]} and record["lost"] == 0
    assert record["served_after_corruption"] == record["served_after_damaged_newer"] == record["served"]
    assert len(record["server_log"]) == 1 and "still serving" in record["server_log"][0]  # said once, not every refresh
    refusal = record["learner_refusal"]
    assert f"{record['served']}: unreadable checkpoint" in refusal and "Restore that file" in refusal
    assert record["recover_seconds"] < 10


def test_nextbest_learn_refuses_a_damaged_checkpoint_with_exit_code_2(shop, run_cli):
    store = EventStore.sqlite(str(shop / "events.sqlite"))
    served = ServedExperiment("shop", shop, store, load_hyperparameters(shop / "hyperparameters.json").serving)

    async def decide_and_react() -> None:
        for decision in await served.decide(DecisionRequest([CONTEXT] * LEARNER["learner_batch_size"])):
            await served.react(decision.event_id, 1)
        await served.close()

    asyncio.run(decide_and_react())
    trained = run_cli("learn", shop, "--once")
    named = store.learner_state("shop")["checkpoint"]
    store.close()
    assert trained.exit_code == 0 and f"shop: trained a round, checkpoint {named}" in trained.stdout
    (shop / "checkpoints" / named).write_bytes(b"\x00" * 64)  # the checkpoint that holds the trained events
    refused = run_cli("learn", shop)
    said = " ".join(refused.output.split())  # one red line, however the terminal wraps it
    assert refused.exit_code == 2 and "the learner of 'shop' cannot resume" in said and f"{named}: unreadable checkpoint" in said


def test_a_store_error_names_the_database_without_its_password():
    url = f"postgresql+psycopg://nextbest:s3cret-pw@127.0.0.1:{free_port()}/events"  # nothing listens there
    with pytest.raises(StoreUnavailable) as refused:
        EventStore(url)
    assert "postgresql+psycopg://nextbest:***@127.0.0.1" in str(refused.value) and "s3cret-pw" not in str(refused.value)


def test_the_event_writer_outlives_a_caller_that_gave_up(tmp_path):
    store = EventStore.sqlite(str(tmp_path / "events.sqlite"))
    try:
        release = threading.Event()
        blocking = store.submit(lambda connection: release.wait(10))
        abandoned = store.submit(lambda connection: "stored anyway")
        assert abandoned.cancel()  # the caller gave up while its write waited in the queue
        release.set()
        assert blocking.result(10) is True
        assert store.submit(lambda connection: "next").result(10) == "next"
    finally:
        store.close()
