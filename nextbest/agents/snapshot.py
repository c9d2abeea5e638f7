"""A read-only policy: an agent frozen at one moment, to predict from many threads at once.

    snapshot = agent.snapshot()                              # between two updates of the agent
    prediction = snapshot.predict(records, seeds)            # any thread, while the agent trains on
    p = snapshot.probabilities(snapshot.features(table), seeds, greedy=True)

A snapshot deep-copies what prediction needs (not the optimizer or the replay buffer:
`Agent.training_state`), puts its networks in evaluation mode once and predicts under
`torch.inference_mode()`. Nothing it holds is written after it is made, so concurrent calls need no
lock, and training the agent it came from does not change its answers. A server holds one in an
attribute and replaces it by a snapshot of the next checkpoint with one assignment (atomic in
Python): requests that started on the old one finish on it, none waits.
`nextbest.training.snapshot.load_snapshot` makes one from an experiment directory.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nextbest.data.actions import ActionSpace
from nextbest.data.encoding import Features, encode, encode_records
from nextbest.data.schema import Schema

if TYPE_CHECKING:
    from nextbest.agents.base import Agent, Excluded, PolicyOutput, Prediction


class PolicySnapshot:
    """The policy of `agent` as it is now, predict only; `checkpoint` names where it came from, if anywhere."""

    def __init__(self, agent: Agent, checkpoint: str | None = None):
        frozen = copy.copy(agent)
        for name in agent.training_state:
            setattr(frozen, name, None)
        frozen = copy.deepcopy(frozen)
        for value in vars(frozen).values():
            if isinstance(value, nn.Module):
                value.eval().requires_grad_(False)
        self._agent = frozen
        self.agent_name: str = agent.name
        self.schema: Schema = frozen.schema
        self.action_space: ActionSpace = frozen.action_space
        self.updates, self.examples = frozen.updates, frozen.examples
        self.checkpoint = checkpoint

    def __repr__(self) -> str:
        return (f"PolicySnapshot({self.agent_name}, updates={self.updates}, examples={self.examples}, "
                f"checkpoint={self.checkpoint!r})")

    # --- contexts -------------------------------------------------------------------------------
    def features(self, contexts: pd.DataFrame | Sequence[dict[str, Any]], *, source: str = "contexts") -> Features:
        """Encode a context table, or a list of records (JSON-like dicts, no pandas), with the schema."""
        if isinstance(contexts, pd.DataFrame):
            return encode(contexts, self.schema, source=source)
        return encode_records(list(contexts), self.schema, source=source)

    def predict(
        self,
        contexts: pd.DataFrame | Sequence[dict[str, Any]],
        seeds: np.ndarray,
        *,
        greedy: bool = False,
        excluded: Excluded = None,
    ) -> Prediction:
        """Encode `contexts` (n rows) and act on them; seeds: (n,) int, the rows' prediction seeds.
        `prediction.to_table(contexts, snapshot.action_space)` gives the prediction table."""
        return self.act(self.features(contexts), seeds, greedy=greedy, excluded=excluded)

    # --- the policy -----------------------------------------------------------------------------
    def act(self, features: Features, seeds: np.ndarray, *, greedy: bool = False, excluded: Excluded = None) -> Prediction:
        """`Agent.act` of the frozen agent: the same seeds give the same actions and log-probabilities."""
        with torch.inference_mode():
            return self._agent.act(features, seeds, greedy=greedy, excluded=excluded)

    def probabilities(
        self, features: Features, seeds: np.ndarray, *, greedy: bool = False, excluded: Excluded = None
    ) -> np.ndarray:
        """`Agent.probabilities` of the frozen agent: (n, n_joint) what `act` draws from."""
        with torch.inference_mode():
            return self._agent.probabilities(features, seeds, greedy=greedy, excluded=excluded)

    def distribution(self, features: Features, seeds: np.ndarray) -> PolicyOutput:
        """`Agent.distribution` of the frozen agent."""
        with torch.inference_mode():
            return self._agent.distribution(features, np.asarray(seeds, dtype=np.int64))
