"""A bounded soak of `nextbest serve` on 127.0.0.1: steady decisions and reactions with the learner training and
checkpoints swapping; adds its part to benchmarks/results/serving_faults.json.

    python benchmarks/bench_soak.py                  # 10 minutes at 50 decisions/s, each with a reaction
    python benchmarks/bench_soak.py --minutes 2

optimus-poc with the default agent and learner_batch_size 200 (a round every few seconds), the learner as its own
process (`serve --no-learner` + `nextbest learn`, as docs/serving.md advises under load) at `nice 19` with one
torch thread: on these 2 shared cores, a learner at the server's priority takes the CPU its answers need (p99
of seconds, measured), a niced one only what is left. An open-loop client
sends decision i at i / rate seconds (a fixed budget: minutes × 60 × rate decisions) and a reaction to each
answered decision; latency counts from when a request was due, so a server that falls behind is charged for
it. Every 5 s the resident memory and open file descriptors of the server and of the learner are read from
/proc, and the events joined and trained from the status route. Per minute: latency percentiles, RSS,
descriptors, errors, the learner's progress; drift is the first minute against the last. At the end the store
is compared with the answers: every acknowledged decision stored once, every acknowledged reaction stored once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from bench_faults import update_results  # noqa: E402
from servers import server, start_learner, stop  # noqa: E402

from nextbest.envs import make_scenario  # noqa: E402
from nextbest.serving.events import EventStore  # noqa: E402
from nextbest.training.simulate import scenario_experiment  # noqa: E402


async def soak(url: str, pids: tuple[int, int], *, minutes: float, rate: float, connections: int = 64) -> dict[str, Any]:
    """Decisions at `rate` per second for `minutes`, each followed by its reaction; samples of the server and the
    learner (`pids`)."""
    contexts = make_scenario("optimus-poc").sample_contexts(4096, np.random.default_rng(0)).to_dict("records")
    total = int(minutes * 60 * rate)
    started = time.perf_counter() + 0.5
    samples: list[tuple[float, ...]] = []  # (seconds, server RSS MB and descriptors, the learner's, events joined, trained)
    answers: list[tuple[str, float, float, int | None]] = []  # (kind, due seconds, latency seconds, status)
    acknowledged, reacted, checkpoints = set(), set(), set()
    rng = np.random.default_rng(1)
    reactions = (rng.random(total) < 0.3).astype(int)

    async def client(k: int, http: httpx.AsyncClient) -> None:
        for i in range(k, total, connections):
            due = started + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            event_id = f"soak-{i}"
            status = await _post(http, "/v1/experiments/poc/decisions",
                                 {"contexts": [contexts[i % len(contexts)]], "event_ids": [event_id]}, checkpoints)
            answers.append(("decision", due - started, time.perf_counter() - due, status))
            if status != 200:
                continue
            acknowledged.add(event_id)
            sent = time.perf_counter()
            status = await _post(http, f"/v1/experiments/poc/events/{event_id}/reaction", {"reaction": int(reactions[i])})
            answers.append(("reaction", due - started, time.perf_counter() - sent, status))
            if status == 200:
                reacted.add(event_id)

    async def sampler(http: httpx.AsyncClient) -> None:
        while True:
            events = (await http.get("/v1/experiments/poc")).json()["events"]
            samples.append((time.perf_counter() - started, *_usage(pids[0]), *_usage(pids[1]), events["joined"], events["trained"]))
            await asyncio.sleep(5.0)

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http, \
            httpx.AsyncClient(base_url=url, timeout=30) as status:
        watching = asyncio.create_task(sampler(status))
        await asyncio.gather(*(client(k, http) for k in range(connections)))
        watching.cancel()
        events = (await status.get("/v1/experiments/poc")).json()["events"]
    samples.append((time.perf_counter() - started, *_usage(pids[0]), *_usage(pids[1]), events["joined"], events["trained"]))
    return {"answers": answers, "samples": samples, "acknowledged": acknowledged, "reacted": reacted,
            "checkpoints": checkpoints, "total": total}


async def _post(http: httpx.AsyncClient, path: str, body: dict, checkpoints: set | None = None) -> int | None:
    try:
        answer = await http.post(path, json=body)
    except httpx.TransportError:
        return None
    if checkpoints is not None and answer.status_code == 200:
        checkpoints.add(answer.json()["decisions"][0]["checkpoint"])
    return answer.status_code


def _usage(pid: int) -> tuple[float, int]:
    """The resident memory (MB) and the number of open file descriptors of process `pid`."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def per_minute(run: dict[str, Any], minutes: float) -> list[dict[str, Any]]:
    rows = []
    for minute in range(int(np.ceil(minutes))):
        inside = [a for a in run["answers"] if minute * 60 <= a[1] < (minute + 1) * 60]
        decisions = np.array([a[2] for a in inside if a[0] == "decision" and a[3] == 200]) * 1000
        reactions = np.array([a[2] for a in inside if a[0] == "reaction" and a[3] == 200]) * 1000
        sampled = [s for s in run["samples"] if minute * 60 <= s[0] < (minute + 1) * 60] or run["samples"][-1:]
        rows.append({"minute": minute + 1, "decisions": len(decisions), "reactions": len(reactions),
                     "errors": sum(a[3] != 200 for a in inside),
                     "p50_ms": _percentile(decisions, 50), "p99_ms": _percentile(decisions, 99),
                     "reaction_p99_ms": _percentile(reactions, 99),
                     "rss_mb": round(max(s[1] for s in sampled), 1), "fds": max(s[2] for s in sampled),
                     "learner_rss_mb": round(max(s[3] for s in sampled), 1), "learner_fds": max(s[4] for s in sampled),
                     "joined": sampled[-1][5], "trained": sampled[-1][6]})
    return rows


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if len(values) else None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak (the request budget follows)")
    parser.add_argument("--rate", type=float, default=50.0, help="decisions per second, each followed by a reaction")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        directory = Path(root) / "poc"
        scenario_experiment("optimus-poc", directory=directory, hyperparameters={"learner_batch_size": 200}, seed=0).close()
        with server(directory, args=("--no-learner",)) as (url, process):
            learning = start_learner(directory, niceness=19, threads=1)
            try:
                time.sleep(5.0)  # the learner's start (imports), before the clock starts
                run = asyncio.run(soak(url, (process.pid, learning.pid), minutes=args.minutes, rate=args.rate))
                time.sleep(1.0)
                status = httpx.get(f"{url}/v1/experiments/poc", timeout=30).json()
            finally:
                stop(learning)
        store = EventStore.sqlite(str(directory / "events.sqlite"))
        try:
            rows = {row.event_id: row for row in store.rows("poc", joined_only=False)}
        finally:
            store.close()
    minutes = per_minute(run, args.minutes)
    first, last = minutes[0], minutes[-1]
    stored = set(rows) & {f"soak-{i}" for i in range(run["total"])}
    reactions_stored = {event_id for event_id in run["reacted"] if rows.get(event_id) is not None and rows[event_id].reactions == 1}
    result = {"minutes": args.minutes, "rate": args.rate, "decisions_sent": run["total"],
              "acknowledged": len(run["acknowledged"]), "stored": len(stored), "lost": len(run["acknowledged"] - stored),
              "stored_unacknowledged": len(stored - run["acknowledged"]), "reactions_acknowledged": len(run["reacted"]),
              "reactions_stored_once": len(reactions_stored), "errors": sum(a[3] != 200 for a in run["answers"]),
              "learner_rounds": status["learner"]["round"], "checkpoints_served": len(run["checkpoints"]),
              "joined_at_end": status["events"]["joined"], "trained_at_end": status["events"]["trained"],
              "drift": {key: [first[key], last[key]] for key in ("p50_ms", "p99_ms", "rss_mb", "fds", "learner_rss_mb", "learner_fds")},
              "per_minute": minutes, "samples": [[round(value, 1) for value in sample] for sample in run["samples"]]}
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    update_results(soak=result)
    return 0 if result["lost"] == 0 and result["reactions_stored_once"] == result["reactions_acknowledged"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
