"""Benchmark: loading the code location versus an empty Dagster project, same environment.

Both are timed as a user meets them, `dagster definitions validate` in a fresh process, alternating
the two so that machine noise hits both alike; the figure is the ratio of the medians. The empty
project is one file with `defs = dg.Definitions()`.

    .venv/bin/python bench/bench_startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMPTY_PROJECT = "import dagster as dg\n\ndefs = dg.Definitions()\n"


def _validate_seconds(args: list[str], cwd: Path, env: dict) -> float:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", *args], cwd=cwd, env=env,
                         check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"dagster definitions validate {' '.join(args)} failed in {cwd}:\n{out.stderr[-2000:]}")
    return time.perf_counter() - started


def measure(repeats: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-empty-project-") as folder:
        empty = Path(folder)
        (empty / "empty_defs.py").write_text(EMPTY_PROJECT)
        # One throwaway instance for both sides: the caller's DAGSTER_HOME may not exist yet (fresh clone).
        (empty / "dagster_home").mkdir()
        env = dict(os.environ, PYTHONWARNINGS="ignore", DAGSTER_HOME=str(empty / "dagster_home"))
        runs = {"empty": [], "factory": []}
        for _ in range(repeats):
            runs["empty"].append(_validate_seconds(["-f", "empty_defs.py"], empty, env))
            runs["factory"].append(_validate_seconds(["-m", "factory_assets.definitions", "-a", "defs"], ROOT, env))
    medians = {k: statistics.median(v) for k, v in runs.items()}
    return {"repeats": repeats, "empty_s": medians["empty"], "factory_s": medians["factory"],
            "ratio": medians["factory"] / medians["empty"], "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    result = measure(args.repeats)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
