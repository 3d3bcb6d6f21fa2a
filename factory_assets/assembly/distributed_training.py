"""Training beyond one machine's memory: XGBoost on the Dask cluster that runs the steps.

The single-machine template (``training.train_model``) holds the training set in the step's
memory. When a use case outgrows that, the same engine trains on the cluster of the production
profile (FACTORY_DASK_SCHEDULER): each Dask worker reads its own Parquet partitions from the
shared FACTORY_HOME and builds its part of the quantile sketch; XGBoost's collective (Rabit)
combines the histograms, so no process ever holds the whole set. The result is a plain
``xgboost.Booster``: the registry, the scoring services and the gate use it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from factory_assets.assembly.training import default_params


@dataclass
class DistributedFit:
    booster: Any
    best_iteration: int
    workers: int  # workers that held training partitions
    partitions: int
    params: dict


def train_xgboost_on_dask(client, train_files: Sequence[str], valid_files: Sequence[str], target: str,
                          features: Sequence[str], task: str = "binary", rounds: int = 300,
                          early_stopping_rounds: int = 30, seed: int = 0, params: dict | None = None) -> DistributedFit:
    """Fit on Parquet files read by the workers (one partition per file), early-stopped on the
    validation files; the factory's default XGBoost parameters for ``task`` unless ``params``."""
    import dask.dataframe as dd
    import xgboost.dask as dxgb

    if not train_files or not valid_files:
        raise ValueError("train_xgboost_on_dask needs at least one training and one validation Parquet file")
    import pyarrow.parquet as pq

    columns = [*features, target]
    for path in (*train_files, *valid_files):  # footers only: a clear error before any worker reads
        missing = [c for c in columns if c not in pq.read_schema(path).names]
        if missing:
            raise ValueError(f"columns {missing} are not in {path}: write them into every training and validation file")
    train = dd.read_parquet(list(train_files), columns=columns)
    valid = dd.read_parquet(list(valid_files), columns=columns)
    train, valid = client.persist(train), client.persist(valid)  # partitions stay on the workers that read them
    dtrain = dxgb.DaskQuantileDMatrix(client, train[list(features)], train[target])
    dvalid = dxgb.DaskQuantileDMatrix(client, valid[list(features)], valid[target], ref=dtrain)
    used = {**default_params("xgboost", task), **(params or {}), "tree_method": "hist", "seed": seed, "verbosity": 0}
    output = dxgb.train(client, used, dtrain, num_boost_round=rounds, evals=[(dvalid, "valid")],
                        early_stopping_rounds=early_stopping_rounds or None, verbose_eval=False)
    booster = output["booster"]
    best_attr = getattr(booster, "best_iteration", None)
    best = int(best_attr) + 1 if best_attr is not None else int(booster.num_boosted_rounds())
    if best < booster.num_boosted_rounds():
        booster = booster[0:best]
    holders = {w for keys in client.who_has(train).values() for w in keys}
    return DistributedFit(booster, best, len(holders), train.npartitions, used)
