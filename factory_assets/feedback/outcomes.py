"""Outcomes joined to predictions: what actually happened, as known at the end of a day.

Pure SQL over the data products (no Dagster). Outcomes arrive through the raw sources like any
other data; each use case's outcome query (its training-set builder's ``outcome``) lines them up
with its prediction product so live model quality can be measured point in time.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.assembly.training_sets import TrainingSetBuilder
from factory_assets.lib.warehouse_sql import table_exists


def labelled_predictions(conn: duckdb.DuckDBPyConnection, spec: UseCaseSpec, builder: TrainingSetBuilder,
                         table: str, scored_date: dt.date, known_by: dt.date) -> pl.DataFrame:
    """Rows of ``table`` scored on ``scored_date`` whose outcome is known by the end of ``known_by``,
    with the outcome as ``actual`` (the use case's own outcome query)."""
    if not table_exists(conn, table):
        return pl.DataFrame({"prediction": [], "actual": []}, schema={"prediction": pl.Float64, "actual": pl.Float64})
    return conn.execute(builder.outcome(spec, table, scored_date, known_by)).pl()


OVERRIDES = "staging.stg_ops__overrides"


def override_feedback(conn: duckdb.DuckDBPyConnection, spec: UseCaseSpec, labelled: pl.DataFrame,
                      known_by: dt.date) -> dict[str, float] | None:
    """Operators' overrides of this use case's predictions, on the labelled rows they concern.

    Human feedback as live quality: how often the operator's own call was right, how often the
    model was right on the same rows (probability >= 0.5), and how often they disagreed. None when
    the use case has no single-column entity or nothing was overridden.
    """
    if len(spec.entity) != 1 or labelled.height == 0 or spec.template != "binary_classification":
        return None
    if not table_exists(conn, OVERRIDES):
        return None
    overrides = conn.execute(
        f"select entity_id, arg_max(override_label, created_at) as override_label from {OVERRIDES} "
        f"where use_case = ? and created_date <= ? group by entity_id", [spec.name, known_by]).pl()
    # overrides name the entity as text; the use case's key may be of any type (integers, say)
    keyed = labelled.with_columns(pl.col(spec.entity[0]).cast(pl.String).alias("__entity_id"))
    rows = keyed.join(overrides.with_columns(pl.col("entity_id").cast(pl.String)), left_on="__entity_id",
                      right_on="entity_id", how="inner")
    if rows.height == 0:
        return None
    actual = rows["actual"].cast(pl.Boolean)
    model_call = rows["prediction"] >= 0.5
    return {
        "rows": float(rows.height),
        "operator_accuracy": float((rows["override_label"] == actual).mean()),
        "model_accuracy": float((model_call == actual).mean()),
        "disagreement_rate": float((model_call != rows["override_label"]).mean()),
    }
