"""schemathesis against a real `nextbest serve` and its own /openapi.json: every generated request gets a status
its operation documents, never a 5xx, and the store holds exactly what the answers acknowledged."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from fuzzing import POOL, FuzzReport, _check, fuzz
from servers import make_experiment, server

from nextbest.serving.events import EventStore

pytestmark = pytest.mark.slow

EXAMPLES = 30  # per operation and generation mode: about 330 requests, 10 s here
VALUES = {"device": ["mobile", "desktop"], "basket": [20.0, 0.0, 1e6]}


@pytest.fixture
def headers() -> dict[str, str]:
    """Headers sent with every fuzzed request. With API keys on, create an admin key for the experiment
    (`nextbest keys create DIR --role admin`) and return {"Authorization": f"Bearer {key}"}."""
    return {}


def test_fuzzed_requests_get_documented_statuses_and_store_only_what_was_acknowledged(tmp_path, headers):
    shop = make_experiment(tmp_path)
    with server(shop, args=("--max-body-bytes", "4000")) as (url, _):  # a small limit, so that 413 is reached too
        report = fuzz(url, "shop", VALUES, examples=EXAMPLES, headers=headers)
    print(f"\nfuzzer: {report.requests} requests in {report.seconds:.0f} s, {report.server_errors} server errors; "
          f"{json.dumps(report.summary()['statuses'])}")
    assert report.failures == [], json.dumps(report.failures[:5], indent=1)
    assert report.requests >= 10 * EXAMPLES
    decisions = report.statuses["POST /v1/experiments/{name}/decisions"]
    reactions = report.statuses["POST /v1/experiments/{name}/events/{event_id}/reaction"]
    assert {200, 404, 413, 422} <= set(decisions) and {200, 404, 422} <= set(reactions)  # it reached the code, not only the 422s

    assert report.lost == 0 and report.unacknowledged == 0 and report.stored == len(report.acknowledged)
    store = EventStore.sqlite(str(shop / "events.sqlite"))
    try:
        rows = {row.event_id: row for row in store.rows("shop", joined_only=False)}
    finally:
        store.close()
    assert set(rows) == report.acknowledged
    assert {event_id: rows[event_id].reactions + rows[event_id].late_reactions for event_id in POOL} == \
        {event_id: report.reactions[event_id] for event_id in POOL}  # every stored reaction was acknowledged, and only those


def answer(status: int, body: object) -> SimpleNamespace:
    return SimpleNamespace(status_code=status, text=json.dumps(body), json=lambda: body)


@pytest.mark.parametrize(("status", "body", "problem"), [
    (500, "Internal Server Error", "server error"),
    (418, {"error": "teapot", "field": None}, "status 418 not documented"),
    (404, {"detail": "Not Found"}, "a 4xx whose body is not"),
    (422, {"error": "", "field": None}, "a 4xx whose body is not"),
])
def test_the_fuzz_check_flags_server_errors_undocumented_statuses_and_other_error_bodies(status, body, problem):
    report = FuzzReport()
    case = SimpleNamespace(operation=SimpleNamespace(label="GET /v1/experiments/{name}"), body=None, path_parameters={},
                           as_curl_command=lambda: "curl -X GET …")
    _check(case, answer(status, body), {"200", "404", "422"}, report)
    assert report.requests == 1 and len(report.failures) == 1 and report.failures[0]["problem"].startswith(problem)
    _check(case, answer(404, {"error": "no experiment 'x'", "field": None}), {"200", "404", "422"}, report)
    assert len(report.failures) == 1  # a documented refusal in the right shape passes
