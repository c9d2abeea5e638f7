"""`simulation.json` in an experiment directory: the scored batches of `nextbest simulate`, for reports.

    save_simulation(result, directory)   # after simulate(..., experiment_dir=directory)
    load_simulation(directory)           # → SimulationResult, or None when the run was not simulated
"""

from __future__ import annotations

import json
from pathlib import Path

from nextbest.errors import ExperimentError
from nextbest.io import write_json
from nextbest.training.simulate import BatchResult, SimulationResult

FILE = "simulation.json"


def save_simulation(result: SimulationResult, directory: str | Path) -> Path:
    return write_json(Path(directory) / FILE, result.to_dict())


def load_simulation(directory: str | Path) -> SimulationResult | None:
    path = Path(directory) / FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        batches = [BatchResult(**batch) for batch in data["batches"]]
        return SimulationResult(data["scenario"], data["agent"], int(data["seed"]), int(data["batch_size"]), batches)
    except (ValueError, KeyError, TypeError) as error:
        raise ExperimentError(f"{path}: not a simulation record written by nextbest ({error})") from None
