"""`nextbest serve`: experiment directories → stores, served experiments, learners, and the uvicorn server.

Each experiment is named by its folder. Its events go to `DIR/events.sqlite` (SQLite, WAL) unless a
database URL puts every experiment's events in one database (PostgreSQL for several processes or
machines). With several worker processes each worker builds its own app from the environment
variable NEXTBEST_SERVE, and the learners run once, in the process that started them.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

from nextbest.agents.settings import load_hyperparameters
from nextbest.errors import ConfigError
from nextbest.serving.app import create_app
from nextbest.serving.events import EventStore
from nextbest.serving.keys import experiments_without_keys
from nextbest.serving.learner import Learner
from nextbest.serving.service import ServedExperiment

ENVIRONMENT = "NEXTBEST_SERVE"


def experiment_names(directories: list[Path]) -> dict[str, Path]:
    """name (the folder's name) → directory; refuses two experiments of one name and non-experiments."""
    names: dict[str, Path] = {}
    for directory in map(Path, directories):
        name = directory.resolve().name
        if name in names:
            raise ConfigError(f"{directory} and {names[name]} are both called {name!r}; serve folders of different names")
        if not (directory / "hyperparameters.json").is_file():
            raise ConfigError(f"{directory} is not an experiment directory (no hyperparameters.json); create one with "
                              "`nextbest init`")
        names[name] = directory
    return names


def open_store(directory: Path, database_url: str | None) -> EventStore:
    return EventStore(database_url) if database_url else EventStore.sqlite(str(directory / "events.sqlite"))


def check_keys(names: dict[str, Path], database_url: str | None) -> None:
    """Refuse (ConfigError) when one of the experiments (name → directory) has no API key in force."""
    missing = []
    for name, directory in names.items():
        store = open_store(directory, database_url)
        try:
            missing += experiments_without_keys(store, [name])
        finally:
            store.close()
    if missing:
        raise ConfigError(f"--require-keys: experiment {missing[0]!r} has no API key; create one with `nextbest keys create "
                          f"{names[missing[0]]} --role decide`" + (f" (nor have {missing[1:]})" if missing[1:] else ""))


@dataclass
class Deployment:
    """What one server process holds: a store per database, a served experiment per directory, learners."""

    experiments: dict[str, ServedExperiment]
    stores: list[EventStore]
    learners: list[Learner] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def build(cls, directories: list[Path], database_url: str | None = None) -> Deployment:
        names = experiment_names(directories)
        shared = EventStore(database_url) if database_url else None
        experiments, stores = {}, [shared] if shared else []
        for name, directory in names.items():
            store = shared or open_store(directory, None)
            if store is not shared:
                stores.append(store)
            settings = load_hyperparameters(directory / "hyperparameters.json").serving  # not the agent: the snapshot loads it
            experiments[name] = ServedExperiment(name, directory, store, settings)
        return cls(experiments, stores)

    def app(self, **settings) -> FastAPI:
        return create_app(self.experiments, **settings)

    def start_learners(self) -> None:
        """One learner thread per experiment, each holding its experiment's lock while it lives."""
        for name, served in self.experiments.items():
            learner = Learner(name, served.directory, served.store, served.settings)
            self.learners.append(learner)
            thread = threading.Thread(target=learner.run, args=(self._stop,), name=f"nextbest-learner-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()  # each learner closes itself in its thread
        for store in self.stores:
            store.close()


def app_from_environment() -> FastAPI:
    """The app of one worker process (uvicorn's factory), from what `serve` put in NEXTBEST_SERVE."""
    spec = json.loads(os.environ[ENVIRONMENT])
    deployment = Deployment.build([Path(d) for d in spec["directories"]], spec["database_url"])
    return deployment.app(max_body_bytes=spec["max_body_bytes"], **spec.get("access", {}))
