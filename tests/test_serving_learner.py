"""The learner trains each joined event exactly once, even when killed between its checkpoint and its commit."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from nextbest.config import ServingConfig
from nextbest.envs import make_scenario
from nextbest.errors import ExperimentError
from nextbest.serving.events import EventStore
from nextbest.serving.learner import Learner
from nextbest.serving.service import DecisionRequest, ServedExperiment
from nextbest.training.experiment import Experiment
from nextbest.training.simulate import scenario_experiment


@pytest.fixture
def served(tmp_path):
    directory = tmp_path / "poc"
    scenario_experiment("optimus-poc", "linucb", directory).close()
    store = EventStore.sqlite(str(tmp_path / "events.sqlite"))
    settings = ServingConfig(learner_batch_size=50, reward_wait_seconds=600)
    yield directory, store, settings
    store.close()


def decide_and_react(directory, store, settings, n: int, reaction: float = 1.0) -> list[str]:


    served = ServedExperiment("poc", directory, store, settings)
    contexts = make_scenario("optimus-poc").sample_contexts(n, np.random.default_rng(n)).to_dict("records")
    async def run():
        decisions = await served.decide(DecisionRequest(contexts))
        for decision in decisions:
            await served.react(decision.event_id, reaction)
        await served.close()
        return decisions

    decisions = asyncio.run(run())
    return [d.event_id for d in decisions]


def test_a_learner_killed_before_its_commit_resumes_and_trains_each_event_once(served, monkeypatch):
    directory, store, settings = served
    decide_and_react(directory, store, settings, 50)
    crashed = Learner("poc", directory, store, settings)
    crashed.open()
    monkeypatch.setattr(store, "commit_round", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        crashed.step()  # trained and wrote a checkpoint, then died before the database commit
    crashed.close()
    monkeypatch.undo()
    assert store.learner_state("poc")["trained"] == 0 and len(store.to_train("poc")) == 50

    learner = Learner("poc", directory, store, settings)
    learner.open()
    assert learner.experiment.progress.examples == 0  # resumed from round 0's checkpoint, not the orphan
    assert learner.step() is not None
    learner.close()
    state = store.learner_state("poc")
    assert state == {"round": 1, "checkpoint": state["checkpoint"], "trained": 50} and store.to_train("poc") == []
    assert Experiment.open(directory, checkpoint=state["checkpoint"]).progress.examples == 50  # each event once


def test_no_round_before_the_batch_is_full_and_logging_mode_never_trains(served):
    directory, store, settings = served
    decide_and_react(directory, store, settings, 49)
    learner = Learner("poc", directory, store, settings)
    learner.open()
    assert learner.step() is None
    learner.close()
    logging = Learner("poc", directory, store, settings.model_copy(update={"mode": "logging"}))
    decide_and_react(directory, store, settings, 10)
    assert logging.step() is None and store.learner_state("poc")["trained"] == 0


def test_a_second_learner_stands_by_while_the_first_holds_the_experiment(served):
    directory, store, settings = served
    first = Learner("poc", directory, store, settings)
    first.open()
    second = Learner("poc", directory, store, settings)
    second.lock_timeout = 0.2
    with pytest.raises(ExperimentError, match="being written by another writer"):
        second.open()
    first.close()


def test_a_caller_that_gives_up_does_not_cancel_the_others_in_its_batch(served):
    """The decisions of one batch share one insert: cancelling one request (a client gone) leaves the rest stored."""
    directory, store, settings = served
    experiment = ServedExperiment("poc", directory, store, settings)
    contexts = make_scenario("optimus-poc").sample_contexts(3, np.random.default_rng(0)).to_dict("records")

    async def run():
        calls = [asyncio.create_task(experiment.decide(DecisionRequest([c]))) for c in contexts]
        await asyncio.sleep(0)  # all three join one batch
        while experiment.batcher.batches == 0:
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # each call now awaits the batch's shared insert (committing in the writer thread)
        calls[0].cancel()
        kept = await asyncio.gather(calls[1], calls[2])
        await experiment.close()
        return kept

    kept = asyncio.run(run())
    assert experiment.batcher.batches == 1 and experiment.batcher.items == 3
    assert store.counts("poc", wait_seconds=600)["logged"] == 3 and all(len(d) == 1 for d in kept)
