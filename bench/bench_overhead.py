"""Benchmark: the chain through Dagster versus a plain script doing the same work, same data.

For each scale (total order lines over ``--days`` days), the simulator lands the data once; then
each side gets its own copy in a fresh FACTORY_HOME and, in its own process (imports not timed):
the history through the chain (every day but the last, one run), training of every use case as of
the last day with the promotion gates, and the last night (landing -> products -> feature sets ->
champion scores -> monitoring). Dagster side: `supply_chain_nightly` and `assembly_training` run in
process on a SQLite instance, as `factory run` does. Plain side: `plain_chain.py`, the same
functions with no orchestration. The figure is Dagster's total over the plain total.

    .venv/bin/python bench/bench_overhead.py --lines 1000000 4000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
END = dt.date(2025, 6, 30)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def _dagster_side(home: Path, first: dt.date, last: dt.date) -> dict:
    import dagster as dg

    from factory_assets.assembly.specs import load_use_cases
    from factory_assets.definitions import build_definitions
    from factory_assets.resources import FactoryStore
    from factory_assets.settings import FactoryPaths, ensure_dagster_home

    defs = build_definitions(FactoryStore(home=str(home)))
    instance = dg.DagsterInstance.from_config(str(ensure_dagster_home(FactoryPaths(home).create())))
    nightly, training = defs.resolve_job_def("supply_chain_nightly"), defs.resolve_job_def("assembly_training")

    def chain(a: dt.date, b: dt.date):
        tags = {"dagster/asset_partition_range_start": a.isoformat(), "dagster/asset_partition_range_end": b.isoformat()}
        return nightly.execute_in_process(instance=instance, run_config=QUIET, tags=tags, raise_on_error=False).success

    phases, ok = {}, True
    started = time.perf_counter()
    ok &= chain(first, last - dt.timedelta(days=1))
    phases["history"] = time.perf_counter() - started
    started = time.perf_counter()
    config = {**QUIET, "ops": {f"assembly__{uc}_training_set": {"config": {"as_of": last.isoformat()}}
                               for uc in load_use_cases()}}
    ok &= training.execute_in_process(instance=instance, run_config=config, raise_on_error=False).success
    phases["training"] = time.perf_counter() - started
    started = time.perf_counter()
    ok &= chain(last, last)
    phases["night"] = time.perf_counter() - started
    return {"phases": phases, "ok": bool(ok)}


def _plain_side(home: Path, first: dt.date, last: dt.date) -> dict:
    sys.path.insert(0, str(BENCH))
    import plain_chain

    from factory_assets.resources import FactoryStore

    store = FactoryStore(home=str(home))
    phases = {}
    started = time.perf_counter()
    plain_chain.run_days(store, first, last - dt.timedelta(days=1))
    phases["history"] = time.perf_counter() - started
    started = time.perf_counter()
    plain_chain.train(store, last)
    phases["training"] = time.perf_counter() - started
    started = time.perf_counter()
    plain_chain.run_days(store, last, last)
    phases["night"] = time.perf_counter() - started
    return {"phases": phases, "ok": True}


def child(side: str, home: Path, first: dt.date, last: dt.date) -> None:
    os.environ.update(FACTORY_HOME=str(home), FACTORY_WAREHOUSE_PATH=str(home / "warehouse.duckdb"),
                      DAGSTER_HOME=str(home / "dagster_home"))
    result = (_dagster_side if side == "dagster" else _plain_side)(home, first, last)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_children_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # dbt
    print("RESULT " + json.dumps(result), flush=True)


def _run_side(side: str, landing: Path, first: dt.date, last: dt.date, workdir: Path) -> dict:
    home = workdir / side
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(landing, home / "landing")
    out = subprocess.run([sys.executable, __file__, "--child", side, str(home), first.isoformat(), last.isoformat()],
                         capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{side} side failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result["total_s"] = sum(result["phases"].values())
    shutil.rmtree(home, ignore_errors=True)
    return result


def measure(lines: list[int], days: int = 365, workdir: str | None = None) -> dict:
    from factory_assets.raw_material.simulator import SimulationConfig, generate_demo_data

    root = Path(workdir or tempfile.mkdtemp(prefix="bench-overhead-"))
    out = {}
    for i, total in enumerate(lines):
        first = END - dt.timedelta(days=days - 1)
        landing = root / f"landing-{total}"
        shutil.rmtree(landing, ignore_errors=True)
        generate_demo_data(SimulationConfig(start_date=first, days=days, order_lines_per_day=max(1, total // days),
                                            seed=42), landing)
        order = ("dagster", "plain") if i % 2 == 0 else ("plain", "dagster")  # alternate: drift hits both
        sides = {side: _run_side(side, landing, first, END, root) for side in order}
        shutil.rmtree(landing, ignore_errors=True)
        out[str(total)] = {**sides, "ratio": sides["dagster"]["total_s"] / sides["plain"]["total_s"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--child", nargs=4, metavar=("SIDE", "HOME", "FIRST", "LAST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, home, first, last = args.child
        child(side, Path(home), dt.date.fromisoformat(first), dt.date.fromisoformat(last))
        return
    print(json.dumps(measure(args.lines, args.days, args.workdir), indent=2))


if __name__ == "__main__":
    main()
