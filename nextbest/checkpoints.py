"""Checkpoints written atomically, with a `latest` pointer, the last K kept.

A checkpoint file is written to a temporary name and renamed, then `latest` is rewritten the
same way: a run killed at any moment leaves the previous checkpoint intact and `latest`
pointing at a complete file. Loading falls back to older checkpoints if the newest is unreadable.

Checkpoints are read with `torch.load(weights_only=True)`: opening one cannot run code. A state
may hold tensors, numbers, strings, None, lists, tuples and dicts of them, and numpy arrays and
scalars, which are stored as tagged byte tensors (`{"__numpy__": bytes, "dtype", "shape"}`) and
come back as numpy. Checkpoints written before this format (numpy arrays pickled as such) still
open: numpy's array reconstruction is allowed for plain (non-object) dtypes, nothing else.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
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
    path = atomic_write_bytes(directory / f"checkpoint-{number:06d}.pt", state_bytes(state))
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
    return load_state(path)


# --- weights-only state files -----------------------------------------------------------------------
_NUMPY = "__numpy__"


def state_bytes(state: Any) -> bytes:
    """`state` as the bytes of a file `load_state` reads back (numpy arrays and scalars included)."""
    buffer = io.BytesIO()
    torch.save(_encode(state, "state"), buffer)
    return buffer.getvalue()


def load_state(path: str | Path) -> Any:
    """A state written by `state_bytes` (or by `torch.save` of tensors and plain values), read weights-only.

    A missing, damaged or unsafe file (one whose loading would call anything but tensor and numpy-array
    constructors) raises ExperimentError naming it; nothing in it is executed."""
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated, corrupt or unsafe file, whatever torch raises for it
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise ExperimentError(
                f"{path}: refused to load: it holds {', '.join(unsafe)}, which loading could execute "
                "(checkpoints are read weights-only)"
            ) from None
        raise ExperimentError(f"{path}: unreadable checkpoint ({type(error).__name__})") from None
    return _decode(state)


def _unsafe_globals(path: Path) -> list[str]:
    """Globals a pickle names that the weights-only loader refuses ([] if the file cannot be parsed)."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:
        return []
    allowed = {f"{g.__module__}.{g.__name__}" for g in _legacy_numpy_globals()}
    return sorted(name for name in found if name not in allowed)


def _encode(value: Any, where: str) -> Any:
    """`value` with numpy arrays and scalars replaced by tagged byte tensors (the same object when none)."""
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.hasobject or array.dtype.fields is not None:
            raise TypeError(f"{where}: a numpy array of dtype {array.dtype} cannot be stored in a checkpoint")
        data = torch.frombuffer(bytearray(array.tobytes()), dtype=torch.uint8) if array.nbytes else torch.zeros(0, dtype=torch.uint8)
        return {_NUMPY: data, "dtype": array.dtype.str, "shape": list(array.shape), "scalar": isinstance(value, np.generic)}
    if isinstance(value, dict):
        encoded = {key: _encode(item, f"{where}[{key!r}]") for key, item in value.items()}
        return value if all(encoded[key] is value[key] for key in value) else encoded
    if isinstance(value, (list, tuple)):
        encoded = [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
        if all(a is b for a, b in zip(encoded, value)):
            return value
        return encoded if isinstance(value, list) else tuple(encoded)
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, torch.Tensor, torch.Size, torch.dtype, set, frozenset)):
        return value
    raise TypeError(f"{where}: a {type(value).__module__}.{type(value).__qualname__} cannot be stored in a checkpoint "
                    "(weights-only: tensors, numbers, strings, numpy arrays, and lists, tuples and dicts of them)")


def _decode(value: Any) -> Any:
    """The inverse of `_encode`: tagged byte tensors back to numpy arrays and scalars."""
    if isinstance(value, dict):
        if _NUMPY in value:
            array = np.frombuffer(value[_NUMPY].numpy().tobytes(), dtype=np.dtype(value["dtype"])).reshape(value["shape"]).copy()
            return array[()] if value.get("scalar") else array
        decoded = {key: _decode(item) for key, item in value.items()}
        return value if all(decoded[key] is value[key] for key in value) else decoded
    if isinstance(value, (list, tuple)):
        decoded = [_decode(item) for item in value]
        if all(a is b for a, b in zip(decoded, value)):
            return value
        return decoded if isinstance(value, list) else tuple(decoded)
    return value


def _legacy_numpy_globals() -> list[Any]:
    """What unpickling a plain numpy array or scalar calls: the checkpoints written before `_encode`."""
    from numpy._core.multiarray import _reconstruct, scalar

    dtypes = [type(np.dtype(code)) for code in "?bhilqBHILQefdgFDG"]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtypes]
