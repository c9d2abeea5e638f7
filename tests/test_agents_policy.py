"""One policy interface for every agent: predictions pinned from before it, excluded actions, snapshots."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from test_ppo_fixtures import one_thread  # noqa: F401  (autouse: one CPU thread, as when the predictions were pinned)

from nextbest.agents import AGENTS, Experience
from nextbest.agents.neural import NeuralBandit
from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import encode
from nextbest.envs import make_scenario
from nextbest.errors import DataError
from nextbest.training.experiment import Experiment
from nextbest.training.simulate import simulate
from nextbest.training.snapshot import LatestSnapshot, load_snapshot

SETTINGS = {"neural": {"members": 3, "max_epochs": 20}, "ppo-tabnet": {"n_epochs": 2}, "ppo-mlp": {"n_epochs": 2}}
SEEDS = np.arange(100, 400)


@pytest.fixture(scope="module")
def world():
    """300 optimus-poc contexts with random actions and conversions, for one action and for two choice sets."""
    scenario = make_scenario("optimus-poc")
    # the encoding the predictions were pinned with: z-scores, by the sample standard deviation (ddof 1)
    schema = scenario.schema("standard")
    sample = scenario.sample_contexts(20_000, np.random.default_rng(12345))
    schema.numeric = {c: s.model_copy(update={"std": float(sample[c].std(ddof=1))}) for c, s in schema.numeric.items()}
    rng = np.random.default_rng(0)
    features = encode(scenario.sample_contexts(300, rng), schema)
    experiences = {}
    for sizes in ((16,), (4, 4)):
        space = ActionSpace(sizes)
        actions = np.stack([rng.integers(0, k, size=300) for k in sizes], axis=1)
        rewards = rng.binomial(1, 0.3, size=300).astype(float)
        experiences[sizes] = Experience(features=features, action=actions, reward=rewards,
                                        log_probability=np.log(np.full(300, 1.0 / space.n_joint)))
    return schema, features, experiences


def _trained(world, name, sizes):
    schema, _, experiences = world
    cls = AGENTS[name]
    agent = cls(schema, ActionSpace(sizes), cls.Config(**SETTINGS.get(name, {})), seed=3)
    agent.update(experiences[sizes])
    return agent


# --- the same seeds give the predictions they gave before the interface changed ---------------------

# After one update: joint actions of the first 8 rows exploring and greedy, log-probabilities of the
# first 3, values of the first 2 (computed with the agents' own act/probabilities before PolicyOutput).
PINNED = {
    ("epsilon-greedy", (16,)): ([3, 6, 2, 7, 2, 15, 14, 3], [3, 6, 2, 7, 2, 15, 14, 3], [-0.11723631013802033, -0.11723631013802033, -0.11723631013802033], [0.9702442257048375, 0.4986691814744749]),
    ("linucb", (16,)): ([3, 1, 2, 7, 15, 15, 9, 3], [3, 6, 2, 7, 2, 15, 14, 3], [-0.01892800988551891, -0.01892800988551891, -0.01892800988551891], [0.9702442257048375, 0.46691219893040387]),
    ("neural", (16,)): ([12, 12, 3, 2, 1, 0, 15, 12], [11, 12, 15, 1, 15, 13, 3, 6], [-1.1149957679186338, -1.1149957679186338, -1.1149957679186338], [0.37510791420936584, 0.5039564967155457]),
    ("ppo-mlp", (16,)): ([6, 12, 9, 8, 2, 1, 11, 11], [15, 15, 15, 15, 15, 15, 15, 9], [-2.74669791067938, -2.857446704002695, -2.6929992203908997], [0.27289384874752665, 0.3792009631821525]),
    ("ppo-tabnet", (16,)): ([6, 12, 9, 8, 2, 1, 11, 11], [15, 10, 10, 2, 2, 2, 6, 15], [-2.6898922744731646, -2.793629979701579, -2.8192317930837434], [0.24074810083538165, 0.19215368281935208]),
    ("random", (16,)): ([6, 12, 9, 8, 2, 1, 11, 11], [6, 12, 9, 8, 2, 1, 11, 11], [-2.772588722239781, -2.772588722239781, -2.772588722239781], [0.0, 0.0]),
    ("thompson", (16,)): ([3, 9, 4, 7, 2, 3, 10, 9], [3, 6, 2, 7, 2, 15, 14, 3], [-0.3750571519367821, -2.5301132426260797, -1.8448438403205103], [0.9702442257048375, 0.1793367192953068]),
    ("linucb", (4, 4)): ([10, 1, 13, 14, 12, 14, 10, 10], [10, 13, 13, 14, 13, 14, 10, 10], [-0.01892800988551891, -0.01892800988551891, -0.01892800988551891], [1.1606637355305034, 0.6800839343307372]),
    ("neural", (4, 4)): ([11, 12, 12, 2, 12, 5, 13, 14], [11, 12, 3, 2, 15, 13, 3, 2], [-1.1149957679186338, -1.1149957679186338, -1.1149957679186338], [0.5441344380378723, 0.6879385113716125]),
    ("ppo-mlp", (4, 4)): ([6, 13, 8, 9, 3, 2, 13, 11], [14, 14, 14, 14, 14, 14, 14, 14], [-2.7097985833287286, -2.5529125876588012, -2.9463175312502257], [0.32006080236711054, 0.3132262307861287]),
    ("ppo-tabnet", (4, 4)): ([6, 13, 8, 9, 3, 2, 13, 11], [15, 14, 14, 14, 14, 14, 14, 14], [-2.8093217474394745, -2.6663855565409005, -2.851443019442134], [0.24435332665517, 0.039093569453378024]),
}


@pytest.mark.parametrize(("name", "sizes"), sorted(PINNED))
def test_same_seeds_give_the_predictions_pinned_before_the_policy_interface(world, name, sizes):
    agent = _trained(world, name, sizes)
    features = world[1]
    space = agent.action_space
    actions, greedy_actions, log_probabilities, values = PINNED[name, sizes]
    prediction = agent.act(features, SEEDS)
    greedy = agent.act(features, SEEDS, greedy=True)
    assert space.to_joint(prediction.action)[:8].tolist() == actions
    assert space.to_joint(greedy.action)[:8].tolist() == greedy_actions
    tolerance = 1e-12 if name in ("epsilon-greedy", "linucb", "random", "thompson") else 1e-6  # float32 networks
    np.testing.assert_allclose(prediction.log_probability[:3], log_probabilities, rtol=tolerance)
    np.testing.assert_allclose(prediction.value[:2], values, rtol=tolerance)


def test_neural_bandit_leaves_the_process_random_state_alone(world):
    schema = world[0]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    NeuralBandit(schema, ActionSpace((16,)), seed=7)
    assert torch.equal(torch.rand(3), expected)


# --- excluded actions ---------------------------------------------------------------------------


def _masks(n: int, per_choice: bool, rng: np.random.Generator):
    """→ (the `excluded` argument, the (n, 16) joint mask it means); the first 50 rows exclude nothing."""
    if per_choice:
        masks = [rng.random((n, 4)) < 0.4 for _ in range(2)]
        for mask in masks:
            mask[np.arange(n), rng.integers(0, 4, n)] = False
            mask[:50] = False
        return masks, (masks[0][:, :, None] | masks[1][:, None, :]).reshape(n, 16)
    mask = rng.random((n, 16)) < 0.7
    mask[np.arange(n), rng.integers(0, 16, n)] = False
    mask[:50] = False
    return mask, mask


@pytest.mark.parametrize("per_choice", [False, True], ids=["joint-mask", "per-choice-masks"])
@pytest.mark.parametrize("name", ["linucb", "thompson", "neural", "ppo-mlp", "random"])
def test_excluded_actions_never_come_out_and_the_logged_probability_is_the_restricted_policy(world, name, per_choice):
    agent = _trained(world, name, (4, 4))
    features, space, n = world[1], agent.action_space, len(SEEDS)
    excluded, joint_mask = _masks(n, per_choice, np.random.default_rng(5))
    rows = np.arange(n)

    free = agent.probabilities(features, SEEDS)
    restricted = agent.probabilities(features, SEEDS, excluded=excluded)
    expected = np.where(joint_mask, 0.0, free)
    np.testing.assert_allclose(restricted, expected / expected.sum(axis=1, keepdims=True), rtol=1e-9, atol=1e-15)

    prediction = agent.act(features, SEEDS, excluded=excluded)
    chosen = space.to_joint(prediction.action)
    assert not joint_mask[rows, chosen].any()
    np.testing.assert_allclose(prediction.log_probability, np.log(restricted[rows, chosen]), rtol=1e-12)

    greedy = space.to_joint(agent.act(features, SEEDS, greedy=True, excluded=excluded).action)
    assert not joint_mask[rows, greedy].any()
    output = agent.distribution(features, SEEDS)
    if output.greedy_scores is not None:  # the best allowed action by what greedy maximizes
        scores = np.log(output.joint_probabilities()) if output.factorized else output.greedy_scores[0]
        np.testing.assert_array_equal(greedy, np.where(joint_mask, -np.inf, scores).argmax(axis=1))
        greedy_probabilities = agent.probabilities(features, SEEDS, greedy=True, excluded=excluded)
        np.testing.assert_array_equal(greedy_probabilities[rows, greedy], 1.0)

    plain = agent.act(features, SEEDS)  # rows that exclude nothing: as without a mask, to the bit
    np.testing.assert_array_equal(prediction.action[:50], plain.action[:50])
    np.testing.assert_array_equal(prediction.log_probability[:50], plain.log_probability[:50])


@pytest.mark.parametrize("per_choice", [False, True], ids=["joint-mask", "per-choice-masks"])
def test_actions_are_drawn_from_the_restricted_policy(world, per_choice):
    agent = _trained(world, "ppo-mlp", (4, 4))
    n = 20_000
    one_context = world[1].take(np.zeros(n, dtype=np.int64))
    if per_choice:
        excluded = [np.tile([True, False, False, True], (n, 1)), np.tile([False, False, True, False], (n, 1))]
    else:
        excluded = np.tile(np.arange(16) % 3 == 0, (n, 1))
    seeds = np.arange(n)
    probabilities = agent.probabilities(one_context.take(slice(0, 1)), seeds[:1], excluded=[m[:1] for m in excluded]
                                        if per_choice else excluded[:1])[0]
    chosen = agent.action_space.to_joint(agent.act(one_context, seeds, excluded=excluded).action)
    frequencies = np.bincount(chosen, minlength=16) / n
    np.testing.assert_allclose(frequencies, probabilities, atol=4 * np.sqrt(0.25 / n))


def test_a_row_that_excludes_every_action_is_refused_by_number(world):
    agent = _trained(world, "linucb", (16,))
    excluded = np.zeros((300, 16), dtype=bool)
    excluded[41] = True
    with pytest.raises(DataError, match="row 42 excludes every action"):
        agent.act(world[1], SEEDS, excluded=excluded)
    with pytest.raises(DataError, match="boolean mask of shape"):
        agent.act(world[1], SEEDS, excluded=np.zeros((300, 15), dtype=bool))


# --- policy snapshots ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["neural", "ppo-tabnet", "thompson"])
def test_threads_predicting_through_a_snapshot_while_its_agent_trains_agree_with_one_thread(world, name):
    agent = _trained(world, name, (4, 4))
    features, experience = world[1], world[2][4, 4]
    snapshot = agent.snapshot()
    agent_before = agent.probabilities(features, SEEDS)
    parts = [np.arange(part, len(SEEDS), 4) for part in range(4)]

    def answer(rows: np.ndarray) -> tuple:
        sub = features.take(rows)
        return (snapshot.act(sub, SEEDS[rows]), snapshot.act(sub, SEEDS[rows], greedy=True),
                snapshot.probabilities(sub, SEEDS[rows]))

    reference = [answer(rows) for rows in parts]  # one thread, before the agent trains on
    trained = threading.Event()

    def predict(part: int) -> list:
        answers: list = []
        while not trained.is_set() or len(answers) < 2:  # keep predicting for as long as the agent trains
            answers.append(answer(parts[part]))
        return answers

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(predict, part % 4) for part in range(6)]
        try:
            for _ in range(2):
                agent.update(experience)
        finally:
            trained.set()
        results = [future.result() for future in futures]

    for part, answers in zip([part % 4 for part in range(6)], results):
        expected_prediction, expected_greedy, expected_probabilities = reference[part]
        for prediction, greedy, probabilities in answers:
            np.testing.assert_array_equal(prediction.action, expected_prediction.action)
            np.testing.assert_array_equal(prediction.log_probability, expected_prediction.log_probability)
            np.testing.assert_array_equal(prediction.value, expected_prediction.value)
            np.testing.assert_array_equal(greedy.action, expected_greedy.action)
            np.testing.assert_array_equal(probabilities, expected_probabilities)
    np.testing.assert_array_equal(answer(parts[0])[2], reference[0][2])  # after training too
    assert np.abs(agent.probabilities(features, SEEDS) - agent_before).max() > 1e-6  # the agent did learn


def test_a_snapshot_predicts_like_the_experiment_it_was_loaded_from(tmp_path):
    directory = tmp_path / "run"
    simulate("discount", "ppo-mlp", examples=400, batch_size=200, seed=1, experiment_dir=directory)
    experiment = Experiment.open(directory)
    contexts = make_scenario("discount").sample_contexts(50, np.random.default_rng(2))
    seeds = np.arange(50, dtype=np.int64)
    table = experiment.predict(contexts.assign(prediction_seed=seeds))

    snapshot = load_snapshot(directory)
    assert snapshot.checkpoint == experiment.checkpoint.name and snapshot.updates == experiment.agent.updates
    prediction = snapshot.predict(contexts.to_dict("records"), seeds)  # records: the service's path
    served = prediction.to_table(contexts, snapshot.action_space)
    np.testing.assert_array_equal(served["action"], table["action"])
    np.testing.assert_array_equal(served["log_probability"], table["log_probability"])
    first = load_snapshot(directory, checkpoint="1")
    assert first.checkpoint == "checkpoint-000001.pt" and first.updates == 1


def test_the_latest_snapshot_is_swapped_in_when_a_new_checkpoint_lands(tmp_path):
    directory = tmp_path / "run"
    simulate("discount", "linucb", examples=400, batch_size=200, seed=1, experiment_dir=directory)
    served = LatestSnapshot(directory)
    held = served.current
    assert not served.refresh() and served.current is held

    learner = Experiment.open(directory)
    learner.train(learner.experiences(), allow_duplicates=True)
    assert served.refresh()
    assert served.current is not held and served.current.checkpoint == learner.checkpoint.name
    assert served.current.examples == held.examples + 400
