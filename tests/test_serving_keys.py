"""API keys, roles, rate limits, CORS and TLS of `nextbest serve`, against real running servers.

One server (two experiments with keys, `--require-keys`) answers most of the tests of this file; it is
stopped by the last of them, which reads its log. Every server is stopped by its process id.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from servers import make_experiment, postgres, server

from nextbest.serving.events import EventStore
from nextbest.serving.keys import create_key, keys, list_keys, revoke_key

pytestmark = pytest.mark.slow

CONTEXT = {"device": "mobile", "basket": 20.0}
SHOP_ORIGIN = "http://shop.example"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def experiment_copy(template: Path, root: Path, name: str, **serving) -> Path:
    """A copy of the template experiment named `name`, with these serving settings."""
    directory = Path(shutil.copytree(template, root / name))
    if serving:
        path = directory / "hyperparameters.json"
        hyperparameters = json.loads(path.read_text())
        hyperparameters["serving"].update(serving)
        path.write_text(json.dumps(hyperparameters))
    return directory


def new_key(directory: Path, role: str, name: str | None = None, url: str | None = None) -> str:
    store = EventStore(url) if url else EventStore.sqlite(str(directory / "events.sqlite"))
    try:
        return create_key(store, directory.name, role, name)[0]
    finally:
        store.close()


def revoke(directory: Path, name: str, url: str | None = None) -> None:
    store = EventStore(url) if url else EventStore.sqlite(str(directory / "events.sqlite"))
    try:
        revoke_key(store, directory.name, name)
    finally:
        store.close()


def until(condition, seconds: float) -> float | None:
    """Seconds until `condition()` held, polling; None if it did not within `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if condition():
            return time.monotonic() - started
        time.sleep(0.05)
    return None


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_experiment(tmp_path_factory.mktemp("template"))


@dataclass
class Keyed:
    """The shared server: `shop` (keys: admin, decide, read), `outlet` (a decide key, 2 requests/s, burst 3) and
    `kiosk` (no key when it starts)."""

    url: str
    shop: Path
    kiosk: Path
    keys: dict[str, str]
    stack: ExitStack
    process: subprocess.Popen

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)

    def stop(self) -> str:
        """Stop the server; → everything it wrote to stdout and stderr."""
        self.stack.close()
        return self.process.stdout.read().decode()


@pytest.fixture(scope="module")
def keyed(template, tmp_path_factory) -> Iterator[Keyed]:
    root = tmp_path_factory.mktemp("keyed")
    shop = experiment_copy(template, root, "shop")
    outlet = experiment_copy(template, root, "outlet", rate_limit_per_second=2, rate_limit_burst=3)
    kiosk = experiment_copy(template, root, "kiosk")
    created = {role: new_key(shop, role, f"shop-{role}") for role in ("admin", "decide", "read")}
    created["outlet"] = new_key(outlet, "decide", "outlet-front")
    with ExitStack() as stack:
        url, process = stack.enter_context(server(shop, outlet, kiosk, args=(
            "--max-body-bytes", "2000", "--cors-origin", SHOP_ORIGIN, "--log-level", "info")))
        yield Keyed(url, shop, kiosk, created, stack, process)


def test_healthz_and_the_openapi_schema_stay_open_and_document_the_refusals(keyed):
    with keyed.client() as client:
        assert client.get("/healthz").json() == {"status": "ok", "experiments": ["kiosk", "outlet", "shop"]}
        schema = client.get("/openapi.json").json()
    responses = schema["paths"]["/v1/experiments/{name}/decisions"]["post"]["responses"]
    assert {"401", "403", "429"} <= responses.keys()


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/experiments/shop/decisions"),
    ("POST", "/v1/experiments/shop/events/e1/reaction"),
    ("POST", "/v1/experiments/shop/events/e1/activate"),
    ("GET", "/v1/experiments/shop"),
])
def test_a_request_without_a_key_is_401_with_www_authenticate(keyed, method, path):
    with keyed.client() as client:
        answer = client.request(method, path, json={"contexts": [CONTEXT]})
    assert answer.status_code == 401
    assert answer.json()["field"] == "authorization" and "Authorization: Bearer <key>" in answer.json()["error"]
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("header", "message"), [
    ("Basic c2hvcDpzZWNyZXQ=", "expected the header 'Authorization: Bearer <key>'"),
    ("Bearer", "expected the header 'Authorization: Bearer <key>'"),
    ("Bearer nb_not-a-key-of-this-server-at-all-0000000000", "unknown or revoked API key"),
])
def test_a_malformed_or_unknown_key_is_401_and_never_echoed(keyed, header, message):
    with keyed.client() as client:
        answer = client.post("/v1/experiments/shop/decisions", json={"contexts": [CONTEXT]}, headers={"Authorization": header})
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.json() == {"error": f"authorization: {message}", "field": "authorization"}


def test_a_key_with_a_known_prefix_but_a_wrong_secret_is_401(keyed):
    forged = keyed.keys["admin"][:20] + ("A" if keyed.keys["admin"][20] != "A" else "B") + keyed.keys["admin"][21:]
    with keyed.client() as client:
        answer = client.get("/v1/experiments/shop", headers=bearer(forged))
        again = client.get("/v1/experiments/shop", headers=bearer(forged))  # refused from the cache this time
    assert answer.status_code == again.status_code == 401
    assert answer.json()["error"] == "authorization: unknown or revoked API key" and forged not in answer.text


def test_each_role_may_call_its_routes_and_decide_does_not_include_read(keyed):
    with keyed.client() as client:
        def status_codes(role: str) -> dict[str, int]:
            headers = bearer(keyed.keys[role])
            made = client.post("/v1/experiments/shop/decisions", json={"contexts": [CONTEXT], "defer_activation": True},
                               headers=headers)
            event = client.post("/v1/experiments/shop/decisions", json={"contexts": [CONTEXT], "defer_activation": True},
                                headers=bearer(keyed.keys["admin"])).json()["decisions"][0]["event_id"]
            return {
                "decide": made.status_code,
                "react": client.post(f"/v1/experiments/shop/events/{event}/reaction", json={"reaction": 1},
                                     headers=headers).status_code,
                "activate": client.post(f"/v1/experiments/shop/events/{event}/activate", headers=headers).status_code,
                "status": client.get("/v1/experiments/shop", headers=headers).status_code,
                "metrics": client.get("/metrics", headers=headers).status_code,
            }

        assert status_codes("decide") == {"decide": 200, "react": 200, "activate": 200, "status": 403, "metrics": 403}
        assert status_codes("read") == {"decide": 403, "react": 403, "activate": 403, "status": 200, "metrics": 200}
        assert status_codes("admin") == {"decide": 200, "react": 200, "activate": 200, "status": 200, "metrics": 200}
        refused = client.get("/v1/experiments/shop", headers=bearer(keyed.keys["decide"])).json()
    assert refused == {"error": "authorization: the API key 'shop-decide' has the role 'decide'; this route needs 'read' "
                                "(or 'admin')", "field": "authorization"}


def test_a_key_of_another_experiment_is_403(keyed):
    with keyed.client() as client:
        answer = client.post("/v1/experiments/shop/decisions", json={"contexts": [CONTEXT]}, headers=bearer(keyed.keys["outlet"]))
        admin_elsewhere = client.post("/v1/experiments/outlet/decisions", json={"contexts": [CONTEXT]},
                                      headers=bearer(keyed.keys["admin"]))
    assert answer.status_code == admin_elsewhere.status_code == 403
    assert answer.json() == {"error": "authorization: the API key 'outlet-front' belongs to experiment 'outlet', not 'shop'",
                             "field": "authorization"}


def test_metrics_need_a_read_key_without_metrics_open(keyed):
    with keyed.client() as client:
        missing = client.get("/metrics")
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert client.get("/metrics", headers=bearer(keyed.keys["outlet"])).status_code == 403  # a decide key
        assert "nextbest_events" in client.get("/metrics", headers=bearer(keyed.keys["read"])).text


def test_an_unknown_experiment_is_still_404(keyed):
    with keyed.client() as client:
        answer = client.post("/v1/experiments/elsewhere/decisions", json={"contexts": [CONTEXT]})
    assert answer.status_code == 404 and "not served here" in answer.json()["error"]


def test_a_new_key_works_and_a_revoked_one_is_refused_within_a_second(keyed):
    key = new_key(keyed.shop, "decide", "doomed")
    with keyed.client() as client:
        def decides() -> int:
            return client.post("/v1/experiments/shop/decisions", json={"contexts": [CONTEXT]}, headers=bearer(key)).status_code

        assert until(lambda: decides() == 200, 3.0) is not None, "a new key was never accepted"
        revoke(keyed.shop, "doomed")
        seconds = until(lambda: decides() == 401, 3.0)
        answer = client.post("/v1/experiments/shop/decisions", json={"contexts": [CONTEXT]}, headers=bearer(key))
    assert seconds is not None and seconds < 1.5, f"the revoked key still worked after {seconds} s"
    assert answer.json()["error"] == "authorization: the API key 'doomed' of experiment 'shop' was revoked"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_an_experiment_without_keys_is_open_and_its_first_key_is_enforced_within_a_second(keyed):
    with keyed.client() as client:
        def decides(headers: dict[str, str]) -> int:
            return client.post("/v1/experiments/kiosk/decisions", json={"contexts": [CONTEXT]}, headers=headers).status_code

        assert decides({}) == 200 and client.get("/v1/experiments/kiosk").status_code == 200
        key = new_key(keyed.kiosk, "decide", "kiosk-first")
        seconds = until(lambda: decides({}) == 401, 3.0)
        assert seconds is not None and seconds < 1.5, f"the first key was not enforced after {seconds} s"
        assert decides(bearer(key)) == 200 and client.get("/v1/experiments/kiosk", headers=bearer(key)).status_code == 403
        revoke(keyed.kiosk, "kiosk-first")  # its only key: the experiment stays closed, it does not open again
        assert until(lambda: decides(bearer(key)) == 401, 3.0) is not None and decides({}) == 401


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(keyed):
    with keyed.client(headers=bearer(keyed.keys["outlet"])) as client:
        def decide() -> httpx.Response:
            return client.post("/v1/experiments/outlet/decisions", json={"contexts": [CONTEXT]})

        time.sleep(1.5)  # a full bucket, whatever the tests before did with this key
        assert [decide().status_code for _ in range(3)] == [200, 200, 200]  # the burst
        over = decide()
        assert over.status_code == 429
        assert over.json() == {"error": "authorization: the API key 'outlet-front' is over its rate limit of 2 requests per "
                                        "second; retry in 1 s", "field": "authorization"}
        assert over.headers["Retry-After"] == "1"
        time.sleep(int(over.headers["Retry-After"]))
        assert decide().status_code == 200
    with keyed.client(headers=bearer(keyed.keys["admin"])) as client:  # shop has no limit: its keys are not slowed
        assert all(client.get("/v1/experiments/shop").status_code == 200 for _ in range(10))


def test_a_body_over_the_limit_is_413_with_a_key_and_401_without(keyed):
    body = {"contexts": [CONTEXT] * 100}
    with keyed.client() as client:
        assert client.post("/v1/experiments/shop/decisions", json=body, headers=bearer(keyed.keys["admin"])).status_code == 413
        assert client.post("/v1/experiments/shop/decisions", json=body).status_code == 401


def test_cors_headers_only_for_the_configured_origin(keyed):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    with keyed.client() as client:
        allowed = client.options("/v1/experiments/shop/decisions", headers={"Origin": SHOP_ORIGIN, **preflight})
        assert allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == SHOP_ORIGIN
        assert {"authorization", "content-type"} <= set(allowed.headers["Access-Control-Allow-Headers"].lower().split(", "))
        other = client.options("/v1/experiments/shop/decisions", headers={"Origin": "http://elsewhere.example", **preflight})
        assert other.status_code == 400 and "Access-Control-Allow-Origin" not in other.headers
        read = bearer(keyed.keys["read"])
        assert client.get("/v1/experiments/shop", headers={"Origin": SHOP_ORIGIN, **read}).headers[
            "Access-Control-Allow-Origin"] == SHOP_ORIGIN
        assert "Access-Control-Allow-Origin" not in client.get("/v1/experiments/shop",
                                                               headers={"Origin": "http://elsewhere.example", **read}).headers
        refused = client.get("/v1/experiments/shop", headers={"Origin": SHOP_ORIGIN})  # a page can read why it was refused
        assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == SHOP_ORIGIN


def test_keys_are_stored_as_salted_hashes_and_last_use_is_recorded(keyed):
    with keyed.client() as client:
        assert client.get("/v1/experiments/shop", headers=bearer(keyed.keys["admin"])).status_code == 200
    store = EventStore.sqlite(str(keyed.shop / "events.sqlite"))
    try:
        with store.engine.connect() as connection:
            rows = {row.name: row._asdict() for row in connection.execute(sa.select(keys))}
        assert until(lambda: next(k for k in list_keys(store, "shop") if k.name == "shop-admin").last_used_at, 3.0)
    finally:
        store.close()
    stored_text = json.dumps(rows)
    for role in ("admin", "decide", "read"):
        key, row = keyed.keys[role], rows[f"shop-{role}"]
        assert key not in stored_text and key[len("nb_") + 8:] not in stored_text
        assert row["hash"] != hashlib.sha256(key.encode()).hexdigest() and len(bytes.fromhex(row["salt"])) == 16
    assert len({row["salt"] for row in rows.values()}) == len(rows)


def test_keys_never_appear_in_the_server_log(keyed):
    with keyed.client() as client:  # one more refused and one accepted request of each key, then stop
        for key in keyed.keys.values():
            client.get("/v1/experiments/shop", headers=bearer(key))
        client.get("/v1/experiments/shop", headers={"Authorization": "Bearer nb_" + "x" * 43})
    log = keyed.stop()
    assert '"GET /v1/experiments/shop HTTP/1.1" 200' in log and '"GET /v1/experiments/shop HTTP/1.1" 403' in log  # access log on
    assert not [role for role, key in keyed.keys.items() if key in log or key[3:20] in log]
    assert "nb_" not in log


# --- two worker processes on PostgreSQL, over TLS, --require-keys, --metrics-open ---------------------------
@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl; `cryptography` is not a dependency)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a test certificate (and the cryptography package is not installed)")
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_every_worker_process_serves_tls_and_enforces_keys_revocations_and_require_keys(template, tmp_path, certificate,
                                                                                         run_cli):
    cert, private_key = certificate
    shop = experiment_copy(template, tmp_path, "shop")
    trusted = ssl.create_default_context(cafile=str(cert))
    with postgres(tmp_path / "pg") as database:
        def cli(*args: object) -> str:
            done = run_cli("keys", *args, "--database-url", database)
            assert done.exit_code == 0, done.output
            return done.stdout.strip()

        first = cli("create", shop, "--role", "admin", "--name", "first")
        args = ("--workers", "2", "--database-url", database, "--no-learner", "--require-keys", "--metrics-open",
                "--cors-origin", SHOP_ORIGIN, "--ssl-certfile", str(cert), "--ssl-keyfile", str(private_key))
        with server(shop, args=args) as (url, _):
            assert url.startswith("https://")
            with pytest.raises(httpx.ConnectError):  # the certificate is checked, and it is not trusted by default
                httpx.get(f"{url}/healthz")

            def statuses(key: str | None = None, path: str = "/v1/experiments/shop") -> set[int]:
                out = set()
                for _ in range(6):  # new connections spread over both workers
                    with httpx.Client(base_url=url, verify=trusted, timeout=10) as fresh:
                        out.add(fresh.get(path, headers=bearer(key) if key else {}).status_code)
                return out

            assert statuses() == {401} and statuses(first) == {200}
            assert statuses(path="/metrics") == {200}  # --metrics-open
            with httpx.Client(base_url=url, verify=trusted, timeout=10) as client:
                cors = client.get("/v1/experiments/shop", headers={"Origin": SHOP_ORIGIN, **bearer(first)})
                assert cors.headers["Access-Control-Allow-Origin"] == SHOP_ORIGIN
            second = cli("create", shop, "--role", "read", "--name", "second")
            assert until(lambda: statuses(second) == {200}, 3.0) is not None, "a new key was never accepted by both workers"
            cli("revoke", shop, "first")
            seconds = until(lambda: statuses(first) == {401}, 3.0)
            assert seconds is not None and seconds < 1.5, f"a worker still took the revoked key after {seconds} s"
            assert statuses(second) == {200}
            cli("revoke", shop, "second")
            time.sleep(1.5)
            assert statuses() == {401} and statuses(second) == {401}  # --require-keys: no key left, still closed


# --- the command line -------------------------------------------------------------------------------
@pytest.fixture
def shop(template, tmp_path) -> Path:
    return experiment_copy(template, tmp_path, "shop")


def test_keys_create_prints_the_key_once_and_list_never_shows_it(run_cli, shop):
    created = run_cli("keys", "create", shop, "--role", "decide", "--name", "shop-frontend")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert created.stdout.count("\n") == 1 and key.startswith("nb_") and len(key) == 46
    assert "shown only this once" in created.stderr
    unnamed = run_cli("keys", "create", shop, "--role", "read")
    assert unnamed.exit_code == 0 and unnamed.stdout.strip() != key
    listed = run_cli("keys", "list", shop)
    assert listed.exit_code == 0 and "shop-frontend" in listed.stdout and "decide" in listed.stdout and "read-" in listed.stdout
    assert key not in listed.output and unnamed.stdout.strip() not in listed.output and "nb_" not in listed.output


@pytest.mark.parametrize(("args", "message"), [
    (("--role", "writer"), "--role 'writer': not a role; expected one of decide, read, admin"),
    (("--role", "read", "--name", "shop frontend"), "--name 'shop frontend': expected 1 to 100 letters"),
    (("--role", "read", "--name", "taken"), "experiment 'shop' already has a key named 'taken' (in use; names are never reused)"),
])
def test_keys_create_refuses_bad_input_with_exit_code_2(run_cli, shop, args, message):
    new_key(shop, "admin", "taken")
    refused = run_cli("keys", "create", shop, *args)
    assert refused.exit_code == 2 and message in refused.stderr and "nb_" not in refused.output
    store = EventStore.sqlite(str(shop / "events.sqlite"))
    try:
        assert [k.name for k in list_keys(store, "shop")] == ["taken"]
    finally:
        store.close()


def test_keys_revoke_marks_the_key_and_refuses_an_unknown_name(run_cli, shop):
    assert "shop has no API keys: its routes are open" in run_cli("keys", "list", shop).stdout
    new_key(shop, "decide", "front")
    unknown = run_cli("keys", "revoke", shop, "back")
    assert unknown.exit_code == 2 and "experiment 'shop' has no key named 'back'; its keys: front" in unknown.stderr
    assert run_cli("keys", "revoke", shop, "front").exit_code == 0
    again = run_cli("keys", "revoke", shop, "front")
    assert again.exit_code == 0 and "was already revoked" in again.stdout
    listed = run_cli("keys", "list", shop).stdout
    row = next(line for line in listed.splitlines() if "front" in line)
    assert row.count("—") == 1  # never used; created and revoked have times


def test_serve_refuses_to_start_without_keys_or_with_half_a_tls_setup(run_cli, shop, monkeypatch, tmp_path):
    import uvicorn

    def started(*_args, **_kwargs):
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn, "run", started)
    (tmp_path / "cert.pem").write_text("not used")
    cases = [
        (("--require-keys",), f"--require-keys: experiment 'shop' has no API key; create one with `nextbest keys create {shop}"),
        (("--ssl-certfile", tmp_path / "cert.pem"), "--ssl-certfile and --ssl-keyfile go together"),
        (("--ssl-certfile", tmp_path / "cert.pem", "--ssl-keyfile", tmp_path / "key.pem"), f"--ssl-keyfile {tmp_path / 'key.pem'}: no such file"),
        (("--cors-origin", "shop.example"), "--cors-origin 'shop.example': expected an origin such as https://shop.example"),
        (("--cors-origin", "https://shop.example/"), "--cors-origin 'https://shop.example/': expected an origin"),
    ]
    for args, message in cases:
        refused = run_cli("serve", shop, *args)
        assert refused.exit_code == 2 and message in refused.stderr, (args, refused.output)
