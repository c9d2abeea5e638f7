"""The `nextbest` Typer application and what every command shares: console, errors, JSON, progress."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nextbest.errors import NextbestError
from nextbest.io import write_json

app = typer.Typer(
    name="nextbest",
    help="Marketing decisions with reinforcement learning, learned from how people react.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)  # plain lines (paths, messages) never wrap; tables still fit the terminal
error_console = Console(stderr=True, soft_wrap=True)

# Shared option help texts, so every command words them the same way.
JSON_HELP = "Also write the numbers as JSON to this path."
SEED_HELP = "Random seed; the same seed gives the same result."
QUIET_HELP = "No progress bars or tables, for scripts."
RAY_HELP = ("Run on Ray (pip install 'nextbest[ray]'): --ray alone starts a local Ray on this machine; "
            "--ray auto joins the cluster this machine belongs to, --ray ray://host:port a remote one.")


@contextmanager
def progress_bar(description: str, total: float | None, *, quiet: bool = False) -> Iterator[Any]:
    """A Rich progress bar; `advance(n)` on the yielded object. Silent when quiet or not a terminal.
    Without a `total` (work of unknown length) it is a spinner with the elapsed time."""
    columns = (
        [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
        if total is not None
        else [SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn()]
    )
    bar = Progress(
        *columns,
        console=error_console,
        disable=quiet,
        transient=False,
    )
    with bar:
        task = bar.add_task(description, total=total)

        class Handle:
            def advance(self, amount: float = 1.0) -> None:
                bar.advance(task, amount)

            def update(self, **fields: Any) -> None:
                bar.update(task, **fields)

        yield Handle()


def split_names(text: str | None) -> list[str] | None:
    """A comma-separated option ('a, b,c') as a list; None when not given."""
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def open_experiment(directory: Path, checkpoint: str | None = None):
    """Experiment.open, warning when a damaged checkpoint was passed over (the run resumes from the one before)."""
    from nextbest.training.experiment import Experiment

    experiment = Experiment.open(directory, checkpoint)
    for message in experiment.skipped_checkpoints:
        used = experiment.checkpoint.name if experiment.checkpoint else "no checkpoint"
        error_console.print(f"[yellow]warning:[/yellow] {message}; using {used}", highlight=False)
    return experiment


def save_json(path: Path | None, payload: Any) -> None:
    """Write `payload` to `path` when the user passed --json."""
    if path is not None:
        write_json(path, payload)
        error_console.print(f"[dim]wrote {path}[/dim]")


def ray_address_argv(argv: list[str]) -> list[str]:
    """`--ray` given without an address becomes `--ray local` (a Typer option always takes a value). The word after
    `--ray` is its address when it looks like one: local, auto, ray://…, host:port."""
    out = []
    for k, word in enumerate(argv):
        out.append(word)
        if word == "--ray":
            following = argv[k + 1] if k + 1 < len(argv) else ""
            if not re.fullmatch(r"local|auto|ray://\S+|[\w.-]+:\d+", following):
                out.append("local")
    return out


def main() -> None:
    """Entry point: a NextbestError becomes one red line and exit code 2 (usage errors exit 2 too)."""
    from nextbest.cli import commands  # noqa: F401  (registers every command on `app`)

    sys.argv[1:] = ray_address_argv(sys.argv[1:])
    try:
        app()
    except NextbestError as error:
        error_console.print(f"[bold red]error:[/bold red] {error}", highlight=False, soft_wrap=True, markup=True)
        sys.exit(2)
