"""The event store on SQLite and on a real PostgreSQL (pgserver, started and stopped here)."""

from __future__ import annotations

import threading

import pytest
from servers import postgres

from nextbest.serving.events import Decision, EventConflict, EventNotFound, EventStore

WAIT = 10.0


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    with postgres(tmp_path_factory.mktemp("postgres")) as url:  # one server for the module, stopped after it
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'events.sqlite'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    store = EventStore(url)
    experiment = f"exp-{request.node.name}"  # one PostgreSQL serves every test of the module
    yield store, experiment
    store.close()


def react(store: EventStore, *args, **kwargs):
    """A reaction, waited for until committed."""
    return store.record_reaction(*args, **kwargs).result()


def decision(i: int, *, deferred: bool = False, at: float = 100.0) -> Decision:
    return Decision(f"e{i}", {"device": "mobile", "basket": 12.5}, [i % 3], 0.5, -0.6931, 0.1, 1000 + i, "checkpoint-000001.pt",
                    deferred=deferred, decided_at=at)


def test_a_repeated_request_returns_the_stored_decisions_and_stores_nothing_twice(store):
    store, x = store
    first = store.record_decisions(x, [decision(0), decision(1)])
    retry = store.record_decisions(x, [decision(1, at=999.0), decision(2)])
    assert retry[0].decided_at == 100.0 and retry[0] == first[1]
    assert store.counts(x, wait_seconds=WAIT)["logged"] == 3


def test_a_batch_with_a_repeated_event_id_is_refused_whole(store):
    store, x = store
    with pytest.raises(EventConflict, match="'e0' appears more than once"):
        store.record_decisions(x, [decision(0), decision(0)])
    assert store.counts(x, wait_seconds=WAIT)["logged"] == 0


def test_earliest_accepts_the_same_reaction_once_and_refuses_a_different_one(store):
    store, x = store
    store.record_decisions(x, [decision(0)])
    assert react(store, x, "e0", 1.0, now=101).status == "joined"
    assert react(store, x, "e0", 1.0, now=102).status == "repeated"
    with pytest.raises(EventConflict, match="already has the reaction 1; 0 differs"):
        react(store, x, "e0", 0.0, now=103)
    assert [r.event_id for r in store.to_train(x)] == ["e0"]


def test_an_unknown_event_is_not_found(store):
    store, x = store
    with pytest.raises(EventNotFound, match="no event 'missing'"):
        react(store, x, "missing", 1)


def test_sum_adds_reactions_inside_the_wait_and_joins_when_it_ends(store):
    store, x = store
    store.record_decisions(x, [decision(0)])
    react(store, x, "e0", 2, aggregation="sum", wait_seconds=WAIT, now=101)
    react(store, x, "e0", 3, aggregation="sum", wait_seconds=WAIT, now=105)
    assert store.to_train(x) == []
    assert store.expire(x, wait_seconds=WAIT, now=111) == 1
    assert react(store, x, "e0", 4, aggregation="sum", wait_seconds=WAIT, now=112).status == "late"
    (row,) = store.to_train(x)
    assert row.reaction == 5 and row.reactions == 2 and row.late_reactions == 1


def test_a_late_reaction_is_counted_and_never_learned_from(store):
    store, x = store
    store.record_decisions(x, [decision(0), decision(1)])
    assert store.expire(x, wait_seconds=WAIT, now=111) == 2
    assert react(store, x, "e0", 1, wait_seconds=WAIT, now=120).status == "late"
    counts = store.counts(x, wait_seconds=WAIT)
    assert counts["expired"] == 2 and counts["late_reactions"] == 1
    assert all(r.reaction is None for r in store.to_train(x))  # both join with the default reward


def test_a_deferred_decision_is_learned_from_only_once_activated(store):
    store, x = store
    store.record_decisions(x, [decision(0, deferred=True), decision(1, deferred=True)])
    assert react(store, x, "e0", 1, now=150).status == "waiting_activation"
    assert store.expire(x, wait_seconds=WAIT, now=1000) == 0  # never activated: never joins
    store.activate(x, "e0", now=1001).result()
    assert [r.event_id for r in store.to_train(x)] == ["e0"]
    assert store.counts(x, wait_seconds=WAIT)["not_activated"] == 1


def test_a_round_marks_its_events_trained_exactly_once(store):
    store, x = store
    store.record_decisions(x, [decision(i) for i in range(4)])
    store.expire(x, wait_seconds=WAIT, now=200)
    rows = store.to_train(x, limit=3)
    store.commit_round(x, [r.event_id for r in rows], 1, "checkpoint-000002.pt")
    assert store.learner_state(x) == {"round": 1, "checkpoint": "checkpoint-000002.pt", "trained": 3}
    assert [r.event_id for r in store.to_train(x)] == ["e3"]
    with pytest.raises(EventConflict, match="not waiting to be trained"):  # a second learner replaying round 1's events
        store.commit_round(x, [r.event_id for r in rows], 2, "checkpoint-000003.pt")
    assert store.learner_state(x)["round"] == 1
    with pytest.raises(EventConflict, match="round 1 committed after round 1"):
        store.commit_round(x, ["e3"], 1, "checkpoint-000003.pt")


def test_concurrent_writers_share_commits_and_lose_nothing(store):
    store, x = store
    threads = [threading.Thread(target=lambda k=k: [store.record_decisions(x, [decision(k * 100 + i)]) for i in range(50)])
               for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.counts(x, wait_seconds=WAIT)["logged"] == 400
