"""Benchmark: the text-classification template against a plain scikit-learn + LightGBM script doing
the same work on the same tickets: hash the text into the same columns, split by time, train with
early stopping on the validation days, train again on training + validation with the rounds found,
fit the logistic-regression baseline, score the test days. Wall time and peak memory (RSS) of each,
alternating, best of ``repeats``.

    .venv/bin/python bench/bench_text.py --rows 200000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

#: Both sides: the template's defaults for text and LightGBM.
_COMMON = """
import sys, time, json
import numpy as np
from factory_assets.raw_material.simulator import ticket_triage
frame = ticket_triage({rows}, seed=7, days=180)
started = time.perf_counter()
"""

_TEMPLATE = _COMMON + """
from factory_assets.assembly.templates import fit_template
result = fit_template("text_classification", frame, target="escalated", feature_columns=["contact_channel", "body"],
                      time_column="created_date", engine="lightgbm", text_columns=("body",))
auc, baseline_auc = result.metrics["auc"], result.baseline_metrics["auc"]
"""

_PLAIN = _COMMON + """
import lightgbm, scipy.sparse
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import normalize
frame = frame.sort("created_date")
days = frame["created_date"].to_numpy()
distinct = np.unique(days)
n_test = n_valid = max(1, round(len(distinct) * 0.15))
train = days < distinct[len(distinct) - n_test - n_valid]
valid = (days >= distinct[len(distinct) - n_test - n_valid]) & (days < distinct[len(distinct) - n_test])
test = days >= distinct[len(distinct) - n_test]
words = HashingVectorizer(n_features=2**16, ngram_range=(1, 2), alternate_sign=False, norm=None, binary=True,
                          dtype=np.float32).transform(frame["body"].to_list())
channels = sorted(frame["contact_channel"].unique().to_list())
channel = frame["contact_channel"].replace_strict({{c: i for i, c in enumerate(channels)}}, return_dtype=float).to_numpy()
X = scipy.sparse.hstack([scipy.sparse.csr_matrix(channel.reshape(-1, 1).astype(np.float32)), words], format="csr")
y = frame["escalated"].cast(float).to_numpy()
params = {{"objective": "binary", "metric": "binary_logloss", "learning_rate": 0.05, "num_leaves": 63,
          "min_data_in_leaf": 20, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
          "seed": 0, "verbosity": -1}}
dtrain = lightgbm.Dataset(X[train], label=y[train])
dvalid = lightgbm.Dataset(X[valid], label=y[valid], reference=dtrain)
first = lightgbm.train(params, dtrain, num_boost_round=500, valid_sets=[dvalid],
                       callbacks=[lightgbm.early_stopping(30, verbose=False)])
fit = train | valid
model = lightgbm.train(params, lightgbm.Dataset(X[fit], label=y[fit]), num_boost_round=max(first.best_iteration, 1))
auc = roc_auc_score(y[test], model.predict(X[test]))
text = normalize(words)
linear = LogisticRegression(max_iter=200, random_state=0).fit(text[train], y[train])
baseline_auc = roc_auc_score(y[test], linear.predict_proba(text[test])[:, 1])
"""

_REPORT = """
import resource
print("RESULT", json.dumps({"seconds": time.perf_counter() - started, "auc": float(auc), "baseline_auc": float(baseline_auc),
                            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code + _REPORT], cwd=ROOT, capture_output=True, text=True, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"benchmark child failed: {out.stderr[-3000:]}")
    return json.loads(line.removeprefix("RESULT "))


def measure(rows: int = 200_000, repeats: int = 2) -> dict:
    runs = {"template": [], "plain": []}
    for _ in range(repeats):
        runs["template"].append(_run(_TEMPLATE.format(rows=rows)))
        runs["plain"].append(_run(_PLAIN.format(rows=rows)))
    best = {kind: min(r, key=lambda x: x["seconds"]) for kind, r in runs.items()}
    return {"rows": rows, "repeats": repeats, **best, "ratio": best["template"]["seconds"] / best["plain"]["seconds"],
            "memory_ratio": best["template"]["peak_rss_gib"] / best["plain"]["peak_rss_gib"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(measure(args.rows, args.repeats), indent=2))


if __name__ == "__main__":
    main()
