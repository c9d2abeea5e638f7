"""Early stopping: when it stops, which weights it keeps (per member of an ensemble or the whole module), restoring them."""

from __future__ import annotations

import math

import torch
from torch import nn

from nextbest.nets.early_stopping import EarlyStopping


class Ensemble(nn.Module):
    """Three members, every parameter with the leading member dimension."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(3, 2, 2))
        self.bias = nn.Parameter(torch.zeros(3, 1, 2))

    def set(self, value: float) -> None:
        with torch.no_grad():
            self.weight.fill_(value)
            self.bias.fill_(value)


def test_stops_after_patience_epochs_without_improvement():
    stopper = EarlyStopping(nn.Linear(2, 1), patience=3)
    stops = [stopper.update(score) for score in [5.0, 4.0, 4.5, 4.2, 4.1]]
    assert stops == [False, False, False, False, True] and stopper.should_stop
    assert float(stopper.best) == 4.0 and int(stopper.best_epoch) == 2


def test_an_improvement_smaller_than_min_delta_does_not_count():
    stopper = EarlyStopping(nn.Linear(2, 1), patience=2, min_delta=0.1)
    stopper.update(1.0)
    assert not stopper.update(0.95)  # better, but by less than 0.1
    assert stopper.update(0.92)
    assert float(stopper.best) == 1.0 and int(stopper.best_epoch) == 1


def test_maximize_keeps_the_highest_score():
    stopper = EarlyStopping(nn.Linear(2, 1), patience=2, maximize=True)
    for score in [-3.0, -1.0, -2.0]:
        stopper.update(score)
    assert float(stopper.best) == -1.0 and int(stopper.best_epoch) == 2


def test_patience_zero_never_stops_and_keeps_no_weights():
    module = nn.Linear(2, 1)
    stopper = EarlyStopping(module, patience=0)
    assert not any(stopper.update(score) for score in [1.0, 2.0, 3.0, 4.0])
    with torch.no_grad():
        module.weight.fill_(7.0)
    stopper.restore()
    assert torch.all(module.weight == 7.0)
    assert int(stopper.best_epoch) == 1  # the best score is still tracked


def test_restore_loads_the_best_epochs_state_dict_buffers_included():
    module = nn.BatchNorm1d(2)
    stopper = EarlyStopping(module, patience=5)
    for epoch, score in enumerate([3.0, 1.0, 2.0]):
        with torch.no_grad():
            module.weight.fill_(epoch)
            module.running_mean.fill_(10.0 + epoch)
        stopper.update(score)
    stopper.restore()
    assert torch.all(module.weight == 1.0) and torch.all(module.running_mean == 11.0)


def test_restore_without_any_score_leaves_the_weights():
    module = nn.Linear(2, 1)
    before = module.weight.detach().clone()
    EarlyStopping(module, patience=3).restore()
    assert torch.equal(module.weight, before)


def test_per_member_keeps_each_members_best_weights_and_restores_them():
    ensemble = Ensemble()
    stopper = EarlyStopping(ensemble, patience=10, per_member=True)
    scores = torch.tensor([[3.0, 1.0, 5.0], [2.0, 2.0, 4.0], [4.0, 3.0, 6.0]])  # epochs × members
    for epoch, score in enumerate(scores, start=1):
        ensemble.set(float(epoch))
        stopper.update(score)
    stopper.restore()
    # best epochs: member 0 → 2, member 1 → 1, member 2 → 2
    assert stopper.best_epoch.tolist() == [2, 1, 2]
    assert torch.equal(stopper.best, torch.tensor([2.0, 1.0, 4.0]))
    for member, epoch in enumerate([2, 1, 2]):
        assert torch.all(ensemble.weight[member] == epoch) and torch.all(ensemble.bias[member] == epoch)


def test_per_member_stops_only_when_every_member_ran_out_of_patience():
    stopper = EarlyStopping(Ensemble(), patience=2, per_member=True)
    stopper.update(torch.tensor([1.0, 1.0, 1.0]))
    assert not stopper.update(torch.tensor([2.0, 0.5, 2.0]))
    assert not stopper.update(torch.tensor([2.0, 2.0, 2.0]))  # members 0 and 2 waited 2 epochs, member 1 only 1
    assert stopper.update(torch.tensor([2.0, 2.0, 2.0]))


def test_per_member_a_member_that_never_improved_keeps_its_current_weights():
    ensemble = Ensemble()
    stopper = EarlyStopping(ensemble, patience=5, per_member=True)
    ensemble.set(1.0)
    stopper.update(torch.tensor([1.0, math.nan, 1.0]))
    ensemble.set(2.0)
    stopper.update(torch.tensor([2.0, math.nan, 2.0]))
    stopper.restore()
    assert ensemble.weight[:, 0, 0].tolist() == [1.0, 2.0, 1.0]
