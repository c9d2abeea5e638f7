"""Fixtures shared by the PPO, nets and pretraining tests (imported by them; no tests here).

Two pytest workers share two cores: with PyTorch's default of one thread per core, every tiny
tensor operation waits for a descheduled thread (about a millisecond each under load), so the
small networks of these tests run on one thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
