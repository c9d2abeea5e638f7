"""`nextbest serve`, `nextbest learn`, `nextbest events export`: the live decision service."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path

import typer

from nextbest.cli.app import QUIET_HELP, app, console
from nextbest.errors import ConfigError

DATABASE_HELP = ("SQLAlchemy URL of the event store, e.g. postgresql+psycopg://user:password@host/db "
                 "(default: SQLite at DIR/events.sqlite).")

events_app = typer.Typer(help="The events a served experiment stored: decisions joined with reactions.", no_args_is_help=True)
app.add_typer(events_app, name="events")


@app.command()
def serve(
    directories: list[Path] = typer.Argument(..., help="Experiment directories to serve; each is named by its folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_HELP),
    workers: int = typer.Option(1, "--workers", help="Server processes (use PostgreSQL for more than one)."),
    learner: bool = typer.Option(True, "--learner/--no-learner", help="Train in this process (else run `nextbest learn`)."),
    max_body_bytes: int = typer.Option(1_048_576, "--max-body-bytes", help="Larger request bodies are refused (413)."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level: warning, info, debug."),
) -> None:
    """Serve decisions over HTTP (OpenAPI at /docs), store every decision and reaction, and keep learning."""
    import uvicorn

    from nextbest.serving.server import ENVIRONMENT, Deployment, experiment_names

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers > 1 and database_url is None:
        raise ConfigError("--workers > 1 needs --database-url (PostgreSQL): SQLite files are for one process")
    names = experiment_names(directories)
    console.print(f"serving {', '.join(names)} on http://{host}:{port} (docs: /docs) · events in "
                  f"{_redacted(database_url) if database_url else ', '.join(str(d / 'events.sqlite') for d in names.values())} · learner "
                  f"{'in this process' if learner else 'off (run `nextbest learn`)'}")
    if workers == 1:
        deployment = Deployment.build(list(names.values()), database_url)
        try:
            if learner:
                deployment.start_learners()
            uvicorn.run(deployment.app(max_body_bytes=max_body_bytes), host=host, port=port, log_level=log_level)
        finally:
            deployment.close()
        return
    os.environ[ENVIRONMENT] = json.dumps({"directories": [str(d) for d in names.values()], "database_url": database_url,
                                          "max_body_bytes": max_body_bytes})
    learners = Deployment.build(list(names.values()), database_url) if learner else None
    try:
        if learners is not None:
            learners.start_learners()
        uvicorn.run("nextbest.serving.server:app_from_environment", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level)
    finally:
        if learners is not None:
            learners.close()


@app.command()
def learn(
    directories: list[Path] = typer.Argument(..., help="Experiment directories whose served events to learn from."),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_HELP),
    once: bool = typer.Option(False, "--once", help="Expire waits and train one round if one is due, then stop."),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
) -> None:
    """Join served decisions with their reactions and train on each event exactly once (`serve --no-learner`)."""
    from nextbest.serving.server import Deployment

    deployment = Deployment.build(directories, database_url)
    try:
        if once:
            from nextbest.serving.learner import Learner

            for name, served in deployment.experiments.items():
                learner = Learner(name, served.directory, served.store, served.settings)
                try:
                    learner.open()
                    metrics = learner.step()
                finally:
                    learner.close()
                if not quiet:
                    console.print(f"{name}: " + (f"trained a round, checkpoint {learner.experiment.checkpoint.name}"
                                                 if metrics else "no round due"))
            return
        deployment.start_learners()
        if not quiet:
            console.print(f"learning for {', '.join(deployment.experiments)}; stop with Ctrl-C")
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        deployment.close()


@events_app.command("export")
def export(
    directory: Path = typer.Argument(..., help="A served experiment directory."),
    output: Path = typer.Option(..., "--output", help="Experience table to write (CSV or Parquet)."),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_HELP),
    since: str | None = typer.Option(None, "--since", help="Only events decided at or after this time (ISO 8601)."),
    all_events: bool = typer.Option(False, "--all", help="Also events still waiting (their reaction is empty)."),
) -> None:
    """Write the joined events as an experience table (what `nextbest train` and `nextbest ope` read: with
    `reward`, and `logging_probability`), plus event_id, probability, checkpoint, mode and timestamps."""
    from nextbest.data.tables import write_table
    from nextbest.serving.learner import experience_table, with_rewards
    from nextbest.serving.server import experiment_names, open_store
    from nextbest.training.experiment import Experiment

    (name, directory), = experiment_names([directory]).items()
    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since).timestamp()
        except ValueError:
            raise ConfigError(f"--since {since!r}: expected a date or time such as 2026-12-01 or 2026-12-01T09:30") from None
    experiment = Experiment.open(directory)
    store = open_store(directory, database_url)
    try:
        rows = store.rows(name, joined_only=not all_events, since=start)
    finally:
        store.close()
    table = experience_table(rows, experiment.schema.columns, experiment.action_space, extra=True)
    if not all_events:
        table = with_rewards(table, experiment, experiment.hyperparameters.serving.default_reward)
    write_table(table, output)
    console.print(f"wrote {len(table)} events of {name} to {output}")


def _redacted(url: str) -> str:
    """A database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
