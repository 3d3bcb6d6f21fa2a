"""Benchmark: Evidently drift on 1M rows x 30 columns, sampled as monitoring does it, versus full.

Data: reference and current frames of ``--rows`` rows each, 24 numeric and 6 categorical columns;
in the current frame 6 columns drift by a known amount (3 clearly, 3 mildly near the 0.1
threshold) and 24 do not. The monitoring path (``feedback.monitoring.data_drift``) samples
``sample_rows`` rows of each side uniformly without replacement (fixed seed). Measured in the same
run: the sampled computation (several seeds) and the full computation on all rows; reported: time,
the ratio full/sampled, the drift share of each, and how often the sampled per-column verdict
agrees with the full one.

    .venv/bin/python bench/bench_drift.py --rows 1000000 --seeds 5
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

N_NUM, N_CAT = 24, 6


def make_frames(rows: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(shifts: dict[int, float], cat_shift: dict[int, float]) -> pl.DataFrame:
        cols = {}
        for i in range(N_NUM):
            cols[f"num_{i:02d}"] = rng.standard_normal(rows) + shifts.get(i, 0.0)
        for j in range(N_CAT):
            p = np.array([0.4, 0.3, 0.2, 0.1])
            extra = cat_shift.get(j, 0.0)
            p = np.append(p * (1 - extra), extra)
            cols[f"cat_{j}"] = rng.choice(["a", "b", "c", "d", "new"], size=rows, p=p / p.sum())
        return pl.DataFrame(cols)

    reference = frame({}, {})
    current = frame({0: 0.5, 1: 0.3, 2: 0.12, 3: 0.08}, {0: 0.2, 1: 0.02})
    return reference, current


def run(reference, current, sample_rows: int, seed: int):
    from factory_assets.feedback.monitoring import (
        MonitoringConfig,
        data_drift,
        monitoring_config,
    )

    config = MonitoringConfig(**{**monitoring_config().model_dump(), "sample_rows": sample_rows})
    started = time.perf_counter()
    result = data_drift(reference, current, reference.columns, config=config, seed=seed)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, default=5, help="sampling seeds to compare with the full verdict")
    parser.add_argument("--sample-rows", type=int, default=None, help="default: monitoring_method.yaml")
    parser.add_argument("--skip-full", action="store_true")
    args = parser.parse_args()
    import evidently  # noqa: F401  (import time is not drift time)

    from factory_assets.feedback.monitoring import monitoring_config

    sample_rows = args.sample_rows or monitoring_config().sample_rows
    reference, current = make_frames(args.rows)
    print(f"{args.rows:,} rows x {reference.width} columns per side; sample {sample_rows:,} rows per side")
    sampled = [run(reference, current, sample_rows, seed) for seed in range(args.seeds)]
    times = [t for t, _ in sampled]
    print(f"sampled: {np.median(times):.1f} s median over {args.seeds} seeds (min {min(times):.1f}, max {max(times):.1f}); "
          f"drift share {', '.join(f'{r.share:.3f}' for _, r in sampled)}")
    if args.skip_full:
        return
    full_time, full = run(reference, current, args.rows + 1, 0)
    print(f"full:    {full_time:.1f} s; drift share {full.share:.3f}; drifted {full.drifted_columns}")
    agreements = []
    for _, result in sampled:
        same = sum((c in result.drifted_columns) == (c in full.drifted_columns) for c in full.columns)
        agreements.append(same / len(full.columns))
    print(f"full / sampled time: {full_time / np.median(times):.1f}x; per-column verdict agreement "
          f"{np.mean(agreements):.1%} (min {min(agreements):.1%}); share difference max "
          f"{max(abs(r.share - full.share) for _, r in sampled):.3f}")
    for column in sorted(full.scores):
        scores = [r.scores[column] for _, r in sampled]
        if full.scores[column] > 0.05 or max(scores) > 0.05:
            print(f"  {column}: full {full.scores[column]:.4f}  sampled {min(scores):.4f}..{max(scores):.4f}")


if __name__ == "__main__":
    main()
