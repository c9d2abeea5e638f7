"""Policy snapshots of an experiment directory, for servers: read checkpoints, never write them.

    snapshot = load_snapshot("runs/offers")                    # the latest checkpoint, or checkpoint="12"
    prediction = snapshot.predict(records, seeds)              # from any number of threads

    served = LatestSnapshot("runs/offers")                     # what a server holds
    served.current.predict(records, seeds)                     # request threads read `current`
    served.refresh()                                           # one thread: load a newer checkpoint, swap

A new checkpoint is loaded beside the one in use and swapped in by one assignment, so no request
waits for a load or sees half of one. A newest checkpoint that cannot be read (damaged, or not this
experiment's) is never swapped in: the current snapshot stays, and the log says so once per file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nextbest.agents.snapshot import PolicySnapshot
from nextbest.checkpoints import checkpoint_files
from nextbest.training.experiment import Experiment

log = logging.getLogger("nextbest.snapshot")


def load_snapshot(directory: str | Path, checkpoint: str | None = None, skipped: list[str] | None = None) -> PolicySnapshot:
    """The experiment's agent at its latest checkpoint (or the one named: a file name or number), frozen;
    the agent as initialized when there is no checkpoint yet. Reads the directory, writes nothing. Unreadable
    checkpoints passed over on the way to the latest readable one are appended to `skipped` (as messages)."""
    experiment = Experiment.open(directory, checkpoint)
    if skipped is not None:
        skipped.extend(experiment.skipped_checkpoints)
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
        skipped: list[str] = []
        self.current: PolicySnapshot = load_snapshot(self.directory, skipped=skipped)
        for message in skipped:
            log.warning("%s: serving %s; passed over %s", self.directory, self.current.checkpoint, message)
        self._unreadable: tuple[str, int, int] | None = None  # the newest file that failed (mtime, size): said once

    def newest_checkpoint(self) -> str | None:
        """The name of the checkpoint `latest` points at (else the newest file), None if there is none."""
        checkpoints = self.directory / "checkpoints"
        pointer = checkpoints / "latest"
        if pointer.is_file():
            return pointer.read_text().strip()
        files = checkpoint_files(checkpoints)
        return files[-1].name if files else None

    def refresh(self) -> bool:
        """Swap in a snapshot of the newest checkpoint if it is not the current one; True if swapped. One that
        cannot be loaded leaves the current one (never an older one) and is tried again once its file changes."""
        newest = self.newest_checkpoint()
        if newest is None or newest == self.current.checkpoint:
            return False
        try:
            stat = (self.directory / "checkpoints" / newest).stat()
            attempt = (newest, stat.st_mtime_ns, stat.st_size)
        except OSError:  # gone meanwhile (an old one deleted): tried, and said, once
            attempt = (newest, 0, 0)
        if attempt == self._unreadable:
            return False
        try:
            loaded = load_snapshot(self.directory, newest)
        except Exception as error:  # damaged, missing, or a state this agent cannot take: whatever it is, keep serving
            self._unreadable = attempt
            log.warning("%s: still serving %s: the newest checkpoint %s cannot be loaded (%s: %s)", self.directory,
                        self.current.checkpoint, newest, type(error).__name__, error)
            return False
        self._unreadable = None
        self.current = loaded  # one assignment: requests already running keep the snapshot they started with
        return True
