"""`nextbest serve`, `nextbest learn`, `nextbest events export`: the live decision service."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from pathlib import Path

import typer

from nextbest.cli.app import QUIET_HELP, RAY_HELP, app, console
from nextbest.errors import ConfigError, ExperimentError

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
    require_keys: bool = typer.Option(False, "--require-keys", help="Refuse to start while a served experiment has no API "
                                      "key (`nextbest keys create`)."),
    metrics_open: bool = typer.Option(False, "--metrics-open", help="Serve /metrics without a key (else it needs a read key "
                                      "once any experiment has keys)."),
    cors_origins: list[str] | None = typer.Option(None, "--cors-origin", help="A web origin (https://shop.example) whose "
                                                  "pages may call the API; repeatable. None: CORS closed."),
    ssl_certfile: Path | None = typer.Option(None, "--ssl-certfile", help="TLS certificate (PEM); with --ssl-keyfile."),
    ssl_keyfile: Path | None = typer.Option(None, "--ssl-keyfile", help="TLS private key (PEM); with --ssl-certfile."),
    ray: str | None = typer.Option(None, "--ray", help=RAY_HELP + " The service then runs on Ray Serve (needs --database-url, "
                                   "PostgreSQL), the learner as one Ray actor."),
    replicas: int = typer.Option(1, "--replicas", help="With --ray: decision replicas (one CPU each)."),
) -> None:
    """Serve decisions over HTTP (OpenAPI at /docs), store every decision and reaction, and keep learning."""
    if ray is not None:
        _serve_on_ray(directories, ray, replicas, host=host, port=port, database_url=database_url, learner=learner, workers=workers,
                      tls=bool(ssl_certfile or ssl_keyfile), max_body_bytes=max_body_bytes, require_keys=require_keys,
                      metrics_open=metrics_open, cors_origins=_origins(cors_origins or []))
        return
    if replicas != 1:
        raise ConfigError("--replicas applies to --ray only; without it use --workers")
    import uvicorn

    from nextbest.serving.events import redacted
    from nextbest.serving.server import ENVIRONMENT, Deployment, check_keys, experiment_names

    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if workers > 1 and database_url is None:
        raise ConfigError("--workers > 1 needs --database-url (PostgreSQL): SQLite files are for one process")
    tls = _tls(ssl_certfile, ssl_keyfile)
    access = {"metrics_open": metrics_open, "require_keys": require_keys, "cors_origins": _origins(cors_origins or [])}
    names = experiment_names(directories)
    if require_keys:
        check_keys(names, database_url)
    console.print(f"serving {', '.join(names)} on http{'s' if tls else ''}://{host}:{port} (docs: /docs) · events in "
                  f"{redacted(database_url) if database_url else ', '.join(str(d / 'events.sqlite') for d in names.values())} · learner "
                  f"{'in this process' if learner else 'off (run `nextbest learn`)'}")
    if workers == 1:
        deployment = Deployment.build(list(names.values()), database_url)
        try:
            if learner:
                deployment.start_learners()
            uvicorn.run(deployment.app(max_body_bytes=max_body_bytes, **access), host=host, port=port, log_level=log_level,
                        **tls)
        finally:
            deployment.close()
        return
    os.environ[ENVIRONMENT] = json.dumps({"directories": [str(d) for d in names.values()], "database_url": database_url,
                                          "max_body_bytes": max_body_bytes, "access": access})
    learners = Deployment.build(list(names.values()), database_url) if learner else None
    try:
        if learners is not None:
            learners.start_learners()
        uvicorn.run("nextbest.serving.server:app_from_environment", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, **tls)
    finally:
        if learners is not None:
            learners.close()


def _serve_on_ray(directories: list[Path], address: str, replicas: int, *, host: str, port: int, database_url: str | None,
                  learner: bool, workers: int, tls: bool, **app_settings) -> None:
    """`serve --ray`: the same app on Ray Serve replicas until Ctrl-C (or a learner that cannot resume)."""
    from nextbest.scale.cluster import ray_session
    from nextbest.scale.serve import check_options, start_service
    from nextbest.serving.events import redacted
    from nextbest.serving.server import check_keys, experiment_names

    if workers != 1:
        raise ConfigError("--workers applies to plain serve; with --ray use --replicas")
    if tls:
        raise ConfigError("--ssl-certfile/--ssl-keyfile apply to plain serve; with --ray put TLS on the load balancer in front")
    check_options(replicas, database_url)
    names = experiment_names(directories)
    if app_settings["require_keys"]:
        check_keys(names, database_url)
    with ray_session(address):
        service = None
        try:  # Ctrl-C while starting, too: start_service stops what it started
            service = start_service(list(names.values()), database_url, replicas=replicas, host=host, port=port,
                                    learner=learner, **app_settings)
            console.print(f"serving {', '.join(names)} on {service.url} (docs: /docs) with {replicas} Ray Serve replica(s) · events "
                          f"in {redacted(database_url or '')} · learner {'as a Ray actor' if learner else 'off (run `nextbest learn`)'}")
            while not (refused := service.refused()):
                time.sleep(0.5)
            raise ExperimentError(refused)
        except KeyboardInterrupt:
            pass
        finally:
            if service is not None:
                service.close()


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
                    checkpoint = learner.experiment.checkpoint  # read before close() lets go of the experiment
                finally:
                    learner.close()
                if not quiet:
                    console.print(f"{name}: " + (f"trained a round, checkpoint {checkpoint.name}" if metrics else "no round due"))
            return
        deployment.start_learners()
        if not quiet:
            console.print(f"learning for {', '.join(deployment.experiments)}; stop with Ctrl-C")
        while not (refused := [learner.refused for learner in deployment.learners if learner.refused]):
            time.sleep(0.5)
        raise ExperimentError(refused[0])  # a learner that cannot resume (its checkpoint is damaged): exit 2
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
        table = with_rewards(table, experiment.reward, experiment.hyperparameters.serving.default_reward)
    write_table(table, output)
    console.print(f"wrote {len(table)} events of {name} to {output}")


def _tls(certfile: Path | None, keyfile: Path | None) -> dict[str, str]:
    """uvicorn's TLS arguments: both files or neither."""
    if (certfile is None) != (keyfile is None):
        raise ConfigError("--ssl-certfile and --ssl-keyfile go together: give both (TLS) or neither (plain HTTP)")
    if certfile is None or keyfile is None:
        return {}
    for option, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if not path.is_file():
            raise ConfigError(f"{option} {path}: no such file")
    return {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)}


def _origins(origins: list[str]) -> list[str]:
    """--cors-origin values: each a scheme, a host and maybe a port (what a browser sends as Origin), no path."""
    for origin in origins:
        if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", origin):
            raise ConfigError(f"--cors-origin {origin!r}: expected an origin such as https://shop.example or "
                              "http://localhost:3000 (scheme and host, no path or trailing slash)")
    return origins
