"""One served experiment: decisions, reactions, activation and status — the library behind the routes.

    served = ServedExperiment("offers", Path("runs/offers"), store, settings)
    decisions = await served.decide(DecisionRequest(contexts=[{"device": "mobile", ...}]))
    served.react(decisions[0].event_id, 1.0)

Concurrent `decide` calls are gathered into one forward pass (`MicroBatcher`) on the current policy
snapshot, and their decisions into one insert that the event store's group commit commits before
`decide` returns, so an answer sent after it means stored. A request whose contexts do not match the
schema fails alone, with the field named, and stores nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nextbest.agents.snapshot import PolicySnapshot
from nextbest.config import ServingConfig
from nextbest.data.encoding import Features
from nextbest.errors import SchemaError
from nextbest.rewards import reaction_value
from nextbest.seeding import fresh_seed
from nextbest.serving.batching import MicroBatcher
from nextbest.serving.events import Decision, EventStore, ReactionOutcome, insert_decisions
from nextbest.training.snapshot import LatestSnapshot

RESERVED = ("excluded_actions", "baseline_action")  # per-context keys that are not schema columns


@dataclass
class DecisionRequest:
    """What `POST …/decisions` carries, parsed: contexts (records), optional event ids, flags."""

    contexts: list[dict[str, Any]]
    event_ids: list[str] | None = None
    greedy: bool = False
    defer_activation: bool = False


@dataclass
class _Parsed:
    """A request checked against the schema, ready for the batch's forward pass."""

    request: DecisionRequest
    features: Features
    excluded: list[np.ndarray]  # one (n, k_j) mask per choice set
    baseline: np.ndarray | None  # (n, n_choices) in apprentice mode


class ServedExperiment:
    def __init__(self, name: str, directory: Path, store: EventStore, settings: ServingConfig):
        self.name = name
        self.directory = Path(directory)
        self.store = store
        self.settings = settings
        self.snapshots = LatestSnapshot(self.directory)
        self.batcher: MicroBatcher[_Parsed, list[Decision]] = MicroBatcher(
            self._decide_batch, max_batch_size=settings.max_batch_requests, max_wait_seconds=settings.max_batch_wait_seconds)

    @property
    def snapshot(self) -> PolicySnapshot:
        return self.snapshots.current

    # --- decisions ---------------------------------------------------------------------------
    async def decide(self, request: DecisionRequest) -> list[Decision]:
        """One decision per context, in order, committed to the store before returning."""
        commit, rows = await self.batcher(self._parse(request))
        return (await asyncio.shield(commit))[rows]  # shared by the batch: a caller that gives up must not cancel it

    def _parse(self, request: DecisionRequest) -> _Parsed:
        n = len(request.contexts)
        if n == 0:
            raise SchemaError("contexts: expected at least one context")
        if n > self.settings.max_contexts:
            raise SchemaError(f"contexts: {n} contexts in one request; at most {self.settings.max_contexts}")
        if request.event_ids is not None:
            if len(request.event_ids) != n:
                raise SchemaError(f"event_ids: {len(request.event_ids)} ids for {n} contexts; give one per context or none")
            first: dict[str, int] = {}
            for i, event_id in enumerate(request.event_ids):
                _check_event_id(event_id, f"event_ids[{i}]")
                if event_id in first:
                    raise SchemaError(f"event_ids[{i}]: {event_id!r} is also event_ids[{first[event_id]}]; one id per decision")
                first[event_id] = i
        space = self.snapshot.action_space
        columns = []
        for i, context in enumerate(request.contexts):
            if not isinstance(context, dict):
                raise SchemaError(f"contexts[{i}]: expected an object of columns, got {type(context).__name__}")
            columns.append({k: v for k, v in context.items() if k not in RESERVED})
        excluded = [np.zeros((n, k), dtype=bool) for k in space.sizes]
        baseline = np.zeros((n, space.n_choices), dtype=np.int64) if self.settings.mode == "apprentice" else None
        for i, context in enumerate(request.contexts):
            if context.get("excluded_actions") is not None:
                for j, options in enumerate(_per_choice(context["excluded_actions"], space.sizes, f"contexts[{i}].excluded_actions")):
                    excluded[j][i, options] = True
                if any(mask[i].all() for mask in excluded):
                    raise SchemaError(f"contexts[{i}].excluded_actions: excludes every action of a choice set")
            if baseline is not None:
                if context.get("baseline_action") is None:
                    raise SchemaError(f"contexts[{i}].baseline_action: required in apprentice mode (the action you serve)")
                baseline[i] = [options[0] for options in _per_choice(
                    context["baseline_action"], space.sizes, f"contexts[{i}].baseline_action", single=True)]
        features = self.snapshot.features(columns)  # names the bad field: contexts[3].device
        return _Parsed(request, features, excluded, baseline)

    def _decide_batch(self, batch: list[_Parsed]) -> list[tuple[asyncio.Future, slice]]:
        """One forward pass per greedy flag over every context of the batch, then its writes: the decisions
        with generated ids in one insert, each request with its own ids (a possible retry) on its own.
        → per request: the future of the stored decisions and which of them are its own."""
        snapshot = self.snapshot
        decided: list[list[Decision]] = [[] for _ in batch]
        for greedy in (False, True):
            members = [i for i, parsed in enumerate(batch) if parsed.request.greedy == greedy]
            if not members:
                continue
            features = Features.concatenate([batch[i].features for i in members])
            seeds = fresh_seed() * 1_000_003 % (2**62) + np.arange(len(features), dtype=np.int64)
            excluded = [np.concatenate([batch[i].excluded[j] for i in members]) for j in range(snapshot.action_space.n_choices)]
            prediction = snapshot.act(features, seeds, greedy=greedy, excluded=excluded)
            start = 0
            for i in members:
                parsed, n = batch[i], len(batch[i].features)
                rows = slice(start, start + n)
                decided[i] = self._decisions(parsed, snapshot, prediction.action[rows], prediction.log_probability[rows],
                                             prediction.value[rows], seeds[rows])
                start += n
        loop = asyncio.get_running_loop()
        out: dict[int, tuple[asyncio.Future, slice]] = {}
        fresh = [i for i, parsed in enumerate(batch) if parsed.request.event_ids is None]
        if fresh:
            shared = self._insert([d for i in fresh for d in decided[i]], loop, ids_given=False)  # awaited by all of them
            start = 0
            for i in fresh:
                out[i] = (shared, slice(start, start + len(decided[i])))
                start += len(decided[i])
        for i in set(range(len(batch))) - set(fresh):
            out[i] = (self._insert(decided[i], loop, ids_given=True), slice(None))
        return [out[i] for i in range(len(batch))]

    def _insert(self, decisions: list[Decision], loop: asyncio.AbstractEventLoop, *, ids_given: bool) -> asyncio.Future:
        return asyncio.wrap_future(self.store.submit(
            lambda connection: insert_decisions(connection, self.name, decisions, ids_given=ids_given)), loop=loop)

    def _decisions(self, parsed: _Parsed, snapshot: PolicySnapshot, action: np.ndarray, log_probability: np.ndarray,
                   value: np.ndarray, seeds: np.ndarray) -> list[Decision]:
        request = parsed.request
        ids = request.event_ids or [uuid.uuid4().hex for _ in request.contexts]
        decisions = []
        for i, context in enumerate(request.contexts):
            served, log_p, agent_action = action[i].tolist(), float(log_probability[i]), None
            if parsed.baseline is not None:  # apprentice: serve and learn from the caller's action
                agent_action, served, log_p = served, parsed.baseline[i].tolist(), 0.0
            decisions.append(Decision(
                event_id=ids[i], context={k: v for k, v in context.items() if k not in RESERVED}, action=served,
                probability=math.exp(log_p), log_probability=log_p, value=float(value[i]), prediction_seed=int(seeds[i]),
                checkpoint=snapshot.checkpoint, mode=self.settings.mode, agent_action=agent_action,
                deferred=request.defer_activation, decided_at=time.time(),
            ))
        return decisions

    # --- reactions and activation ---------------------------------------------------------------
    async def react(self, event_id: str, reaction: Any) -> ReactionOutcome:
        """Store a reaction (committed when this returns)."""
        _check_event_id(event_id, "event_id")
        s = self.settings
        return await asyncio.wrap_future(self.store.record_reaction(
            self.name, event_id, reaction_value(reaction), aggregation=s.reaction_aggregation, wait_seconds=s.reward_wait_seconds))

    async def activate(self, event_id: str) -> None:
        _check_event_id(event_id, "event_id")
        await asyncio.wrap_future(self.store.activate(self.name, event_id))

    # --- status ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        snapshot, s = self.snapshot, self.settings
        return {
            "name": self.name,
            "agent": snapshot.agent_name,
            "action_space": list(snapshot.action_space.sizes),
            "columns": snapshot.schema.columns,
            "checkpoint": snapshot.checkpoint,
            "updates": snapshot.updates,
            "examples": snapshot.examples,
            "mode": s.mode,
            "reward_wait_seconds": s.reward_wait_seconds,
            "reaction_aggregation": s.reaction_aggregation,
            "events": (events := self.store.counts(self.name, wait_seconds=s.reward_wait_seconds)),
            "apprentice_agreement": events["apprentice_agreed"] / events["apprentice"] if events["apprentice"] else None,
            "learner": self.store.learner_state(self.name),
        }

    async def close(self) -> None:
        await self.batcher.close()


def _check_event_id(event_id: Any, where: str) -> None:
    """An event id is a text of 1 to 200 characters without NUL (which PostgreSQL cannot store)."""
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 200 or "\x00" in event_id:
        raise SchemaError(f"{where}: expected a non-empty text of at most 200 characters, without NUL")


def _per_choice(value: Any, sizes: tuple[int, ...], where: str, *, single: bool = False) -> list[list[int]]:
    """Actions given as `3` / `[3, 7]` (one choice set) or `[[0], [1, 2]]` (one list per choice set) →
    one list of valid options per choice set; `single`: exactly one option per choice set."""
    if len(sizes) == 1 and not (isinstance(value, list) and value and all(isinstance(v, list) for v in value)):
        value = [value if isinstance(value, list) else [value]]
    elif len(sizes) > 1 and single and isinstance(value, list) and all(_is_int(v) for v in value):
        value = [[v] for v in value]  # [a_0, a_1]: one action per choice set
    if not isinstance(value, list) or len(value) != len(sizes):
        raise SchemaError(f"{where}: expected one list of actions per choice set ({len(sizes)}), got {value!r}")
    out = []
    for j, (options, size) in enumerate(zip(value, sizes)):
        options = options if isinstance(options, list) else [options]
        if single and len(options) != 1:
            raise SchemaError(f"{where}: expected one action per choice set, got {value!r}")
        bad = [o for o in options if not _is_int(o) or not 0 <= o < size]
        if bad:
            part = where if len(sizes) == 1 else f"{where}[{j}]"
            raise SchemaError(f"{part}: {bad[0]!r} is not an action; expected integers from 0 to {size - 1}")
        out.append([int(o) for o in options])
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


