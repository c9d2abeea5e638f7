"""The HTTP API: thin routes over `ServedExperiment` (parse, call, answer). OpenAPI at /docs.

    POST /v1/experiments/{name}/decisions                      contexts → one decision per context, stored
    POST /v1/experiments/{name}/events/{event_id}/reaction     {"reaction": 1}
    POST /v1/experiments/{name}/events/{event_id}/activate     a deferred decision may now be learned from
    GET  /v1/experiments/{name}                                agent, checkpoint, events by state, learner
    GET  /healthz                                              GET /metrics (Prometheus text)

Errors answer JSON `{"error": message, "field": "contexts[3].device"}`: bad input 422 naming the field,
an unknown experiment or event 404, a contradicting write 409, a body over the limit 413. A 2xx means
committed. A 500 is a bug.
"""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from pydantic import BaseModel, ConfigDict, Field

from nextbest.errors import ExperimentError, NextbestError, SchemaError
from nextbest.serving.events import Decision, EventConflict, EventNotFound
from nextbest.serving.service import DecisionRequest, ServedExperiment

_FIELD = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])*(?:\.[^\s:]+)*): ")


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contexts: list[dict[str, Any]] = Field(description="one object per decision: column → value; optional "
                                           "'excluded_actions' ([3, 7], or one list per choice set) and, in "
                                           "apprentice mode, 'baseline_action'")
    event_ids: list[str] | None = Field(None, description="your ids, one per context (a retry with the same ids "
                                        "gets the stored decisions back); generated when omitted")
    greedy: bool = Field(False, description="take the best action, no exploration")
    defer_activation: bool = Field(False, description="learn from these decisions only once activated")


class DecisionsAnswer(BaseModel):
    decisions: list[dict[str, Any]] = Field(description="one per context, in order: event_id, action (or action_0, …), "
                                            "probability, log_probability, value, checkpoint (and agent_action in apprentice mode)")


class ReactionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reaction: float | bool | str = Field(description="what the experience table's 'reaction' column holds: a number, "
                                         "true/false, or a word such as 'conversion'")


class NotServed(NextbestError):
    """An experiment name that this server does not serve."""


def create_app(experiments: dict[str, ServedExperiment], *, max_body_bytes: int = 1_048_576,
               refresh_seconds: float = 0.5) -> FastAPI:
    """The app serving `experiments` (name → ServedExperiment). Each experiment's newest checkpoint is
    looked for every `refresh_seconds` and swapped in without stopping a request."""
    registry = CollectorRegistry()
    requests = Counter("nextbest_requests", "HTTP requests answered", ["route", "status"], registry=registry)
    latency = Histogram("nextbest_request_seconds", "time to answer a request", ["route"], registry=registry,
                        buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
    registry.register(_StoreCollector(experiments))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        refresher = asyncio.create_task(_refresh_forever(experiments, refresh_seconds))
        try:
            yield
        finally:
            refresher.cancel()
            for served in experiments.values():
                await served.close()

    app = FastAPI(title="nextbest", version="1", lifespan=lifespan,
                  description="Next best actions from reinforcement learning; every decision and reaction stored.")
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    app.add_middleware(_Measure, requests=requests, latency=latency)

    def served(name: str) -> ServedExperiment:
        if name not in experiments:  # names are matched against the served set only, never used as a path
            raise NotServed(f"experiment {name!r} is not served here; served: {sorted(experiments)}")
        return experiments[name]

    @app.post("/v1/experiments/{name}/decisions", response_model=DecisionsAnswer)
    async def decide(name: str, body: DecisionBody) -> JSONResponse:
        experiment = served(name)
        decisions = await experiment.decide(DecisionRequest(body.contexts, body.event_ids, body.greedy, body.defer_activation))
        columns = experiment.snapshot.action_space.column_names()
        return JSONResponse({"decisions": [_answer(d, columns) for d in decisions]})  # plain floats: no encoder pass

    @app.post("/v1/experiments/{name}/events/{event_id}/reaction")
    async def react(name: str, event_id: str, body: ReactionBody) -> dict[str, Any]:
        outcome = await served(name).react(event_id, body.reaction)
        return {"event_id": event_id, "status": outcome.status}

    @app.post("/v1/experiments/{name}/events/{event_id}/activate")
    async def activate(name: str, event_id: str) -> dict[str, Any]:
        await served(name).activate(event_id)
        return {"event_id": event_id, "status": "activated"}

    @app.get("/v1/experiments/{name}")
    def status(name: str) -> dict[str, Any]:
        return served(name).status()

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "experiments": sorted(experiments)}

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = _path([part for part in first["loc"] if part not in ("body", "path", "query")])
        return _error(422, f"{where}: {first['msg']}", where)

    @app.exception_handler(NextbestError)
    async def refused(_request: Request, error: NextbestError) -> JSONResponse:
        status_code = (404 if isinstance(error, EventNotFound | NotServed) else 409 if isinstance(error, EventConflict)
                       else 503 if isinstance(error, ExperimentError) else 422)
        match = _FIELD.match(str(error)) if isinstance(error, SchemaError) else None
        return _error(status_code, str(error), match.group(1) if match else None)

    return app


def _answer(decision: Decision, action_columns: list[str]) -> dict[str, Any]:
    answer: dict[str, Any] = {"event_id": decision.event_id}
    answer.update(zip(action_columns, decision.action))
    answer.update(probability=decision.probability, log_probability=decision.log_probability, value=decision.value,
                  checkpoint=decision.checkpoint)
    if decision.agent_action is not None:
        answer["agent_action"] = decision.agent_action
    return answer


def _path(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _error(status_code: int, message: str, field: str | None) -> JSONResponse:
    return JSONResponse({"error": message, "field": field}, status_code=status_code)


async def _refresh_forever(experiments: dict[str, ServedExperiment], seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        for served in experiments.values():
            try:
                await asyncio.to_thread(served.snapshots.refresh)
            except NextbestError:
                pass  # a damaged newest checkpoint: keep serving the current one (refresh says so in its log)


class _StoreCollector:
    """Events by state and the model version of each experiment, read from the store at scrape time."""

    def __init__(self, experiments: dict[str, ServedExperiment]):
        self.experiments = experiments

    def collect(self):
        events = GaugeMetricFamily("nextbest_events", "stored events by state", labels=["experiment", "state"])
        updates = GaugeMetricFamily("nextbest_model_updates", "training updates of the serving checkpoint",
                                    labels=["experiment"])
        for name, served in self.experiments.items():
            for state, count in served.status()["events"].items():
                events.add_metric([name, state], count)
            updates.add_metric([name], served.snapshot.updates)
        yield events
        yield updates


class _Measure:
    """Counts answers by route and status and observes their latency (a plain ASGI middleware: no per-request
    task or body copy, unlike `@app.middleware`)."""

    def __init__(self, app, requests: Counter, latency: Histogram):
        self.app, self.requests, self.latency = app, requests, latency

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def record(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.latency.labels(path).observe(time.perf_counter() - started)
            self.requests.labels(path, str(status)).inc()


class _BodyLimit:
    """Refuses a request body over `limit` bytes with 413, whether or not it declares its length."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = _error(413, f"body: larger than the limit of {self.limit} bytes", "body")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await too_large(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await too_large(scope, receive, send)


class _TooLarge(Exception):
    pass
