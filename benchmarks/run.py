"""Run every benchmark (benchmarks/bench_*.py, or those named) and collect their JSON in benchmarks/results/.

    python benchmarks/run.py                 # all
    python benchmarks/run.py personalization # only bench_personalization.py
    python benchmarks/run.py worlds          # the generated worlds alone (hours; resumes from benchmarks/.cache/)

Each script writes benchmarks/results/<name>.json itself; this runner times them and stops on failure.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    failed = []
    for script in scripts:
        started = time.perf_counter()
        print(f"== {script.name}", flush=True)
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"== {script.name}: exit {code} in {time.perf_counter() - started:.0f} s", flush=True)
        if code:
            failed.append(script.name)
    if failed:
        print(f"failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
