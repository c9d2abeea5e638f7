"""The HTTP API: thin routes over `ServedExperiment` (parse, call, answer). OpenAPI at /docs.

    POST /v1/experiments/{name}/decisions                      contexts → one decision per context, stored
    POST /v1/experiments/{name}/events/{event_id}/reaction     {"reaction": 1}
    POST /v1/experiments/{name}/events/{event_id}/activate     a deferred decision may now be learned from
    GET  /v1/experiments/{name}                                agent, checkpoint, events by state, learner
    GET  /v1/experiments/{name}/timeline|checkpoints|estimate  what the dashboard draws (nextbest.serving.dashboard)
    GET  /  and  /experiments/{name}                           the dashboard page (files from the package, no data)
    GET  /healthz                                              GET /metrics (Prometheus text)

Errors answer JSON `{"error": message, "field": "contexts[3].device"}`: bad input 422 naming the field,
an unknown experiment or event 404, a contradicting write 409, a body over the limit 413, an event store
that cannot be reached or cannot write (StoreUnavailable) 503. A 2xx means committed. A 500 is a bug.
Once an experiment has an API key (nextbest.serving.keys), its routes need `Authorization: Bearer <key>`: 401 without a valid key, 403 for a key of the wrong role or experiment,
429 over the key's rate limit (`_Guard`).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from nextbest.errors import ExperimentError, NextbestError, SchemaError
from nextbest.serving.dashboard import PAGE_FILES, Dashboard, page_file
from nextbest.serving.events import Decision, EventConflict, EventNotFound
from nextbest.serving.keys import KeyRing
from nextbest.serving.service import DecisionRequest, ServedExperiment

Body = TypeVar("Body", bound=BaseModel)
_FIELD = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\])*(?:\.[^\s:]+)*): ")
_KEY_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "no API key, or an unknown or revoked one (once the experiment has keys); WWW-Authenticate: Bearer"},
    403: {"description": "an API key of another experiment, or of a role without this route"},
    429: {"description": "the API key is over its rate limit; Retry-After: seconds"},
}


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


class ErrorAnswer(BaseModel):
    error: str = Field(description="what is wrong and what was expected")
    field: str | None = Field(description="the field at fault, e.g. contexts[3].device; null when none is")


_ERRORS = {404: "no experiment of that name is served here, or no event of that id", 409: "contradicts what is stored "
           "(another reaction under 'earliest')", 413: "the body is over the size limit", 422: "bad input; `field` names it",
           503: "the event store is unavailable (database down or restarting, disk full): retry later"}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The refusals a route documents in its OpenAPI `responses` (checked by tests/test_serving_fuzz.py)."""
    return {code: {"model": ErrorAnswer, "description": _ERRORS[code]} for code in codes}


# The page may load only its own files and call only its own server: the browser refuses anything else.
_PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                           "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                 "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


class NotServed(NextbestError):
    """An experiment name that this server does not serve."""


def create_app(experiments: dict[str, ServedExperiment], *, max_body_bytes: int = 1_048_576,
               refresh_seconds: float = 0.5, metrics_open: bool = False, require_keys: bool = False,
               cors_origins: Sequence[str] = ()) -> FastAPI:
    """The app serving `experiments` (name → ServedExperiment). Each experiment's newest checkpoint is
    looked for every `refresh_seconds` and swapped in without stopping a request. Keys: see `_Guard`;
    `cors_origins`: the web origins whose pages may call the API (none: CORS closed)."""
    registry = CollectorRegistry()
    requests = Counter("nextbest_requests", "HTTP requests answered", ["route", "status"], registry=registry)
    latency = Histogram("nextbest_request_seconds", "time to answer a request", ["route"], registry=registry,
                        buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
    registry.register(_StoreCollector(experiments))
    ring = KeyRing({name: s.store for name, s in experiments.items()}, {name: s.settings for name, s in experiments.items()},
                   required=experiments if require_keys else ())

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        refresher = asyncio.create_task(_refresh_forever(experiments, refresh_seconds))
        keys = asyncio.create_task(ring.run())
        try:
            yield
        finally:
            refresher.cancel()
            keys.cancel()
            ring.write_last_used(force=True)
            for served in experiments.values():
                await served.close()

    app = FastAPI(title="nextbest", version="1", lifespan=lifespan,
                  description="Next best actions from reinforcement learning; every decision and reaction stored.")
    app.add_middleware(_Edge, requests=requests, latency=latency, limit=max_body_bytes, guard=_Guard(ring, metrics_open))
    if cors_origins:  # outside _Edge: preflights are answered here, and refusals carry the CORS headers too
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    def served(name: str) -> ServedExperiment:
        if name not in experiments:  # names are matched against the served set only, never used as a path
            raise NotServed(f"experiment {name!r} is not served here; served: {sorted(experiments)}")
        return experiments[name]

    # The two routes under load read their bodies with pydantic-core straight from the bytes (documented by
    # `_body`): FastAPI's own body handling costs more than the rest of a decision.
    @app.post("/v1/experiments/{name}/decisions", response_model=DecisionsAnswer, openapi_extra=_body(DecisionBody),
              responses=_errors(404, 409, 413, 422, 503))
    async def decide(name: str, request: Request) -> JSONResponse:
        experiment = served(name)
        body = _parse(DecisionBody, await request.body())
        decisions = await experiment.decide(DecisionRequest(body.contexts, body.event_ids, body.greedy, body.defer_activation))
        columns = experiment.snapshot.action_space.column_names()
        return JSONResponse({"decisions": [_answer(d, columns) for d in decisions]})  # plain floats: no encoder pass

    @app.post("/v1/experiments/{name}/events/{event_id}/reaction", openapi_extra=_body(ReactionBody),
              responses=_errors(404, 409, 413, 422, 503))
    async def react(name: str, event_id: str, request: Request) -> dict[str, Any]:
        experiment = served(name)
        outcome = await experiment.react(event_id, _parse(ReactionBody, await request.body()).reaction)
        return {"event_id": event_id, "status": outcome.status}

    @app.post("/v1/experiments/{name}/events/{event_id}/activate", responses=_errors(404, 422, 503))
    async def activate(name: str, event_id: str) -> dict[str, Any]:
        await served(name).activate(event_id)
        return {"event_id": event_id, "status": "activated"}

    @app.get("/v1/experiments/{name}", responses=_errors(404, 503))
    def status(name: str) -> dict[str, Any]:
        return served(name).status()

    # The dashboard: its numbers through documented JSON routes, its page as fixed files looked up by name.
    boards = {name: Dashboard(s) for name, s in experiments.items()}
    pages = {file: (page_file(file), media_type) for file, media_type in PAGE_FILES.items()}

    @app.get("/v1/experiments/{name}/timeline", responses=_errors(404, 422, 503))
    def timeline(name: str, minutes: float = Query(60, gt=0, le=10080, description="how far back, in minutes"),
                 bucket_seconds: int = Query(60, ge=1, le=86400, description="length of a time bucket")) -> dict[str, Any]:
        """Per time bucket, oldest first: decisions, reacted, joined, mean reward with its 95% interval, action shares."""
        served(name)
        return boards[name].timeline(minutes=minutes, bucket_seconds=bucket_seconds)

    @app.get("/v1/experiments/{name}/checkpoints", responses=_errors(404, 503))
    def checkpoints(name: str) -> dict[str, Any]:
        """The learner's rounds, oldest first: round, checkpoint, events trained, training metrics, finished_at."""
        served(name)
        return boards[name].checkpoints()

    @app.get("/v1/experiments/{name}/estimate", responses=_errors(404, 503))
    def estimate(name: str) -> dict[str, Any]:
        """DR off-policy estimate of the served model's greedy policy vs the logging policy on recent joined events."""
        served(name)
        return boards[name].estimate()

    def page(file: str) -> Response:
        content, media_type = pages[file]
        return Response(content, media_type=media_type, headers=_PAGE_HEADERS)

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return page("index.html")

    @app.get("/experiments/{name}", include_in_schema=False)
    def dashboard(name: str) -> Response:
        served(name)
        return page("index.html")

    @app.get("/dashboard/{file}", include_in_schema=False)
    def dashboard_file(file: str) -> Response:
        if file not in pages:
            return _error(404, f"no dashboard file {file!r}; the dashboard has {sorted(pages)}", None)
        return page(file)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "experiments": sorted(experiments)}

    @app.get("/metrics", responses=_errors(503))
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(StarletteHTTPException)
    async def no_route(request: Request, error: StarletteHTTPException) -> JSONResponse:
        """An unknown path (404) or method (405) in the API's error form, keeping headers such as Allow."""
        message = f"{request.method} {request.url.path}: {str(error.detail).lower()}; the routes are listed at /docs"
        return JSONResponse({"error": message, "field": None}, status_code=error.status_code, headers=error.headers)

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

    for route in app.routes:  # the key refusals of `_Guard`, documented in the OpenAPI schema
        if isinstance(route, APIRoute) and (route.path.startswith("/v1/") or route.path == "/metrics"):
            route.responses = {**_KEY_RESPONSES, **route.responses}
    return app


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that parses `model` itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


def _parse(model: type[Body], raw: bytes) -> Body:
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise RequestValidationError(error.errors()) from None


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
            for state, count in served.store.counts(name, wait_seconds=served.settings.reward_wait_seconds).items():
                events.add_metric([name, state], count)
            updates.add_metric([name], served.snapshot.updates)
        yield events
        yield updates


class _Edge:
    """Every request's first stop: refuses a body over `limit` bytes with 413 (whether or not it declares its
    length), counts answers by route and status and observes their latency, and lets `guard` refuse a request
    before its body is read. A plain ASGI middleware (no per-request task or body copy, unlike `@app.middleware`),
    one layer for all: each layer costs every request."""

    def __init__(self, app, requests: Counter, latency: Histogram, limit: int, guard: _Guard):
        self.app, self.requests, self.latency, self.limit, self.guard = app, requests, latency, limit, guard

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status, seen = time.perf_counter(), 500, 0

        async def record(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            if self.guard.ring.keyed and (refusal := await self.guard.refusal(scope)) is not None:  # no keys: one check
                return await refusal(scope, receive, record)
            declared = next((value for key, value in scope["headers"] if key == b"content-length"), None)
            if declared is not None and declared.isdigit() and int(declared) > self.limit:
                raise _TooLarge
            await self.app(scope, limited_receive, record)
        except _TooLarge:
            await _error(413, f"body: larger than the limit of {self.limit} bytes", "body")(scope, receive, record)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            self.latency.labels(path).observe(time.perf_counter() - started)
            self.requests.labels(path, str(status)).inc()


class _TooLarge(Exception):
    pass


class _Guard:
    """Who may call what, once an experiment has a key in force (docs/serving.md, "Keys"). A route under
    /v1/experiments/{name} needs a key of that experiment: POST …/decisions, …/events/{id}/reaction and
    …/activate the role `decide`, any other GET `read`, anything else `admin` (which may do everything).
    /metrics needs a `read` key of any served experiment unless `metrics_open`; the rest is open. Then the
    key's rate limit. A refusal never repeats what the caller sent in its header."""

    def __init__(self, ring: KeyRing, metrics_open: bool):
        self.ring, self.metrics_open = ring, metrics_open

    async def refusal(self, scope) -> JSONResponse | None:
        """None when the request may go on, else the answer that refuses it."""
        path = scope["path"]
        if path.startswith("/v1/"):
            parts = path.split("/")  # ['', 'v1', 'experiments', name, …]
            experiment = parts[3] if len(parts) > 3 and parts[2] == "experiments" else None
            if experiment is not None and experiment not in self.ring.keyed:
                return None  # no key in force for it (or not served: the route answers 404)
            role = _role(scope["method"], parts)
        elif path == "/metrics" and not self.metrics_open:
            experiment, role = None, "read"
        else:
            return None
        header = None
        for name, value in scope["headers"]:  # a loop, not next(generator): half the cost
            if name == b"authorization":
                header = value
                break
        if header is None:
            whom = f"experiment {experiment!r}" if experiment else path
            return _unauthorized(f"authorization: {whom} needs an API key with the role {role!r} (or 'admin'): send the "
                                 "header 'Authorization: Bearer <key>'")
        scheme, _, key = header.decode("latin-1").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return _unauthorized("authorization: expected the header 'Authorization: Bearer <key>'")
        caller = self.ring.cached(key) or await self.ring.identify(key)
        if isinstance(caller, str):
            return _unauthorized(f"authorization: {caller}")
        if experiment is not None and caller.experiment != experiment:
            return _error(403, f"authorization: the API key {caller.name!r} belongs to experiment {caller.experiment!r}, "
                          f"not {experiment!r}", "authorization")
        if not caller.may(role):
            return _error(403, f"authorization: the API key {caller.name!r} has the role {caller.role!r}; this route "
                          f"needs {role!r} (or 'admin')", "authorization")
        wait = caller.wait(time.monotonic())
        if wait:
            seconds = max(1, math.ceil(wait))
            refused = _error(429, f"authorization: the API key {caller.name!r} is over its rate limit of {caller.rate:g} "
                             f"requests per second; retry in {seconds} s", "authorization")
            refused.headers["Retry-After"] = str(seconds)
            return refused
        caller.used = True
        return None


def _role(method: str, parts: list[str]) -> str:
    """The role a /v1 route needs, from its method and path parts."""
    if method in ("GET", "HEAD"):
        return "read"
    if method == "POST" and ((len(parts) == 5 and parts[4] == "decisions") or (
            len(parts) == 7 and parts[4] == "events" and parts[6] in ("reaction", "activate"))):
        return "decide"
    return "admin"


def _unauthorized(message: str) -> JSONResponse:
    refused = _error(401, message, "authorization")
    refused.headers["WWW-Authenticate"] = 'Bearer realm="nextbest"'
    return refused
