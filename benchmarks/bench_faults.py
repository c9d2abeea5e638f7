"""Bad input and faults against `nextbest serve`, measured on 127.0.0.1 only: writes benchmarks/results/serving_faults.json.

    python benchmarks/bench_faults.py                # the fuzzer and every fault, about 5 minutes
    python benchmarks/bench_faults.py --examples 50  # fewer fuzzed requests

- Fuzzing: schemathesis from the server's own /openapi.json (tests/fuzzing.py), `--examples` requests per operation
  and generation mode, on SQLite and on PostgreSQL: statuses, 5xx and undocumented answers, and the events
  stored against those acknowledged.
- Faults, under load (tests/faults.py, the scenarios the tests check): kill -9 of the server (restarted on the same
  port), of `nextbest learn` mid-round (three times), of PostgreSQL's postmaster; the SQLite disk full (simulated
  at the storage layer: PRAGMA max_page_count on the writer's connection); a corrupt newest checkpoint. For each:
  what the clients saw, events acknowledged / stored / lost, and the time to recover.
The soak (benchmarks/bench_soak.py) adds its part to the same file; the README table shows all of them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "serving_faults.json"
sys.path.insert(0, str(ROOT / "tests"))
import faults  # noqa: E402  (tests/faults.py: the scenarios)
from fuzzing import fuzz  # noqa: E402
from servers import make_experiment, postgres, server  # noqa: E402

VALUES = {"device": ["mobile", "desktop"], "basket": [20.0, 0.0, 1e6]}


def fuzzing(root: Path, examples: int) -> list[dict[str, Any]]:
    """The fuzzer on SQLite and on PostgreSQL (a body limit of 4000 bytes, so that 413 is reached too)."""
    results = []
    for store in ("SQLite", "PostgreSQL"):
        directory = root / store
        directory.mkdir()
        shop = make_experiment(directory)
        if store == "SQLite":
            with server(shop, args=("--max-body-bytes", "4000")) as (url, _):
                report = fuzz(url, "shop", VALUES, examples=examples)
        else:
            with postgres(directory / "pg") as database, \
                    server(shop, args=("--max-body-bytes", "4000", "--database-url", database)) as (url, _):
                report = fuzz(url, "shop", VALUES, examples=examples)
        results.append({"store": store, "examples_per_operation": examples, **report.summary(),
                        "failures": report.failures[:10]})
        print(json.dumps(results[-1]), flush=True)
    return results


def measure_faults(root: Path) -> list[dict[str, Any]]:
    runs = [("server", lambda shop: faults.server_killed(shop)),
            ("learner", lambda shop: faults.learner_killed(shop, kills=3)),
            ("postgres", lambda shop: faults.database_killed(shop, shop.parent / "pg")),
            ("disk", lambda shop: faults.disk_full(shop)),
            ("checkpoint", lambda shop: faults.corrupt_checkpoint(shop))]
    records = []
    for name, run in runs:
        (root / name).mkdir()
        started = time.monotonic()
        record = run(faults.experiment(root / name))
        records.append(record | {"wall_seconds": round(time.monotonic() - started, 1)})
        print(json.dumps(records[-1]), flush=True)
    return records


def update_results(**parts: Any) -> dict[str, Any]:
    """Merge `parts` (fuzz, faults, soak) into serving_faults.json, render its README block, write it."""
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results.update(parts, machine={"cpus": 2, "python": platform.python_version()})
    results["readme"] = readme(results)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return results


def readme(results: dict[str, Any]) -> str:
    lines = ["### Serving: bad input, faults and a soak, measured", "",
             "`nextbest serve` on 127.0.0.1 under load from the same 2 cores (benchmarks/bench_faults.py, bench_soak.py; "
             "the same scenarios are tests). *Acknowledged*: decisions answered 200; *stored*: of those sent, the ones "
             "the store holds afterwards; *lost*: acknowledged and not stored.", "",
             "| what | clients saw | events acknowledged / stored / lost | recovered in |", "|---|---|---|---|"]
    for fuzzed in results.get("fuzz", []):
        lines.append(f"| fuzzing from /openapi.json (schemathesis), {fuzzed['store']} | {fuzzed['requests']:,} requests: "
                     f"{fuzzed['server_errors']} answered 5xx, {fuzzed['undocumented_or_malformed']} undocumented "
                     f"| {fuzzed['events_acknowledged']} / {fuzzed['events_stored']} / {fuzzed['events_lost']} | – |")
    soak = results.get("soak")
    if soak:
        drift = soak["drift"]
        lines.append(f"| soak: {soak['minutes']:g} min at {soak['rate']:g} decisions/s, each with a reaction; the learner in its "
                     f"own process (nice 19) swapped in {soak['checkpoints_served']} checkpoints | first → last minute: p50 "
                     f"{drift['p50_ms'][0]:.0f} → {drift['p50_ms'][1]:.0f} ms, p99 {drift['p99_ms'][0]:.0f} → {drift['p99_ms'][1]:.0f} ms, "
                     f"server RSS {drift['rss_mb'][0]:.0f} → {drift['rss_mb'][1]:.0f} MB, open files {drift['fds'][0]} → "
                     f"{drift['fds'][1]}, learner RSS {drift['learner_rss_mb'][0]:.0f} → {drift['learner_rss_mb'][1]:.0f} MB; "
                     f"{soak['errors']} errors; the learner had trained {soak['trained_at_end']:,} of the {soak['joined_at_end']:,} "
                     f"joined events at the end | {soak['acknowledged']:,} / {soak['stored']:,} / {soak['lost']}; reactions "
                     f"{soak['reactions_acknowledged']:,} / {soak['reactions_stored_once']:,} stored once | – |")
    for fault in results.get("faults", []):
        saw = " · ".join(f"{status}: {count:,}" for status, count in fault["clients_saw"].items())
        seconds = fault.get("recover_seconds")
        recover = "–" if seconds is None else f"{seconds:.1f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"
        what = FAULTS.get(fault["fault"], fault["fault"]).format(**fault)
        extra = f" ({fault['stored_unacknowledged']} in flight at the kill: stored, never answered)" if fault["stored_unacknowledged"] else ""
        lines.append(f"| {what} | {saw} | {fault['acknowledged']:,} / {fault['stored']:,} / {fault['lost']}{extra} "
                     f"| {recover} {RECOVERY.get(fault['fault'], '')} |")
    return "\n".join(lines)


FAULTS = {  # the README's words for each fault
    "kill -9 of the server": "kill -9 of the server under load, restarted on its port",
    "kill -9 of the learner": "kill -9 of `nextbest learn` mid-round, {kills} times ({kills_between_write_and_commit} between its "
                              "write and its commit): {trained:,} events joined, each trained exactly once",
    "kill -9 of PostgreSQL": "kill -9 of PostgreSQL under load, restarted after 2 s",
    "SQLite disk full (simulated)": "SQLite disk full (simulated: PRAGMA max_page_count), freed after 2 s; reads kept answering",
    "corrupt newest checkpoint": "the newest checkpoint overwritten with garbage: still served from memory, the learner "
                                 "refuses until it is restored",
}
RECOVERY = {  # from when
    "kill -9 of the server": "from the kill (process restart included)",
    "kill -9 of the learner": "from its restart to its next round",
    "kill -9 of PostgreSQL": "from the database's restart",
    "SQLite disk full (simulated)": "from the space coming back",
    "corrupt newest checkpoint": "from the file's restore to the next checkpoint served",
}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=150, help="fuzzed requests per operation and generation mode")
    parser.add_argument("--render", action="store_true", help="only render the README block of the stored results")
    args = parser.parse_args(argv)
    if args.render:
        print(update_results()["readme"])
        return 0
    with tempfile.TemporaryDirectory() as root:
        for part in ("fuzz", "faults"):
            (Path(root) / part).mkdir()
        fuzzed = fuzzing(Path(root) / "fuzz", args.examples)
        measured = measure_faults(Path(root) / "faults")
    results = update_results(fuzz=fuzzed, faults=measured)
    print(results["readme"])
    bad = [f for f in fuzzed if f["server_errors"] or f["undocumented_or_malformed"] or f["events_lost"]]
    return 1 if bad or any(f["lost"] for f in measured) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
