"""Shared test helpers: run the CLI in-process and capture what a user would see."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import pytest

os.environ.setdefault("NEXTBEST_DEVICE", "cpu")
os.environ["COLUMNS"] = "200"  # before Rich consoles are created: wide tables, no wrapped messages


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
