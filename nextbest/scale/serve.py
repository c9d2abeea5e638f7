"""`nextbest serve DIR --ray --replicas N`: the decision service on Ray Serve, the learner as one Ray actor.

    with ray_session(address):
        service = start_service([Path("runs/offers")], "postgresql+psycopg://…", replicas=2, port=8000)
        ...                                  # http://127.0.0.1:8000: the routes and JSON of plain `nextbest serve`
        service.close()

Each replica builds the same FastAPI app as a plain server process (`Deployment.app`), so routes, answers and
refusals are the same. Concurrent decide requests reaching a replica are gathered into one forward pass by the
service's own `MicroBatcher`, not by `@serve.batch`: a replica runs its requests on one event loop, which is all
`@serve.batch` relies on too, and the micro-batcher also turns the batch's decisions into one insert and lets a
request with a bad context fail alone before the batch (with `@serve.batch` the same parsing and insert would
have to be written again around it). All replicas write to the one database of `database_url` (PostgreSQL);
one actor runs the experiments' learners, the only writer of their checkpoints.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nextbest.errors import ConfigError
from nextbest.scale.cluster import import_ray, user_errors
from nextbest.serving.server import Deployment

APPLICATION = "nextbest"


@dataclass
class RayService:
    """A running decision service on Ray Serve: its URL, and the learner actor (None with --no-learner)."""

    url: str
    learner: Any

    def refused(self) -> str | None:
        """Why the learner stopped for good (a checkpoint it cannot resume from), else None."""
        if self.learner is None:
            return None
        return import_ray().get(self.learner.refused.remote())

    def close(self) -> None:
        """Delete the application, stop Serve (its proxy and controller) and the learner actor."""
        from ray import serve

        ray = import_ray()
        try:
            if APPLICATION in serve.status().applications:  # its replicas end gracefully: the batchers answer, stores close
                serve.delete(APPLICATION)
            serve.shutdown()
        finally:
            if self.learner is not None:
                try:
                    ray.get(self.learner.stop.remote(), timeout=60)  # let go of the experiments' locks
                except ray.exceptions.RayError:
                    pass  # it never started (the error being raised says why), or died: nothing to let go of
                finally:
                    ray.kill(self.learner)


class _Replica:
    """One decision replica: the experiments, their stores and the app of a plain server process."""

    def __init__(self, directories: list[str], database_url: str, app_settings: dict[str, Any]):
        self.deployment = Deployment.build([Path(d) for d in directories], database_url)
        self.app_settings = app_settings

    def __serve_build_asgi_app__(self):  # called by Ray Serve after __init__, on the replica
        return self.deployment.app(**self.app_settings)

    def __del__(self):  # after the app's shutdown, which answers what its batchers hold
        self.deployment.close()


class _Learners:
    """The learners of every experiment, in threads of one actor (as in a plain `nextbest serve`)."""

    def __init__(self, directories: list[str], database_url: str):
        self.deployment = Deployment.build([Path(d) for d in directories], database_url)
        self.deployment.start_learners()
        self._stopped = threading.Event()

    def refused(self) -> str | None:
        return next((learner.refused for learner in self.deployment.learners if learner.refused), None)

    def stop(self) -> None:
        if not self._stopped.is_set():
            self._stopped.set()
            self.deployment.close()


def check_options(replicas: int, database_url: str | None) -> None:
    """Refuse (ConfigError) what `serve --ray` cannot run with, before Ray starts."""
    if replicas < 1:
        raise ConfigError(f"--replicas must be at least 1, got {replicas}")
    if database_url is None or not database_url.startswith("postgresql"):
        raise ConfigError("--ray needs --database-url postgresql+psycopg://… : the replicas and the learner are separate "
                          "processes, perhaps on other machines, and write to one PostgreSQL (SQLite files are for one process)")


def start_service(directories: list[Path], database_url: str | None, *, replicas: int = 1, host: str = "127.0.0.1",
                  port: int = 8000, learner: bool = True, replica_cpus: float = 1.0, **app_settings: Any) -> RayService:
    """Deploy the decision service of `directories` on the connected Ray (see `ray_session`) with `replicas`
    replicas of `replica_cpus` CPUs each behind Ray Serve's proxy on host:port, and (with `learner`) one learner
    actor; `app_settings` are `create_app`'s (max_body_bytes, require_keys, …). Returns once every replica answers.
    Refuses a cluster where Serve already runs: this starts Serve, and `RayService.close` shuts it down."""
    check_options(replicas, database_url)
    ray = import_ray()
    from ray import serve

    running = serve.status()
    if running.proxies or running.applications:  # its HTTP options are fixed, and ours would stop it at the end
        raise ConfigError(f"Ray Serve already runs on this Ray cluster (applications: {sorted(running.applications)}); "
                          "`nextbest serve --ray` starts and stops a Serve of its own: stop that one (`serve shutdown`) or "
                          "use another cluster")
    paths = [str(Path(d).resolve()) for d in directories]
    actor = None
    try:
        if learner:
            actor = ray.remote(num_cpus=0, max_concurrency=2)(_Learners).remote(paths, database_url)  # 2: stop while it runs
            with user_errors():
                ray.get(actor.refused.remote())  # built: its errors (a bad directory, the database) surface here
        serve.start(http_options={"host": host, "port": port})
        replica = serve.deployment(serve.ingress()(_Replica), name="decisions", num_replicas=replicas,
                                   ray_actor_options={"num_cpus": replica_cpus}, max_ongoing_requests=256)
        serve.run(replica.bind(paths, database_url, app_settings), name=APPLICATION, route_prefix="/")
    except BaseException:
        RayService("", actor).close()
        raise
    return RayService(f"http://{host}:{port}", actor)
