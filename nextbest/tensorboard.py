"""TensorBoard event files for training curves (created lazily; nothing written without a directory)."""

from __future__ import annotations

from pathlib import Path


class MetricsWriter:
    def __init__(self, directory: Path | None):
        self.directory = directory
        self._writer = None

    def write(self, metrics: dict[str, float], step: int) -> None:
        if self.directory is None:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.directory))
        for name, value in metrics.items():
            self._writer.add_scalar(name, value, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
