"""Batch scoring on Ray Data: a Parquet file or folder of contexts → a Parquet folder of predictions.

    result = score_parquet("runs/offers", "crm/", "scores/", seed=7)     # inside ray_session(...)
    result.rows, result.files

Every input row gets exactly one output row, and with the same seed the same prediction as `nextbest predict`:
row i of the input (files in name order, rows in file order) is predicted with seed + i, or with its own
`prediction_seed`. The driver reads only the Parquet footers (row counts); Ray Data's read tasks read the row
groups and number their rows, actors that each hold the policy snapshot once score the batches, and write tasks
write `part-<first row>.parquet` files. A task that dies is run again by Ray and writes the same file again,
so a retry can neither lose nor double a row; the rows written are counted and checksummed against the input
before the folder is renamed into place (a failed job leaves nothing under the output's name).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from nextbest.errors import DataError
from nextbest.scale.cluster import user_errors
from nextbest.scale.parquet import ROW, check_written, contexts_datasource, input_files, plan_pieces, predictions_datasink
from nextbest.seeding import fresh_seed
from nextbest.training.experiment import row_seeds
from nextbest.training.snapshot import load_snapshot


@dataclass
class ScoringResult:
    rows: int
    files: int  # Parquet files written
    workers: int
    seconds: float
    output: Path


class Scorer:
    """A Ray Data actor: the policy snapshot, loaded once, scores batch after batch."""

    def __init__(self, snapshot_ref: list, base_seed: int, greedy: bool, source: str):
        import ray
        import torch

        torch.set_num_threads(1)  # one core per actor: the actors are the parallelism
        self.snapshot = ray.get(snapshot_ref[0])
        self.base_seed, self.greedy, self.source = base_seed, greedy, source

    def __call__(self, block: pa.Table) -> pd.DataFrame:
        batch = block.to_pandas()  # as `pd.read_parquet` reads it (Ray's own pandas batches hold Arrow dtypes)
        rows = batch[ROW].to_numpy()
        source = f"{self.source} (rows {rows.min() + 1}–{rows.max() + 1}; row numbers below count within them)"
        contexts = batch.drop(columns=[ROW]).reset_index(drop=True)
        seeds = row_seeds(contexts, self.base_seed, source=source, rows=rows)
        contexts = contexts[self.snapshot.schema.columns]
        prediction = self.snapshot.act(self.snapshot.features(contexts, source=source), seeds, greedy=self.greedy)
        table = prediction.to_table(contexts, self.snapshot.action_space)
        table[ROW] = rows
        return table


def score_parquet(
    directory: str | Path,
    contexts: str | Path,
    output: str | Path,
    *,
    seed: int | None = None,
    greedy: bool = False,
    checkpoint: str | None = None,
    workers: int | None = None,
    batch_size: int = 65_536,
) -> ScoringResult:
    """Score every row of `contexts` (a Parquet file or folder) with the experiment's policy and write the
    prediction folder `output`, on the Ray this process is connected to. `workers` scoring actors (default:
    the cluster's CPUs), `batch_size` rows per batch; seeds as `nextbest predict`'s (drawn once when None)."""
    import ray
    from ray.data import DataContext

    started = time.perf_counter()
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise DataError(f"{output}: already exists; expected a new (or empty) folder for the prediction files")
    if batch_size < 1:
        raise DataError(f"--batch-size {batch_size}: expected a positive number of rows")
    snapshot = load_snapshot(directory, checkpoint)
    columns = snapshot.schema.columns
    pieces, seeded = plan_pieces(input_files(contexts), columns)
    n = pieces[-1].first_row + pieces[-1].rows
    workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    if workers < 1:
        raise DataError(f"--workers {workers}: expected at least 1")
    base = fresh_seed() if seed is None else int(seed)

    context = DataContext.get_current()
    context.execution_options.preserve_order = True  # batches in input order: contiguous rows per output file
    context.enable_progress_bars = context.print_on_execution_start = False
    context.raise_original_map_exception = True  # a scorer's SchemaError reaches the driver as itself
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # what fails is raised here, once, not logged as well
    staging = output.with_name(f".{output.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        with user_errors(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="ray")  # advice on concurrency for small inputs
            # Reading and writing are light beside scoring: they take no CPU of their own (with one actor per CPU
            # holding them all, they would wait for one forever), two tasks at a time each.
            read = columns + (["prediction_seed"] if seeded else [])
            dataset = ray.data.read_datasource(contexts_datasource(pieces, read, batch_size), num_cpus=0, concurrency=2,
                                               override_num_blocks=len(pieces))
            snapshot_ref = ray.put(snapshot)  # held here until the job ends: an actor restarted after a crash reads it again
            scored = dataset.map_batches(
                Scorer, fn_constructor_args=([snapshot_ref], base, greedy, str(contexts)), batch_size=batch_size,
                batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
            )
            sink = predictions_datasink(staging)
            scored.write_datasink(sink, ray_remote_args={"num_cpus": 0}, concurrency=2)
        del snapshot_ref
        files = check_written(sink.returns, n, staging)
        if output.exists():
            output.rmdir()
        os.rename(staging, output)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return ScoringResult(rows=n, files=files, workers=workers, seconds=time.perf_counter() - started, output=output)


