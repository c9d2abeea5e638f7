"""One writer at a time per experiment directory: an exclusive lock on DIR/.lock.

    with ExperimentLock(directory, timeout=600):   # waits for another writer, up to `timeout` seconds
        ...                                         # read the latest checkpoint, train, write the next one

The lock is an OS file lock (`filelock`: flock on Unix), released when the holder exits or dies, so a
killed run never leaves the experiment locked. The holder writes its pid, host and command into the
lock file; a writer that gives up names them. Re-entrant within one thread (nested `with` is free).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from nextbest.errors import ExperimentError

LOCK_FILE = ".lock"
LOCK_TIMEOUT = 600.0  # seconds a writer waits for the one before it


class ExperimentLock:
    def __init__(self, directory: Path, timeout: float = LOCK_TIMEOUT):
        self.directory = Path(directory)
        self.timeout = timeout
        self.path = self.directory / LOCK_FILE
        self._lock = FileLock(self.path, timeout=timeout, on_acquired=_record_holder)

    @property
    def held(self) -> bool:
        """Whether this thread holds the lock."""
        return self._lock.is_locked

    def acquire(self) -> None:
        """Wait up to `timeout` seconds; ExperimentError naming the directory and the holder if it stays taken."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=self.timeout)
        except Timeout:
            raise ExperimentError(
                f"{self.directory} is being written by another writer ({self.holder() or 'holder unknown'}); "
                f"waited {self.timeout:g} s for it to finish. Run again when it has finished, or stop it"
            ) from None

    def release(self) -> None:
        self._lock.release()

    def holder(self) -> str:
        """What the current holder wrote into the lock file ('' if nothing)."""
        try:
            return self.path.read_text().strip()
        except OSError:
            return ""

    def __enter__(self) -> ExperimentLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _record_holder(descriptor: int) -> None:
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:3]]) if sys.argv and sys.argv[0] else "python"
    text = f"pid {os.getpid()} on {socket.gethostname()}, `{command}`, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, text.encode(), 0)
