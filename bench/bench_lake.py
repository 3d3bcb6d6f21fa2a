"""Benchmark: the warehouse on the lake against the single DuckDB file, two locations at once, and
the raw ingestion rate beside DuckDB's own CSV read.

1. **Lake vs file** (per scale): the rebuild of ``bench_overhead`` (the whole history through
   Dagster, training, promotion) and then one night, once with ``FACTORY_WAREHOUSE=duckdb`` and once
   on the lake, on the same landing files. Ratios lake / file; peak memory of the lake's rebuild.
2. **Two at once**: the core's and a business unit's nightly runs over their history (raw ->
   products) started together on one lake, against the same two one after the other.
3. **Ingestion rate**: rows per second of the raw_material layer over a year of landing files,
   beside ``read_csv`` of the same files by DuckDB in one statement.

    .venv/bin/python bench/bench_lake.py --lines 1000000 --days 365
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import bench_overhead  # noqa: E402

KINDS = ("duckdb", "lake")


def _with_kind(kind: str, extra: dict | None = None) -> dict:
    saved = {k: os.environ.get(k) for k in ("FACTORY_WAREHOUSE", *(extra or {}))}
    os.environ.update({"FACTORY_WAREHOUSE": kind, **(extra or {})})
    return saved


def _restore(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def lake_vs_file(total: int, days: int, root: Path, night_repeats: int = 3) -> dict:
    """The rebuild on each kind of warehouse (same landing files), then the night on each from a copy
    of its rebuilt home, alternating the kinds (lake, file, file, lake, ...): this machine's load
    drifts over minutes, and one night of each, minutes apart, gave ratios 1.5x apart."""
    import statistics

    out, rebuilt = {}, {}
    for kind in KINDS:
        saved = _with_kind(kind)
        try:
            measured = bench_overhead.measure_scale(total, days, root / kind, nights=False, keep=True)
        finally:
            _restore(saved)
        out[kind] = {"rebuild_s": measured["rebuild"]["total_s"], "peak_mb": measured["rebuild"]["peak_mb"],
                     "phases": measured["rebuild"]["phases"], "nights_s": []}
        home = Path(measured["home"])
        rebuilt[kind] = (home, home.with_name(home.name + ".rebuilt"))
        shutil.rmtree(rebuilt[kind][1], ignore_errors=True)
        home.rename(rebuilt[kind][1])
    first = bench_overhead.NIGHT - dt.timedelta(days=days)
    for repeat in range(night_repeats):
        for kind in KINDS if repeat % 2 == 0 else KINDS[::-1]:
            home, kept = rebuilt[kind]
            shutil.rmtree(home, ignore_errors=True)
            shutil.copytree(kept, home)  # at the home's own path: the lake's catalog records its data path
            saved = _with_kind(kind)
            try:
                out[kind]["nights_s"].append(bench_overhead._in_child("dagster", home, first, bench_overhead.NIGHT)["seconds"])
            finally:
                _restore(saved)
    for kind, (home, kept) in rebuilt.items():
        out[kind]["night_s"] = statistics.median(out[kind]["nights_s"])
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(kept, ignore_errors=True)
    out["rebuild_ratio"] = out["lake"]["rebuild_s"] / out["duckdb"]["rebuild_s"]
    out["night_ratio"] = out["lake"]["night_s"] / out["duckdb"]["night_s"]
    return out


_HISTORY = """
import json, sys, time, datetime as dt
import dagster as dg
from factory_assets.definitions import build_definitions
from factory_assets.resources import FactoryStore
home, first, last = sys.argv[1], sys.argv[2], sys.argv[3]
defs = build_definitions(FactoryStore(home=home))
graph = defs.resolve_asset_graph()
keys = [k for k in graph.get_all_asset_keys() if k.path[0] in ("raw_material", "processing")]
started = time.perf_counter()
result = defs.resolve_job_def("supply_chain_nightly").execute_in_process(
    instance=dg.DagsterInstance.ephemeral(), asset_selection=keys, raise_on_error=False,
    run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
    tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last})
print("RESULT " + json.dumps({"ok": result.success, "seconds": time.perf_counter() - started}))
"""


def _finish(proc: subprocess.Popen) -> dict:
    stdout, stderr = proc.communicate()
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines or not json.loads(lines[-1][7:])["ok"]:
        raise RuntimeError(f"history run failed ({proc.returncode}):\n{stderr[-3000:]}")
    return json.loads(lines[-1][7:])


def two_at_once(lines_per_day: int, days: int, root: Path) -> dict:
    """The core's and a business unit's nightly runs (raw -> products) on one lake: together, then
    (a fresh home) one after the other. The unit is the clinic of tests/test_onboard_domain.py (its
    own raw feed and dbt project), in a copy of this repository, driven as tests/test_lake_concurrency.py does."""
    sys.path.insert(0, str(BENCH.parent / "tests"))
    import test_onboard_domain as clinic

    from factory_assets.raw_material.simulator import SimulationConfig, generate_demo_data

    repo = clinic.copy_repository(root / "repo")
    unit = clinic.onboard(repo)
    visits = clinic.generate_visits(clinic.START, days)
    last = (clinic.START + dt.timedelta(days=days - 1)).isoformat()
    out = {}
    for mode in ("serial", "concurrent"):
        home = root / f"pair-{mode}"
        shutil.rmtree(home, ignore_errors=True)
        clinic.land(home / "landing", visits)
        generate_demo_data(SimulationConfig(start_date=clinic.START, days=days, order_lines_per_day=lines_per_day,
                                            seed=7), home / "landing")
        env = {**os.environ, "FACTORY_HOME": str(home), "FACTORY_WORKSPACE": str(repo / "workspace.yaml"),
               "FACTORY_WAREHOUSE": "lake", "FACTORY_PARTITIONS_START": clinic.START.isoformat(),
               "ONBOARD_UNIT_DIR": str(unit), "PYTHONPATH": str(repo), "DO_NOT_TRACK": "1"}

        def start(location: str) -> subprocess.Popen:
            code = (f"import sys; sys.path.insert(0, {str(repo / 'tests')!r}); import test_lake_concurrency as t; "
                    f"t.drive({location!r}, {str(home / (location + '.json'))!r}, {last!r})")
            return subprocess.Popen([sys.executable, "-c", code], cwd=repo, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)

        def finish(proc: subprocess.Popen, location: str) -> float:
            output, _ = proc.communicate()
            report = home / f"{location}.json"
            if proc.returncode != 0 or not report.is_file() or not json.loads(report.read_text())["success"]:
                raise RuntimeError(f"{mode} {location} failed ({proc.returncode}):\n{output[-3000:]}")
            found = json.loads(report.read_text())
            return found["ended"] - found["started"]

        started = time.perf_counter()
        if mode == "serial":
            runs = [finish(start(loc), loc) for loc in ("core", "clinic")]
        else:
            procs = {loc: start(loc) for loc in ("core", "clinic")}
            runs = [finish(proc, loc) for loc, proc in procs.items()]
        out[mode] = {"wall_s": time.perf_counter() - started, "runs_s": runs}
        shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(root / "repo", ignore_errors=True)
    out["ratio"] = out["concurrent"]["wall_s"] / out["serial"]["wall_s"]
    return out


def ingestion_rate(total: int, days: int, root: Path) -> dict:
    """Rows/s of the raw layer (every source, a year of files) and of DuckDB's read_csv on the same files."""
    import duckdb

    from factory_assets.raw_material.simulator import SimulationConfig, generate_demo_data

    first = bench_overhead.NIGHT - dt.timedelta(days=days)
    home = root / "ingest"
    shutil.rmtree(home, ignore_errors=True)
    generate_demo_data(SimulationConfig(start_date=first, days=days, order_lines_per_day=max(1, total // days), seed=3),
                       home / "landing")
    csvs = sorted(str(p) for p in (home / "landing").rglob("*.csv"))
    files = sorted(p for p in (home / "landing").rglob("*") if p.is_file())
    started = time.perf_counter()
    conn = duckdb.connect()
    csv_rows = 0
    for folder in sorted({str(Path(c).parent) for c in csvs}):  # one statement per source (one schema each)
        csv_rows += conn.execute(f"SELECT count(*) FROM read_csv('{folder}/*.csv', union_by_name = true)").fetchone()[0]
    duckdb_s = time.perf_counter() - started
    saved = _with_kind("lake", {"FACTORY_PARTITIONS_START": first.isoformat()})
    try:
        code = _HISTORY.replace('k.path[0] in ("raw_material", "processing")', 'k.path[0] == "raw_material"')
        proc = subprocess.Popen([sys.executable, "-c", code, str(home), first.isoformat(),
                                 (first + dt.timedelta(days=days - 1)).isoformat()],
                                env={**os.environ, "FACTORY_HOME": str(home)}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        ingest = _finish(proc)
    finally:
        _restore(saved)
    from factory_assets.lib.lake import Lake

    lake = Lake.embedded(home)
    c = lake.connect()
    raw_rows = sum(c.execute(f"SELECT count(*) FROM lake.raw.{t}").fetchone()[0] for (t,) in c.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'lake' AND table_schema = 'raw' "
        "AND table_name NOT IN ('ingestion_log', 'quarantine_log', 'schema_migrations')").fetchall())
    c.close()
    shutil.rmtree(home, ignore_errors=True)
    return {"files": len(files), "csv_files": len(csvs), "csv_rows": csv_rows, "raw_rows": raw_rows,
            "ingest_s": ingest["seconds"], "duckdb_csv_s": duckdb_s,
            "ingest_rows_per_s": raw_rows / ingest["seconds"], "duckdb_csv_rows_per_s": csv_rows / duckdb_s,
            "ms_per_file": 1000 * ingest["seconds"] / len(files)}


def measure(lines: list[int], days: int = 365, pair_lines_per_day: int = 1000, pair_days: int = 60,
            workdir: str | None = None, only: list[str] | None = None, night_repeats: int = 3) -> dict:
    root = Path(workdir or tempfile.mkdtemp(prefix="bench-lake-"))
    root.mkdir(parents=True, exist_ok=True)
    only = set(only or ("lake_vs_file", "two_at_once", "ingestion"))
    results = {}
    if "ingestion" in only:
        results["ingestion"] = ingestion_rate(lines[0], days, root)
    if "two_at_once" in only:
        results["two_at_once"] = two_at_once(pair_lines_per_day, pair_days, root)
    if "lake_vs_file" in only:
        results["lake_vs_file"] = {str(n): lake_vs_file(n, days, root, night_repeats) for n in lines}
    shutil.rmtree(root, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--pair-lines-per-day", type=int, default=1000)
    parser.add_argument("--pair-days", type=int, default=60)
    parser.add_argument("--only", nargs="+", choices=("lake_vs_file", "two_at_once", "ingestion"), default=None)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--night-repeats", type=int, default=3, help="nights per kind, alternating (median)")
    args = parser.parse_args()
    results = measure(args.lines, args.days, args.pair_lines_per_day, args.pair_days, args.workdir, args.only,
                      args.night_repeats)
    print("RESULTS " + json.dumps(results, indent=2), flush=True)


if __name__ == "__main__":
    main()
