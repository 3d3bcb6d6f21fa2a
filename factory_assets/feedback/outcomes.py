"""Outcomes joined to predictions: what actually happened, as known at the end of a day.

Pure SQL over the data products (no Dagster). Actual deliveries, realised demand and purchases
arrive through the raw sources like any other data; these queries line them up with the
prediction products so live model quality can be measured point in time.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from factory_assets.assembly import features as fs
from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.lib.warehouse_sql import table_exists


def label_delay_days(spec: UseCaseSpec) -> int:
    """Days between scoring and the day (nearly) all of a batch's outcomes are known."""
    if spec.training_set == "order_lines":
        return spec.horizon_days + 2  # promised within 5 days of the order; most late lines arrive 1-2 days after
    return spec.horizon_days  # demand: the last target day; propensity: the end of the 30-day window


def _d(day: dt.date) -> str:
    return f"DATE '{day.isoformat()}'"


def outcome_sql(spec: UseCaseSpec, table: str, scored_date: dt.date, known_by: dt.date) -> str:
    """Rows of ``table`` scored on ``scored_date`` whose outcome is known at the end of ``known_by``,
    with the outcome as ``actual``."""
    s, k = _d(scored_date), _d(known_by)
    if spec.training_set == "order_lines":
        return f"""
            select p.*, f.is_late as actual from {table} p
            join {fs.ORDER_LINES} f on f.order_line_id = p.order_line_id
            where p.scored_date = {s} and f.delivered_date is not null
              and f.delivered_date + {fs.DELIVERY_REPORT_LAG_DAYS} <= {k}"""
    if spec.training_set == "product_warehouse_days":
        return f"""
            select p.*, cast(coalesce(d.units, 0) as double) as actual from {table} p
            left join {fs.DAILY_DEMAND} d on d.product_id = p.product_id and d.warehouse_id = p.warehouse_id
                and d.demand_date = p.target_date
            where p.scored_date = {s} and p.target_date <= {k}"""
    if spec.training_set == "customer_cutoffs":
        w = fs.PROPENSITY_WINDOW_DAYS
        return f"""
            select p.*, exists (select 1 from {fs.ORDER_LINES} f where f.customer_key = p.customer_key
                   and f.order_date > p.cutoff_date and f.order_date <= p.cutoff_date + {w}) as actual
            from {table} p
            where p.scored_date = {s} and p.cutoff_date + {w} <= {k}"""
    raise ValueError(f"no outcome query for training set {spec.training_set!r}")


def labelled_predictions(conn: duckdb.DuckDBPyConnection, spec: UseCaseSpec, table: str,
                         scored_date: dt.date, known_by: dt.date) -> pl.DataFrame:
    if not table_exists(conn, table):
        return pl.DataFrame({"prediction": [], "actual": []}, schema={"prediction": pl.Float64, "actual": pl.Float64})
    return conn.execute(outcome_sql(spec, table, scored_date, known_by)).pl()


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
    rows = labelled.join(overrides, left_on=spec.entity[0], right_on="entity_id", how="inner")
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
