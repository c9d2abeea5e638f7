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
def server(*directories: Path, args: tuple[str, ...] = (), port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    port = port or free_port()  # a given port: a restart where the clients already are
    process = subprocess.Popen([sys.executable, "-m", "nextbest", "serve", *map(str, directories), "--port", str(port), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ | {"NEXTBEST_DEVICE": "cpu"})
    tls = "--ssl-certfile" in args  # https: the test checks the certificate itself; this only waits for the server
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1, verify=not tls).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start: {process.stdout.read().decode()[-2000:]}")
            time.sleep(0.1)
        yield url, process
    finally:
        stop(process)


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


def kill_postgres(directory: Path) -> int:
    """kill -9 the postmaster of the PostgreSQL in `directory` (its pid: the first line of postmaster.pid), and wait
    until it is gone (its backends notice and exit by themselves). → its pid."""
    import psutil

    pid = int((Path(directory) / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while psutil.pid_exists(pid) and time.monotonic() < deadline:  # a zombie until its parent (init) reaps it
        time.sleep(0.05)
    return pid


def restart_postgres(directory: Path) -> None:
    """Start the PostgreSQL of `directory` again after `kill_postgres` (same socket, same URL)."""
    import pgserver

    server = pgserver.get_server(directory, cleanup_mode="stop")  # the handle `postgres()` holds: it stops this one too
    with server._lock:
        server.ensure_postgres_running()


@contextmanager
def app_server(app) -> Iterator[str]:
    """`app` served by uvicorn in a thread of this process on 127.0.0.1 and a free port → its URL; for faults that
    are injected from inside (the store's connection). Stopped when the block ends."""
    import threading

    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, name="test-uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not running.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the in-process server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{config.port}"
    finally:
        running.should_exit = True
        thread.join(30)


def start_learner(directory: Path, *args: str, niceness: int = 0, threads: int | None = None) -> subprocess.Popen:
    """`nextbest learn DIR` as its own process (beside `serve --no-learner`), at `niceness` and with `threads` torch
    threads if given (a learner sharing the server's cores); stop it with `stop`, by its id."""
    env = os.environ | {"NEXTBEST_DEVICE": "cpu"} | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    return subprocess.Popen([sys.executable, "-m", "nextbest", "learn", str(directory), "--quiet", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            preexec_fn=(lambda: os.nice(niceness)) if niceness else None)


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C to a process this module started (by its id), then kill it if it does not stop within 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
