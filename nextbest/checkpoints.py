"""Checkpoints written atomically, with a `latest` pointer, the last K kept.

A checkpoint file is written to a temporary name and renamed, then `latest` is rewritten the
same way: a run killed at any moment leaves the previous checkpoint intact and `latest`
pointing at a complete file. Loading falls back to older checkpoints if the newest is unreadable.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import torch

from nextbest.errors import ExperimentError
from nextbest.io import atomic_write_bytes

_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")


def checkpoint_files(directory: Path) -> list[Path]:
    """Complete checkpoint files, oldest first (temporary files are not listed)."""
    if not directory.is_dir():
        return []
    files = [p for p in directory.iterdir() if _NAME.match(p.name)]
    return sorted(files, key=lambda p: int(_NAME.match(p.name).group(1)))


def write_checkpoint(directory: Path, number: int, state: dict[str, Any], keep: int) -> Path:
    """Write `state` as checkpoint `number`, point `latest` at it, delete all but the newest `keep`."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    path = atomic_write_bytes(directory / f"checkpoint-{number:06d}.pt", buffer.getvalue())
    atomic_write_bytes(directory / "latest", (path.name + "\n").encode())
    for old in checkpoint_files(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def read_checkpoint(
    directory: Path, name: str | None = None, skipped: list[str] | None = None
) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint called `name` (a file name or number), else the one `latest` names, else the
    newest readable one; None when there is none yet. Unreadable files passed over are appended
    to `skipped` (as messages) so that callers can say so."""
    if name is not None:
        path = _resolve(directory, name)
        return path, _load(path)
    candidates = checkpoint_files(directory)[::-1]
    pointer = directory / "latest"
    if pointer.is_file():
        named = directory / pointer.read_text().strip()
        candidates = [named] + [c for c in candidates if c != named]
    for path in candidates:
        try:
            return path, _load(path)
        except ExperimentError as error:
            if skipped is not None:
                skipped.append(str(error))
            continue  # a damaged file: fall back to the one before
    return None


def _resolve(directory: Path, name: str) -> Path:
    path = Path(name)
    if not path.is_absolute():
        path = directory / (f"checkpoint-{int(name):06d}.pt" if name.isdigit() else name)
    if not path.is_file():
        available = [p.name for p in checkpoint_files(directory)]
        raise ExperimentError(f"checkpoint {name!r} not found in {directory}; available: {available}")
    return path


def _load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # a truncated or corrupt file, whatever torch raises for it
        raise ExperimentError(f"{path}: unreadable checkpoint ({type(error).__name__})") from None
