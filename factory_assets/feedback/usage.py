"""Service usage, summarised: who called which service, how much, how fast, how often it failed.

Pure SQL over the staging view of the services' usage log (``staging.stg_services__usage``, the
raw source ``service_usage``). ``write_usage_days`` keeps ``feedback.service_usage_daily``, one row
per day, service and caller; the portfolio reads ``usage_by_service``.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from factory_assets.lib.lake import ddl, in_transaction
from factory_assets.lib.warehouse_sql import table_exists

USAGE_VIEW = "staging.stg_services__usage"
USAGE_TABLE = "feedback.service_usage_daily"

_SUMMARY = f"""
    select called_date as usage_date, service, caller,
           count(*) as calls,
           count(*) filter (where status = 'ok') as ok_calls,
           count(*) filter (where status = 'bad_input') as bad_input_calls,
           count(*) filter (where status = 'refused') as refused_calls,
           count(*) filter (where status not in ('ok', 'bad_input', 'refused')) as failed_calls,
           coalesce(sum(rows_sent) filter (where status = 'ok'), 0) as rows_served,
           quantile_cont(latency_ms, 0.95) filter (where status = 'ok') as p95_latency_ms
    from {USAGE_VIEW}
    where list_contains($days, called_date)
    group by all
    order by usage_date, service, caller
"""


def summarise_usage(conn, days: list[date]) -> pl.DataFrame:
    """One row per (day, service, caller) of ``days``; empty when no usage has landed."""
    if not table_exists(conn, USAGE_VIEW):
        return pl.DataFrame()
    return conn.execute(_SUMMARY, {"days": sorted(days)}).pl()


def write_usage_days(conn, days: list[date]) -> pl.DataFrame:
    """Replace ``days`` in ``feedback.service_usage_daily`` with their summary (one transaction)."""
    summary = summarise_usage(conn, days)
    if not table_exists(conn, USAGE_VIEW):
        return summary
    ddl(conn, "create schema if not exists feedback")
    ddl(conn, f"""create table if not exists {USAGE_TABLE} (
        usage_date date not null, service varchar not null, caller varchar not null, calls bigint not null,
        ok_calls bigint not null, bad_input_calls bigint not null, refused_calls bigint not null,
        failed_calls bigint not null, rows_served bigint not null, p95_latency_ms double)""")

    def replace(conn) -> None:
        conn.execute(f"delete from {USAGE_TABLE} where list_contains($days, usage_date)", {"days": sorted(days)})
        conn.execute(f"insert into {USAGE_TABLE} {_SUMMARY}", {"days": sorted(days)})

    in_transaction(conn, replace)
    return summary


def usage_by_service(conn, days: int = 30) -> dict[str, dict]:
    """Per service, over the latest ``days`` days of landed usage: calls, rows served, distinct
    callers served and the share of calls that were not served."""
    if not table_exists(conn, USAGE_TABLE):
        return {}
    rows = conn.execute(
        f"""select service, sum(calls), sum(rows_served), count(distinct caller) filter (where ok_calls > 0),
                   sum(calls - ok_calls) / sum(calls)
            from {USAGE_TABLE}
            where usage_date > (select max(usage_date) from {USAGE_TABLE}) - to_days(cast($days as integer))
            group by service""", {"days": days}).fetchall()
    return {service: {"calls": int(calls), "rows_served": int(served), "callers": int(callers),
                      "failed_share": float(failed)} for service, calls, served, callers, failed in rows}
