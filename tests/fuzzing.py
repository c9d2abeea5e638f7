"""Fuzzing a running `nextbest serve` from its own OpenAPI schema (schemathesis + Hypothesis): the tests' and
benchmarks/bench_faults.py's one implementation.

    report = fuzz(url, "shop", {"device": ["mobile", "desktop"], "basket": [20.0]}, examples=30)
    assert report.failures == [] and report.lost == 0 and report.unacknowledged == 0

Every operation in /openapi.json gets `examples` requests from schemathesis's positive mode and, where it takes a
body, as many from its negative mode (bodies that break the schema). Arbitrary names and objects would almost
all stop at the first 404 or 422, so a part of them is steered to where the code is: the experiment name is the
served one in three cases of four; in half of the decision requests the contexts carry the served columns
(known values, edge numbers, wrong types, excluded actions) and event ids from a small pool (retries,
duplicates, ids of the wrong count); half of the reactions and activations go to an id of that pool.

Each answer is checked: never a 5xx, a status the operation documents, and a 4xx as `{"error": text, "field":
text or null}`. Then what the store holds is compared with what the answers acknowledged: the events the
status route counts grew by exactly the distinct event ids of the 2xx decision answers.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

POOL = [f"fz-{i}" for i in range(6)]  # the event ids that fuzzed decisions reuse and fuzzed reactions target
CHANGES = {"joined", "aggregated", "late", "waiting_activation"}  # reaction answers that stored something


@dataclass
class FuzzReport:
    """What the fuzzer sent and saw: `requests` sent, their statuses by operation, `failures` (a 5xx, an
    undocumented status or a malformed error, each with a curl command), and the event audit."""

    requests: int = 0
    seconds: float = 0.0
    statuses: dict[str, collections.Counter] = field(default_factory=lambda: collections.defaultdict(collections.Counter))
    failures: list[dict[str, Any]] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)  # event ids of 2xx decision answers
    reactions: collections.Counter = field(default_factory=collections.Counter)  # event id → 2xx reactions that stored
    stored: int = 0  # events the status route counts, after minus before
    server_errors: int = 0

    @property
    def lost(self) -> int:
        """Acknowledged events the store does not count."""
        return max(0, len(self.acknowledged) - self.stored)

    @property
    def unacknowledged(self) -> int:
        """Stored events whose answer was not a 2xx."""
        return max(0, self.stored - len(self.acknowledged))

    def summary(self) -> dict[str, Any]:
        return {"requests": self.requests, "seconds": round(self.seconds, 1), "server_errors": self.server_errors,
                "undocumented_or_malformed": len(self.failures) - self.server_errors,
                "events_acknowledged": len(self.acknowledged), "events_stored": self.stored, "events_lost": self.lost,
                "events_stored_unacknowledged": self.unacknowledged,
                "statuses": {op: dict(sorted(counts.items())) for op, counts in sorted(self.statuses.items())}}


def fuzz(url: str, experiment: str, examples_of: dict[str, list[Any]], *, examples: int = 30,
         headers: dict[str, str] | None = None, n_actions: int = 4) -> FuzzReport:
    """Fuzz the server at `url` (serving `experiment`, whose context columns and some valid values are
    `examples_of`) with `examples` requests per operation and mode; `headers` go with every request (an
    API key: {"Authorization": "Bearer …"})."""
    headers = headers or {}
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers=headers)
    report = FuzzReport()
    started = time.monotonic()
    before = _logged(url, experiment, headers)
    _seed_pool(url, experiment, examples_of, headers, report)
    for result in schema.get_all_operations():
        operation = result.ok()
        documented = set(operation.definition.raw.get("responses", {}))
        has_body = "requestBody" in operation.definition.raw
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_body else (GenerationMode.POSITIVE,):
            _run(operation, mode, url, experiment, examples_of, examples, headers, n_actions, documented, report)
    report.stored = _logged(url, experiment, headers) - before
    report.seconds = time.monotonic() - started
    return report


def _run(operation, mode, url, experiment, examples_of, examples, headers, n_actions, documented, report) -> None:
    # sampled_from leans to its first element: the served name in most cases, a steered body in about half
    steered = st.tuples(st.sampled_from([True, True, True, False]), st.sampled_from([True, False]),
                        _decision_body(examples_of, n_actions), st.sampled_from(POOL))

    @given(case=operation.as_strategy(generation_mode=mode), steer=steered)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    def run(case, steer) -> None:
        served, use, body, event_id = steer
        if served and "name" in (case.path_parameters or {}):
            case.path_parameters["name"] = experiment
        if use and mode is GenerationMode.POSITIVE and operation.path.endswith("/decisions"):
            case.body = body
        if use and "event_id" in (case.path_parameters or {}):
            case.path_parameters["event_id"] = event_id
        _check(case, case.call(base_url=url, headers=headers, timeout=30), documented, report)

    run()


def _check(case, response, documented: set[str], report: FuzzReport) -> None:
    """One answer against the contract; failures are recorded, not raised (so the run reports them all)."""
    report.requests += 1
    label = case.operation.label
    report.statuses[label][response.status_code] += 1
    problem = None
    if response.status_code >= 500:
        report.server_errors += 1
        problem = "server error"
    elif str(response.status_code) not in documented:
        problem = f"status {response.status_code} not documented (documented: {sorted(documented)})"
    elif 400 <= response.status_code < 500:
        try:
            body = response.json()
            ok = (isinstance(body, dict) and set(body) == {"error", "field"} and isinstance(body["error"], str)
                  and body["error"] and (body["field"] is None or isinstance(body["field"], str)))
        except ValueError:
            ok = False
        if not ok:
            problem = "a 4xx whose body is not {'error': text, 'field': text or null}"
    elif response.status_code < 300 and label.endswith("/decisions"):
        decisions = response.json()["decisions"]
        if len(decisions) != len(case.body["contexts"]):
            problem = f"{len(decisions)} decisions for {len(case.body['contexts'])} contexts"
        report.acknowledged.update(d["event_id"] for d in decisions)
    elif response.status_code < 300 and label.endswith("/reaction") and response.json()["status"] in CHANGES:
        report.reactions[case.path_parameters["event_id"]] += 1
    if problem:
        report.failures.append({"operation": label, "status": response.status_code, "problem": problem,
                                "answer": response.text[:300], "curl": case.as_curl_command()[:2000]})


def _decision_body(examples_of: dict[str, list[Any]], n_actions: int) -> st.SearchStrategy[dict[str, Any]]:
    """Decision bodies near the served schema: valid ones (known values, a few excluded actions, event ids of the
    pool) and broken ones (edge numbers, wrong types, unknown columns, ids of the wrong count)."""
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=12),
                       st.floats(allow_nan=False, allow_infinity=False))
    actions = st.one_of(st.integers(-1, n_actions), st.lists(st.integers(-1, n_actions), max_size=n_actions + 1),
                        st.lists(st.lists(st.integers(0, n_actions))), scalar)
    flags = {"greedy": st.booleans(), "defer_activation": st.booleans()}
    valid_context = st.fixed_dictionaries(
        {column: st.sampled_from(values) for column, values in examples_of.items()},
        optional={"excluded_actions": st.lists(st.integers(0, n_actions - 1), max_size=n_actions - 1, unique=True)})
    valid = st.lists(valid_context, min_size=1, max_size=4).flatmap(lambda contexts: st.fixed_dictionaries(
        {"contexts": st.just(contexts)},
        optional={"event_ids": st.lists(st.sampled_from(POOL), min_size=len(contexts), max_size=len(contexts)), **flags}))
    broken_context = st.fixed_dictionaries(
        {column: st.one_of(st.sampled_from(values), scalar) for column, values in examples_of.items()},
        optional={"excluded_actions": actions, "baseline_action": actions, "colour": scalar})
    ids = st.lists(st.one_of(st.sampled_from(POOL), st.text(max_size=8)), max_size=4)
    broken = st.fixed_dictionaries({"contexts": st.lists(broken_context, max_size=4)},
                                   optional={"event_ids": st.one_of(st.none(), ids), **flags})
    return st.one_of(valid, broken)


def _seed_pool(url: str, experiment: str, examples_of: dict[str, list[Any]], headers: dict[str, str],
               report: FuzzReport) -> None:
    """Decide the pool's events (its second half deferred) so that fuzzed reactions and activations find them."""
    context = {column: values[0] for column, values in examples_of.items()}
    half = len(POOL) // 2
    for ids, deferred in ((POOL[:half], False), (POOL[half:], True)):
        answer = httpx.post(f"{url}/v1/experiments/{experiment}/decisions", headers=headers, timeout=30,
                            json={"contexts": [context] * len(ids), "event_ids": ids, "defer_activation": deferred})
        answer.raise_for_status()
        report.acknowledged.update(d["event_id"] for d in answer.json()["decisions"])


def _logged(url: str, experiment: str, headers: dict[str, str]) -> int:
    answer = httpx.get(f"{url}/v1/experiments/{experiment}", headers=headers, timeout=30)
    answer.raise_for_status()
    return int(answer.json()["events"]["logged"])
