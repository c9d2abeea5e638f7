"""Servers the tests start themselves: `nextbest serve` on 127.0.0.1 and a free port, stopped by process id."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_experiment(root: Path, agent: str = "linucb", overrides: dict | None = None) -> Path:
    rng = np.random.default_rng(0)
    contexts = pd.DataFrame({"device": rng.choice(["mobile", "desktop"], 200), "basket": rng.lognormal(3, 1, 200)})
    contexts.to_csv(root / "contexts.csv", index=False)
    directory = root / "shop"
    subprocess.run([sys.executable, "-m", "nextbest", "init", directory, "--action-space", "4", "--columns", "device,basket",
                    "--categorical-columns", "device", "--schema-from", root / "contexts.csv", "--agent", agent,
                    "--hyperparameters", json.dumps(overrides or {})], check=True, capture_output=True)
    return directory


@contextmanager
def server(*directories: Path, args: tuple[str, ...] = ()) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "nextbest", "serve", *map(str, directories), "--port", str(port), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ | {"NEXTBEST_DEVICE": "cpu"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {process.stdout.read().decode()[-2000:]}")
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def postgres(directory: Path) -> Iterator[str]:
    """A PostgreSQL 16 server of its own in `directory` (pgserver: no root, no system package) → its SQLAlchemy URL.
    Stopped when the block ends: the server this started, and only that one."""
    import pgserver

    server = pgserver.get_server(directory, cleanup_mode="stop")
    try:
        yield server.get_uri().replace("postgresql://", "postgresql+psycopg://")
    finally:
        server.cleanup()
