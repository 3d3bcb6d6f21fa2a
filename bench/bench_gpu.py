"""Benchmark: the factory's XGBoost training on CUDA versus plain XGBoost on CUDA, same data.

The factory side is ``train_model`` (what the training asset calls: device choice, early stopping,
metrics, baselines); the plain side is ``xgboost.train`` with the same parameters and rounds on
the same matrices. Both run on the GPU; the figure is factory seconds / plain seconds (target:
at least 90% of plain's speed, a ratio of at most 1/0.9). On a machine without an NVIDIA GPU, or
with the CPU-only xgboost wheel, nothing is timed and the result says why.

    .venv/bin/python bench/bench_gpu.py --rows 1000000 --rounds 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(rows: int = 1_000_000, rounds: int = 200, repeats: int = 3) -> dict:
    from bench_training import make_data

    from factory_assets.assembly.training import (
        choose_device,
        default_params,
        train_model,
    )

    choice = choose_device("xgboost", "auto")
    if choice.device != "cuda":
        return {"skipped": f"no CUDA training here: {choice.reason}", "rows": rows}
    import xgboost as xgb

    X, y = make_data(rows)
    cut = int(rows * 0.85)
    names = [f"f{i}" for i in range(X.shape[1])]
    params = {**default_params("xgboost", "binary"), "device": "cuda", "tree_method": "hist", "seed": 0, "verbosity": 0}
    times = {"factory": [], "plain": []}
    for _ in range(repeats):  # alternate the two so that noise hits both alike
        started = time.perf_counter()
        train_model("binary", "xgboost", X[:cut], y[:cut], X[cut:], y[cut:], feature_names=names,
                    num_boost_round=rounds, early_stopping_rounds=rounds, device="cuda")
        times["factory"].append(time.perf_counter() - started)
        started = time.perf_counter()
        dtrain = xgb.QuantileDMatrix(X[:cut], label=y[:cut], feature_names=names)
        dvalid = xgb.QuantileDMatrix(X[cut:], label=y[cut:], feature_names=names, ref=dtrain)
        booster = xgb.train(params, dtrain, num_boost_round=rounds, evals=[(dvalid, "valid")],
                            early_stopping_rounds=rounds, verbose_eval=False)
        booster.predict(dvalid)
        times["plain"].append(time.perf_counter() - started)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {"rows": rows, "rounds": rounds, "device": choice.reason, "factory_s": medians["factory"],
            "plain_s": medians["plain"], "ratio": medians["factory"] / medians["plain"], "runs": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.rows, args.rounds, args.repeats), indent=2))


if __name__ == "__main__":
    main()
