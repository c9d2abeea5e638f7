"""Where MDPs come from: arrays, spec files (and back), experience tables, policy files."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import nextbest.envs  # noqa: F401
from nextbest.errors import ConfigError, DataError
from nextbest.planning import from_arrays, from_gymnasium, policy_evaluation, value_iteration
from nextbest.planning.estimate import from_experience
from nextbest.planning.sources import load_mdp, read_policy
from nextbest.planning.spec import load_spec, save_spec

JOURNEY = """\
gamma: 0.9
states: [new, active, churned]
actions: [wait, email]
terminal: [churned]
transitions:
  - {state: new, action: wait, next_state: active, probability: 0.3}
  - {state: new, action: wait, next_state: churned, probability: 0.7}
  - {state: new, action: email, next_state: active, probability: 0.6, reward: -0.1}
  - {state: new, action: email, next_state: churned, probability: 0.4, reward: -0.1}
  - {state: active, action: wait, next_state: active, probability: 0.8, reward: 2}
  - {state: active, action: wait, probability: 0.2, reward: 2, done: true}
  - {state: active, action: email, next_state: active, probability: 0.9, reward: 1.5}
  - {state: active, action: email, next_state: churned, probability: 0.1, reward: 1.5}
rewards:
  - {state: active, action: email, reward: 0.25}
"""


@pytest.fixture
def journey(tmp_path):
    path = tmp_path / "journey.yaml"
    path.write_text(JOURNEY)
    return path


def test_spec_builds_the_same_mdp_as_the_arrays_it_describes(journey):
    mdp = load_spec(journey)
    P = np.zeros((3, 2, 3))
    P[0, 0, [1, 2]] = [0.3, 0.7]
    P[0, 1, [1, 2]] = [0.6, 0.4]
    P[1, 0, [1, 2]] = [0.8, 0.2]  # the done transition ends the episode: like entering the terminal state
    P[1, 1, [1, 2]] = [0.9, 0.1]
    R = np.array([[0.0, -0.1], [2.0, 1.5 + 0.25], [0.0, 0.0]])
    expected = from_arrays(P, R, 0.9, terminal=[2])
    assert mdp.states == ["new", "active", "churned"] and mdp.gamma == 0.9
    np.testing.assert_allclose(value_iteration(mdp).values, value_iteration(expected).values, atol=1e-8)
    # Hand solution: V(active) = max(2 + .9·.8 V, 1.75 + .9·.9 V) → email: 1.75 / (1 − .81) = 9.2105…
    assert value_iteration(mdp).values[1] == pytest.approx(1.75 / 0.19, abs=1e-7)
    assert load_spec(journey, gamma=0.5).gamma == 0.5


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_spec_round_trip_keeps_the_model_exactly(tmp_path, journey, suffix):
    for mdp in (load_spec(journey), from_gymnasium("FrozenLake-v1", 0.95), from_gymnasium("Taxi-v3", 0.9)):
        again = load_spec(save_spec(mdp, tmp_path / f"model{suffix}"))
        assert abs(again.transitions - mdp.transitions).max() < 1e-15
        np.testing.assert_allclose(again.rewards, mdp.rewards, atol=1e-15)
        np.testing.assert_array_equal(again.terminal, mdp.terminal)
        assert again.gamma == mdp.gamma and [str(s) for s in again.states] == [str(s) for s in mdp.states]


@pytest.mark.parametrize("edit, message", [
    (("next_state: active, probability: 0.3}", "next_state: actve, probability: 0.3}"),
     r"transitions\[0\]: unknown state 'actve'; states are \['new', 'active', 'churned'\]"),
    (("probability: 0.7}", "probability: 0.6}"), r"probabilities of state 'new', action 'wait' sum to 0.9, expected 1"),
    (("  - {state: new, action: email, next_state: active, probability: 0.6, reward: -0.1}\n"
      "  - {state: new, action: email, next_state: churned, probability: 0.4, reward: -0.1}\n", ""),
     r"state 'new' has no transitions for action 'email'; every non-terminal state needs every action"),
    (("gamma: 0.9", "gamma: 1.5"), r"gamma: Input should be less than or equal to 1"),
    (("gamma: 0.9", "gamma: 0.9\ndiscount: 0.9"), r"discount: Extra inputs are not permitted"),
    (("probability: 0.3}", "probability: 1.3}"), r"transitions.0.probability: Input should be less than or equal to 1"),
    (("{state: active, action: wait, probability: 0.2, reward: 2, done: true}",
      "{state: active, action: wait, probability: 0.2, reward: 2}"), r"needs a next_state unless it ends the episode"),
    (("rewards:", "  - {state: churned, action: wait, next_state: new, probability: 1}\nrewards:"),
     r"state 'churned' is terminal, so nothing happens there"),
    (("states: [new, active, churned]", "states: [new, active, churned"), r"not valid YAML \(line \d+"),
])
def test_spec_errors_name_the_file_and_the_problem(tmp_path, edit, message):
    path = tmp_path / "bad.yaml"
    path.write_text(JOURNEY.replace(*edit))
    with pytest.raises(DataError, match=f"^{tmp_path / 'bad.yaml'}: .*{message}"):
        load_spec(path)


def test_arrays_that_are_not_distributions_are_rejected_with_the_pair():
    P = np.full((2, 2, 2), 0.5)
    P[1, 1] = [0.5, 0.4]
    with pytest.raises(ConfigError, match=r"p\(·\|s='b', a='y'\) sums to 0.9, expected 1 \(mark the state terminal"):
        from_arrays(P, np.zeros((2, 2)), 0.9, states=["a", "b"], actions=["x", "y"])
    assert from_arrays(P, np.zeros((2, 2)), 0.9, terminal=[1]).terminal.tolist() == [False, True]
    with pytest.raises(ConfigError, match="non-negative"):
        from_arrays(np.array([[[1.5, -0.5]], [[0.5, 0.5]]]), np.zeros((2, 1)), 0.9)
    with pytest.raises(ConfigError, match=r"gamma must be in \(0, 1\]"):
        from_arrays(np.full((2, 1, 2), 0.5), np.zeros((2, 1)), 0.0)
    sparse = from_arrays(sp.csr_array(np.full((4, 2), 0.5)), np.ones((2, 2)), 0.5)
    assert value_iteration(sparse).values == pytest.approx([2.0, 2.0], abs=1e-8)


EXPERIENCE = pd.DataFrame({
    "state":      ["a", "a", "a", "a", "b", "b", "b"],
    "action":     ["x", "x", "x", "y", "x", "x", "x"],
    "reward":     [1.0, 0.0, 2.0, 5.0, 0.0, 1.0, 1.0],
    "next_state": ["a", "b", "b", "a", "a", None, "c"],
    "done":       [False, False, False, False, False, True, False],
})


def test_experience_counts_give_the_maximum_likelihood_model_without_a_prior():
    estimate = from_experience(EXPERIENCE, gamma=0.9, prior=0.0)
    mdp = estimate.mdp
    assert mdp.states == ["a", "b", "c"] and mdp.actions == ["x", "y"]
    P = mdp.transitions.toarray().reshape(3, 2, 3)
    np.testing.assert_allclose(P[0, 0], [1 / 3, 2 / 3, 0])
    np.testing.assert_allclose(P[0, 1], [1, 0, 0])
    np.testing.assert_allclose(P[1, 0], [1 / 3, 0, 1 / 3])  # a third of the time the episode ended
    np.testing.assert_allclose(mdp.rewards[:2], [[1.0, 5.0], [2 / 3, 2 / 3]])
    # (b, y) was never tried: it takes b's pooled behaviour, and it is reported.
    np.testing.assert_allclose(P[1, 1], P[1, 0])
    assert estimate.unseen_pairs == [("b", "y")]
    assert estimate.unvisited_states == ["c"] and mdp.terminal.tolist() == [False, False, True]
    np.testing.assert_array_equal(estimate.visits, [[3, 1], [3, 0], [0, 0]])


def test_experience_prior_pulls_each_pair_toward_the_states_pooled_behaviour():
    mdp = from_experience(EXPERIENCE, prior=2.0).mdp
    P = mdp.transitions.toarray().reshape(3, 2, 3)
    pooled_a = np.array([2, 2, 0]) / 4  # all four rows from a: next a, b, b, a
    np.testing.assert_allclose(P[0, 1], (np.array([1, 0, 0]) + 2 * pooled_a) / (1 + 2))
    np.testing.assert_allclose(mdp.rewards[0, 1], (5 + 2 * 8 / 4) / 3)
    assert mdp.gamma == 0.99


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop(columns=["done", "reward"]), r"missing columns reward, done; an experience table has state, action"),
    (lambda t: t.assign(done=["no", "no", "no", "no", "no", "maybe", "no"]), r"row 6: done is 'maybe'; expected true/false or 1/0"),
    (lambda t: t.assign(reward=[1, 0, "lots", 5, 0, 1, 1]), r"row 3: reward 'lots' is not a finite number"),
    (lambda t: t.assign(next_state=["a", None, "b", "a", "a", None, "c"]), r"row 2: next_state is empty \(it may be empty only when done is true\)"),
    (lambda t: t.assign(action=["x", "x", "x", None, "x", "x", "x"]), r"row 4: action is empty"),
    (lambda t: t.assign(reward=[1, 0, np.inf, 5, 0, 1, 1]), r"row 3: reward inf is not a finite number$"),
    (lambda t: t.assign(reward=[1, 0, 2, np.nan, 0, 1, 1]), r"row 4: reward is empty$"),
    (lambda t: t.assign(done=[0, 0, 0, 0, 0, 1, np.nan]), r"row 7: done is empty$"),
])
def test_experience_errors_name_the_row_and_what_was_expected(change, message):
    with pytest.raises(DataError, match=f"^log.csv: {message}"):
        from_experience(change(EXPERIENCE.copy()), source="log.csv")


def test_mdp_estimated_from_enough_experience_recovers_the_optimal_policy():
    truth = from_gymnasium("nextbest/GridMap-v0", gamma=0.95)
    optimal = value_iteration(truth)
    env = gym.make("nextbest/GridMap-v0").unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    free = [c for c in range(1, 31) if c not in (7, 8, 13, 14, 15, 19)]
    rows = []
    while len(rows) < 30_000:  # exploring starts, uniformly random actions
        state = env.reset(options={"cell": int(rng.choice(free))})[0]
        for _ in range(20):
            action = int(rng.integers(4))
            next_state, reward, terminated, _, _ = env.step(action)
            rows.append((state, action, reward, None if terminated else next_state, terminated))
            state = next_state
            if terminated:
                break
    table = pd.DataFrame(rows, columns=["state", "action", "reward", "next_state", "done"])
    estimate = from_experience(table, gamma=0.95)
    learned = value_iteration(estimate.mdp)
    assert not estimate.unseen_pairs
    # Map the estimated model's states (the cells acted from) back to the true model's. Where the best
    # action wins by a clear margin the estimate picks it; elsewhere any near-tie is worth as much.
    cells = np.array(estimate.mdp.states)[~estimate.mdp.terminal]
    learned_actions = learned.policy[~estimate.mdp.terminal]
    q = np.sort(optimal.q_values[cells], axis=1)
    clear = q[:, -1] - q[:, -2] > 0.005
    assert clear.sum() >= 20
    np.testing.assert_array_equal(learned_actions[clear], optimal.policy[cells][clear])
    full_policy = optimal.policy.copy()
    full_policy[cells] = learned_actions
    assert np.abs(policy_evaluation(truth, full_policy).values - optimal.values).max() < 0.005


def test_policy_files_from_json_and_tables(tmp_path, journey):
    mdp = load_spec(journey)
    (tmp_path / "plan.json").write_text(json.dumps({"policy": [1, 0, 0], "values": [0, 0, 0]}))
    np.testing.assert_array_equal(read_policy(tmp_path / "plan.json", mdp), [1, 0, 0])
    (tmp_path / "named.json").write_text(json.dumps({"new": "email", "active": "wait"}))
    np.testing.assert_array_equal(read_policy(tmp_path / "named.json", mdp), [1, 0, 0])
    pd.DataFrame({"state": ["new", "active"], "action": ["email", "email"]}).to_csv(tmp_path / "p.csv", index=False)
    np.testing.assert_array_equal(read_policy(tmp_path / "p.csv", mdp), [1, 1, 0])
    pd.DataFrame({"state": ["new", "new", "active"], "action": ["wait", "email", "wait"],
                  "probability": [0.25, 0.75, 1.0]}).to_csv(tmp_path / "s.csv", index=False)
    np.testing.assert_allclose(read_policy(tmp_path / "s.csv", mdp), [[0.25, 0.75], [1, 0], [1, 0]])


@pytest.mark.parametrize("table, message", [
    ({"state": ["new"], "action": ["email"]}, r"no action for state 'active'; every non-terminal state needs one"),
    ({"state": ["new", "new", "active"], "action": ["wait", "email", "wait"]}, r"row 2: state 'new' has a second action"),
    ({"state": ["new", "active"], "action": ["email", "call"]}, r"unknown action 'call'; expected one of 'wait', 'email'"),
    ({"state": ["new", "new", "active"], "action": ["wait", "email", "wait"], "probability": [0.5, 0.6, 1]},
     r"probabilities of state 'new' sum to 1.1, expected 1"),
    ({"policy": [0, 1]}, r"expected a policy with one entry per state \(3\), got 2"),
])
def test_bad_policy_files_name_the_file_and_the_problem(tmp_path, journey, table, message):
    if "policy" in table:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps(table))
    else:
        path = tmp_path / "bad.csv"
        pd.DataFrame(table).to_csv(path, index=False)
    with pytest.raises(DataError, match=f"^{path}: .*{message}"):
        read_policy(path, load_spec(journey))


def test_load_mdp_refuses_options_that_do_not_apply(journey):
    with pytest.raises(ConfigError, match=r"--prior applies to experience tables"):
        load_mdp(str(journey), prior=2.0)
    with pytest.raises(ConfigError, match=r"--env-kwargs applies to Gymnasium environments only"):
        load_mdp(str(journey), env_kwargs={"is_slippery": False})
    with pytest.raises(ConfigError, match=r"Blackjack-v1: not a tabular environment"):
        load_mdp("Blackjack-v1")
