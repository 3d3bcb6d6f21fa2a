"""Feature sets and point-in-time correct training / scoring sets over the data products (marts).

Pure layer: DuckDB SQL in, polars out; no Dagster import. Dagster assets wrap these functions.

Knowledge model (what is known when)
------------------------------------
* Dates are calendar days. A feature set requested for ``feature_date = d`` uses only what is known
  at the END of day ``d``: orders and tickets dated ``<= d``, weather observed ``<= d``, deliveries
  *reported* by ``d`` (the ERP reports a delivery on its delivered date or, for ~25% of lines, the
  day after, so a delivery is only counted as known when ``delivered_date + DELIVERY_REPORT_LAG_DAYS
  <= d``) and holidays up to ``d + HOLIDAY_PUBLICATION_DAYS`` (holidays are published 14 days ahead).
* A training / scoring set built ``as_of`` date ``T`` is built at the START of day ``T``: it knows
  everything dated ``<= T - 1`` (the last completed day) and nothing later.
* Every training row carries ``split_time`` (DATE): the first day at whose start the row is complete
  (features AND label known). Train on ``split_time <= t`` and evaluate on rows whose event time is
  ``>= t`` and the training rows never saw the evaluation period.

Feature sets (``FEATURE_SETS``) are versioned SQL templates over the marts. Each takes a *spine*
(a relation with the entity key(s) and ``feature_date``) and returns one row per spine row; bump the
version whenever the SQL of a set changes meaningfully (models record the versions they used).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import duckdb
import polars as pl

from factory_assets.lib.dbt_macros import render_macro

__all__ = [
    "DELIVERY_REPORT_LAG_DAYS",
    "FEATURE_SETS",
    "HOLIDAY_PUBLICATION_DAYS",
    "FeatureSet",
    "build_feature_set",
    "data_end_date",
    "demand_scoring_set",
    "demand_training_set",
    "feature_set_versions",
    "late_delivery_scoring_set",
    "late_delivery_training_set",
    "propensity_scoring_set",
    "propensity_training_set",
]

DELIVERY_REPORT_LAG_DAYS = 1  # a delivery may be reported the day after delivered_date
HOLIDAY_PUBLICATION_DAYS = 13  # holidays dated [D, D+13] are published on D
PROPENSITY_WINDOW_DAYS = 30

ORDER_LINES = "marts.fct_order_lines"
SUPPLIER_RELIABILITY = "marts.supplier_reliability"
DAILY_DEMAND = "marts.daily_demand"
CALENDAR = "marts.calendar"
TICKETS = "intermediate.int_tickets__scored"


@dataclass(frozen=True)
class FeatureSet:
    """A named, versioned feature set: ``sql`` is a template with a ``{spine}`` placeholder."""

    name: str
    version: str
    entity: tuple[str, ...]
    timestamp_column: str
    description: str
    columns: dict[str, str]
    sql: str = field(repr=False)
    #: The data products the SQL reads (the snapshot's lineage; a training set records their state).
    products: tuple[str, ...] = ()
    #: SQL giving every known entity (the latest snapshot's spine); None: the core's ``ENTITY_SPINES``.
    entities_sql: str | None = field(default=None, repr=False)
    #: SQL giving the last complete day of the set's data; None: the core's ``data_end_date``.
    clock_sql: str | None = field(default=None, repr=False)

    def render(self, spine: str) -> str:
        """The SQL of this set for ``spine`` (a relation name or a parenthesised query)."""
        return self.sql.replace("{spine}", spine)


# --------------------------------------------------------------------------------------------
# Feature set SQL (spine columns: entity key(s) + feature_date DATE; knowledge: end of feature_date)
# --------------------------------------------------------------------------------------------

#: customer_activity's columns; its SQL is the dbt macro the customer_features mart renders too.
_CUSTOMER_ACTIVITY_COLUMNS = {
    "recency_days": "days since the last order (null: no order yet)",
    "tenure_days": "days since the first order (null: no order yet)",
    "orders_30d": "orders in (feature_date - 30, feature_date]",
    "orders_90d": "orders in (feature_date - 90, feature_date]",
    "monetary_90d": "net amount of those 90-day orders",
    "lifetime_orders": "orders up to feature_date",
    "tickets_90d": "support tickets created in the 90 days",
    "negative_tickets_90d": "negative-sentiment tickets in the 90 days",
    "avg_ticket_sentiment_90d": "mean ticket sentiment in the 90 days (0: no ticket)",
}
_CUSTOMER_ACTIVITY_SQL = (
    f"select customer_key, feature_date, {', '.join(_CUSTOMER_ACTIVITY_COLUMNS)}\nfrom (\n"
    + render_macro("customer_activity", "{spine}", ORDER_LINES, TICKETS) + "\n)"
)

_SUPPLIER_PERFORMANCE_SQL = f"""
with req as (select distinct supplier_id, feature_date from {{spine}}),
window_rows as (
    select
        s.supplier_id, s.feature_date,
        sum(r.lines_delivered) as lines_delivered_28d,
        sum(r.late_lines) as late_lines_28d,
        sum(r.avg_days_late * r.lines_delivered) as days_late_28d
    from req s
    join {SUPPLIER_RELIABILITY} r
        on r.supplier_id = s.supplier_id
        and r.delivery_date <= s.feature_date - {DELIVERY_REPORT_LAG_DAYS}
        and r.delivery_date > s.feature_date - {DELIVERY_REPORT_LAG_DAYS} - 28
    group by s.supplier_id, s.feature_date
)
select
    s.supplier_id,
    s.feature_date,
    1 - cast(w.late_lines_28d as double) / w.lines_delivered_28d as supplier_on_time_rate_28d,
    cast(coalesce(w.lines_delivered_28d, 0) as integer) as supplier_lines_delivered_28d,
    cast(w.days_late_28d / w.lines_delivered_28d as double) as supplier_avg_days_late_28d
from req s
left join window_rows w
    on w.supplier_id = s.supplier_id and w.feature_date = s.feature_date
"""

_WAREHOUSE_LOAD_SQL = f"""
with req as (select distinct warehouse_id, feature_date from {{spine}}),
daily as (
    select warehouse_id, order_date, count(*) as lines
    from {ORDER_LINES}
    group by warehouse_id, order_date
),
agg as (
    select
        s.warehouse_id, s.feature_date,
        coalesce(sum(d.lines) filter (where d.order_date = s.feature_date), 0) as lines_day,
        coalesce(sum(d.lines) filter (where d.order_date > s.feature_date - 7), 0) as lines_7d,
        coalesce(sum(d.lines), 0) as lines_28d
    from req s
    left join daily d
        on d.warehouse_id = s.warehouse_id
        and d.order_date <= s.feature_date
        and d.order_date > s.feature_date - 28
    group by s.warehouse_id, s.feature_date
)
select
    warehouse_id,
    feature_date,
    cast(lines_day as integer) as warehouse_lines,
    cast(lines_7d as double) / 7 as warehouse_lines_7d_mean,
    cast(lines_28d as double) / 28 as warehouse_lines_28d_mean,
    case when lines_28d > 0 then lines_day / (cast(lines_28d as double) / 28) end as warehouse_load_ratio
from agg
"""

_REGIONAL_CONDITIONS_SQL = f"""
with req as (select distinct region, feature_date from {{spine}})
select
    s.region,
    s.feature_date,
    coalesce(c.is_holiday, false) as is_holiday,
    isodow(s.feature_date) in (6, 7) as is_weekend,
    c.is_storm,
    c.precipitation_mm,
    c.temperature_c,
    (select count(*) from {CALENDAR} h
        where h.region = s.region and h.is_holiday
          and h.calendar_date > s.feature_date and h.calendar_date <= s.feature_date + 7) as holidays_next_7d,
    (select count(*) from {CALENDAR} w
        where w.region = s.region and w.is_storm
          and w.calendar_date > s.feature_date - 7 and w.calendar_date <= s.feature_date) as storm_days_7d
from req s
left join {CALENDAR} c
    on c.region = s.region and c.calendar_date = s.feature_date
"""

_DEMAND_HISTORY_SQL = f"""
-- spine: product_id, warehouse_id, feature_date (= forecast origin, last completed day)
with req as (select distinct product_id, warehouse_id, feature_date from {{spine}}),
series as (
    select
        product_id, warehouse_id, demand_date, units, promo_active,
        avg(units) over w7 as units_mean_7d,
        avg(units) over w28 as units_mean_28d,
        count(*) filter (where promo_active) over w7 as promo_days_7d
    from {DAILY_DEMAND}
    window
        w7 as (partition by product_id, warehouse_id order by demand_date
               range between interval 6 day preceding and current row),
        w28 as (partition by product_id, warehouse_id order by demand_date
                range between interval 27 day preceding and current row)
)
select
    s.product_id, s.warehouse_id, s.feature_date,
    d.units as units_origin,
    d.units_mean_7d,
    d.units_mean_28d,
    d.promo_active as promo_active_origin,
    cast(d.promo_days_7d as integer) as promo_days_7d
from req s
left join series d
    on d.product_id = s.product_id and d.warehouse_id = s.warehouse_id and d.demand_date = s.feature_date
"""

FEATURE_SETS: dict[str, FeatureSet] = {
    fs.name: fs
    for fs in (
        FeatureSet(
            name="customer_activity",
            products=("fct_order_lines", "int_tickets__scored"),
            version="1.0.0",
            entity=("customer_key",),
            timestamp_column="feature_date",
            description="Recency / frequency / monetary value and support-ticket sentiment of a customer, "
            "from orders and tickets dated on or before feature_date (windows end on feature_date).",
            columns=_CUSTOMER_ACTIVITY_COLUMNS,
            sql=_CUSTOMER_ACTIVITY_SQL,
        ),
        FeatureSet(
            name="supplier_performance",
            products=("supplier_reliability",),
            version="1.0.0",
            entity=("supplier_id",),
            timestamp_column="feature_date",
            description="A supplier's delivery performance over the 28 delivery days known at feature_date "
            f"(delivered_date <= feature_date - {DELIVERY_REPORT_LAG_DAYS}: ERP report lag).",
            columns={
                "supplier_on_time_rate_28d": "share of delivered lines on time (null: no delivery known)",
                "supplier_lines_delivered_28d": "lines delivered in the window",
                "supplier_avg_days_late_28d": "mean days late over delivered lines (on time = 0)",
            },
            sql=_SUPPLIER_PERFORMANCE_SQL,
        ),
        FeatureSet(
            name="warehouse_load",
            products=("fct_order_lines",),
            version="1.0.0",
            entity=("warehouse_id",),
            timestamp_column="feature_date",
            description="Order lines a warehouse received on feature_date (complete at the end of the day) "
            "and over the 7 / 28 days ending that day.",
            columns={
                "warehouse_lines": "order lines that day",
                "warehouse_lines_7d_mean": "mean lines per day over the 7 days ending that day",
                "warehouse_lines_28d_mean": "mean lines per day over the 28 days ending that day",
                "warehouse_load_ratio": "lines that day / 28-day mean",
            },
            sql=_WAREHOUSE_LOAD_SQL,
        ),
        FeatureSet(
            name="regional_conditions",
            products=("calendar",),
            version="1.0.0",
            entity=("region",),
            timestamp_column="feature_date",
            description="Calendar and observed weather of a region on feature_date; holidays ahead are "
            f"published {HOLIDAY_PUBLICATION_DAYS + 1} days in advance, weather only once observed.",
            columns={
                "is_holiday": "public / regional holiday that day",
                "is_weekend": "Saturday or Sunday",
                "is_storm": "storm observed that day",
                "precipitation_mm": "observed precipitation",
                "temperature_c": "observed temperature",
                "holidays_next_7d": "holidays in (feature_date, feature_date + 7] (published)",
                "storm_days_7d": "storm days in the 7 days ending feature_date",
            },
            sql=_REGIONAL_CONDITIONS_SQL,
        ),
        FeatureSet(
            name="demand_history",
            products=("daily_demand",),
            version="1.0.0",
            entity=("product_id", "warehouse_id"),
            timestamp_column="feature_date",
            description="Daily unit demand of a product at a warehouse up to the forecast origin "
            "(feature_date): the origin's units, rolling 7/28-day means and promotion activity. "
            "demand_training_set adds per-horizon lags (target_date - 7/14/21/28, never after the origin) "
            "and the target day's calendar.",
            columns={
                "units_origin": "units on the origin day",
                "units_mean_7d": "mean daily units over the 7 days ending at the origin",
                "units_mean_28d": "mean daily units over the 28 days ending at the origin",
                "promo_active_origin": "a promotion discount was seen on the origin day",
                "promo_days_7d": "days with a promotion in the 7 days ending at the origin",
            },
            sql=_DEMAND_HISTORY_SQL,
        ),
    )
}


#: Where the entities of each feature set come from, for the latest snapshot.
ENTITY_SPINES = {
    ("customer_key",): f"select distinct customer_key from {ORDER_LINES}",
    ("supplier_id",): f"select distinct supplier_id from {ORDER_LINES}",
    ("warehouse_id",): f"select distinct warehouse_id from {ORDER_LINES}",
    ("region",): f"select distinct region from {CALENDAR}",
    ("product_id", "warehouse_id"): f"select distinct product_id, warehouse_id from {DAILY_DEMAND}",
}


def latest_snapshot_sql(feature_set: FeatureSet | str, as_of: dt.date) -> str:
    """The SQL of a feature set for every known entity as of the end of ``as_of``."""
    if isinstance(feature_set, str):
        feature_set = FEATURE_SETS[feature_set]
    entities = feature_set.entities_sql or ENTITY_SPINES[feature_set.entity]
    spine = f"(select *, DATE '{as_of.isoformat()}' as feature_date from ({entities}))"
    return feature_set.render(spine)


def feature_set_end_date(conn: duckdb.DuckDBPyConnection, feature_set: FeatureSet) -> dt.date | None:
    """The last complete day of a feature set's own data (its snapshot's "today")."""
    if feature_set.clock_sql is None:
        return data_end_date(conn)
    value = conn.execute(feature_set.clock_sql).fetchone()[0]
    return value.date() if isinstance(value, dt.datetime) else value


def feature_set_versions(names: Iterable[str], known: dict[str, FeatureSet] | None = None) -> dict[str, str]:
    """``{name: version}`` of the given feature sets (for lineage / model metadata)."""
    known = FEATURE_SETS if known is None else known
    return {n: known[n].version for n in names}


def _d(value: dt.date) -> str:
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        raise TypeError(f"expected a date, got {value!r}")
    return f"DATE '{value.isoformat()}'"


def _cte(name: str, spine: str) -> str:
    return f"{name} as ({FEATURE_SETS[name].render(spine)})"


def build_feature_set(conn: duckdb.DuckDBPyConnection, name: str, spine: pl.DataFrame | str) -> pl.DataFrame:
    """Materialise one feature set for a spine (polars frame or SQL relation with entity + feature_date)."""
    fs = FEATURE_SETS[name]
    if isinstance(spine, pl.DataFrame):
        conn.register("_fs_spine", spine.to_arrow())
        try:
            return conn.execute(f"{fs.render('_fs_spine')} order by all").pl()
        finally:
            conn.unregister("_fs_spine")
    return conn.execute(f"{fs.render(spine)} order by all").pl()


def data_end_date(conn: duckdb.DuckDBPyConnection) -> dt.date:
    """The last order date in the warehouse (the last complete day of data)."""
    return conn.execute(f"select max(order_date) from {ORDER_LINES}").fetchone()[0]


def _default_as_of(conn, as_of):
    return as_of if as_of is not None else data_end_date(conn) + dt.timedelta(days=1)


# --------------------------------------------------------------------------------------------
# Late delivery (entity order_line_id; prediction after dispatch, at the start of order_date + 2)
# --------------------------------------------------------------------------------------------

def _late_delivery_sql(lines_where: str, as_of: dt.date, training: bool) -> str:
    a = _d(as_of)
    lag = DELIVERY_REPORT_LAG_DAYS
    lines = f"""
        select l.*, n.lines_in_order
        from {ORDER_LINES} l
        join (select order_id, count(*) as lines_in_order from {ORDER_LINES}
              where order_date < {a} group by order_id) n on n.order_id = l.order_id
        where l.order_date < {a} and {lines_where}
    """
    label = (
        f"l.is_late, cast(l.delivered_date + {1 + lag} as date) as split_time"
        if training else "cast(null as boolean) as is_late"
    )
    # shipment telemetry arrives on the dispatch day (order_date + 1): known once that day is over
    delay = (
        "cast(coalesce(l.shipment_delay_events, 0) as integer)" if training
        else f"case when l.order_date + 1 < {a} then cast(coalesce(l.shipment_delay_events, 0) as integer) end"
    )
    return f"""
with lines as ({lines}),
cust_spine as (select distinct customer_key, cast(order_date - 1 as date) as feature_date from lines),
supp_spine as (select distinct supplier_id, cast(order_date - 1 as date) as feature_date from lines),
wh_spine as (select distinct warehouse_id, order_date as feature_date from lines),
{_cte('customer_activity', 'cust_spine')},
{_cte('supplier_performance', 'supp_spine')},
{_cte('warehouse_load', 'wh_spine')},
windows as (
    -- the promised window (order day + 1 .. promised date) in the customer's region: holidays are
    -- published two weeks ahead; weather is only known once observed (order day and dispatch day)
    select
        w.order_date, w.promised_date, w.region,
        count(*) filter (where c.is_holiday and c.calendar_date > w.order_date) as holidays_in_window,
        count(*) filter (where c.is_weekend and c.calendar_date > w.order_date) as weekend_days_in_window,
        coalesce(bool_or(c.is_storm) filter (where c.calendar_date = w.order_date), false) as storm_order_day,
        coalesce(bool_or(c.is_storm) filter (where c.calendar_date = w.order_date + 1), false) as storm_dispatch_day,
        sum(c.precipitation_mm) filter (where c.calendar_date <= w.order_date + 1) as precipitation_mm_order_dispatch
    from (select distinct order_date, promised_date, region from lines) w
    left join {CALENDAR} c
        on c.region = w.region and c.calendar_date between w.order_date and w.promised_date
    group by w.order_date, w.promised_date, w.region
)
select
    l.order_line_id,
    l.ordered_at,
    l.order_date,
    cast(l.order_date + 2 as date) as prediction_date,
    l.customer_key, l.supplier_id, l.warehouse_id, l.region, l.channel, l.product_id,
    l.quantity, l.net_amount, l.discount_pct,
    cast(l.lines_in_order as integer) as lines_in_order,
    cast(date_diff('day', l.order_date, l.promised_date) as integer) as lead_days,
    cast(isodow(l.order_date) as integer) as order_day_of_week,
    {delay} as shipment_delay_events,
    sp.supplier_on_time_rate_28d, sp.supplier_lines_delivered_28d, sp.supplier_avg_days_late_28d,
    wl.warehouse_lines, wl.warehouse_lines_7d_mean, wl.warehouse_lines_28d_mean, wl.warehouse_load_ratio,
    cast(coalesce(win.holidays_in_window, 0) as integer) as holidays_in_window,
    cast(coalesce(win.weekend_days_in_window, 0) as integer) as weekend_days_in_window,
    coalesce(win.storm_order_day, false) as storm_order_day,
    coalesce(win.storm_dispatch_day, false) as storm_dispatch_day,
    win.precipitation_mm_order_dispatch,
    ca.recency_days as customer_recency_days,
    ca.lifetime_orders as customer_lifetime_orders,
    ca.orders_90d as customer_orders_90d,
    ca.tickets_90d as customer_tickets_90d,
    ca.negative_tickets_90d as customer_negative_tickets_90d,
    ca.avg_ticket_sentiment_90d as customer_avg_ticket_sentiment_90d,
    {label}
from lines l
left join customer_activity ca
    on ca.customer_key = l.customer_key and ca.feature_date = l.order_date - 1
left join supplier_performance sp
    on sp.supplier_id = l.supplier_id and sp.feature_date = l.order_date - 1
left join warehouse_load wl
    on wl.warehouse_id = l.warehouse_id and wl.feature_date = l.order_date
left join windows win
    on win.order_date = l.order_date and win.promised_date = l.promised_date and win.region = l.region
order by l.ordered_at, l.order_line_id
"""


def _first_kept_day_sql(split_times: str, max_rows: int) -> str:
    """The first ``split_time`` day to keep of the rows ``split_times`` yields (one ``split_time`` per
    row): the newest whole days that fit in ``max_rows`` rows, and always at least the newest day."""
    return f"""
with per_day as (select split_time, count(*) as n from ({split_times}) group by split_time),
newest as (select split_time, sum(n) over (order by split_time desc) as newer_rows from per_day)
select min(split_time) from newest
where newer_rows <= {int(max_rows)} or split_time = (select max(split_time) from per_day)"""


def newest_days(sql: str, max_rows: int | None, order_by: str) -> str:
    """``sql`` (a training set with ``split_time``) cut to its newest whole ``split_time`` days that
    fit in ``max_rows`` rows (always at least the newest day), in the same ``order_by``.

    Bounds a training set's memory and training time however long the history grows: DuckDB makes
    the cut before a row reaches Python. Whole days keep the set deterministic and the time split
    intact (the newest days hold the validation and test windows). ``None``: no cut. The features
    are still computed for every row before the cut; a builder whose rows and days are known
    without its features cuts first instead (``late_delivery_training_set``)."""
    if max_rows is None:
        return sql
    return f"""
with training_rows as materialized ({sql})
select * from training_rows
where split_time >= ({_first_kept_day_sql("select split_time from training_rows", max_rows)})
order by {order_by}"""


def late_delivery_training_set(conn: duckdb.DuckDBPyConnection, as_of: dt.date | None = None,
                               max_rows: int | None = None) -> pl.DataFrame:
    """One row per order line ordered before ``as_of`` whose delivery is known at the start of ``as_of``.

    Outcome known: ``delivered_date + DELIVERY_REPORT_LAG_DAYS < as_of``. Features are as of the
    order (customer / supplier history up to the day before the order date, the warehouse's lines
    of the order day, holidays in the promised window, storms of the order and dispatch days, the
    shipment's delay events from dispatch telemetry). ``split_time`` = the day the outcome is known.
    """
    as_of = _default_as_of(conn, as_of)
    where = f"l.delivered_date is not null and l.delivered_date + {DELIVERY_REPORT_LAG_DAYS} < {_d(as_of)}"
    if max_rows is not None:
        # one row per known line, so the kept days are counted on the lines alone, before any
        # feature is joined: the features are then computed for the kept rows only, and the time
        # stays bounded by max_rows however long the history grows (the same rows as newest_days)
        split_time = f"l.delivered_date + {1 + DELIVERY_REPORT_LAG_DAYS}"
        first_kept = conn.execute(_first_kept_day_sql(
            f"select cast({split_time} as date) as split_time from {ORDER_LINES} l "
            f"where l.order_date < {_d(as_of)} and {where}", max_rows)).fetchone()[0]
        if first_kept is not None:
            where += f" and {split_time} >= {_d(first_kept)}"
    return conn.execute(_late_delivery_sql(where, as_of, training=True)).pl()


def late_delivery_scoring_set(conn: duckdb.DuckDBPyConnection, as_of: dt.date | None = None) -> pl.DataFrame:
    """Open order lines at the start of ``as_of`` (ordered before, delivery not known yet), same features.

    ``is_late`` is null; ``shipment_delay_events`` is null for lines not dispatched by ``as_of - 1``.
    Default ``as_of``: the day after the last order date.
    """
    as_of = _default_as_of(conn, as_of)
    where = f"(l.delivered_date is null or l.delivered_date + {DELIVERY_REPORT_LAG_DAYS} >= {_d(as_of)})"
    return conn.execute(_late_delivery_sql(where, as_of, training=False)).pl()


# --------------------------------------------------------------------------------------------
# Demand forecast (direct multi-horizon: one row per pair x origin x horizon step)
# --------------------------------------------------------------------------------------------

DEMAND_LAGS = (7, 14, 21, 28)


def _demand_sql(origins_where: str, as_of: dt.date, horizon: int, training: bool, min_history_days: int) -> str:
    a = _d(as_of)
    lag_cols = ",\n    ".join(
        f"case when o.target_date - {k} <= o.origin_date then l{k}.units end as units_lag_{k}" for k in DEMAND_LAGS
    )
    lag_joins = "\n".join(
        f"left join {DAILY_DEMAND} l{k} on l{k}.product_id = o.product_id and l{k}.warehouse_id = o.warehouse_id "
        f"and l{k}.demand_date = o.target_date - {k}"
        for k in DEMAND_LAGS
    )
    target = (
        "t.units, cast(o.target_date + 1 as date) as split_time" if training else "cast(null as integer) as units"
    )
    target_join = (
        f"join {DAILY_DEMAND} t on t.product_id = o.product_id and t.warehouse_id = o.warehouse_id "
        f"and t.demand_date = o.target_date" if training else ""
    )
    return f"""
with known as (select * from {DAILY_DEMAND} where demand_date < {a}),
bounds as (select min(demand_date) as first_date from known),
pairs as (
    -- a pair enters the data set once it has sold (no knowledge of pairs that only sell later)
    select product_id, warehouse_id, min(demand_date) as first_sale_date
    from known where units > 0 group by product_id, warehouse_id
),
wh_daily as (
    select warehouse_id, region, order_date, count(*) as lines
    from {ORDER_LINES} where order_date < {a} group by all
),
origin_days as (
    select distinct demand_date as origin_date from known, bounds
    where demand_date >= first_date + {min_history_days - 1} and ({origins_where})
),
origins as (
    select p.product_id, p.warehouse_id, d.origin_date, cast(h.h as integer) as horizon,
        cast(d.origin_date + cast(h.h as integer) as date) as target_date
    from pairs p
    cross join origin_days d
    cross join range(1, {horizon + 1}) as h(h)
    where p.first_sale_date <= d.origin_date
      {"and d.origin_date + cast(h.h as integer) < " + a if training else ""}
),
spine as (select distinct product_id, warehouse_id, origin_date as feature_date from origins),
warehouse_region as (
    -- the region a warehouse mostly served over the 28 days up to the origin (point in time)
    select w.warehouse_id, o.origin_date, arg_max(w.region, w.lines) as region
    from (select distinct warehouse_id, origin_date from origins) o
    join (select warehouse_id, region, order_date, sum(lines) over (
              partition by warehouse_id, region order by order_date
              range between interval 27 day preceding and current row) as lines
          from wh_daily) w
        on w.warehouse_id = o.warehouse_id and w.order_date <= o.origin_date
        and w.order_date > o.origin_date - 28
    group by w.warehouse_id, o.origin_date
),
{_cte('demand_history', 'spine')}
select
    o.product_id, o.warehouse_id, o.origin_date, o.horizon, o.target_date,
    wr.region,
    dh.units_origin, dh.units_mean_7d, dh.units_mean_28d, dh.promo_active_origin, dh.promo_days_7d,
    {lag_cols},
    cast(isodow(o.target_date) as integer) as target_day_of_week,
    isodow(o.target_date) in (6, 7) as target_is_weekend,
    coalesce(cal.is_holiday, false) as target_is_holiday,
    {target}
from origins o
left join demand_history dh
    on dh.product_id = o.product_id and dh.warehouse_id = o.warehouse_id and dh.feature_date = o.origin_date
left join warehouse_region wr on wr.warehouse_id = o.warehouse_id and wr.origin_date = o.origin_date
left join {CALENDAR} cal on cal.region = wr.region and cal.calendar_date = o.target_date
{lag_joins}
{target_join}
order by o.origin_date, o.horizon, o.product_id, o.warehouse_id
"""


def demand_training_set(
    conn: duckdb.DuckDBPyConnection,
    as_of: dt.date | None = None,
    horizon: int = 7,
    min_history_days: int = 28,
    origin_every_days: int = 1,
    max_rows: int | None = None,
) -> pl.DataFrame:
    """Rows (product_id, warehouse_id, origin_date, horizon 1..h) whose target day is before ``as_of``.

    Features are known at the end of ``origin_date``; ``units_lag_k`` is the demand on
    ``target_date - k`` (same weekday as the target) and null when that day is after the origin
    (k < horizon step), so no future value leaks. ``units`` (target) = demand on ``target_date``.
    The target day's holiday flag is from the published holiday calendar (horizon <= 13).
    """
    if not 1 <= horizon <= HOLIDAY_PUBLICATION_DAYS:
        raise ValueError(f"horizon must be in 1..{HOLIDAY_PUBLICATION_DAYS}, got {horizon}")
    as_of = _default_as_of(conn, as_of)
    where = f"date_diff('day', first_date, demand_date) % {int(origin_every_days)} = 0"
    return conn.execute(newest_days(_demand_sql(where, as_of, horizon, True, min_history_days), max_rows,
                                    "origin_date, horizon, product_id, warehouse_id")).pl()


def demand_scoring_set(conn: duckdb.DuckDBPyConnection, as_of: dt.date | None = None, horizon: int = 7) -> pl.DataFrame:
    """Forecast rows for origin ``as_of - 1`` (the last complete day) and horizons 1..h (``units`` null)."""
    if not 1 <= horizon <= HOLIDAY_PUBLICATION_DAYS:
        raise ValueError(f"horizon must be in 1..{HOLIDAY_PUBLICATION_DAYS}, got {horizon}")
    as_of = _default_as_of(conn, as_of)
    where = f"demand_date = {_d(as_of)} - 1"
    return conn.execute(_demand_sql(where, as_of, horizon, False, 1)).pl()


# --------------------------------------------------------------------------------------------
# Purchase propensity (customer x cutoff; label: any order in (cutoff, cutoff + 30])
# --------------------------------------------------------------------------------------------

_ACTIVITY_COLUMNS = list(FEATURE_SETS["customer_activity"].columns)


def _propensity_sql(cutoffs: Sequence[dt.date], training: bool) -> str:
    values = ", ".join(f"({_d(c)})" for c in cutoffs)
    w = PROPENSITY_WINDOW_DAYS
    label = (
        f"""exists (select 1 from {ORDER_LINES} f where f.customer_key = s.customer_key
               and f.order_date > s.feature_date and f.order_date <= s.feature_date + {w}) as purchased_next_30d,
        cast(s.feature_date + {w + 1} as date) as split_time"""
        if training else "cast(null as boolean) as purchased_next_30d"
    )
    cols = ", ".join(f"ca.{c}" for c in _ACTIVITY_COLUMNS)
    return f"""
with cutoffs as (select cast(c as date) as feature_date from (values {values}) as v(c)),
spine as (
    -- customers with at least one order on or before the cutoff
    select l.customer_key, c.feature_date, arg_max(l.region, l.ordered_at) as region
    from cutoffs c
    join {ORDER_LINES} l on l.order_date <= c.feature_date
    group by l.customer_key, c.feature_date
),
{_cte('customer_activity', 'spine')}
select
    s.customer_key,
    s.feature_date as cutoff_date,
    s.region,
    {cols},
    {label}
from spine s
join customer_activity ca on ca.customer_key = s.customer_key and ca.feature_date = s.feature_date
order by s.feature_date, s.customer_key
"""


def propensity_training_set(
    conn: duckdb.DuckDBPyConnection, cutoffs: Iterable[dt.date], data_end: dt.date | None = None,
    max_rows: int | None = None,
) -> pl.DataFrame:
    """customer x cutoff rows: customer_activity at the end of the cutoff day, label
    ``purchased_next_30d`` = any order in (cutoff, cutoff + 30]. Cutoffs whose window has not fully
    elapsed by ``data_end`` (default: the last order date) are dropped."""
    end = data_end or data_end_date(conn)
    kept = sorted({c for c in cutoffs if c + dt.timedelta(days=PROPENSITY_WINDOW_DAYS) <= end})
    if not kept:
        raise ValueError(f"no cutoff has a complete {PROPENSITY_WINDOW_DAYS}-day window by {end}")
    return conn.execute(newest_days(_propensity_sql(kept, training=True), max_rows, "cutoff_date, customer_key")).pl()


def propensity_scoring_set(conn: duckdb.DuckDBPyConnection, as_of: dt.date | None = None) -> pl.DataFrame:
    """Every customer with an order so far, features at the end of ``as_of - 1`` (label null).
    Default ``as_of``: the day after the last order date (cutoff = last complete day)."""
    as_of = _default_as_of(conn, as_of)
    return conn.execute(_propensity_sql([as_of - dt.timedelta(days=1)], training=False)).pl()


def weekly_cutoffs(first: dt.date, last: dt.date, every_days: int = 7) -> list[dt.date]:
    """Cutoff dates first, first + every_days, ... <= last."""
    out, d = [], first
    while d <= last:
        out.append(d)
        d += dt.timedelta(days=every_days)
    return out
