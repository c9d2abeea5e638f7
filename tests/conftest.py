"""Shared test helpers: run the CLI in-process and capture what a user would see."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

# Set before numpy, torch or Rich load. Two pytest workers share two cores: one thread each,
# or BLAS and torch threads fight over the cores.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("NEXTBEST_DEVICE", "cpu")
os.environ["COLUMNS"] = "200"  # wide Rich tables, no wrapped messages

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """run_cli("predict", DIR, "--contexts", ...) → CliResult, exactly as the `nextbest` command behaves."""
    from nextbest.cli import main

    def run(*args: object) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["nextbest", *map(str, args)])
        monkeypatch.setenv("COLUMNS", "200")  # wide Rich tables: messages stay on one line
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
