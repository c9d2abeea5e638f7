"""`nextbest keys create | list | revoke`: the API keys of a served experiment (docs/serving.md, "Keys")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from nextbest.cli.app import app, console, error_console
from nextbest.cli.serving import DATABASE_HELP

if TYPE_CHECKING:
    from nextbest.serving.events import EventStore

keys_app = typer.Typer(help="API keys of a served experiment: who may decide, read or administer it.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@contextmanager
def _experiment_store(directory: Path, database_url: str | None) -> Iterator[tuple[str, EventStore]]:
    """(the experiment's name, its event store), closed afterwards."""
    from nextbest.serving.server import experiment_names, open_store

    (name, directory), = experiment_names([directory]).items()
    store = open_store(directory, database_url)
    try:
        yield name, store
    finally:
        store.close()


@keys_app.command("create")
def create(
    directory: Path = typer.Argument(..., help="A served experiment directory."),
    role: str = typer.Option(..., "--role", help="decide (decisions, reactions, activation), read (status, metrics, "
                             "dashboard) or admin (everything)."),
    name: str | None = typer.Option(None, "--name", help="A name for the key, e.g. shop-frontend (default: the role and "
                                    "a few random characters)."),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_HELP),
) -> None:
    """Create a key and print it, once: only its salted hash is stored. The key alone goes to stdout."""
    from nextbest.serving.keys import create_key

    with _experiment_store(directory, database_url) as (experiment, store):
        key, info = create_key(store, experiment, role, name)
    print(key)  # alone on stdout, unstyled: KEY=$(nextbest keys create …)
    error_console.print(f"created the {info.role} key {info.name!r} of {experiment}; it is shown only this once — send it as "
                        "'Authorization: Bearer <key>'", highlight=False, markup=False)


@keys_app.command("list")
def list_(
    directory: Path = typer.Argument(..., help="A served experiment directory."),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_HELP),
) -> None:
    """Names, roles, and when each key was created, last used (to the minute) and revoked; never a key."""
    from nextbest.serving.keys import list_keys

    with _experiment_store(directory, database_url) as (experiment, store):
        keys = list_keys(store, experiment)
    table = Table(title=f"API keys of {experiment}")
    for column in ("name", "role", "created", "last used", "revoked"):
        table.add_column(column)
    for info in keys:
        table.add_row(info.name, info.role, _when(info.created_at), _when(info.last_used_at), _when(info.revoked_at))
    console.print(table if keys else f"{experiment} has no API keys: its routes are open (create one with `nextbest keys "
                  f"create {directory} --role decide`)")


@keys_app.command("revoke")
def revoke(
    directory: Path = typer.Argument(..., help="A served experiment directory."),
    name: str = typer.Argument(..., help="The key's name (see `nextbest keys list`)."),
    database_url: str | None = typer.Option(None, "--database-url", help=DATABASE_HELP),
) -> None:
    """Revoke a key: a running server refuses it (401) within a second."""
    from nextbest.serving.keys import revoke_key

    with _experiment_store(directory, database_url) as (experiment, store):
        info, revoked = revoke_key(store, experiment, name)
    console.print(f"revoked the key {name!r} of {experiment}" if revoked else
                  f"the key {name!r} of {experiment} was already revoked at {_when(info.revoked_at)}", highlight=False)


def _when(seconds: float | None) -> str:
    return "—" if seconds is None else datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")
