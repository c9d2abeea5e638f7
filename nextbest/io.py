"""Small file helpers shared by every component: atomic writes and JSON."""

from __future__ import annotations

import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any


def temporary_path(path: str | Path) -> Path:
    """A hidden sibling of `path` no other writer uses: `.NAME.tmp-PID-THREAD-RANDOM`."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}-{secrets.token_hex(4)}")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` so that a crash leaves either the old file or the new one, never half;
    durable (file and directory synced) when it returns. Concurrent writers never share a temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def fsync_directory(directory: str | Path) -> None:
    """Make a rename in `directory` durable (a no-op where directories cannot be opened, as on Windows)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write `obj` as indented JSON (numpy scalars and arrays allowed)."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_to_builtin) + "\n").encode())


def _to_builtin(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
