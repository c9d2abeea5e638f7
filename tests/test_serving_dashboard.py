"""The dashboard of `nextbest serve`: its JSON routes against an independent computation, and its page in a
real headless browser (Debian's chromium driven by Selenium) while a simulated client sends traffic.

Every server and browser is started by the test that uses it and stopped by its process id.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from scipy import stats
from servers import postgres, server

from nextbest.agents.settings import build_hyperparameters, load_hyperparameters
from nextbest.errors import SchemaError
from nextbest.rewards import REWARDS, Reward, register_reward
from nextbest.serving.dashboard import PAGE_FILES, Dashboard
from nextbest.serving.events import Decision, EventConflict, EventStore, insert_decisions
from nextbest.serving.keys import create_key
from nextbest.serving.service import ServedExperiment
from nextbest.training.experiment import Experiment
from nextbest.training.setup import experiment_schema

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
COSTS = [0.0, 0.5, 1.0, 0.0, 0.5, 2.0]  # one per joint action of the space [2, 3]
DEFAULT_REWARD = 0.25


def new_experiment(directory: Path, sizes: list[int], **overrides) -> Path:
    """What `nextbest init DIR --action-space … --columns device,basket --agent linucb` creates, in-process."""
    contexts = pd.DataFrame({"device": ["mobile", "desktop"] * 10, "basket": np.linspace(1, 80, 20)})
    hyperparameters = build_hyperparameters("linucb", json.dumps(overrides), action_space=sizes, columns=["device", "basket"],
                                            categorical_columns=["device"])
    Experiment.create(directory, hyperparameters, experiment_schema(hyperparameters, schema_from=contexts)).close()
    return directory


# --- the JSON routes, computed in-process -------------------------------------------------------
@pytest.fixture(scope="module")
def two_choice_sets(tmp_path_factory) -> Path:
    """An experiment with two choice sets (2 × 3 actions) and a reward with costs and a default reward."""
    return new_experiment(tmp_path_factory.mktemp("two") / "outlet", [2, 3], reward_name="revenue-minus-cost",
                          action_costs=COSTS, default_reward=DEFAULT_REWARD, reward_wait_seconds=100, estimate_min_events=30)


@pytest.fixture(scope="module")
def pg_url(tmp_path_factory) -> Iterator[str]:
    """One PostgreSQL for the tests of this module (each uses its own experiment names)."""
    with postgres(tmp_path_factory.mktemp("pg")) as url:
        yield url


def served_board(directory: Path, store: EventStore) -> Dashboard:
    settings = load_hyperparameters(directory / "hyperparameters.json").serving
    return Dashboard(ServedExperiment(directory.name, directory, store, settings))


def store_events(store: EventStore, name: str, now: float, rng: random.Random) -> None:
    """Decisions over the last four minutes (some exactly on a bucket boundary): reacted with revenue, expired
    (decided over the wait time ago, joined with the default reward), or still waiting."""
    times = [now - 230 + 1.7 * i for i in range(130)] + [math.floor(now / 60) * 60 - 60] * 3
    decisions = [Decision(uuid.uuid4().hex, {"device": "mobile", "basket": 3.0}, [rng.randrange(2), rng.randrange(3)],
                          1 / 6, math.log(1 / 6), 0.0, i, "c", decided_at=t) for i, t in enumerate(times)]
    store.write(lambda connection: insert_decisions(connection, name, decisions, ids_given=False))
    for decision in decisions:
        if rng.random() < 0.6:
            revenue = round(rng.uniform(0, 10), 2)
            store.record_reaction(name, decision.event_id, revenue, wait_seconds=100, now=decision.decided_at + 5).result()
    store.expire(name, wait_seconds=100, now=now)


def expected_buckets(store: EventStore, name: str, start: float, bucket_seconds: int, n: int) -> list[dict]:
    """The timeline computed row by row with pandas, independently of the SQL sums."""
    rows = store.rows(name, joined_only=False)
    table = pd.DataFrame({"decided_at": [r.decided_at for r in rows], "action": [json.loads(r.action) for r in rows],
                          "reaction": [r.reaction for r in rows], "joined": [r.joined_at is not None for r in rows]})
    table["reaction"] = table["reaction"].astype(float)
    table["bucket"] = np.floor((table["decided_at"] - start) / bucket_seconds).astype(int)
    joint = table["action"].map(lambda a: a[0] * 3 + a[1])
    table["reward"] = np.where(table["reaction"].isna(), DEFAULT_REWARD, table["reaction"] - np.array(COSTS)[joint])
    z = stats.norm.ppf(0.975)
    out = []
    for b in range(n):
        rows_b = table[table["bucket"] == b]
        rewards = rows_b.loc[rows_b["joined"], "reward"].to_numpy()
        mean = rewards.mean() if len(rewards) else None
        half = z * rewards.std(ddof=1) / math.sqrt(len(rewards)) if len(rewards) >= 2 else None
        shares = [[float((rows_b["action"].map(lambda a, j=j: a[j]) == k).mean()) for k in range(size)]
                  if len(rows_b) else None for j, size in enumerate((2, 3))]
        out.append({"decisions": len(rows_b), "reacted": int(rows_b["reaction"].notna().sum()),
                    "joined": int(rows_b["joined"].sum()), "mean_reward": mean,
                    "ci_low": None if half is None else mean - half, "ci_high": None if half is None else mean + half,
                    "action_shares": shares})
    return out


def assert_buckets_match(answer: dict, expected: list[dict]) -> None:
    assert len(answer["buckets"]) == len(expected)
    for got, want in zip(answer["buckets"], expected):
        for key in ("decisions", "reacted", "joined"):
            assert got[key] == want[key], (key, got, want)
        for key in ("mean_reward", "ci_low", "ci_high"):
            assert (got[key] is None) == (want[key] is None) and (got[key] is None or math.isclose(
                got[key], want[key], rel_tol=1e-9, abs_tol=1e-9)), (key, got, want)
        assert got["reacted_share"] == (want["reacted"] / want["decisions"] if want["decisions"] else None)
        for got_shares, want_shares in zip(got["action_shares"], want["action_shares"]):
            assert got_shares == (None if want_shares is None else pytest.approx(want_shares))


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_timeline_buckets_match_a_row_by_row_computation(two_choice_sets, tmp_path, pg_url, database):
    now = math.floor(time.time() / 60) * 60 + 30.5  # mid-bucket; a few decisions sit exactly on a boundary
    store = EventStore(pg_url) if database == "postgresql" else EventStore.sqlite(str(tmp_path / "events.sqlite"))
    try:
        store_events(store, "outlet", now, random.Random(0))
        board = served_board(two_choice_sets, store)
        answer = board.timeline(minutes=5, bucket_seconds=60, now=now)
        start = answer["buckets"][0]["start"]
        assert start == math.floor(now / 60) * 60 - 4 * 60 and len(answer["buckets"]) == 5
        assert answer["choice_sets"] == [2, 3] and answer["reward_linear"] is True
        expected = expected_buckets(store, "outlet", start, 60, 5)
        assert_buckets_match(answer, expected)
        assert sum(b["decisions"] for b in expected) == 133  # every decision fell in the window
        assert answer["totals"]["decisions"] == 133 and answer["totals"]["reacted"] == sum(b["reacted"] for b in expected)
        in_last_minute = sum(now - 60 <= r.decided_at <= now for r in store.rows("outlet", joined_only=False))
        assert answer["decisions_per_minute"] == in_last_minute > 0
        finer = board.timeline(minutes=3, bucket_seconds=7, now=now)
        assert_buckets_match(finer, expected_buckets(store, "outlet", finer["buckets"][0]["start"], 7, len(finer["buckets"])))
    finally:
        store.close()


def test_timeline_refuses_more_buckets_than_it_draws(two_choice_sets, tmp_path):
    store = EventStore.sqlite(str(tmp_path / "events.sqlite"))
    try:
        board = served_board(two_choice_sets, store)
        with pytest.raises(SchemaError, match=r"^bucket_seconds: 600 minutes in buckets of 1 s are 36000 buckets; at most 1440"):
            board.timeline(minutes=600, bucket_seconds=1)
        empty = board.timeline(minutes=1, bucket_seconds=60)
        assert empty["totals"] | {"action_shares": None} == {"decisions": 0, "reacted": 0, "reacted_share": None, "joined": 0,
                                                             "mean_reward": None, "ci_low": None, "ci_high": None,
                                                             "action_shares": None}
    finally:
        store.close()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_huge_reaction_leaves_the_reward_unknown_not_the_answer_broken(tmp_path, pg_url, database):
    directory = new_experiment(tmp_path / f"huge_{database}", [4])
    name = directory.name
    store = EventStore(pg_url) if database == "postgresql" else EventStore.sqlite(str(tmp_path / "events.sqlite"))
    try:
        now = time.time()
        decisions = [Decision(f"e{i}", {"device": "mobile", "basket": 3.0}, [0], 0.25, math.log(0.25), 0.0, i, None,
                              decided_at=now - 120 * i) for i in range(4)]
        store.write(lambda connection: insert_decisions(connection, name, decisions))
        for decision, reaction in zip(decisions, (1e308, -1e308, 2.0, 4.0)):
            store.record_reaction(name, decision.event_id, reaction, now=decision.decided_at).result()
        answer = served_board(directory, store).timeline(minutes=10, bucket_seconds=60, now=now)
    finally:
        store.close()
    json.dumps(answer, allow_nan=False)  # what the route sends: no NaN, no infinity
    rewards = [(b["joined"], b["mean_reward"]) for b in answer["buckets"] if b["joined"]]
    assert rewards == [(1, 4.0), (1, 2.0), (1, None), (1, None)]  # oldest first: the huge ones are unknown, not wrong
    assert answer["totals"]["mean_reward"] is None and answer["totals"]["joined"] == 4


class SquaredReaction(Reward):
    name = "squared-reaction-for-tests"
    summary = "the reaction squared: not linear in it"

    def calculate_reward(self, actions, reactions):
        return np.asarray(reactions, dtype=np.float64) ** 2


def test_a_reward_not_linear_in_the_reaction_gets_counts_but_no_reward_sums(tmp_path):
    register_reward(SquaredReaction)
    try:
        directory = new_experiment(tmp_path / "squares", [4], reward_name=SquaredReaction.name)
        store = EventStore.sqlite(str(tmp_path / "events.sqlite"))
        try:
            now = time.time()
            decision = Decision("e1", {"device": "mobile", "basket": 3.0}, [1], 0.25, math.log(0.25), 0.0, 1, "c", decided_at=now)
            store.write(lambda connection: insert_decisions(connection, "squares", [decision]))
            store.record_reaction("squares", "e1", 3.0, now=now).result()
            answer = served_board(directory, store).timeline(minutes=1, bucket_seconds=60, now=now)
        finally:
            store.close()
    finally:
        REWARDS.pop(SquaredReaction.name)
    assert answer["reward_linear"] is False
    assert answer["totals"] | {"action_shares": None} == {"decisions": 1, "reacted": 1, "reacted_share": 1.0, "joined": 1,
                                                         "mean_reward": None, "ci_low": None, "ci_high": None,
                                                         "action_shares": None}


def test_checkpoint_history_records_each_committed_round_with_its_metrics(two_choice_sets, tmp_path):
    store = EventStore.sqlite(str(tmp_path / "events.sqlite"))
    try:
        now = time.time()
        store_events(store, "outlet", now, random.Random(1))
        store.begin_learner("outlet", "checkpoint-000000.pt")
        joined = [r.event_id for r in store.to_train("outlet")]
        store.commit_round("outlet", joined[:20], 1, "checkpoint-000001.pt",
                           {"reward/mean": np.float32(0.5), "loss": float("nan"), "seconds": 0.25})
        with pytest.raises(EventConflict, match="round 3 committed after round 1"):
            store.commit_round("outlet", joined[20:30], 3, "checkpoint-000003.pt", {"loss": 1.0})
        store.commit_round("outlet", joined[20:30], 2, "checkpoint-000002.pt", {"loss": 1.0})
        history = served_board(two_choice_sets, store).checkpoints()
    finally:
        store.close()
    rounds = history["rounds"]
    assert [(r["round"], r["checkpoint"], r["events"]) for r in rounds] == [
        (0, "checkpoint-000000.pt", 0), (1, "checkpoint-000001.pt", 20), (2, "checkpoint-000002.pt", 10)]
    assert rounds[1]["metrics"] == {"reward/mean": 0.5, "loss": None, "seconds": 0.25}  # NaN is not JSON: null
    assert rounds[0]["metrics"] == {} and all(now - 5 < r["finished_at"] < time.time() + 1 for r in rounds)


def test_a_store_from_before_the_dashboard_gets_its_index_and_rounds_table(tmp_path):
    path = str(tmp_path / "events.sqlite")
    EventStore.sqlite(path).close()
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:  # the schema as it was: no timeline index, no history of rounds
        connection.exec_driver_sql("DROP INDEX events_decided")
        connection.exec_driver_sql("DROP TABLE rounds")
    EventStore.sqlite(path).close()
    inspector = sa.inspect(engine)
    assert "events_decided" in {index["name"] for index in inspector.get_indexes("events")}
    assert "rounds" in inspector.get_table_names()
    engine.dispose()


def test_estimate_says_not_enough_data_then_is_cached_between_computations(two_choice_sets, tmp_path):
    store = EventStore.sqlite(str(tmp_path / "events.sqlite"))
    try:
        board = served_board(two_choice_sets, store)
        first = board.estimate(now=1000.0)
        assert first["status"] == "not enough data" and first["events"] == 0
        assert first["message"] == "0 joined events; the estimate needs at least 30"
        store_events(store, "outlet", time.time(), random.Random(2))
        assert board.estimate(now=1005.0) is first  # within estimate_seconds (10): the cached answer
        second = board.estimate(now=1010.0)
        joined = store.counts("outlet", wait_seconds=100)["joined"]
        assert second["status"] == "ok" and second["events"] == second["rows"] == joined >= 30
        dr = second["estimators"]["dr"]
        assert dr["ci_low"] < dr["estimate"] < dr["ci_high"] and dr["interval"] == "normal"
        assert second["settings"]["reward_model"] == "ridge" and second["computed_at"] == 1010.0
    finally:
        store.close()


def test_an_estimate_that_cannot_be_made_says_why(tmp_path):
    directory = new_experiment(tmp_path / "tiny", [4], estimate_min_events=1)
    store = EventStore.sqlite(str(tmp_path / "events.sqlite"))
    try:
        now = time.time()
        decisions = [Decision(f"e{i}", {"device": "mobile", "basket": 3.0}, [i], 0.25, math.log(0.25), 0.0, i, None,
                              decided_at=now) for i in range(3)]
        store.write(lambda connection: insert_decisions(connection, "tiny", decisions))
        for decision in decisions:
            store.record_reaction("tiny", decision.event_id, 1, now=now).result()
        answer = served_board(directory, store).estimate()
    finally:
        store.close()
    assert answer["status"] == "unavailable" and answer["events"] == 3
    assert answer["message"] == "the logs have 3 rows; cross-fitting with 5 folds needs at least 5 (use --folds)"


# --- the routes over HTTP -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    """`shop` (4 actions) with a learner that trains every 40 joined events and an estimate from 40 on."""
    return new_experiment(tmp_path_factory.mktemp("served") / "shop", [4], learner_batch_size=40, learner_interval_seconds=1,
                          estimate_min_events=40, estimate_seconds=1)


@pytest.fixture(scope="module")
def shop_url(shop) -> Iterator[str]:
    """One server of `shop` for the tests below, in file order: each one's traffic adds to the last one's, and the
    last test gives `shop` keys."""
    with server(shop) as (url, _):
        yield url


def test_the_routes_answer_documented_json_and_refuse_bad_input(shop_url):
    with httpx.Client(base_url=shop_url) as client:
        for path in ("/v1/experiments/nope/timeline", "/v1/experiments/nope/checkpoints", "/v1/experiments/nope/estimate",
                     "/experiments/nope"):
            answer = client.get(path)
            assert answer.status_code == 404 and answer.json() == {
                "error": "experiment 'nope' is not served here; served: ['shop']", "field": None}, path
        missing = client.get("/dashboard/secrets.txt")
        assert missing.status_code == 404 and missing.json() == {
            "error": "no dashboard file 'secrets.txt'; the dashboard has ['app.js', 'index.html', 'style.css']", "field": None}
        for query, field, message in [
            ("minutes=0", "minutes", "minutes: Input should be greater than 0"),
            ("minutes=many", "minutes", "minutes: Input should be a valid number, unable to parse string as a number"),
            ("bucket_seconds=0", "bucket_seconds", "bucket_seconds: Input should be greater than or equal to 1"),
            ("minutes=600&bucket_seconds=1", "bucket_seconds",
             "bucket_seconds: 600 minutes in buckets of 1 s are 36000 buckets; at most 1440 (use longer buckets)"),
        ]:
            answer = client.get(f"/v1/experiments/shop/timeline?{query}")
            assert answer.status_code == 422 and answer.json() == {"error": message, "field": field}, query
        page = client.get("/experiments/shop")
        assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
        assert "connect-src 'self'" in page.headers["content-security-policy"] and client.get("/").text == page.text
        assert client.get("/dashboard/app.js").headers["content-type"].startswith("text/javascript")
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/v1/experiments/{name}/timeline", "/v1/experiments/{name}/checkpoints", "/v1/experiments/{name}/estimate"} <= set(paths)
        assert not any(p in paths for p in ("/", "/experiments/{name}", "/dashboard/{file}"))  # pages, not API
        first = client.get("/v1/experiments/shop/checkpoints").json()["rounds"][0]
        assert (first["round"], first["events"], first["metrics"]) == (0, 0, {})  # the model the learner started from


def test_the_page_files_ship_with_the_package():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["nextbest"]
    for file in PAGE_FILES:
        assert any(fnmatch(f"serving/dashboard/{file}", pattern) for pattern in patterns), file
        assert (ROOT / "nextbest" / "serving" / "dashboard" / file).is_file()


def test_the_estimate_is_nextbest_ope_on_the_exported_events(shop, shop_url, tmp_path, run_cli):
    with httpx.Client(base_url=shop_url, timeout=30) as client:
        Traffic(shop_url, budget=150, seed=3).run()
        status = wait_until_trained(client)
        estimate = client.get("/v1/experiments/shop/estimate").json()
    assert estimate["status"] == "ok" and estimate["checkpoint"] == status["checkpoint"]
    assert estimate["events"] == status["events"]["joined"]
    assert run_cli("events", "export", shop, "--output", tmp_path / "events.parquet").exit_code == 0
    result = run_cli("ope", tmp_path / "events.parquet", "--target-experiment", shop, "--greedy", "--from-checkpoint",
                     estimate["checkpoint"], "--estimators", "dr", "--reward-model", "ridge", "--interval", "normal",
                     "--json", tmp_path / "ope.json", "--quiet")
    assert result.exit_code == 0, result.output
    ope = json.loads((tmp_path / "ope.json").read_text())
    for key in ("estimate", "ci_low", "ci_high", "standard_error"):
        assert estimate["estimators"]["dr"][key] == pytest.approx(ope["estimators"]["dr"][key], rel=1e-9)
    assert estimate["logging_policy"] == pytest.approx(ope["logging_policy"], rel=1e-9)


# --- traffic ------------------------------------------------------------------------------------
class Traffic:
    """A shop's front end: decisions for a few customers at a time, reactions to most of them (more likely for the
    action that suits the device), at most `budget` decisions, until stopped."""

    def __init__(self, url: str, *, budget: int, seed: int = 0, pause: float = 0.0):
        self.url, self.budget, self.pause = url, budget, pause
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.decided = 0
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self.run, name="dashboard-traffic", daemon=True)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while self.decided < self.budget and not self.stop.is_set():
                contexts = [{"device": self.rng.choice(["mobile", "desktop"]), "basket": round(self.rng.uniform(1, 80), 2)}
                            for _ in range(5)]
                answer = client.post("/v1/experiments/shop/decisions", json={"contexts": contexts})
                if answer.status_code != 200:
                    self.failures.append(answer.text)
                    return
                for context, decision in zip(contexts, answer.json()["decisions"][:4]):
                    best = 2 if context["device"] == "mobile" else 1
                    converted = self.rng.random() < (0.7 if decision["action"] == best else 0.15)
                    client.post(f"/v1/experiments/shop/events/{decision['event_id']}/reaction", json={"reaction": int(converted)})
                self.decided += len(contexts)
                self.stop.wait(self.pause)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        self.thread.join(30)


def wait_until_trained(client: httpx.Client, seconds: float = 30) -> dict:
    """The status once the learner trained every joined event and the server serves its checkpoint."""
    deadline = time.monotonic() + seconds
    while True:
        status = client.get("/v1/experiments/shop").json()
        learner = status["learner"]
        if learner["trained"] == status["events"]["joined"] > 0 and status["checkpoint"] == learner["checkpoint"]:
            return status
        assert time.monotonic() < deadline, f"the learner did not catch up: {status}"
        time.sleep(0.2)


# --- the page in a real browser -----------------------------------------------------------------
@pytest.fixture
def chrome() -> Iterator:
    """Headless chromium through Selenium, with the performance log (every request the page makes)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"no headless browser: {', '.join(missing)} missing (apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # Debian's browser and driver: selenium-manager never downloads one
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                     "--lang=en-US", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--disable-default-apps"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    service = Service(str(CHROMEDRIVER), env=os.environ | {"SE_AVOID_STATS": "true"})
    driver = webdriver.Chrome(service=service, options=options)
    try:
        yield driver
    finally:
        driver.quit()  # closes the browser, then stops the driver this fixture started
        if service.process is not None and service.process.poll() is None:
            service.process.kill()


def requested_urls(driver) -> list[tuple[str, dict]]:
    """(url, request headers) of every request the browser sent since the last call."""
    out = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            request = message["params"]["request"]
            out.append((request["url"], request.get("headers", {})))
    return out


def page_state(driver) -> dict:
    """What the page shows now: its refresh count, figures (as displayed) and charts (marks drawn)."""
    return driver.execute_script("""
        const text = (id) => document.getElementById(id).textContent;
        const charts = {};
        for (const svg of document.querySelectorAll("svg.chart"))
          charts[svg.id] = {points: Number(svg.dataset.points || 0), marks: svg.querySelectorAll(".mark").length};
        return {refreshes: Number(document.body.dataset.refreshes || 0), keyNeeded: document.body.dataset.keyNeeded || null,
                logged: text("events-logged"), joined: text("events-joined"), trained: text("events-trained"),
                waiting: text("events-waiting"), checkpoint: text("checkpoint"), mode: text("mode"),
                agreement: text("apprentice-agreement"), perMinute: text("decisions-per-minute"),
                reacted: text("reacted-share"), reward: text("mean-reward"),
                rewardValue: document.getElementById("mean-reward").dataset.value,
                dr: document.getElementById("estimate-dr").dataset.value, estimateEvents: text("estimate-events"),
                rounds: Number(document.getElementById("checkpoints").dataset.rounds || 0),
                tableRows: document.querySelectorAll("#checkpoints tbody tr").length, charts};""")


def next_refresh(driver, after: int, seconds: float = 20) -> dict:
    """The page's state once it refreshed past `after` (on its own timer)."""
    deadline = time.monotonic() + seconds
    while True:
        state = page_state(driver)
        if state["refreshes"] > after:
            return state
        assert time.monotonic() < deadline, f"the page did not refresh: {state}"
        time.sleep(0.1)


def next_refresh_home(driver, seconds: float = 20) -> list[tuple[str, str]]:
    """(text, address) of the links the home page lists once it has loaded."""
    deadline = time.monotonic() + seconds
    while not driver.execute_script("return Number(document.body.dataset.refreshes || 0)"):
        assert time.monotonic() < deadline, "the home page did not load"
        time.sleep(0.1)
    return [(a.text, a.get_attribute("href")) for a in driver.find_elements("css selector", "#experiments a")]


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_the_page_draws_the_api_numbers_live_and_calls_no_other_host(shop_url, chrome):
    url = shop_url
    with httpx.Client(base_url=url, timeout=30) as client:
        with Traffic(url, budget=1500, pause=0.1, seed=4) as traffic:
            started = time.monotonic()
            start = client.get("/v1/experiments/shop").json()["learner"]["round"]
            deadline = time.monotonic() + 30
            while client.get("/v1/experiments/shop").json()["learner"]["round"] <= start:  # a round on this traffic
                assert time.monotonic() < deadline and not traffic.failures, traffic.failures
                time.sleep(0.2)
            chrome.get(f"{url}/experiments/shop?minutes=2&bucket_seconds=2&refresh_seconds=1")
            next_refresh(chrome, 0)
            # While traffic flows: each figure lies between the API's answers just before and just after the page read,
            # from a refresh that began after `before`: the one after the refresh that may have been under way.
            before = client.get("/v1/experiments/shop").json()
            state = next_refresh(chrome, page_state(chrome)["refreshes"] + 1)
            after = client.get("/v1/experiments/shop").json()
            for figure, key in (("logged", "logged"), ("joined", "joined"), ("trained", "trained")):
                assert before["events"][key] <= number(state[figure]) <= after["events"][key], (figure, before, state, after)
            assert before["checkpoint"] <= state["checkpoint"] <= after["checkpoint"]  # numbered names sort in order
            assert traffic.decided > 0 and not traffic.failures, traffic.failures
            time.sleep(max(0.0, 10 - (time.monotonic() - started)))  # ten seconds of traffic for the screenshot
        status = wait_until_trained(client)
        state = next_refresh(chrome, page_state(chrome)["refreshes"] + 1)  # a refresh that began after `status` was read
        timeline = client.get("/v1/experiments/shop/timeline?minutes=2&bucket_seconds=2").json()
        estimate = client.get("/v1/experiments/shop/estimate").json()
        history = client.get("/v1/experiments/shop/checkpoints").json()
        assert client.get("/v1/experiments/shop").json() == status  # quiet: nothing moved while the page refreshed
        requests = requested_urls(chrome)

    # The figures are the API's numbers.
    events = status["events"]
    assert [number(state[k]) for k in ("logged", "waiting", "joined", "trained")] == [
        events["logged"], events["waiting"], events["joined"], events["trained"]]
    assert state["checkpoint"] == status["checkpoint"] and state["mode"] == status["mode"] == "online"
    assert state["agreement"] == "–" and status["apprentice_agreement"] is None  # online mode: no apprentice decisions
    totals = timeline["totals"]
    assert state["reacted"] == f"{100 * totals['reacted_share']:.1f}%" and float(state["rewardValue"]) == totals["mean_reward"]
    assert number(state["perMinute"]) in range(timeline["decisions_per_minute"], events["logged"] + 1)  # falls as time passes
    assert estimate["status"] == "ok" and float(state["dr"]) == estimate["estimators"]["dr"]["estimate"]
    assert number(state["estimateEvents"]) == estimate["events"] == events["joined"]
    assert state["rounds"] == state["tableRows"] == len(history["rounds"]) >= 2
    assert all(r["metrics"] for r in history["rounds"][1:]), history  # the learner's training metrics, every round
    # The charts drew: marks on every one of them.
    charts = state["charts"]
    assert set(charts) == {"chart-decisions", "chart-reacted", "chart-reward", "chart-actions-0", "chart-estimate"}
    assert all(c["points"] > 0 and c["marks"] >= min(c["points"], 2) for c in charts.values()), charts
    # Every request went to this server: the page, its files and the four API routes, nothing else.
    urls = [u for u, _ in requests]
    assert urls and all(u.startswith(url + "/") or u.startswith("data:") for u in urls), sorted(set(urls))
    called = {u.split("?")[0].removeprefix(url) for u in urls}
    assert {"/v1/experiments/shop", "/v1/experiments/shop/timeline", "/v1/experiments/shop/checkpoints",
            "/v1/experiments/shop/estimate"} <= called
    chrome.get(f"{url}/")  # the list of served experiments, each linking to its dashboard
    assert next_refresh_home(chrome) == [("shop", f"{url}/experiments/shop")]
    chrome.get(f"{url}/experiments/shop?minutes=0.5&bucket_seconds=1")  # the last 30 s, for the README's picture
    next_refresh(chrome, 0)
    chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 900, "deviceScaleFactor": 1,
                                                                   "mobile": False})
    screenshot = chrome.get_screenshot_as_png()
    assert screenshot.startswith(b"\x89PNG") and len(screenshot) > 20_000  # a drawn page, not a blank one
    if os.environ.get("NEXTBEST_SCREENSHOTS"):  # `NEXTBEST_SCREENSHOTS=1 pytest …` renews the README's picture
        (ROOT / "docs" / "dashboard.png").write_bytes(screenshot)


def test_the_page_asks_for_a_key_and_sends_it_on_every_later_call(shop, shop_url, chrome):
    # The last test of the file: once `shop` has keys, its server needs them (a key takes effect within a second).
    store = EventStore.sqlite(str(shop / "events.sqlite"))
    try:
        read_key, _ = create_key(store, "shop", "read", "dashboard")
        decide_key, _ = create_key(store, "shop", "decide", "frontend")
    finally:
        store.close()
    url = shop_url
    with httpx.Client(base_url=url, timeout=30) as client:
        deadline = time.monotonic() + 10
        while client.get("/v1/experiments/shop").status_code != 401:
            assert time.monotonic() < deadline, "the server does not require the new keys"
            time.sleep(0.1)
        status = client.get("/v1/experiments/shop", headers={"Authorization": f"Bearer {read_key}"}).json()
    from selenium.webdriver.common.by import By

    def submit(key: str) -> None:
        chrome.find_element(By.ID, "key-input").send_keys(key)
        chrome.find_element(By.CSS_SELECTOR, "#key-prompt button").click()

    def prompt() -> str:
        deadline = time.monotonic() + 20
        while not chrome.find_element(By.ID, "key-prompt").is_displayed():
            assert time.monotonic() < deadline, "no key prompt"
            time.sleep(0.1)
        return chrome.find_element(By.ID, "key-reason").text

    chrome.get(f"{url}/experiments/shop?refresh_seconds=1")  # the page itself needs no key
    assert prompt() == ("This server needs an API key: authorization: experiment 'shop' needs an API key with the role "
                        "'read' (or 'admin'): send the header 'Authorization: Bearer <key>'")
    submit(decide_key)
    assert prompt() == ("The key was refused: authorization: the API key 'frontend' has the role 'decide'; this route "
                        "needs 'read' (or 'admin')")
    assert decide_key not in chrome.page_source  # the page never shows a key
    requested_urls(chrome)  # forget the requests so far
    submit(read_key)
    state = next_refresh(chrome, 0)
    assert number(state["logged"]) == status["events"]["logged"] and state["keyNeeded"] is None
    assert not chrome.find_element(By.ID, "key-prompt").is_displayed()
    next_refresh(chrome, state["refreshes"])  # the next refresh, on its own timer, with the same key
    chrome.refresh()  # a reload keeps the key (sessionStorage of this tab)
    next_refresh(chrome, 0)
    calls = [(u, h) for u, h in requested_urls(chrome) if u.startswith(url + "/v1/")]
    assert len(calls) >= 12  # three refreshes of four calls
    assert all(h.get("Authorization") == f"Bearer {read_key}" for _, h in calls), calls
