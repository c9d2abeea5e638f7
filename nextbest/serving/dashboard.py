"""What the dashboard shows, computed from the event store: the library behind its JSON routes.

    board = Dashboard(served)                          # one per served experiment
    board.timeline(minutes=60, bucket_seconds=60)      # per time bucket: decisions, reactions, reward, action shares
    board.checkpoints()                                # the learner's rounds: when, how many events, metrics
    board.estimate()                                   # DR of the served model's greedy policy on recent traffic

The page (the files in nextbest/serving/dashboard/, served by `PAGE_FILES`) only draws what these
return, so every number it shows is a number of the API. The timeline is one SQL aggregate over the
`events_decided` index (decisions by time bucket and action); the estimate is `nextbest ope` (DR,
normal interval) on the last joined events, computed at most every `estimate_seconds` and cached.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any

import numpy as np
import sqlalchemy as sa

from nextbest.config import Hyperparameters
from nextbest.errors import NextbestError, SchemaError
from nextbest.evaluation.logs import read_logs
from nextbest.evaluation.ope import off_policy_evaluation
from nextbest.rewards import Reward, make_reward
from nextbest.serving.events import events, rounds
from nextbest.serving.learner import experience_table, with_rewards
from nextbest.serving.service import ServedExperiment

CONFIDENCE = 0.95
Z = 1.959963984540054  # the standard normal's 97.5% quantile: a 95% interval is mean ± Z·se
MAX_BUCKETS = 1440
MAX_ROUNDS = 200  # the checkpoint history answers the newest rounds only
HUGE = 1e150  # a reaction beyond ±HUGE leaves its bucket's reward unknown: its square would overflow a double

# The page's files by the name a request may ask for; nothing from a request is ever joined into a path.
PAGE_FILES: dict[str, str] = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                              "style.css": "text/css; charset=utf-8"}


def page_file(name: str) -> bytes:
    """The content of one of `PAGE_FILES` (from the installed package)."""
    return resources.files("nextbest.serving").joinpath("dashboard", name).read_bytes()


@dataclass(frozen=True)
class _Linear:
    """reward = slope[a] · reaction + intercept[a] for every joint action a (None when the reward is not linear)."""

    slope: np.ndarray
    intercept: np.ndarray

    def terms(self, joint_action: int) -> tuple[float, float]:
        return float(self.slope[joint_action]), float(self.intercept[joint_action])


class Dashboard:
    """The dashboard's numbers for one served experiment; thread-safe (the routes run in worker threads)."""

    def __init__(self, served: ServedExperiment):
        self.served = served
        self._lock = threading.Lock()
        self._estimate: dict[str, Any] | None = None
        self._estimated_at = -math.inf

    @cached_property
    def reward(self) -> Reward:
        """The experiment's reward, read on first use (a dashboard problem never stops the serving)."""
        hyperparameters = Hyperparameters.load(self.served.directory / "hyperparameters.json")
        return make_reward(hyperparameters.reward, self.served.snapshot.action_space)

    @cached_property
    def linear(self) -> _Linear | None:
        return _linear(self.reward)

    # --- timeline -------------------------------------------------------------------------------
    def timeline(self, *, minutes: float = 60, bucket_seconds: int = 60, now: float | None = None) -> dict[str, Any]:
        """The last `minutes` in buckets of `bucket_seconds` (aligned to multiples of it), oldest first; each with
        decisions, reacted (a reaction stored), joined, mean reward of the joined with a 95% normal interval, and
        the share of each action per choice set. Decisions count in the bucket of their decision time."""
        now = time.time() if now is None else now
        if not minutes > 0:
            raise SchemaError(f"minutes: expected a positive number, got {minutes}")
        if bucket_seconds < 1:
            raise SchemaError(f"bucket_seconds: expected at least 1, got {bucket_seconds}")
        n = math.ceil(minutes * 60 / bucket_seconds)
        if n > MAX_BUCKETS:
            raise SchemaError(f"bucket_seconds: {minutes:g} minutes in buckets of {bucket_seconds} s are {n} buckets; "
                              f"at most {MAX_BUCKETS} (use longer buckets)")
        start = (math.floor(now / bucket_seconds) - n + 1) * bucket_seconds
        space = self.served.snapshot.action_space
        buckets = [_Bucket(space.sizes) for _ in range(n)]
        linear, default = self.linear, self.served.settings.default_reward
        e = events.c
        with self.served.store.engine.connect() as connection:
            rows = connection.execute(self._aggregate(start, bucket_seconds)).all()
            last_minute = connection.execute(sa.select(sa.func.count()).where(
                e.experiment == self.served.name, e.decided_at >= now - 60, e.decided_at <= now)).scalar_one()
        for row in rows:
            if 0 <= row.bucket < n:  # a decision stamped after `now` (another worker's clock) waits for the next call
                action = json.loads(row.action)
                terms = None if linear is None else linear.terms(space.to_joint(np.array([action]))[0])
                buckets[int(row.bucket)].add(row, action, terms, default)
        total = _Bucket(space.sizes)
        for bucket in buckets:
            total.merge(bucket)
        return _finite({
            "name": self.served.name,
            "now": now,
            "minutes": minutes,
            "bucket_seconds": bucket_seconds,
            "choice_sets": list(space.sizes),
            "confidence": CONFIDENCE,
            "reward_linear": self.linear is not None,
            "decisions_per_minute": int(last_minute),
            "totals": total.to_dict(),
            "buckets": [{"start": start + i * bucket_seconds, **bucket.to_dict()} for i, bucket in enumerate(buckets)],
        })

    def _aggregate(self, start: float, bucket_seconds: int) -> sa.Select:
        """One row per (bucket, action) since `start`: counts and the sums the reward needs (one index range scan)."""
        e = events.c
        offset = (e.decided_at - start) / bucket_seconds
        sqlite = self.served.store.engine.dialect.name == "sqlite"
        bucket = sa.cast(offset, sa.Integer) if sqlite else sa.cast(sa.func.floor(offset), sa.Integer)  # PostgreSQL's cast rounds
        joined, reacted = e.joined_at.is_not(None), e.reaction.is_not(None)
        huge = sa.func.abs(e.reaction) > HUGE
        reaction = sa.case((huge, None), else_=e.reaction)  # out of the sums (PostgreSQL refuses to overflow), counted apart
        return sa.select(
            bucket.label("bucket"), e.action,
            sa.func.count().label("decisions"),
            sa.func.count(e.reaction).label("reacted"),
            sa.func.count().filter(joined).label("joined"),
            sa.func.count().filter(joined, ~reacted).label("expired"),
            sa.func.count().filter(joined, huge).label("huge"),
            sa.func.coalesce(sa.func.sum(reaction).filter(joined), 0.0).label("reaction_sum"),
            sa.func.coalesce(sa.func.sum(reaction * reaction).filter(joined), 0.0).label("reaction_squares"),
        ).where(e.experiment == self.served.name, e.decided_at >= start).group_by(bucket, e.action)

    # --- checkpoints ----------------------------------------------------------------------------
    def checkpoints(self) -> dict[str, Any]:
        """The learner's rounds, oldest first (the newest `MAX_ROUNDS`): round 0 is the model it started from."""
        r = rounds.c
        query = sa.select(rounds).where(r.experiment == self.served.name).order_by(r.round.desc()).limit(MAX_ROUNDS)
        with self.served.store.engine.connect() as connection:
            rows = list(connection.execute(query))
        return {
            "name": self.served.name,
            "serving": self.served.snapshot.checkpoint,
            "rounds": [{"round": row.round, "checkpoint": row.checkpoint, "events": row.events,
                        "metrics": json.loads(row.metrics), "finished_at": row.finished_at} for row in reversed(rows)],
        }

    # --- off-policy estimate --------------------------------------------------------------------
    def estimate(self, now: float | None = None) -> dict[str, Any]:
        """DR's estimate of the served model's greedy policy and the logging policy's mean reward on the last
        `estimate_events` joined events, as `nextbest ope --estimators dr --interval normal` gives them on those
        events exported; at most once per `estimate_seconds` (callers in between get the cached answer)."""
        settings = self.served.settings
        with self._lock:  # one computation at a time; whoever waited gets its answer
            now = time.time() if now is None else now
            if self._estimate is None or now - self._estimated_at >= settings.estimate_seconds:
                self._estimate = self._compute_estimate(now)
                self._estimated_at = now
            return self._estimate

    def _compute_estimate(self, now: float) -> dict[str, Any]:
        s, snapshot, name = self.served.settings, self.served.snapshot, self.served.name
        e = events.c
        newest = sa.select(events).where(e.experiment == name, e.joined_at.is_not(None)).order_by(
            e.joined_at.desc(), e.event_id.desc()).limit(s.estimate_events)
        with self.served.store.engine.connect() as connection:
            rows = list(connection.execute(newest))
        rows.sort(key=lambda row: (row.decided_at, row.event_id))  # the order `nextbest events export` writes them in
        answer: dict[str, Any] = {"name": name, "computed_at": now, "checkpoint": snapshot.checkpoint, "events": len(rows),
                                  "window": s.estimate_events, "needed": s.estimate_min_events}
        if len(rows) < s.estimate_min_events:
            return answer | {"status": "not enough data", "message": f"{len(rows)} joined events; the estimate needs at "
                                                                       f"least {s.estimate_min_events}"}
        table = with_rewards(experience_table(rows, snapshot.schema.columns, snapshot.action_space, extra=True),
                             self.reward, s.default_reward)
        try:
            logs = read_logs(table, snapshot.action_space, source=f"the last {len(rows)} joined events of {name}",
                             schema=snapshot.schema)
            target = snapshot.probabilities(logs.features, logs.seeds, greedy=True)
            result = off_policy_evaluation(logs, target, estimators=["dr"], reward_model=s.estimate_reward_model,
                                           confidence=CONFIDENCE, interval="normal", seed=0,
                                           target=f"greedy policy of {snapshot.checkpoint or 'the untrained model'}")
        except NextbestError as error:  # e.g. a reward model that cannot be fitted on these events
            return answer | {"status": "unavailable", "message": str(error)}
        return _finite(answer | {"status": "ok", **result.to_dict()})


class _Bucket:
    """Counts and reward sums of one time bucket (or of the whole window)."""

    def __init__(self, sizes: tuple[int, ...]):
        self.decisions = self.reacted = self.joined = 0
        self.known = True  # the reward sums hold every joined event (not so for a reward not linear, or a huge reaction)
        self.reward_sum = self.reward_squares = 0.0
        self.actions = [np.zeros(size, dtype=np.int64) for size in sizes]

    def add(self, row: Any, action: list[int], linear: tuple[float, float] | None, default: float) -> None:
        """One (bucket, action) row of the aggregate; `linear`: the reward's (α, β) for this action, None if not linear."""
        self.decisions += row.decisions
        self.reacted += row.reacted
        self.joined += row.joined
        for j, a in enumerate(action):
            self.actions[j][a] += row.decisions
        if linear is None or row.huge:
            self.known = False
            return
        # Σ over the joined: reward = α·reaction + β where a reaction came, the default reward where none did.
        alpha, beta = linear
        with_reaction = row.joined - row.expired
        self.reward_sum += alpha * row.reaction_sum + beta * with_reaction + default * row.expired
        self.reward_squares += (alpha * alpha * row.reaction_squares + 2 * alpha * beta * row.reaction_sum
                                + beta * beta * with_reaction + default * default * row.expired)

    def merge(self, other: _Bucket) -> None:
        self.decisions += other.decisions
        self.reacted += other.reacted
        self.joined += other.joined
        self.known &= other.known
        self.reward_sum += other.reward_sum
        self.reward_squares += other.reward_squares
        for mine, theirs in zip(self.actions, other.actions):
            mine += theirs

    def to_dict(self) -> dict[str, Any]:
        n = self.joined
        mean = self.reward_sum / n if n and self.known else None
        low = high = None
        if mean is not None and n >= 2:
            variance = max(self.reward_squares - n * mean * mean, 0.0) / (n - 1)
            half = Z * math.sqrt(variance / n)
            low, high = mean - half, mean + half
        return {
            "decisions": self.decisions,
            "reacted": self.reacted,
            "reacted_share": self.reacted / self.decisions if self.decisions else None,
            "joined": self.joined,
            "mean_reward": mean,
            "ci_low": low,
            "ci_high": high,
            "action_shares": [(counts / self.decisions).tolist() if self.decisions else None for counts in self.actions],
        }


def _finite(value: Any) -> Any:
    """`value` with every float that is not finite replaced by None: JSON has no NaN or infinity (a reaction of
    1e200 squares to infinity), and an answer must not fail for it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _linear(reward: Reward) -> _Linear | None:
    """The reward as α[a]·reaction + β[a] per joint action, checked at three reactions; None if it is not linear
    (then the timeline reports no reward: it would need every event, not sums)."""
    space = reward.action_space
    actions = space.from_joint(np.arange(space.n_joint))
    at = {x: reward.calculate_reward(actions, np.full(space.n_joint, x)) for x in (0.0, 1.0, 3.0)}
    slope, intercept = at[1.0] - at[0.0], at[0.0]
    return _Linear(slope, intercept) if np.allclose(at[3.0], 3 * slope + intercept) else None
