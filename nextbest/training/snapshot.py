"""Policy snapshots of an experiment directory, for servers: read checkpoints, never write them.

    snapshot = load_snapshot("runs/offers")                    # the latest checkpoint, or checkpoint="12"
    prediction = snapshot.predict(records, seeds)              # from any number of threads

    served = LatestSnapshot("runs/offers")                     # what a server holds
    served.current.predict(records, seeds)                     # request threads read `current`
    served.refresh()                                           # one thread: load a newer checkpoint, swap

A new checkpoint is loaded beside the one in use and swapped in by one assignment, so no request
waits for a load or sees half of one.
"""

from __future__ import annotations

from pathlib import Path

from nextbest.agents.snapshot import PolicySnapshot
from nextbest.checkpoints import checkpoint_files
from nextbest.training.experiment import Experiment


def load_snapshot(directory: str | Path, checkpoint: str | None = None) -> PolicySnapshot:
    """The experiment's agent at its latest checkpoint (or the one named: a file name or number), frozen;
    the agent as initialized when there is no checkpoint yet. Reads the directory, writes nothing."""
    experiment = Experiment.open(directory, checkpoint)
    try:
        name = experiment.checkpoint.name if experiment.checkpoint is not None else None
        return PolicySnapshot(experiment.agent, checkpoint=name)
    finally:
        experiment.close()


class LatestSnapshot:
    """The snapshot of an experiment's newest checkpoint. `current` may be read from any thread; `refresh`
    runs in one (a timer, or whoever hears that the learner committed)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.current: PolicySnapshot = load_snapshot(self.directory)

    def newest_checkpoint(self) -> str | None:
        """The name of the checkpoint `latest` points at (else the newest file), None if there is none."""
        checkpoints = self.directory / "checkpoints"
        pointer = checkpoints / "latest"
        if pointer.is_file():
            return pointer.read_text().strip()
        files = checkpoint_files(checkpoints)
        return files[-1].name if files else None

    def refresh(self) -> bool:
        """Swap in a snapshot of the newest checkpoint if it is not the current one; True if swapped."""
        if self.newest_checkpoint() == self.current.checkpoint:
            return False
        loaded = load_snapshot(self.directory)
        if loaded.checkpoint == self.current.checkpoint:  # the newest file was unreadable: keep serving this one
            return False
        self.current = loaded  # one assignment: requests already running keep the snapshot they started with
        return True
