"""Benchmark: one night of the chain at the demo's default scale (90 days x 1,500 order lines/day).

Set-up (not timed): simulate the history, run the chain over all but the last ``--nights`` days,
train the use cases as of then. Timed: each of the last nights as its own run of
``supply_chain_nightly`` (landing -> raw -> products -> feature sets -> scores -> monitoring), per
layer from the run's step events. Baseline measured in the same run: a plain ``dbt build`` of the
same project on the same warehouse right after the last night (what the products alone cost).

    .venv/bin/python bench/bench_nightly.py --days 90 --lines-per-day 1500 --nights 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--lines-per-day", type=int, default=1500)
    parser.add_argument("--nights", type=int, default=2)
    parser.add_argument("--home", default=None, help="FACTORY_HOME to use (default: a temporary folder)")
    args = parser.parse_args()

    home = Path(args.home or tempfile.mkdtemp(prefix="bench-nightly-"))
    os.environ.update(FACTORY_HOME=str(home), FACTORY_WAREHOUSE_PATH=str(home / "warehouse.duckdb"),
                      DAGSTER_HOME=str(home / "dagster_home"))
    from factory_assets.cli import run_supply_chain, run_training
    from factory_assets.raw_material.simulator import (
        SimulationConfig,
        generate_demo_data,
    )
    from factory_assets.settings import default_paths, ensure_dagster_home

    paths = default_paths().create()
    ensure_dagster_home(paths)
    end = date(2025, 6, 30)
    config = SimulationConfig(start_date=end - timedelta(days=args.days - 1), days=args.days,
                              order_lines_per_day=args.lines_per_day, seed=42)
    generate_demo_data(config, paths.landing)
    history_end = end - timedelta(days=args.nights)
    started = time.perf_counter()
    assert run_supply_chain(config.start_date, history_end).success
    print(f"set-up: history {config.start_date} .. {history_end} in {time.perf_counter() - started:.0f} s", flush=True)
    assert run_training(as_of=history_end + timedelta(days=1)).success
    for k in range(args.nights, 0, -1):
        night = end - timedelta(days=k - 1)
        started = time.perf_counter()
        result = run_supply_chain(night, night)
        wall = time.perf_counter() - started
        import dagster as dg

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from layers import layer_profile

        layers = layer_profile(dg.DagsterInstance.get(), [result.run_id])
        shown = ", ".join(f"{name} {v['seconds']:.1f} s" for name, v in sorted(layers.items(), key=lambda kv: -kv[1]["seconds"]))
        print(f"night {night}: {'SUCCESS' if result.success else 'FAILED'} in {wall:.1f} s ({shown})", flush=True)
    dbt = Path(sys.executable).with_name("dbt")
    started = time.perf_counter()
    subprocess.run([str(dbt), "build", "--quiet", "--exclude", "path:models/operations"], check=True,
                   cwd=Path(__file__).resolve().parents[1] / "dbt_project")
    baseline = time.perf_counter() - started
    print(f"baseline: plain dbt build of the products on the same warehouse {baseline:.1f} s; "
          f"last night / baseline = {wall / baseline:.2f}x")


if __name__ == "__main__":
    main()
