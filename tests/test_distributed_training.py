"""XGBoost on a real Dask cluster (two worker processes) reading Parquet partitions: it recovers
the same signal as single-machine XGBoost on the same rows, with the data spread over workers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from factory_assets.assembly.distributed_training import train_xgboost_on_dask
from factory_assets.assembly.training import classification_metrics

FEATURES = [f"x{i}" for i in range(6)]


def _frame(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    logit = 2.0 * x[:, 0] - 1.5 * x[:, 1] + x[:, 2] * x[:, 3]  # x4, x5 are noise
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int32)
    return pl.DataFrame({**{f: x[:, i] for i, f in enumerate(FEATURES)}, "label": y})


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def test_distributed_xgboost_recovers_the_signal_of_single_machine_xgboost(tmp_path, client):
    import xgboost

    train_files, valid_files = [], []
    for i in range(6):
        path = tmp_path / f"train-{i}.parquet"
        _frame(4000, seed=i).write_parquet(path)
        train_files.append(str(path))
    for i in range(2):
        path = tmp_path / f"valid-{i}.parquet"
        _frame(3000, seed=100 + i).write_parquet(path)
        valid_files.append(str(path))
    test = _frame(10000, seed=999)

    fit = train_xgboost_on_dask(client, train_files, valid_files, "label", FEATURES, rounds=200, early_stopping_rounds=20)
    assert fit.partitions == 6 and fit.workers == 2  # every worker held part of the training set
    auc_dist = classification_metrics(test["label"].to_numpy(), fit.booster.inplace_predict(test.select(FEATURES).to_numpy()))["auc"]

    train = pl.concat([pl.read_parquet(f) for f in train_files])
    valid = pl.concat([pl.read_parquet(f) for f in valid_files])
    params = {k: v for k, v in fit.params.items()}
    local = xgboost.train(params, xgboost.DMatrix(train.select(FEATURES).to_numpy(), label=train["label"].to_numpy()),
                          num_boost_round=200, evals=[(xgboost.DMatrix(valid.select(FEATURES).to_numpy(), label=valid["label"].to_numpy()), "v")],
                          early_stopping_rounds=20, verbose_eval=False)
    auc_local = classification_metrics(test["label"].to_numpy(), local.inplace_predict(test.select(FEATURES).to_numpy(),
                                       iteration_range=(0, local.best_iteration + 1)))["auc"]
    print(f"AUC distributed {auc_dist:.4f} vs single machine {auc_local:.4f}")
    assert auc_dist > 0.85 and abs(auc_dist - auc_local) < 0.01, (auc_dist, auc_local)
    gain = fit.booster.get_score(importance_type="gain")
    assert max(gain, key=gain.get) in ("x0", "x1")  # the strongest true feature, not noise


def test_missing_columns_are_named(tmp_path, client):
    path = tmp_path / "t.parquet"
    _frame(100, seed=1).drop("x5").write_parquet(path)
    with pytest.raises(ValueError, match=r"\[.x5.\] are not in .*t.parquet"):
        train_xgboost_on_dask(client, [str(path)], [str(path)], "label", FEATURES)
