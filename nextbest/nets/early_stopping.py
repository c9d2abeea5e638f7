"""Early stopping: keep the weights of the epoch with the best held-out score, stop when it stops improving.

One rule for a single network and for an ensemble trained as one module (every parameter with a
leading member dimension H, each member judged on its own held-out rows):

    stopper = EarlyStopping(module, patience=10, min_delta=1e-6)   # per_member=True: scores (H,)
    for epoch in range(max_epochs):
        ...                                         # train one epoch
        if stopper.update(held_out_loss):           # a float, or an (H,) tensor with per_member
            break
    stopper.restore()                               # each member's best weights

An epoch improves on a member's best when its score is lower than the best by more than
`min_delta` (higher, with `maximize`). Training stops when every member has gone `patience` epochs
without improving; `patience` 0 turns early stopping off (never stop, keep no weights, `restore`
does nothing) while the best scores are still tracked.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class EarlyStopping:
    """Best held-out score, epochs since it and best weights of every member of `module`.

    per_member=False: `update` takes a float and the whole `state_dict` (buffers included) is kept.
    per_member=True: `update` takes an (H,) tensor and each parameter's slice [h] is kept for member h
    (every parameter of `module` must have the leading member dimension H; buffers are not kept)."""

    def __init__(self, module: nn.Module, patience: int, *, min_delta: float = 0.0, maximize: bool = False,
                 per_member: bool = False):
        self.module, self.patience, self.min_delta = module, patience, min_delta
        self.maximize, self.per_member = maximize, per_member
        self.epoch = 0  # calls to `update`
        self.best: Tensor | None = None  # () or (H,) best score, in the dtype and on the device of the scores
        self.best_epoch: Tensor | None = None  # () or (H,) long: the epoch (from 1) of that score, 0 before any
        self.kept: list[Tensor] | dict[str, Tensor] | None = None
        self.should_stop = False  # every member went `patience` epochs without improving (never with patience 0)

    def update(self, score: float | Tensor) -> bool:
        """Record one epoch's held-out `score` (lower is better unless `maximize`); True when training should stop."""
        score = score.detach() if isinstance(score, Tensor) else torch.tensor(score, dtype=torch.float64)
        if self.best is None:
            self.best = torch.full_like(score, -math.inf if self.maximize else math.inf)
            self.best_epoch = torch.zeros_like(score, dtype=torch.long)
        self.epoch += 1
        improved = score > self.best + self.min_delta if self.maximize else score < self.best - self.min_delta
        self.best = torch.where(improved, score, self.best)
        self.best_epoch = torch.where(improved, self.epoch, self.best_epoch)
        if self.patience > 0:
            self._keep(improved)
            self.should_stop = bool((self.epoch - self.best_epoch >= self.patience).all())
        return self.should_stop

    @torch.no_grad()
    def _keep(self, improved: Tensor) -> None:
        if not self.per_member:
            if bool(improved):
                self.kept = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            return
        if self.kept is None:
            self.kept = [p.detach().clone() for p in self.module.parameters()]
        for parameter, kept in zip(self.module.parameters(), self.kept):
            kept.copy_(torch.where(improved.view(-1, *[1] * (kept.dim() - 1)), parameter, kept))

    @torch.no_grad()
    def restore(self) -> None:
        """Put back each member's best weights; a member that never improved keeps its current ones."""
        if self.kept is None:
            return
        if not self.per_member:
            self.module.load_state_dict(self.kept)
            return
        ever = self.best_epoch > 0
        for parameter, kept in zip(self.module.parameters(), self.kept):
            parameter.copy_(torch.where(ever.view(-1, *[1] * (kept.dim() - 1)), kept, parameter))
