"""`nextbest/GridMap-v0`: the grid map of the study notes, a small stochastic world for planning.

    ┌────┬────┬────┬────┬────┬────┐
    │  1 │  2 │  3 │  4 │  5 │  6 │     ■ wall (7, 13, 14)
    │  ■ │ +1 │  9 │ 10 │ 11 │ 12 │    +1 treasure (8), terminal
    │  ■ │  ■ │ −1 │ 16 │ 17 │ 18 │    −1 danger (15, 19), terminal
    │ −1 │ 20 │ 21 │ 22 │ 23 │ 24 │     S start (25), every other step −0.04
    │  S │ 26 │ 27 │ 28 │ 29 │ 30 │
    └────┴────┴────┴────┴────┴────┘

Cells are numbered 1–30 row by row; the observation is the cell number minus one. A move goes
the intended way with probability `success_probability` (0.8) and slips to each perpendicular
direction with half the rest; bumping into a wall or the edge stays put. The model is exposed as
Gymnasium's toy-text `P[s][a] = [(probability, next_state, reward, terminated), …]`, so planners
read it exactly as they read FrozenLake's.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ROWS, COLS = 5, 6
WALLS = (7, 13, 14)
TREASURE = {8: 1.0}
DANGERS = {15: -1.0, 19: -1.0}
START = 25
STEP_REWARD = -0.04
ACTION_NAMES = ("up", "right", "down", "left")  # clockwise: the perpendiculars of a are a ± 1 (mod 4)
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))


class GridMapEnv(gym.Env):
    """Discrete(30) observations (cell − 1), Discrete(4) actions: 0 up, 1 right, 2 down, 3 left."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    shape = (ROWS, COLS)
    action_names = ACTION_NAMES

    def __init__(self, start_cell: int = START, success_probability: float = 0.8, step_reward: float = STEP_REWARD,
                 render_mode: str | None = None):
        _require_free(start_cell)
        if not 0.0 <= success_probability <= 1.0:
            raise ValueError(f"success_probability must be in [0, 1], got {success_probability}")
        self.start_cell, self.success_probability, self.step_reward = start_cell, success_probability, step_reward
        self.render_mode = render_mode
        self.observation_space = spaces.Discrete(ROWS * COLS)
        self.action_space = spaces.Discrete(len(MOVES))
        self.rewards = {**TREASURE, **DANGERS}
        self.walls = frozenset(cell - 1 for cell in WALLS)
        self.marks = {cell - 1: f"{r:+g}" for cell, r in self.rewards.items()}
        self.P = {s: {a: self._outcomes(s + 1, a) for a in range(len(MOVES))} for s in range(ROWS * COLS)}
        self.initial_state_distrib = np.eye(ROWS * COLS)[start_cell - 1]
        self.s = start_cell - 1

    def _outcomes(self, cell: int, action: int) -> list[tuple[float, int, float, bool]]:
        if cell in WALLS or cell in self.rewards:  # the episode has ended (or cannot be here): absorbing
            return [(1.0, cell - 1, 0.0, True)]
        slip = (1.0 - self.success_probability) / 2
        outcomes: dict[int, float] = {}
        for direction, probability in ((action, self.success_probability), ((action + 1) % 4, slip), ((action - 1) % 4, slip)):
            if probability > 0:
                target = self._move(cell, direction)
                outcomes[target] = outcomes.get(target, 0.0) + probability
        return [(p, target - 1, self.rewards.get(target, self.step_reward), target in self.rewards)
                for target, p in outcomes.items()]

    @staticmethod
    def _move(cell: int, direction: int) -> int:
        row, col = divmod(cell - 1, COLS)
        row, col = row + MOVES[direction][0], col + MOVES[direction][1]
        target = row * COLS + col + 1
        return cell if not (0 <= row < ROWS and 0 <= col < COLS) or target in WALLS else target

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict]:
        """options={"cell": k} starts in cell k instead of the start cell (exploring starts)."""
        super().reset(seed=seed)
        cell = _require_free((options or {}).get("cell", self.start_cell))
        self.s = cell - 1
        return self.s, {"cell": cell}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        outcomes = self.P[self.s][int(action)]
        probabilities = np.array([o[0] for o in outcomes])
        probability, self.s, reward, terminated = outcomes[self.np_random.choice(len(outcomes), p=probabilities / probabilities.sum())]
        return self.s, reward, terminated, False, {"cell": self.s + 1, "prob": probability}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        cells = ["■" if s in self.walls else self.marks.get(s, "A" if s == self.s else "·") for s in range(ROWS * COLS)]
        return "\n".join(" ".join(f"{c:>2}" for c in cells[r * COLS:(r + 1) * COLS]) for r in range(ROWS)) + "\n"


def _require_free(cell: int) -> int:
    if not (isinstance(cell, (int, np.integer)) and 1 <= cell <= ROWS * COLS) or cell in WALLS or cell in {**TREASURE, **DANGERS}:
        raise ValueError(f"an episode starts in a free cell (1 … {ROWS * COLS}, not a wall, the treasure or a danger), got {cell}")
    return int(cell)
