"""Batch scoring on a two-node Ray cluster on this machine: a head and a second node, each with its own object store
and temp folder, so that code that assumes one node (a path only the driver reads, an object too large to ship)
fails here. Both nodes are `ray start --block` processes this test starts and stops by their ids."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]' (make test installs it)")

from servers import free_port

from nextbest.envs import make_scenario
from nextbest.training.simulate import scenario_experiment

RAY = str(Path(sys.executable).with_name("ray"))
# A cluster of this test's own on 127.0.0.1, joined by this test's driver only: no token to hand around.
ENV = os.environ | {"RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": ""}
NODE = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", str(100 * 1024**2), "--block",
        "--disable-usage-stats"]


def start_node(*args: str) -> subprocess.Popen:
    return subprocess.Popen([RAY, "start", *args, *NODE], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=ENV)


def scored_on(node_dir: str) -> bool:
    """Whether a scoring actor's worker log is in the node's temp folder."""
    logs = [p.read_text(errors="replace") for p in Path(node_dir).glob("session_*/logs/worker-*.err")]
    return any("MapBatches(Scorer)" in text for text in logs)


def stop_node(node: subprocess.Popen) -> None:
    """SIGTERM to the session of `ray start --block` that this test started (the node's processes: raylet, GCS,
    workers), then SIGKILL to it after 10 s (a head waits ~30 s for its GCS otherwise)."""
    if node.poll() is None:
        os.killpg(node.pid, signal.SIGTERM)
        try:
            node.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()


@pytest.mark.slow
def test_batch_scoring_runs_on_two_nodes_and_gives_the_single_process_rows(run_cli, tmp_path):
    port = free_port()
    head_dir, worker_dir = (tempfile.mkdtemp(prefix=prefix, dir="/tmp") for prefix in ("nbh", "nbw"))
    head = start_node("--head", "--port", str(port), "--temp-dir", head_dir, "--include-dashboard", "false")
    second = None
    try:
        world = make_scenario("optimus-poc")  # the experiment and the reference while the head starts
        experiment = scenario_experiment(world, directory=tmp_path / "exp", seed=0, agent="linucb")
        experiment.close()
        table = world.sample_contexts(1200, np.random.default_rng(4))
        (tmp_path / "in").mkdir()
        table.iloc[:500].to_parquet(tmp_path / "in" / "a.parquet", index=False)
        table.iloc[500:].to_parquet(tmp_path / "in" / "b.parquet", index=False, row_group_size=300)
        table.to_parquet(tmp_path / "all.parquet", index=False)
        assert run_cli("predict", tmp_path / "exp", "--contexts", tmp_path / "all.parquet", "--output", tmp_path / "one.parquet",
                       "--seed", "5").exit_code == 0
        deadline = time.monotonic() + 60
        while not list(Path(head_dir).glob("session_*/logs/raylet.out")) and time.monotonic() < deadline:
            time.sleep(0.5)
        # The driver starts while the second node does: with 2 actors of one CPU each, the job waits for its CPU.
        second = start_node("--address", f"127.0.0.1:{port}", "--temp-dir", worker_dir)
        driver = subprocess.run(
            [sys.executable, "-m", "nextbest", "predict", tmp_path / "exp", "--contexts", tmp_path / "in", "--output",
             tmp_path / "out", "--seed", "5", "--ray", f"127.0.0.1:{port}", "--workers", "2", "--batch-size", "200"],
            capture_output=True, text=True, timeout=180, env=ENV,
        )
        assert driver.returncode == 0, driver.stdout + driver.stderr
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out"), pd.read_parquet(tmp_path / "one.parquet"))
        for node_dir in (head_dir, worker_dir):  # one scoring actor on each node (one CPU each)
            deadline = time.monotonic() + 20  # a busy node writes its workers' logs a little later
            while not (ran := scored_on(node_dir)) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert ran, f"no scoring actor ran on the node of {node_dir}"
    finally:
        if second is not None:
            stop_node(second)
        stop_node(head)
        shutil.rmtree(head_dir, ignore_errors=True)
        shutil.rmtree(worker_dir, ignore_errors=True)
