"""Benchmark: training time and peak memory per engine at 1M and 4M rows.

Each (engine, rows) runs in its own process so peak RSS is that run's alone. Data: 30 float32
features with a known logistic signal (the shape of the late-delivery training set). The
baseline, measured in the same run, is the cost of just holding the training matrix: a process
that builds the same numpy arrays and stops. Memory is reported as a ratio to it.

    .venv/bin/python bench/bench_training.py --rows 1000000 4000000 --rounds 100
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

N_FEATURES = 30


def make_data(rows: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, N_FEATURES), dtype=np.float32)
    score = X[:, :5] @ np.array([1.5, -1.0, 0.8, 0.5, -0.3], dtype=np.float32) - 1.5
    y = (rng.random(rows) < 1 / (1 + np.exp(-score))).astype(np.float32)
    return X, y


def child(engine: str, rows: int, rounds: int) -> None:
    X, y = make_data(rows)
    cut = int(rows * 0.85)
    started = time.perf_counter()
    if engine != "baseline":
        from factory_assets.assembly.training import train_model

        model = train_model("binary", engine, X[:cut], y[:cut], X[cut:], y[cut:],
                            feature_names=[f"f{i}" for i in range(N_FEATURES)], device="cpu",
                            num_boost_round=rounds, early_stopping_rounds=rounds)
        assert model.best_iteration > 0
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"engine": engine, "rows": rows, "seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--child", nargs=3)
    args = parser.parse_args()
    if args.child:
        engine, rows, rounds = args.child
        child(engine, int(rows), int(rounds))
        return
    print("| rows | engine | train time | peak memory | memory / data-only baseline |")
    print("|---|---|---|---|---|")
    for rows in args.rows:
        results = {}
        for engine in ("baseline", "lightgbm", "xgboost"):
            out = subprocess.run([sys.executable, __file__, "--child", engine, str(rows), str(args.rounds)],
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            results[engine] = json.loads(out)
        base = results["baseline"]["peak_mb"]
        for engine in ("lightgbm", "xgboost"):
            r = results[engine]
            print(f"| {rows:,} | {engine} | {r['seconds']:.1f} s | {r['peak_mb']:.0f} MB "
                  f"| {r['peak_mb'] / base:.2f}x ({base:.0f} MB) |", flush=True)


if __name__ == "__main__":
    main()
