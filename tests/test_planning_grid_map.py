"""nextbest/GridMap-v0: the map, the slip model, sampling, and the optimal route around the dangers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import nextbest.envs  # noqa: F401
from nextbest.envs.grid_map import GridMapEnv
from nextbest.planning import from_gymnasium, policy_evaluation, value_iteration

UP, RIGHT, DOWN, LEFT = range(4)


def outcomes(env: GridMapEnv, cell: int, action: int) -> dict[int, tuple[float, float, bool]]:
    """next cell → (probability, reward, terminated), in cell numbers 1–30."""
    return {s + 1: (round(p, 12), r, done) for p, s, r, done in env.P[cell - 1][action]}


def test_moves_slip_perpendicular_and_bumps_stay_put():
    env = GridMapEnv()
    assert outcomes(env, 27, UP) == {21: (0.8, -0.04, False), 28: (0.1, -0.04, False), 26: (0.1, -0.04, False)}
    # Cell 1, up: the edge (0.8) and the left slip (0.1) both stay in 1; the right slip reaches 2.
    assert outcomes(env, 1, UP) == {1: (0.9, -0.04, False), 2: (0.1, -0.04, False)}
    # Cell 20, up: wall 14 stays put; slips reach 21 and the danger 19.
    assert outcomes(env, 20, UP) == {20: (0.8, -0.04, False), 21: (0.1, -0.04, False), 19: (0.1, -1.0, True)}
    assert outcomes(env, 9, LEFT) == {8: (0.8, 1.0, True), 3: (0.1, -0.04, False), 15: (0.1, -1.0, True)}
    for cell in (7, 8, 13, 14, 15, 19):  # walls and terminal cells absorb
        assert outcomes(env, cell, DOWN) == {cell: (1.0, 0.0, True)}


def test_success_probability_one_is_deterministic_and_the_step_cost_is_configurable():
    env = GridMapEnv(success_probability=1.0, step_reward=-0.5)
    assert outcomes(env, 27, UP) == {21: (1.0, -0.5, False)}
    assert outcomes(env, 26, LEFT) == {25: (1.0, -0.5, False)}


def test_registered_environment_starts_in_cell_25_and_samples_the_model():
    env = gym.make("nextbest/GridMap-v0")
    assert env.spec.max_episode_steps == 200
    observation, info = env.reset(seed=0)
    assert observation == 24 and info["cell"] == 25
    landed = []
    for _ in range(4000):
        env.unwrapped.reset(options={"cell": 27})
        landed.append(env.step(UP)[0] + 1)
    frequency = {cell: landed.count(cell) / len(landed) for cell in (21, 26, 28)}
    assert frequency[21] == pytest.approx(0.8, abs=0.03)
    assert frequency[26] == pytest.approx(0.1, abs=0.02) and frequency[28] == pytest.approx(0.1, abs=0.02)
    assert env.reset(options={"cell": 3})[1]["cell"] == 3
    assert gym.make("nextbest/GridMap-v0", start_cell=30).reset()[0] == 29


@pytest.mark.parametrize("cell", [0, 7, 8, 31])
def test_episodes_cannot_start_on_walls_terminals_or_off_the_map(cell):
    with pytest.raises(ValueError, match="free cell"):
        GridMapEnv(start_cell=cell)


def test_optimal_policy_goes_around_the_dangers_to_the_treasure():
    mdp = from_gymnasium("nextbest/GridMap-v0", gamma=1.0)
    policy = value_iteration(mdp).policy
    # Follow the intended moves from the start: the route reaches the treasure and never touches a danger.
    cell, route = 25, [25]
    while cell != 8 and len(route) < 30:
        cell = GridMapEnv._move(cell, int(policy[cell - 1]))
        route.append(cell)
    assert route[-1] == 8 and not {15, 19} & set(route), route
    # With slips, playing the policy ends at the treasure about 8 times in 9 (Monte Carlo vs exact).
    env = gym.make("nextbest/GridMap-v0")
    env.reset(seed=1)
    treasure = 0
    for _ in range(1500):
        observation, done, reward = env.reset()[0], False, 0.0
        while not done:
            observation, reward, terminated, truncated, _ = env.step(int(policy[observation]))
            done = terminated or truncated
        treasure += reward == 1.0
    exact = _probability_of_treasure(mdp, policy)
    assert exact > 0.85
    assert treasure / 1500 == pytest.approx(exact, abs=0.03)


def _probability_of_treasure(mdp, policy) -> float:
    """Evaluate the policy with reward 1 for entering the treasure and nothing else (γ = 1)."""
    env = GridMapEnv()
    hits = np.array([[sum(p for p, s, r, done in env.P[s0][a] if done and s == 7) for a in range(4)] for s0 in range(30)])
    mdp.rewards = hits
    return float(policy_evaluation(mdp, policy).values[24])


def test_deterministic_map_takes_a_shortest_safe_route():
    mdp = from_gymnasium("nextbest/GridMap-v0", gamma=1.0, success_probability=1.0)
    result = value_iteration(mdp)
    assert result.values[24] == pytest.approx(1.0 - 7 * 0.04, abs=1e-9)  # seven steps, then the treasure


def test_ansi_render_shows_the_agent_walls_and_terminals():
    env = gym.make("nextbest/GridMap-v0", render_mode="ansi")
    env.reset()
    lines = env.render().splitlines()
    assert lines[4].split()[0] == "A" and lines[1].split()[:2] == ["■", "+1"] and lines[3].split()[0] == "-1"


def test_passes_gymnasiums_environment_checker():
    from gymnasium.utils.env_checker import check_env

    check_env(GridMapEnv(), skip_render_check=True)
