"""Customer care's training set: customer x weekly cutoff, label = a negative support ticket in the
next ``WINDOW_DAYS`` days. Built only from the factory's public building blocks.

Point in time: features are the core feature set ``customer_activity`` rendered on a spine of
(customer, cutoff), so they see orders and tickets dated on or before the cutoff and nothing
later; the label counts tickets created in ``(cutoff, cutoff + WINDOW_DAYS]``, so a cutoff is only
used once that window is over (``cutoff + WINDOW_DAYS <= as_of - 1``), and ``split_time`` is the
first day the row is complete (``cutoff + WINDOW_DAYS + 1``).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from factory_assets.public import (
    FEATURE_SETS, ORDER_LINES, TICKETS, TrainingSetBuilder, data_window, sql_date, weekly_cutoffs,
)

WINDOW_DAYS = 14
LABEL = "negative_ticket_next_14d"
_ACTIVITY = FEATURE_SETS["customer_activity"]


def _sql(cutoffs: list[dt.date], training: bool) -> str:
    values = ", ".join(f"({sql_date(c)})" for c in cutoffs)
    columns = ", ".join(f"ca.{c}" for c in _ACTIVITY.columns)
    label = (
        f"""exists (select 1 from {TICKETS} t where t.customer_key = s.customer_key and t.is_negative
               and t.created_date > s.feature_date and t.created_date <= s.feature_date + {WINDOW_DAYS}) as {LABEL},
        cast(s.feature_date + {WINDOW_DAYS + 1} as date) as split_time"""
        if training else f"cast(null as boolean) as {LABEL}"
    )
    return f"""
with cutoffs as (select cast(c as date) as feature_date from (values {values}) as v(c)),
spine as (
    -- customers with an order on or before the cutoff; region = that of their latest order by then
    select l.customer_key, c.feature_date, arg_max(l.region, l.ordered_at) as region
    from cutoffs c
    join {ORDER_LINES} l on l.order_date <= c.feature_date
    group by l.customer_key, c.feature_date
),
customer_activity as ({_ACTIVITY.render('spine')})
select
    s.customer_key,
    s.feature_date as cutoff_date,
    s.region,
    {columns},
    {label}
from spine s
join customer_activity ca on ca.customer_key = s.customer_key and ca.feature_date = s.feature_date
order by s.feature_date, s.customer_key
"""


def complaint_training_set(conn, spec, as_of: dt.date) -> pl.DataFrame:
    """Rows for the weekly cutoffs whose label window is over by the end of ``as_of - 1``."""
    first, last = data_window(conn, as_of)
    known_until = as_of - dt.timedelta(days=1)
    cutoffs = [c for c in weekly_cutoffs(first, last) if c + dt.timedelta(days=WINDOW_DAYS) <= known_until]
    if not cutoffs:
        raise ValueError(f"no cutoff has a complete {WINDOW_DAYS}-day ticket window before {as_of}")
    return conn.execute(_sql(cutoffs, training=True)).pl()


def complaint_scoring_set(conn, spec, as_of: dt.date) -> pl.DataFrame:
    """Every customer with an order so far, features at the end of ``as_of - 1`` (label null)."""
    return conn.execute(_sql([as_of - dt.timedelta(days=1)], training=False)).pl()


def complaint_outcome(spec, table: str, scored: dt.date, known_by: dt.date) -> str:
    """Scored rows whose 14-day window is over by ``known_by``, with the outcome as ``actual``."""
    return f"""
        select p.*, exists (select 1 from {TICKETS} t where t.customer_key = p.customer_key and t.is_negative
               and t.created_date > p.cutoff_date and t.created_date <= p.cutoff_date + {WINDOW_DAYS}) as actual
        from {table} p
        where p.scored_date = {sql_date(scored)} and p.cutoff_date + {WINDOW_DAYS} <= {sql_date(known_by)}"""


COMPLAINT_CUTOFFS = TrainingSetBuilder(
    build=complaint_training_set,
    score=complaint_scoring_set,
    outcome=complaint_outcome,
    products=("fct_order_lines", "int_tickets__scored"),
    labels=frozenset({LABEL}),
    description=f"customer x weekly cutoff, label: a negative support ticket in the next {WINDOW_DAYS} days",
)
