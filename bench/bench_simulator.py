"""Benchmark: simulating and landing N order lines, as a ratio to a same-run baseline.

Baseline: the unavoidable floor for the same volume: generate one random numpy column per
transactions field and write them as a single CSV with polars. The simulator does much more
(seasonality, customers, deliveries, telemetry, tickets, six sources, one file per day), so the
ratio says what that realism costs.

    .venv/bin/python bench/bench_simulator.py --lines 1000000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from factory_assets.raw_material.simulator import (
    SimulationConfig,
    simulate,
    write_landing_files,
)


def baseline(lines: int, folder: Path) -> float:
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({f"c{i}": rng.random(lines) for i in range(15)})
    frame.write_csv(folder / "baseline.csv")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    config = SimulationConfig(start_date=date(2025, 1, 1), days=args.days, order_lines_per_day=args.lines // args.days)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = baseline(args.lines, tmp)
        started = time.perf_counter()
        data = simulate(config)
        sim = time.perf_counter() - started
        started = time.perf_counter()
        written = write_landing_files(data, tmp / "landing")
        write = time.perf_counter() - started
    n_lines = data.transactions.height
    print(f"| order lines | simulate | write {sum(map(len, written.values()))} files | total | baseline | ratio |")
    print("|---|---|---|---|---|---|")
    print(f"| {n_lines:,} | {sim:.1f} s | {write:.1f} s | {sim + write:.1f} s | {base:.1f} s | {(sim + write) / base:.1f}x |")


if __name__ == "__main__":
    main()
