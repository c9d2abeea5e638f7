"""API keys: which caller may use a served experiment, in which role, and how often.

    key, info = create_key(store, "shop", "decide", name="shop-frontend")  # the key exists only here, once
    list_keys(store, "shop")                                                # names, roles, times; never a key
    revoke_key(store, "shop", "shop-frontend")                              # a running server drops it within a second

A key is `nb_` + 43 random URL-safe characters (256 bits). Only a salted scrypt hash is stored, in the
`keys` table of the experiment's event database, beside the first characters of the key (`lookup`),
which find its row without trying every hash. Roles: `decide` (decisions, reactions, activation),
`read` (status, metrics, the dashboard's data) and `admin` (both, and whatever else the API offers);
`decide` does not include `read`: the shop's front end has no business reading the experiment.

A server checks keys against a `KeyRing`: the keys of its experiments, read from the database every
half second (so that a new key works and a revoked one stops within a second), and a cache of the
keys it has verified, by a SHA-256 digest of the presented key. A request with a known key costs a
digest and a dict lookup — no database read, no scrypt; scrypt runs once per key and process, in a
thread. The ring also holds each key's token bucket (its rate limit, per server process) and writes
`last_used_at` at most once a minute per key, through the store's writer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from nextbest.config import ServingConfig
from nextbest.errors import ConfigError, NextbestError
from nextbest.serving.events import EventStore, metadata

ROLES = ("decide", "read", "admin")
GRANTS: dict[str, frozenset[str]] = {  # role → the roles' routes it may call
    "decide": frozenset({"decide"}),
    "read": frozenset({"read"}),
    "admin": frozenset({"decide", "read", "admin"}),
}
PREFIX = "nb_"
LOOKUP = len(PREFIX) + 8  # stored in clear to find a key's row: 48 of its 256 random bits
USED_EVERY_SECONDS = 60.0  # last_used_at is written at most this often per key
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}  # ~16 MiB and tens of ms: once per key and server process

log = logging.getLogger(__name__)

# On the event store's metadata, so that every EventStore made after this import creates the table.
keys = sa.Table(
    "keys", metadata,
    sa.Column("experiment", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("lookup", sa.String(16), nullable=False, index=True),
    sa.Column("salt", sa.String(64), nullable=False),  # hex
    sa.Column("hash", sa.String(128), nullable=False),  # hex scrypt(key, salt)
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_used_at", sa.Float),
    sa.Column("revoked_at", sa.Float),
)


@dataclass(frozen=True)
class KeyInfo:
    """What is known of a key besides the key: its name, role and times (Unix seconds)."""

    experiment: str
    name: str
    role: str
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None


# --- create, list, revoke -----------------------------------------------------------------------
def create_key(store: EventStore, experiment: str, role: str, name: str | None = None) -> tuple[str, KeyInfo]:
    """A new key of `experiment` with `role` → (the key, its info). The key is returned here only: the
    database keeps its salted hash. `name` defaults to the role and a few random characters."""
    if role not in ROLES:
        raise ConfigError(f"--role {role!r}: not a role; expected one of {', '.join(ROLES)}")
    name = name if name is not None else f"{role}-{secrets.token_hex(3)}"
    if not _NAME.match(name):
        raise ConfigError(f"--name {name!r}: expected 1 to 100 letters, digits, '.', '_' or '-', starting with a "
                          "letter or digit")
    key = PREFIX + secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    info = KeyInfo(experiment, name, role, time.time())

    def work(connection: sa.Connection) -> None:
        taken = connection.execute(sa.select(keys.c.revoked_at).where(
            keys.c.experiment == experiment, keys.c.name == name)).first()
        if taken is not None:
            state = "revoked" if taken.revoked_at is not None else "in use"
            raise ConfigError(f"experiment {experiment!r} already has a key named {name!r} ({state}; names are never "
                              "reused); choose another --name")
        connection.execute(keys.insert().values(
            experiment=experiment, name=name, role=role, lookup=key[:LOOKUP], salt=salt.hex(),
            hash=_scrypt(key, salt).hex(), created_at=info.created_at))

    store.write(work)
    return key, info


def list_keys(store: EventStore, experiment: str) -> list[KeyInfo]:
    """Every key of `experiment`, revoked ones too, oldest first."""
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(keys).where(keys.c.experiment == experiment).order_by(keys.c.created_at))
        return [_info(row) for row in rows]


def revoke_key(store: EventStore, experiment: str, name: str) -> tuple[KeyInfo, bool]:
    """Revoke the key `name` of `experiment` → (its info, whether this call revoked it; False: it already was)."""

    def work(connection: sa.Connection) -> tuple[KeyInfo, bool]:
        row = connection.execute(sa.select(keys).where(keys.c.experiment == experiment, keys.c.name == name)).first()
        if row is None:
            names = connection.execute(sa.select(keys.c.name).where(keys.c.experiment == experiment)).scalars().all()
            raise ConfigError(f"experiment {experiment!r} has no key named {name!r}; its keys: "
                              f"{', '.join(sorted(names)) or 'none'}")
        if row.revoked_at is not None:
            return _info(row), False
        now = time.time()
        connection.execute(keys.update().where(keys.c.experiment == experiment, keys.c.name == name).values(revoked_at=now))
        return KeyInfo(experiment, name, row.role, row.created_at, row.last_used_at, now), True

    return store.write(work)


def experiments_without_keys(store: EventStore, experiments: Iterable[str]) -> list[str]:
    """Those of `experiments` that have no key in force (for `serve --require-keys`)."""
    names = list(experiments)
    with store.engine.connect() as connection:
        keyed = set(connection.execute(sa.select(keys.c.experiment).distinct().where(
            keys.c.experiment.in_(names), keys.c.revoked_at.is_(None))).scalars())
    return [name for name in names if name not in keyed]


# --- the server's view -------------------------------------------------------------------------
@dataclass(eq=False)
class Caller:
    """A verified key in a server: who it is, and its token bucket (`rate` per second, at most `burst` at once)."""

    experiment: str
    name: str
    role: str
    rate: float
    burst: float
    tokens: float
    stamp: float = 0.0
    used: bool = False  # since last_used_at was last written
    written_at: float = 0.0

    def may(self, role: str) -> bool:
        return role in GRANTS[self.role]

    def wait(self, now: float) -> float:
        """Take a token: 0.0 when the request may go now, else the seconds until the next token."""
        if not self.rate:
            return 0.0
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass(frozen=True)
class _Row:
    experiment: str
    name: str
    role: str
    salt: bytes
    hash: bytes


class KeyRing:
    """The keys of the served experiments, as one server process sees them; see the module docstring.

    stores: experiment → its event store; settings: experiment → its serving settings (the rate limit);
    required: experiments whose routes need a key even before one was created (`serve --require-keys`). An
    experiment that ever had a key needs one for good: revoking its last key closes it, never opens it."""

    def __init__(self, stores: Mapping[str, EventStore], settings: Mapping[str, ServingConfig], *,
                 required: Iterable[str] = ()):
        self.stores, self.settings, self.required = dict(stores), dict(settings), frozenset(required)
        self.keyed: frozenset[str] = self.required  # experiments whose routes need a key now
        self._rows: dict[str, list[_Row]] = {}  # lookup → keys in force
        self._verified: dict[bytes, Caller] = {}  # digest of a presented key → its caller
        self._callers: dict[tuple[str, str], Caller] = {}
        self._refused: dict[bytes, str] = {}  # digest → why (a revoked key this process knew, or a failed scrypt)
        self._pending: dict[bytes, asyncio.Task] = {}
        self.apply(self.read())  # before the first request: a server with keys never starts open

    # hot path: one digest and one dict lookup
    def cached(self, key: str) -> Caller | str | None:
        """The caller of a key verified before, the reason it is refused, or None: not seen yet."""
        digest = hashlib.sha256(key.encode()).digest()
        return self._verified.get(digest) or self._refused.get(digest)

    async def identify(self, key: str) -> Caller | str:
        """The caller of `key`, or why it is refused (unknown or revoked); scrypt once per key, in a thread."""
        digest = hashlib.sha256(key.encode()).digest()
        known = self._verified.get(digest) or self._refused.get(digest)
        if known is not None:
            return known
        candidates = self._rows.get(key[:LOOKUP], [])
        if not candidates:
            return "unknown or revoked API key"
        task = self._pending.get(digest)
        if task is None:  # concurrent first requests with one key share one scrypt
            task = self._pending[digest] = asyncio.ensure_future(asyncio.to_thread(_match, key, candidates))
            task.add_done_callback(lambda _: self._pending.pop(digest, None))
        row = await asyncio.shield(task)
        if row is None or row not in self._rows.get(key[:LOOKUP], []):  # no match, or revoked while hashing
            self._refuse(digest, "unknown or revoked API key")
            return "unknown or revoked API key"
        caller = self._callers.get((row.experiment, row.name))
        if caller is None:
            settings = self.settings[row.experiment]
            rate = settings.rate_limit_per_second or 0.0
            burst = float(settings.rate_limit_burst or max(1, math.ceil(rate)))  # default: one second's worth
            caller = Caller(row.experiment, row.name, row.role, rate, burst, tokens=burst, stamp=time.monotonic())
            self._callers[(row.experiment, row.name)] = caller
        self._verified[digest] = caller
        return caller

    # refresh: read in a thread, apply on the event loop (the caches are only changed there)
    def read(self) -> list[Any]:
        """Every key row of the served experiments (one small query per database)."""
        rows: list[Any] = []
        by_store: dict[int, tuple[EventStore, list[str]]] = {}
        for experiment, store in self.stores.items():
            by_store.setdefault(id(store), (store, []))[1].append(experiment)
        for store, experiments in by_store.values():
            with store.engine.connect() as connection:
                rows += connection.execute(sa.select(keys.c.experiment, keys.c.name, keys.c.role, keys.c.lookup,
                                                     keys.c.salt, keys.c.hash, keys.c.revoked_at)
                                           .where(keys.c.experiment.in_(experiments)))
        return rows

    def apply(self, rows: list[Any]) -> None:
        """Swap in the keys in force; drop the verified keys that were revoked (their next request is a 401)."""
        in_force: dict[str, list[_Row]] = {}
        names = set()
        for row in rows:
            if row.revoked_at is None:
                in_force.setdefault(row.lookup, []).append(
                    _Row(row.experiment, row.name, row.role, bytes.fromhex(row.salt), bytes.fromhex(row.hash)))
                names.add((row.experiment, row.name))
        for digest, caller in list(self._verified.items()):
            if (caller.experiment, caller.name) not in names:
                del self._verified[digest]
                self._callers.pop((caller.experiment, caller.name), None)
                self._refuse(digest, f"the API key {caller.name!r} of experiment {caller.experiment!r} was revoked")
        self._rows = in_force
        self.keyed = self.required | {row.experiment for row in rows}  # revoked keys too: revoking never opens

    def _refuse(self, digest: bytes, reason: str) -> None:
        if len(self._refused) > 10_000:  # bounded: a flood of wrong keys costs memory no more than this
            self._refused.clear()
        self._refused[digest] = reason

    def write_last_used(self, *, now: float | None = None, force: bool = False) -> None:
        """Queue `last_used_at` for the keys used since their last write, at most once a minute per key."""
        now = time.time() if now is None else now
        for caller in self._callers.values():
            if caller.used and (force or now - caller.written_at >= USED_EVERY_SECONDS):
                caller.used, caller.written_at = False, now
                experiment, name = caller.experiment, caller.name
                try:
                    self.stores[experiment].submit(lambda connection, e=experiment, n=name: connection.execute(
                        keys.update().where(keys.c.experiment == e, keys.c.name == n).values(last_used_at=now)))
                except NextbestError:
                    pass  # the store is closing: a last-used time is not worth an error

    async def run(self, seconds: float = 0.5) -> None:
        """Refresh the keys every `seconds` until cancelled; a database that fails keeps the last keys read."""
        while True:
            await asyncio.sleep(seconds)
            try:
                self.apply(await asyncio.to_thread(self.read))
            except Exception as error:  # the database is away: keep enforcing the keys known
                log.warning("could not refresh the API keys: %s", type(error).__name__)
            self.write_last_used()


def _match(key: str, candidates: list[_Row]) -> _Row | None:
    for row in candidates:
        if hmac.compare_digest(_scrypt(key, row.salt), row.hash):
            return row
    return None


def _scrypt(key: str, salt: bytes) -> bytes:
    return hashlib.scrypt(key.encode(), salt=salt, **_SCRYPT)


def _info(row: Any) -> KeyInfo:
    return KeyInfo(row.experiment, row.name, row.role, row.created_at, row.last_used_at, row.revoked_at)
