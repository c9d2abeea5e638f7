"""The event store: every served decision and every reaction, one row per event, keyed by `event_id`.

    decided ──(deferred? activate)──▶ waiting ──reaction──▶ joined ──learner──▶ trained
                                         └── wait time passes ──▶ joined with the default reward ─┘
    a reaction after the wait time: stored and counted as late, never learned from

SQLite (WAL) is the embedded default, PostgreSQL by URL; both through SQLAlchemy Core. Every
write goes through one writer thread that commits the writes of concurrent callers together
(group commit): a durable decision costs a share of one fsync, not one each. A write returns
only after its transaction has committed, so an answer sent after it means stored.

Joining follows the reaction aggregation: with `earliest` an event joins at its first reaction
(a repeat of the same reaction is accepted once, a different one refused); with `sum` and `last`
it joins when its wait time ends, so that every reaction inside the window counts.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from nextbest.errors import ExperimentError, NextbestError

log = logging.getLogger("nextbest.events")

SCHEMA_VERSION = 1
Aggregation = Literal["earliest", "sum", "last"]

metadata = sa.MetaData()
events = sa.Table(
    "events", metadata,
    sa.Column("experiment", sa.String(200), primary_key=True),
    sa.Column("event_id", sa.String(200), primary_key=True),
    sa.Column("decided_at", sa.Float, nullable=False),
    sa.Column("context", sa.Text, nullable=False),  # JSON object: column → value
    sa.Column("action", sa.Text, nullable=False),  # JSON list, one int per choice set
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("log_probability", sa.Float, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("prediction_seed", sa.BigInteger, nullable=False),
    sa.Column("checkpoint", sa.String(200)),
    sa.Column("mode", sa.String(20), nullable=False),
    sa.Column("agent_action", sa.Text),  # JSON list in apprentice mode: what the agent would have chosen (the served `action` is the caller's baseline)
    sa.Column("deferred", sa.Boolean, nullable=False),
    sa.Column("activated_at", sa.Float),  # the wait time starts here (decided_at unless deferred)
    sa.Column("reaction", sa.Float),
    sa.Column("reaction_at", sa.Float),
    sa.Column("reactions", sa.Integer, nullable=False, default=0),
    sa.Column("late_reactions", sa.Integer, nullable=False, default=0),
    sa.Column("joined_at", sa.Float),
    sa.Column("trained_round", sa.Integer),
    sa.Index("events_to_train", "experiment", "trained_round", "joined_at"),
    sa.Index("events_waiting", "experiment", "joined_at", "activated_at"),
    sa.Index("events_decided", "experiment", "decided_at"),  # the dashboard's timeline: a range of decision times
)
learners = sa.Table(
    "learners", metadata,
    sa.Column("experiment", sa.String(200), primary_key=True),
    sa.Column("round", sa.Integer, nullable=False),  # training rounds committed so far
    sa.Column("checkpoint", sa.String(200)),  # the checkpoint that holds exactly the trained events
    sa.Column("trained", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
rounds = sa.Table(  # the learner's history, one row per committed round (round 0: the model it started from)
    "rounds", metadata,
    sa.Column("experiment", sa.String(200), primary_key=True),
    sa.Column("round", sa.Integer, primary_key=True),
    sa.Column("checkpoint", sa.String(200)),
    sa.Column("events", sa.Integer, nullable=False),  # events trained in this round
    sa.Column("metrics", sa.Text, nullable=False),  # JSON object: the training metrics of the round
    sa.Column("finished_at", sa.Float, nullable=False),
)
schema_info = sa.Table(
    "schema_info", metadata,
    sa.Column("key", sa.String(50), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)


class EventNotFound(NextbestError):
    """No event with that id in the experiment."""


class EventConflict(NextbestError):
    """A write that contradicts what is stored (a different reaction under `earliest`, a reused event id)."""


class StoreUnavailable(ExperimentError):
    """The database cannot be reached or cannot take the write (down, restarting, disk full, locked): the
    service answers 503 and a retry later may succeed. Its message names the store, never its password."""


@dataclass
class Decision:
    """One decision to store; `action` holds one int per choice set."""

    event_id: str
    context: dict[str, Any]
    action: list[int]
    probability: float
    log_probability: float
    value: float
    prediction_seed: int
    checkpoint: str | None
    mode: str = "online"
    agent_action: list[int] | None = None
    deferred: bool = False
    decided_at: float = 0.0

    def row(self, experiment: str) -> dict[str, Any]:
        return {
            "experiment": experiment, "event_id": self.event_id, "decided_at": self.decided_at,
            "context": json.dumps(self.context), "action": json.dumps(self.action),
            "probability": self.probability, "log_probability": self.log_probability, "value": self.value,
            "prediction_seed": self.prediction_seed, "checkpoint": self.checkpoint, "mode": self.mode,
            "agent_action": None if self.agent_action is None else json.dumps(self.agent_action),
            "deferred": self.deferred, "activated_at": None if self.deferred else self.decided_at,
            "reactions": 0, "late_reactions": 0,
        }

    @classmethod
    def from_row(cls, row: Any) -> Decision:
        return cls(
            event_id=row.event_id, context=json.loads(row.context), action=json.loads(row.action),
            probability=row.probability, log_probability=row.log_probability, value=row.value,
            prediction_seed=row.prediction_seed, checkpoint=row.checkpoint, mode=row.mode,
            agent_action=None if row.agent_action is None else json.loads(row.agent_action),
            deferred=row.deferred, decided_at=row.decided_at,
        )


@dataclass
class ReactionOutcome:
    """What a reaction did: `joined` (the event can be learned from), `repeated` (the same reaction again,
    nothing changed), `aggregated` (added to or replacing the stored one), `late` (after the wait time:
    stored and counted, not learned from) or `waiting_activation` (kept until the event is activated)."""

    status: Literal["joined", "repeated", "aggregated", "late", "waiting_activation"]


class EventStore:
    """Events of any number of experiments in one database; see the module docstring."""

    def __init__(self, url: str, *, batch_limit: int = 512):
        self.url = url
        self.engine = _engine(url)  # readers
        self._write_engine = _engine(url, writer=True)
        for engine in (self.engine, self._write_engine):
            sa.event.listen(engine, "handle_error", _unavailable(url))
        self._create()
        self._batch_limit = batch_limit
        self._queue: queue.SimpleQueue[tuple[Callable[[sa.Connection], Any], Future] | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="nextbest-event-writer", daemon=True)
        self._writer.start()

    @classmethod
    def sqlite(cls, path: str) -> EventStore:
        return cls(f"sqlite:///{path}")

    def close(self) -> None:
        """Finish the writes already queued, then stop the writer and release the connections."""
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join()
        self.engine.dispose()
        self._write_engine.dispose()

    # --- writes (group-committed) -----------------------------------------------------------
    def write(self, work: Callable[[sa.Connection], Any]) -> Any:
        """Run `work(connection)` in the next group transaction; return its result once committed."""
        return self.submit(work).result()

    def submit(self, work: Callable[[sa.Connection], Any]) -> Future:
        """Queue `work`; the future resolves after its transaction commits (or with its error)."""
        if not self._writer.is_alive():
            raise ExperimentError(f"the event store {self.url} is closed")
        future: Future = Future()
        self._queue.put((work, future))
        return future

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self._batch_limit:  # whatever queued meanwhile shares the commit
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            try:
                self._commit(batch)
            except Exception as error:  # a bug, not the database (whose errors reach the futures): keep writing
                log.exception("event store %s: a group commit failed", redacted(self.url))
                for _, future in batch:
                    _settle(future, None, error)

    def _commit(self, batch: list[tuple[Callable[[sa.Connection], Any], Future]]) -> None:
        """All of `batch` in one transaction. When one work fails, the transaction is rolled back and the batch
        run again with a savepoint per work, so that only the failing work's writes are undone."""
        try:
            with self._write_engine.begin() as connection:
                results = [(future, work(connection), None) for work, future in batch]
        except Exception:
            results = self._commit_one_by_one(batch)
            if results is None:
                return
        for future, result, error in results:
            _settle(future, result, error)

    def _commit_one_by_one(self, batch):
        results: list[tuple[Future, Any, BaseException | None]] = []
        try:
            with self._write_engine.begin() as connection:
                for work, future in batch:
                    savepoint = connection.begin_nested()
                    try:
                        results.append((future, work(connection), None))
                        savepoint.commit()
                    except Exception as error:
                        try:
                            savepoint.rollback()
                        except Exception:  # the whole transaction went with it (SQLite does on a full disk)
                            raise error from None
                        results.append((future, None, error))
        except Exception as error:  # the commit itself failed: nothing of the batch is stored
            for _, future in batch:
                _settle(future, None, error)
            return None
        return results

    # --- decisions ---------------------------------------------------------------------------
    def record_decisions(self, experiment: str, decisions: list[Decision]) -> list[Decision]:
        """Store `decisions`, all or none. An event id already stored (a client's retry) returns the stored
        decision instead and stores nothing; an id used twice within `decisions` is an EventConflict."""
        ids = [d.event_id for d in decisions]
        if len(set(ids)) != len(ids):
            repeated = next(i for i in ids if ids.count(i) > 1)
            raise EventConflict(f"event_ids: {repeated!r} appears more than once in one request")

        return self.write(lambda connection: insert_decisions(connection, experiment, decisions))

    def activate(self, experiment: str, event_id: str, now: float | None = None) -> Future:
        """Start the wait time of a deferred decision; it joins at once if its reaction came before. → a future
        that resolves once committed (`.result()` to wait)."""
        now = time.time() if now is None else now

        def work(connection: sa.Connection) -> None:
            row = _event(connection, experiment, event_id)
            if row.activated_at is not None:
                return  # activating twice changes nothing
            values: dict[str, Any] = {"activated_at": now}
            if row.reaction is not None:
                values["joined_at"] = now
            _update(connection, experiment, event_id, values)

        return self.submit(work)

    # --- reactions ---------------------------------------------------------------------------
    def record_reaction(
        self, experiment: str, event_id: str, reaction: Any, *, aggregation: Aggregation = "earliest",
        wait_seconds: float = 600.0, now: float | None = None,
    ) -> Future:
        """Store a reaction to `event_id`: a number, as an experience table's `reaction` column holds it.
        → a future of the `ReactionOutcome`, resolved once committed (`.result()` to wait)."""
        now = time.time() if now is None else now
        reaction = float(reaction)

        def work(connection: sa.Connection) -> ReactionOutcome:
            row = _event(connection, experiment, event_id)
            start = row.activated_at
            if row.trained_round is not None or (start is not None and now > start + wait_seconds) or (
                    row.joined_at is not None and aggregation != "earliest"):
                _update(connection, experiment, event_id, {"late_reactions": row.late_reactions + 1})
                return ReactionOutcome("late")
            if row.reaction is None:
                values = {"reaction": reaction, "reaction_at": now, "reactions": 1}
                joins = start is not None and aggregation == "earliest"
                if joins:
                    values["joined_at"] = now
                _update(connection, experiment, event_id, values)
                return ReactionOutcome("joined" if joins else "waiting_activation" if start is None else "aggregated")
            if aggregation == "earliest":
                if row.reaction == reaction:
                    return ReactionOutcome("repeated")
                raise EventConflict(f"event {event_id!r} already has the reaction {row.reaction:g}; {reaction:g} "
                                    "differs and the reaction aggregation is 'earliest'")
            combined = row.reaction + reaction if aggregation == "sum" else reaction
            _update(connection, experiment, event_id,
                    {"reaction": combined, "reaction_at": now, "reactions": row.reactions + 1})
            return ReactionOutcome("aggregated")

        return self.submit(work)

    def expire(self, experiment: str, *, wait_seconds: float, now: float | None = None) -> int:
        """Join every activated event whose wait time has passed (the learner's job): with its reaction if it
        has one (`sum`, `last`), else with none, which the learner turns into the default reward. → count."""
        now = time.time() if now is None else now

        def work(connection: sa.Connection) -> int:
            result = connection.execute(events.update().where(
                events.c.experiment == experiment, events.c.joined_at.is_(None),
                events.c.activated_at < now - wait_seconds,  # a range on the index, not a scan of every waiting event
            ).values(joined_at=now))
            return int(result.rowcount)

        return self.write(work)

    # --- the learner ---------------------------------------------------------------------------
    def to_train(self, experiment: str, limit: int | None = None) -> list[Any]:
        """Joined events not trained yet, in the order they joined (rows with every column)."""
        query = sa.select(events).where(
            events.c.experiment == experiment, events.c.joined_at.is_not(None), events.c.trained_round.is_(None),
        ).order_by(events.c.joined_at, events.c.event_id)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return list(connection.execute(query))

    def commit_round(self, experiment: str, event_ids: Iterable[str], round_: int, checkpoint: str,
                     metrics: dict[str, float] | None = None) -> None:
        """Mark `event_ids` trained in `round_` and record `checkpoint` as the model that holds them (and the
        round, with its training `metrics`, in the history), in one transaction: a learner that dies before
        this resumes from the previous round's checkpoint and trains the same events again; after it, never again."""
        ids = list(event_ids)

        def work(connection: sa.Connection) -> None:
            state = connection.execute(sa.select(learners).where(learners.c.experiment == experiment)).first()
            expected = 0 if state is None else state.round
            if round_ != expected + 1:
                raise EventConflict(f"experiment {experiment!r}: round {round_} committed after round {expected}; "
                                    "is a second learner running?")
            marked = 0
            for start in range(0, len(ids), 500):
                marked += connection.execute(events.update().where(
                    events.c.experiment == experiment, events.c.event_id.in_(ids[start : start + 500]),
                    events.c.trained_round.is_(None), events.c.joined_at.is_not(None),
                ).values(trained_round=round_)).rowcount
            if marked != len(ids):
                raise EventConflict(f"experiment {experiment!r}: {len(ids) - marked} of {len(ids)} events were not "
                                    "waiting to be trained; is a second learner running?")
            values = {"round": round_, "checkpoint": checkpoint, "updated_at": time.time(),
                      "trained": (0 if state is None else state.trained) + len(ids)}
            if state is None:
                connection.execute(learners.insert().values(experiment=experiment, **values))
            else:
                connection.execute(learners.update().where(learners.c.experiment == experiment).values(**values))
            _record_round(connection, experiment, round_, checkpoint, len(ids), metrics or {}, values["updated_at"])

        self.write(work)

    def begin_learner(self, experiment: str, checkpoint: str) -> dict[str, Any]:
        """Record `checkpoint` as round 0 (the model the learner starts from) unless a learner already began;
        → the learner state, whose checkpoint is the one to resume from."""

        def work(connection: sa.Connection) -> None:
            if connection.execute(sa.select(learners.c.round).where(learners.c.experiment == experiment)).first() is None:
                connection.execute(learners.insert().values(experiment=experiment, round=0, checkpoint=checkpoint,
                                                            trained=0, updated_at=time.time()))
                _record_round(connection, experiment, 0, checkpoint, 0, {}, time.time())

        self.write(work)
        return self.learner_state(experiment)

    def learner_state(self, experiment: str) -> dict[str, Any]:
        """{"round", "checkpoint", "trained"}: what the last committed training round left."""
        with self.engine.connect() as connection:
            state = connection.execute(sa.select(learners).where(learners.c.experiment == experiment)).first()
        if state is None:
            return {"round": 0, "checkpoint": None, "trained": 0}
        return {"round": state.round, "checkpoint": state.checkpoint, "trained": int(state.trained)}

    # --- reading -----------------------------------------------------------------------------
    def counts(self, experiment: str, *, wait_seconds: float, now: float | None = None) -> dict[str, int]:
        """Events by state: logged (all), waiting (for a reaction or activation), joined, trained, expired
        (joined without a reaction), late reactions, not activated; and apprentice decisions, with how many
        of them the agent would have decided the same way as the caller's baseline."""
        now = time.time() if now is None else now
        e = events.c
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(
                sa.func.count(),
                sa.func.count().filter(e.joined_at.is_(None)),
                sa.func.count().filter(e.joined_at.is_not(None)),
                sa.func.count().filter(e.trained_round.is_not(None)),
                sa.func.count().filter(e.joined_at.is_not(None), e.reaction.is_(None)),
                sa.func.coalesce(sa.func.sum(e.late_reactions), 0),
                sa.func.count().filter(e.activated_at.is_(None)),
                sa.func.count().filter(e.mode == "apprentice"),
                sa.func.count().filter(e.mode == "apprentice", e.agent_action == e.action),
            ).where(e.experiment == experiment)).one()
        names = ("logged", "waiting", "joined", "trained", "expired", "late_reactions", "not_activated", "apprentice",
                 "apprentice_agreed")
        return dict(zip(names, (int(v) for v in row)))

    def rows(self, experiment: str, *, joined_only: bool = True, since: float | None = None) -> list[Any]:
        """Stored events (joined ones by default), oldest decision first."""
        query = sa.select(events).where(events.c.experiment == experiment).order_by(events.c.decided_at, events.c.event_id)
        if joined_only:
            query = query.where(events.c.joined_at.is_not(None))
        if since is not None:
            query = query.where(events.c.decided_at >= since)
        with self.engine.connect() as connection:
            return list(connection.execute(query))

    # --- set-up --------------------------------------------------------------------------------
    def _create(self) -> None:
        metadata.create_all(self._write_engine)
        with self._write_engine.begin() as connection:
            for index in events.indexes:  # create_all skips a table that exists, and with it an index added since
                connection.execute(sa.schema.CreateIndex(index, if_not_exists=True))
            stored = connection.execute(sa.select(schema_info.c.value).where(schema_info.c.key == "version")).scalar()
            if stored is None:
                connection.execute(schema_info.insert().values(key="version", value=str(SCHEMA_VERSION)))
            elif int(stored) > SCHEMA_VERSION:
                raise ExperimentError(f"{self.url}: event store schema version {stored} is newer than this nextbest "
                                      f"({SCHEMA_VERSION}); upgrade nextbest")


def _engine(url: str, *, writer: bool = False) -> sa.Engine:
    """An engine for `url`. SQLite gets WAL (readers never wait for the writer), full fsync, and explicit
    BEGIN statements so that savepoints work (pysqlite's own transaction handling breaks them); the writer's
    transactions take the write lock at BEGIN IMMEDIATE, so two processes never deadlock on an upgrade."""
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _connect(connection, _record) -> None:
        connection.isolation_level = None
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a committed row survives a power cut, not only a crash
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


def insert_decisions(connection: sa.Connection, experiment: str, decisions: list[Decision], *,
                     ids_given: bool = True) -> list[Decision]:
    """Insert the decisions whose event ids are new; → every decision as stored (a retry gets the originals).
    `ids_given=False` (ids the server generated, which cannot exist yet) skips the look-up."""
    if not ids_given:
        connection.execute(events.insert(), [d.row(experiment) for d in decisions])
        return decisions
    ids = [d.event_id for d in decisions]
    stored = {row.event_id: Decision.from_row(row) for row in connection.execute(
        sa.select(events).where(events.c.experiment == experiment, events.c.event_id.in_(ids)))}
    new = [d for d in decisions if d.event_id not in stored]
    if new:
        try:
            with connection.begin_nested():
                connection.execute(events.insert(), [d.row(experiment) for d in new])
        except sa.exc.IntegrityError:  # another process stored one of these ids meanwhile (a retry racing its original)
            raced = {row.event_id for row in connection.execute(
                sa.select(events.c.event_id).where(events.c.experiment == experiment, events.c.event_id.in_(ids)))}
            if not raced:
                raise
            return insert_decisions(connection, experiment, decisions)
    return [stored.get(d.event_id, d) for d in decisions]


def _record_round(connection: sa.Connection, experiment: str, round_: int, checkpoint: str, trained: int,
                  metrics: dict[str, float], finished_at: float) -> None:
    """One row of the learner's history; a metric that is not a finite number is stored as null (JSON has no NaN)."""
    finite = {k: float(v) if isinstance(v, numbers.Real) and math.isfinite(v) else None for k, v in metrics.items()}
    connection.execute(rounds.insert().values(experiment=experiment, round=round_, checkpoint=checkpoint, events=trained,
                                              metrics=json.dumps(finite), finished_at=finished_at))


def redacted(url: str) -> str:
    """A database URL without its password, for messages and logs."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


# What a database that is down, restarting, full or locked raises (not a bad statement, not a constraint).
_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError)


def _unavailable(url: str) -> Callable[[Any], BaseException | None]:
    """An engine's `handle_error` hook: the errors of an unavailable database become StoreUnavailable, naming the
    store (password hidden) and the driver's first line; every other error passes unchanged. Not during a
    pool pre-ping: there SQLAlchemy itself handles a dead connection by opening a new one."""
    password = sa.engine.make_url(url).password

    def translate(context: Any) -> BaseException | None:
        if context.is_pre_ping or not isinstance(context.sqlalchemy_exception, _UNAVAILABLE):
            return None
        cause = context.original_exception.__context__
        while cause is not None:  # raised while undoing an earlier failure ("no such savepoint" after a full disk)
            if isinstance(cause, StoreUnavailable):
                return cause  # that one says what happened
            cause = cause.__context__
        lines = str(context.original_exception).strip().splitlines()
        reason = lines[0] if lines else type(context.original_exception).__name__
        if password:
            reason = reason.replace(str(password), "***")
        return StoreUnavailable(f"event store {redacted(url)} unavailable: {reason}; retry later")

    return translate


def _settle(future: Future, result: Any, error: BaseException | None) -> None:
    """Resolve `future` unless it already is (a caller that gave up cancelled it): the writer goes on either way."""
    try:
        future.set_exception(error) if error is not None else future.set_result(result)
    except InvalidStateError:
        pass


def _event(connection: sa.Connection, experiment: str, event_id: str) -> Any:
    row = connection.execute(sa.select(events).where(
        events.c.experiment == experiment, events.c.event_id == event_id)).first()
    if row is None:
        raise EventNotFound(f"no event {event_id!r} in experiment {experiment!r}")
    return row


def _update(connection: sa.Connection, experiment: str, event_id: str, values: dict[str, Any]) -> None:
    connection.execute(events.update().where(
        events.c.experiment == experiment, events.c.event_id == event_id).values(**values))
