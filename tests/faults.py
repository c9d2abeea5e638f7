"""Faults injected into a running `nextbest serve` under load, measured: the one implementation of
tests/test_serving_faults.py and benchmarks/bench_faults.py. Everything runs on 127.0.0.1; every process is
started here and stopped by its id.

    shop = experiment(tmp_path)          # a new experiment directory called "shop"
    record = database_killed(shop, tmp_path / "pg")
    record["clients_saw"]        # {"200": 802, "503": 41}: answers by status ("no answer": refused or reset)
    record["lost"]               # decisions answered 200 that the store does not hold: must be 0

Each scenario returns such a record: `acknowledged` (decisions answered 200), `stored` (of the decisions sent,
those the store holds afterwards: an answer lost with its connection may still have been stored), `lost`
(acknowledged, not stored), `recover_seconds` (from the repair, or from the fault where nothing needs
repairing, to the first 200 after it), and what is particular to the fault.
"""

from __future__ import annotations

import collections
import itertools
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from servers import app_server, free_port, kill_postgres, make_experiment, postgres, restart_postgres, server, start_learner, stop

from nextbest.agents.settings import load_hyperparameters
from nextbest.checkpoints import load_state
from nextbest.serving.events import EventStore, StoreUnavailable

CONTEXT = {"device": "mobile", "basket": 20.0}
LEARNER = {"learner_batch_size": 20, "learner_interval_seconds": 1}  # rounds every 20 joined events: checkpoints swap often


def experiment(root: Path) -> Path:
    """A new experiment `root/shop` (tests/servers.py's), with small learner rounds."""
    return make_experiment(root, overrides=LEARNER)


@dataclass
class Answer:
    sent: float  # time.monotonic() when sent
    seconds: float  # until answered (or refused)
    status: int | None  # None: no answer (connection refused or reset, or the client's timeout)
    event_id: str
    body: Any


class Load:
    """Single-context decisions, each with its own event id, from `workers` threads one after the other until
    `stop()`; with `react`, each acknowledged decision gets a reaction (so that events join and the learner
    trains). Every answer is kept."""

    def __init__(self, url: str, *, workers: int = 2, react: bool = False, timeout: float = 10.0, pause: float = 0.005,
                 prefix: str = "load"):
        self.url, self.workers, self.react, self.timeout, self.pause, self.prefix = url, workers, react, timeout, pause, prefix
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._ids = itertools.count()
        self._threads = [threading.Thread(target=self._run, name=f"load-{k}", daemon=True) for k in range(workers)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> Load:
        self._stop.set()
        for thread in self._threads:
            thread.join(2 * self.timeout)
        return self

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.timeout) as client:
            while not self._stop.is_set():
                event_id = f"{self.prefix}-{next(self._ids)}"
                sent = time.monotonic()
                try:
                    answer = client.post("/v1/experiments/shop/decisions", json={"contexts": [CONTEXT], "event_ids": [event_id]})
                    status, body = answer.status_code, answer.json()
                except (httpx.TransportError, ValueError):
                    status, body = None, None
                self.answers.append(Answer(sent, time.monotonic() - sent, status, event_id, body))
                if status == 200 and self.react:
                    try:
                        client.post(f"/v1/experiments/shop/events/{event_id}/reaction", json={"reaction": int(event_id[-1]) % 2})
                    except httpx.TransportError:
                        pass
                self._stop.wait(self.pause if status is not None else 0.05)  # no answer: do not spin

    @property
    def acknowledged(self) -> set[str]:
        return {a.event_id for a in self.answers if a.status == 200}

    def clients_saw(self) -> dict[str, int]:
        counts = collections.Counter("no answer" if a.status is None else str(a.status) for a in self.answers)
        return dict(sorted(counts.items()))

    def first_success_after(self, moment: float, timeout: float = 60.0) -> float | None:
        """Seconds from `moment` to the first decision sent after it that was answered 200 (waits up to `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent = [a.sent + a.seconds for a in list(self.answers) if a.status == 200 and a.sent >= moment]
            if sent:
                return min(sent) - moment
            time.sleep(0.02)
        return None

    def record(self, fault: str, stored: set[str], **extra: Any) -> dict[str, Any]:
        sent = {a.event_id for a in self.answers}
        acknowledged = self.acknowledged
        slowest = max((a.seconds for a in self.answers), default=0.0)
        return {"fault": fault, "requests": len(self.answers), "clients_saw": self.clients_saw(),
                "acknowledged": len(acknowledged), "stored": len(stored & sent), "lost": len(acknowledged - stored),
                "stored_unacknowledged": len((stored & sent) - acknowledged), "slowest_answer_seconds": round(slowest, 3),
                **extra}


def stored_ids(store: EventStore) -> set[str]:
    try:
        return {row.event_id for row in store.rows("shop", joined_only=False)}
    finally:
        store.close()


# --- the faults ---------------------------------------------------------------------------------------
def server_killed(shop: Path, *, load_seconds: float = 2.0) -> dict[str, Any]:
    """kill -9 of the server process under load, then a restart on the same port and store (a supervisor's job)."""
    port = free_port()
    with server(shop, port=port) as (url, process):
        load = Load(url).start()
        time.sleep(load_seconds)
        os.kill(process.pid, signal.SIGKILL)  # the server this started, by its id
        killed = time.monotonic()
        process.wait()
    with server(shop, port=port):
        restarted = time.monotonic()
        recover = load.first_success_after(killed)
        time.sleep(0.5)
        load.stop()
    return load.record("kill -9 of the server", stored_ids(EventStore.sqlite(str(shop / "events.sqlite"))),
                       recover_seconds=_round(recover), restart_seconds=round(restarted - killed, 2),
                       note="from the kill, including the restart of the process")


def learner_killed(shop: Path, *, kills: int = 2, pause: float = 0.005) -> dict[str, Any]:
    """kill -9 of `nextbest learn` (beside `serve --no-learner`) while rounds run, `kills` times, each followed by a
    restart; then the events it trained: each joined event exactly once."""
    store = EventStore.sqlite(str(shop / "events.sqlite"))
    orphans, recoveries = 0, []
    with server(shop, args=("--no-learner",)) as (url, _), httpx.Client(base_url=url, timeout=10) as client:
        load = Load(url, react=True, pause=pause).start()
        process = start_learner(shop)
        try:
            for kill in range(kills):
                _wait_for_new_part(shop / "experiences", 60)  # a round is writing: kill it there
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                if kill == kills - 1:
                    load.stop()  # what is left to train is what came before the last kill
                orphans += _orphaned(shop, store)
                before = store.learner_state("shop")["round"]
                restarted = time.monotonic()
                process = start_learner(shop)
                _wait_for(lambda round_=before: store.learner_state("shop")["round"] > round_, 60, "a round after the restart")
                recoveries.append(time.monotonic() - restarted)
            _wait_for(lambda: _drained(client), 60, "the learner to train every joined event")
        finally:
            stop(process)
    counts = store.counts("shop", wait_seconds=600)
    state = store.learner_state("shop")
    rounds = collections.Counter(row.trained_round for row in store.rows("shop") if row.trained_round is not None)
    store.close()
    examples = int(load_state(shop / "checkpoints" / state["checkpoint"])["progress"]["examples"])
    return load.record("kill -9 of the learner", stored_ids(EventStore.sqlite(str(shop / "events.sqlite"))),
                       kills=kills, kills_between_write_and_commit=orphans, joined=counts["joined"],
                       trained=counts["trained"], learner_trained=state["trained"], checkpoint_examples=examples,
                       rounds=state["round"], rounds_with_events=len(rounds), rounds_contiguous=sorted(rounds) == list(range(1, state["round"] + 1)), recover_seconds=_round(max(recoveries)),
                       note="recover: from the restart of `nextbest learn` to its next committed round")


def database_killed(shop: Path, pg: Path, *, load_seconds: float = 2.0, outage_seconds: float = 2.0) -> dict[str, Any]:
    """kill -9 of PostgreSQL's postmaster (its data directory: `pg`) under load; down `outage_seconds`; restarted.
    The server recovers alone."""
    with postgres(pg) as database:
        with server(shop, args=("--database-url", database)) as (url, _):
            load = Load(url).start()
            time.sleep(load_seconds)
            kill_postgres(pg)
            killed = time.monotonic()
            time.sleep(outage_seconds / 2)
            status_route = httpx.get(f"{url}/v1/experiments/shop", timeout=10)
            time.sleep(outage_seconds / 2)
            restart_postgres(pg)
            restarted = time.monotonic()
            recover = load.first_success_after(restarted)
            time.sleep(0.5)
            load.stop()
        stored = stored_ids(EventStore(database))
    errors = [a.body for a in load.answers if a.status == 503]
    return load.record("kill -9 of PostgreSQL", stored, recover_seconds=_round(recover),
                       outage_seconds=round(restarted - killed, 2), status_route=status_route.status_code,
                       status_route_error=status_route.json(), error=errors[0] if errors else None,
                       note="recover: from the database's restart; the server reconnects by itself")


def disk_full(shop: Path, *, load_seconds: float = 1.0, full_seconds: float = 2.0) -> dict[str, Any]:
    """The SQLite file cannot grow (simulated at the storage layer: PRAGMA max_page_count on the writer's
    connection, so that SQLite answers SQLITE_FULL as on a full disk), then can again."""
    from nextbest.serving.server import Deployment

    deployment = Deployment.build([shop])
    store = deployment.stores[0]
    try:
        with app_server(deployment.app()) as url:
            load = Load(url).start()
            time.sleep(load_seconds)
            pages = store.write(lambda connection: connection.exec_driver_sql("PRAGMA page_count").scalar())
            _pragma(store, f"max_page_count = {pages}")
            full = time.monotonic()
            time.sleep(full_seconds / 2)
            read = httpx.get(f"{url}/v1/experiments/shop", timeout=10)
            refused = httpx.post(f"{url}/v1/experiments/shop/decisions", json={"contexts": [CONTEXT] * 50}, timeout=10)
            time.sleep(full_seconds / 2)
            _pragma(store, "max_page_count = 1073741823")
            freed = time.monotonic()
            recover = load.first_success_after(freed)
            time.sleep(0.5)
            load.stop()
            first_refusal = next((a.sent - full for a in load.answers if a.status == 503 and a.sent >= full), None)
            writer_alive = store._writer.is_alive()
    finally:
        deployment.close()
    return load.record("SQLite disk full (simulated)", stored_ids(EventStore.sqlite(str(shop / "events.sqlite"))),
                       recover_seconds=_round(recover), status_route=read.status_code, error=refused.json(),
                       error_status=refused.status_code, first_refusal_seconds=_round(first_refusal), writer_alive=writer_alive,
                       note="PRAGMA max_page_count on the writer's connection; recover: from the space coming back")


def corrupt_checkpoint(shop: Path) -> dict[str, Any]:
    """The checkpoint `latest` names is overwritten with garbage while serving (the learner stopped); a damaged
    newer one appears; the learner is started again; the file is restored."""
    from nextbest.serving.learner import Learner, LearnerRefused

    checkpoints = shop / "checkpoints"
    with server(shop, args=("--no-learner",)) as (url, process), httpx.Client(base_url=url, timeout=10) as client:
        load = Load(url, react=True).start()
        store = EventStore.sqlite(str(shop / "events.sqlite"))  # the learner, in this process: `nextbest learn --once`
        learner = Learner("shop", shop, store, load_hyperparameters(shop / "hyperparameters.json").serving)

        def train_once() -> None:
            try:
                learner.open()
                _wait_for(lambda: learner.step() is not None, 30, "a learner round")
            finally:
                learner.close()

        try:
            train_once()
            served = (checkpoints / "latest").read_text().strip()
            _wait_for(lambda: _decided_by(client) == served, 10, "the server to swap in the learner's checkpoint")
            backup = (checkpoints / served).read_bytes()
            (checkpoints / served).write_bytes(b"garbage, not a checkpoint" * 10)  # damaged in place
            corrupted = time.monotonic()
            still_served = _decided_by(client)
            try:
                learner.open()
                refusal = None
            except LearnerRefused as error:
                refusal = str(error)
            finally:
                learner.close()
            newer = f"checkpoint-{int(served.split('-')[1].split('.')[0]) + 1:06d}.pt"  # a damaged newer one
            (checkpoints / newer).write_bytes(b"also garbage" * 10)
            (checkpoints / "latest").write_text(newer + "\n")
            time.sleep(2.0)  # four refreshes of the server
            after_newer = _decided_by(client)
            (checkpoints / "latest").write_text(served + "\n")  # the repair: `latest` back, the damaged newer file
            (checkpoints / newer).unlink()  # removed, the named one restored (in this order: `latest` never names
            (checkpoints / served).write_bytes(backup)  # a missing file)
            restored = time.monotonic()
            train_once()
            retrained = (checkpoints / "latest").read_text().strip()
            _wait_for(lambda: _decided_by(client) == retrained, 10, "the server to swap in the next checkpoint")
            recover = time.monotonic() - restored
            load.stop()
        finally:
            store.close()
    log = process.stdout.read().decode(errors="replace")
    return load.record("corrupt newest checkpoint", stored_ids(EventStore.sqlite(str(shop / "events.sqlite"))),
                       served=served, served_after_corruption=still_served, served_after_damaged_newer=after_newer,
                       learner_refusal=refusal, server_log=[line for line in log.splitlines() if newer in line],
                       corrupted_for_seconds=round(restored - corrupted, 2), recover_seconds=round(recover, 2),
                       note="recover: from the restored file to the first decision by the learner's next checkpoint")


# --- helpers ------------------------------------------------------------------------------------------
def _pragma(store: EventStore, pragma: str) -> None:
    """Run `PRAGMA pragma` on the store's writer connection; again if it shared a group commit that failed."""
    for _ in range(50):
        try:
            store.write(lambda connection: connection.exec_driver_sql(f"PRAGMA {pragma}"))
            return
        except StoreUnavailable:
            time.sleep(0.01)
    raise TimeoutError(f"PRAGMA {pragma}: the writer refused it 50 times")


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {seconds} s for {what}")
        time.sleep(0.02)


def _wait_for_new_part(directory: Path, seconds: float) -> None:
    """Until an experience part is added: the learner is past training and writing its round."""
    count = lambda: len(list(directory.glob("part-*.parquet"))) if directory.is_dir() else 0
    before = count()
    _wait_for(lambda: count() > before, seconds, "a learner round to write its experiences")


def _orphaned(directory: Path, store: EventStore) -> int:
    """1 if the killed learner left a round written and not committed (a newer checkpoint or experience part
    than the event store's round holds), else 0."""
    named = store.learner_state("shop")["checkpoint"]
    latest = (directory / "checkpoints" / "latest").read_text().strip()
    parts = load_state(directory / "checkpoints" / named)["progress"]["experience_parts"]
    return int(latest != named or len(list((directory / "experiences").glob("part-*.parquet"))) > len(parts))


def _drained(client: httpx.Client) -> bool:
    events = client.get("/v1/experiments/shop").json()["events"]
    return events["waiting"] == 0 and events["joined"] == events["trained"]


def _decided_by(client: httpx.Client) -> str:
    """The checkpoint of a fresh greedy decision (deferred: never learned from)."""
    answer = client.post("/v1/experiments/shop/decisions", json={"contexts": [CONTEXT], "greedy": True, "defer_activation": True})
    answer.raise_for_status()
    return answer.json()["decisions"][0]["checkpoint"]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
