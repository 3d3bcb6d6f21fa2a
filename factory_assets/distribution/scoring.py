"""Batch scoring: point-in-time scoring sets, champion predictions and the prediction products.

Pure layer (DuckDB + polars, no Dagster). A prediction product is one DuckDB table per use case,
``predictions.<use_case>``, keyed by ``scored_date`` (the day whose data the scores used) and the
use case's entity; every row carries the model version and the feature snapshot it was scored on.
A partition is replaced in one transaction, so a re-run never duplicates rows and a failed run
leaves the previous rows untouched.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import duckdb
import numpy as np
import polars as pl

from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.assembly.templates import predict
from factory_assets.assembly.training_sets import TrainingSetBuilder

#: Columns that identify what a prediction is about, besides the spec's entity and time column.
TARGET_KEYS = ("horizon", "target_date")

#: The columns every prediction product ends with.
META_COLUMNS = ("prediction", "model_version", "feature_snapshot_id", "features_as_of", "scored_at")


def scoring_set(conn: duckdb.DuckDBPyConnection, spec: UseCaseSpec, builder: TrainingSetBuilder,
                scored_date: dt.date) -> pl.DataFrame:
    """The rows to score for the night after ``scored_date``: everything known up to its end (the
    ``score`` side of the use case's training-set builder: the same features as training)."""
    return builder.score(conn, spec, scored_date + dt.timedelta(days=1))


def snapshot_id(frame: pl.DataFrame) -> str:
    """Content hash of a feature snapshot (order-sensitive; the builders sort their output)."""
    digest = hashlib.sha256(frame.hash_rows(seed=0).to_numpy().tobytes())
    digest.update(",".join(frame.columns).encode())
    return digest.hexdigest()[:16]


class ModelFeaturesMissingError(ValueError):
    """The scoring rows lack features the model was trained on: the use case's features changed
    (a column renamed or removed) after the champion was trained."""


def check_model_features(model, frame: pl.DataFrame, *, use_case: str, model_version: str) -> None:
    missing = [name for name in model.feature_names if name not in frame.columns]
    if missing:
        raise ModelFeaturesMissingError(
            f"{use_case} {model_version} was trained on feature(s) {missing} that its scoring rows no longer "
            f"have (a feature renamed or removed since it was trained): retrain the use case (`factory run "
            f"--layer assembly`), then promote the new version (`factory promote {use_case}`)")


def key_columns(spec: UseCaseSpec, frame: pl.DataFrame) -> list[str]:
    """Entity, time column and (for multi-horizon forecasts) horizon and target date."""
    keys = [*spec.entity, spec.time_column, *(c for c in TARGET_KEYS if c in frame.columns)]
    return list(dict.fromkeys(keys))


def prediction_rows(spec: UseCaseSpec, frame: pl.DataFrame, predictions: np.ndarray, *, model_version: str,
                    feature_snapshot_id: str, scored_date: dt.date, scored_at: dt.datetime) -> pl.DataFrame:
    """The prediction product rows of one scored day."""
    if spec.template == "forecasting":
        predictions = np.clip(predictions, 0.0, None)  # a forecast of units is never negative
    return frame.select(key_columns(spec, frame)).with_columns(
        pl.Series("prediction", predictions, dtype=pl.Float64),
        pl.lit(model_version, dtype=pl.String).alias("model_version"),
        pl.lit(feature_snapshot_id, dtype=pl.String).alias("feature_snapshot_id"),
        pl.lit(scored_date, dtype=pl.Date).alias("features_as_of"),
        pl.lit(scored_at, dtype=pl.Datetime("us")).alias("scored_at"),
    ).select(pl.lit(scored_date, dtype=pl.Date).alias("scored_date"), pl.all())


def write_partition(conn: duckdb.DuckDBPyConnection, table: str, rows: pl.DataFrame, scored_date: dt.date) -> int:
    """Replace the ``scored_date`` partition of ``table`` with ``rows`` in one transaction."""
    from factory_assets.lib.lake import ddl, in_transaction

    schema = table.split(".")[0]
    ddl(conn, f"create schema if not exists {schema}")
    conn.register("_prediction_rows", rows.to_arrow())

    def replace(c) -> None:  # retried whole when another writer of the lake committed first
        c.execute(f"create table if not exists {table} as select * from _prediction_rows limit 0")
        c.execute(f"delete from {table} where scored_date = ?", [scored_date])
        c.execute(f"insert into {table} by name select * from _prediction_rows")

    try:
        in_transaction(conn, replace)
    finally:
        conn.unregister("_prediction_rows")
    return rows.height


def score_days(conn: duckdb.DuckDBPyConnection, spec: UseCaseSpec, builder: TrainingSetBuilder, model,
               categories: dict[str, list[str]], *,
               model_version: str, table: str, days: list[dt.date], snapshot_folder) -> dict[dt.date, pl.DataFrame]:
    """Score each day's scoring set, keep its feature snapshot (with the predictions) as
    ``snapshot_folder/<day>.parquet``, and replace the day's partition of ``table``.
    Returns the rows written per day."""
    scored_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    snapshot_folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for day in days:
        frame = scoring_set(conn, spec, builder, day)
        check_model_features(model, frame, use_case=spec.name, model_version=model_version)
        predictions = predict(model, categories, frame)
        frame.with_columns(pl.Series("prediction", predictions, dtype=pl.Float64)).write_parquet(
            snapshot_folder / f"{day.isoformat()}.parquet")
        rows = prediction_rows(spec, frame, predictions, model_version=model_version,
                               feature_snapshot_id=snapshot_id(frame), scored_date=day, scored_at=scored_at)
        write_partition(conn, table, rows, day)
        written[day] = rows
    return written


