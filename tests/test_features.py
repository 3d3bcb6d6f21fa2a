"""Feature sets and training sets (assembly layer) on a real small warehouse.

The module fixture simulates ~10 weeks of small-scale data and runs the project's real nightly job
(landing -> raw -> dbt data products) once; the tests then build the training sets with DuckDB.
LEAKAGE: every mart row with an event after T is tampered with in a copy of the warehouse, and the
training rows that are complete by T must come out byte-identical.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from factory_assets.assembly import features as F
from factory_assets.raw_material.simulator import SimulationConfig, simulate, write_landing_files
from factory_assets.settings import FactoryPaths

pytestmark = pytest.mark.e2e

START = date(2025, 3, 3)
DAYS = 70
END = START + timedelta(days=DAYS - 1)
T = END - timedelta(days=20)  # leakage boundary
LAG = F.DELIVERY_REPORT_LAG_DAYS


@pytest.fixture(scope="module")
def warehouse_path(tmp_path_factory):
    import dagster as dg

    from factory_assets.definitions import build_definitions
    from factory_assets.resources import FactoryStore

    home = tmp_path_factory.mktemp("features_factory")
    patch = pytest.MonkeyPatch()
    patch.setenv("FACTORY_HOME", str(home))
    patch.setenv("FACTORY_WAREHOUSE_PATH", str(home / "warehouse.duckdb"))
    paths = FactoryPaths(home).create()
    write_landing_files(simulate(SimulationConfig(start_date=START, days=DAYS, order_lines_per_day=120, seed=7)), paths.landing)
    defs = build_definitions(FactoryStore(home=str(home)))
    job = defs.resolve_job_def("supply_chain_nightly")
    tags = {"dagster/asset_partition_range_start": START.isoformat(), "dagster/asset_partition_range_end": END.isoformat()}
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=tags, run_config=quiet, raise_on_error=False)
    assert result.success
    yield paths
    patch.undo()


@pytest.fixture(scope="module")
def conn(warehouse_path):
    from factory_assets.lib.warehouse import open_warehouse

    with open_warehouse(warehouse_path) as c:
        yield c


CUTOFFS = F.weekly_cutoffs(START + timedelta(days=6), END)


def _build_all(c, as_of):
    return {
        "late": F.late_delivery_training_set(c, as_of),
        "demand": F.demand_training_set(c, as_of, horizon=7),
        "propensity": F.propensity_training_set(c, CUTOFFS, data_end=as_of - timedelta(days=1)),
    }


TAMPER_SQL = [
    # order lines ordered on/after T: more units, more delay events, another channel; a third vanish
    f"update marts.fct_order_lines set quantity = quantity * 3, net_amount = net_amount * 3,"
    f" shipment_delay_events = coalesce(shipment_delay_events, 0) + 4, channel = 'tampered' where order_date >= DATE '{T}'",
    f"delete from marts.fct_order_lines where order_date >= DATE '{T}' and hash(order_id) % 3 = 0",
    # deliveries on/after T: outcomes flipped
    f"update marts.fct_order_lines set is_late = not is_late, days_late = days_late + 3 where delivered_date >= DATE '{T}'",
    f"update marts.supplier_reliability set late_lines = lines_delivered - late_lines, on_time_rate = 1 - on_time_rate,"
    f" avg_days_late = avg_days_late + 3 where delivery_date >= DATE '{T}'",
    # demand on/after T
    f"update marts.daily_demand set units = units * 3 + 1, promo_active = not promo_active where demand_date >= DATE '{T}'",
    # weather observed on/after T; holidays not yet published at T (published 14 days ahead)
    f"update marts.calendar set is_storm = not coalesce(is_storm, false), precipitation_mm = coalesce(precipitation_mm, 0) + 50"
    f" where calendar_date >= DATE '{T}'",
    f"update marts.calendar set is_holiday = not is_holiday where calendar_date >= DATE '{T}' + {F.HOLIDAY_PUBLICATION_DAYS + 1}",
    # extra (negative-looking) tickets created after T, copies of the last month's tickets
    f"insert into raw.tickets select ticket_id || '-later', created_at + interval 30 day, customer_id, customer_email,"
    f" order_id, contact_channel, subject, body, _source_file, _checksum, _row_number, _partition_date, _ingested_at"
    f" from raw.tickets where cast(created_at as date) >= DATE '{T}' - 30",
]


def test_leakage_future_data_does_not_change_past_rows(conn, warehouse_path, tmp_path):
    full_as_of = END + timedelta(days=1)
    before_full = _build_all(conn, full_as_of)
    before_t = _build_all(conn, T)

    # tampered inside a transaction that is rolled back: the module's other tests read the lake as built
    conn.execute("BEGIN TRANSACTION")
    try:
        n_tickets = conn.execute("select count(*) from intermediate.int_tickets__scored").fetchone()[0]
        for sql in TAMPER_SQL:
            conn.execute(sql)
        assert conn.execute("select count(*) from intermediate.int_tickets__scored").fetchone()[0] > n_tickets
        after_full = _build_all(conn, full_as_of)
        after_t = _build_all(conn, T)
    finally:
        conn.execute("ROLLBACK")
    assert _build_all(conn, full_as_of)["late"].equals(before_full["late"])  # the rollback restored it

    for name in before_full:
        # the tampering is visible in the rows completed after T ...
        assert not before_full[name].equals(after_full[name]), name
        # ... but not in any row complete by T (features and label known by then)
        past_before = before_full[name].filter(pl.col("split_time") <= T)
        past_after = after_full[name].filter(pl.col("split_time") <= T)
        assert past_before.height > 100, name
        assert past_before.equals(past_after), name
        # a training set built as of T is the same whatever happened later
        assert before_t[name].height > 100 and before_t[name].equals(after_t[name]), name
    # stricter: the FEATURES of every row predicted at/before the start of T are unchanged, even
    # when its label lies after T (prediction time: late = order_date + 2, after dispatch telemetry;
    # demand = the day after the origin; propensity = the day after the cutoff)
    predicted_by_t = {
        "late": (pl.col("prediction_date") <= T, ["is_late", "split_time"]),
        "demand": (pl.col("origin_date") < T, ["units", "split_time"]),
        "propensity": (pl.col("cutoff_date") < T, ["purchased_next_30d", "split_time"]),
    }
    for name, (predicate, label_cols) in predicted_by_t.items():
        b = before_full[name].filter(predicate).drop(label_cols)
        a = after_full[name].filter(predicate).drop(label_cols)
        assert b.height > before_full[name].filter(pl.col("split_time") <= T).height, name
        assert b.equals(a), name
    # rows complete by T are exactly the set built as of T (late delivery and demand)
    assert before_t["late"].equals(before_full["late"].filter(pl.col("split_time") <= T))
    assert before_t["demand"].equals(
        before_full["demand"].filter(pl.col("split_time") <= T).sort("origin_date", "horizon", "product_id", "warehouse_id"))


def test_late_delivery_rows_and_signal(conn):
    as_of = END - timedelta(days=5)
    train = F.late_delivery_training_set(conn, as_of)
    score = F.late_delivery_scoring_set(conn, as_of)
    known, ordered = conn.execute(
        f"select count(*) filter (where delivered_date + {LAG} < DATE '{as_of}'), count(*)"
        f" from marts.fct_order_lines where order_date < DATE '{as_of}'").fetchone()
    assert train.height == known and score.height + train.height == ordered
    assert train["order_line_id"].n_unique() == train.height
    assert set(train["order_line_id"]).isdisjoint(score["order_line_id"])
    assert train["is_late"].null_count() == 0 and score["is_late"].null_count() == score.height
    assert (train["split_time"] <= as_of).all() and (train["order_date"] < as_of).all()
    # shipment telemetry is only used once the dispatch day is over
    undispatched = score.filter(pl.col("order_date") >= as_of - timedelta(days=1))
    assert undispatched.height > 0 and undispatched["shipment_delay_events"].null_count() == undispatched.height
    assert train.columns[:-1] == score.columns  # same features for training and serving
    # signal: late rate higher for unreliable suppliers and for shipments with delay events
    rate = lambda df: df["is_late"].mean()  # noqa: E731
    unreliable = train.filter(pl.col("supplier_on_time_rate_28d") < 0.75)
    reliable = train.filter(pl.col("supplier_on_time_rate_28d") >= 0.9)
    assert unreliable.height > 200 and reliable.height > 200
    assert rate(unreliable) > rate(reliable) + 0.15
    assert rate(train.filter(pl.col("shipment_delay_events") >= 3)) > rate(train.filter(pl.col("shipment_delay_events") == 0)) + 0.1
    assert 0.08 < rate(train) < 0.4


def test_customer_activity_feature_set_matches_mart_and_is_reused(conn):
    # at the last order date the point-in-time feature set reproduces the customer_features mart
    end = F.data_end_date(conn)
    mart = conn.execute(
        "select customer_key, as_of_date as feature_date, recency_days, orders_30d, orders_90d, monetary_90d,"
        " lifetime_orders, tickets_90d, negative_tickets_90d, avg_ticket_sentiment_90d"
        " from marts.customer_features order by customer_key").pl()
    ours = F.build_feature_set(conn, "customer_activity", mart.select("customer_key", "feature_date")).drop("tenure_days")
    assert ours.sort("customer_key").select(mart.columns).equals(mart)
    assert (mart["feature_date"] == end).all()
    # the same set feeds late delivery (customer_* columns) and purchase propensity
    late = F.late_delivery_training_set(conn).filter(pl.col("customer_lifetime_orders") > 0).head(50)
    spine = late.select("customer_key", (pl.col("order_date") - pl.duration(days=1)).alias("feature_date"))
    ca = F.build_feature_set(conn, "customer_activity", spine)
    joined = late.with_columns(feature_date=spine["feature_date"]).join(ca, on=["customer_key", "feature_date"])
    assert joined.height == late.height
    assert (joined["customer_lifetime_orders"] == joined["lifetime_orders"]).all()
    assert (joined["customer_negative_tickets_90d"] == joined["negative_tickets_90d"]).all()


def test_propensity_rows_labels_and_signal(conn):
    train = F.propensity_training_set(conn, CUTOFFS)
    kept = [c for c in CUTOFFS if c + timedelta(days=30) <= END]
    assert sorted(train["cutoff_date"].unique().to_list()) == kept and len(kept) < len(CUTOFFS)
    expected = sum(
        conn.execute(f"select count(distinct customer_key) from marts.fct_order_lines where order_date <= DATE '{c}'").fetchone()[0]
        for c in kept)
    assert train.height == expected
    c = kept[0]
    buyers = {r[0] for r in conn.execute(
        f"select distinct customer_key from marts.fct_order_lines where order_date > DATE '{c}' and order_date <= DATE '{c}' + 30").fetchall()}
    first = train.filter(pl.col("cutoff_date") == c)
    assert set(first.filter(pl.col("purchased_next_30d"))["customer_key"]) == buyers & set(first["customer_key"])
    # signal: recent customers buy again more often
    recent = train.filter(pl.col("recency_days") <= 7)["purchased_next_30d"].mean()
    lapsed = train.filter(pl.col("recency_days") > 30)["purchased_next_30d"].mean()
    assert recent > lapsed + 0.1
    score = F.propensity_scoring_set(conn)
    assert score.height == conn.execute("select count(*) from marts.customer_features").fetchone()[0]
    assert (score["cutoff_date"] == END).all() and score["purchased_next_30d"].null_count() == score.height
    with pytest.raises(ValueError, match="complete 30-day window"):
        F.propensity_training_set(conn, [END])


def test_demand_rows_no_future_lags_and_signal(conn):
    as_of = END - timedelta(days=3)
    train = F.demand_training_set(conn, as_of, horizon=7)
    assert train.select("product_id", "warehouse_id", "origin_date", "horizon").is_duplicated().sum() == 0
    assert sorted(train["horizon"].unique().to_list()) == list(range(1, 8))
    assert (train["target_date"] < as_of).all() and (train["target_date"] - train["origin_date"]).dt.total_days().eq(train["horizon"]).all()
    # target equals the mart's units of the target day
    check = train.sample(200, seed=1).join(
        conn.execute("select product_id, warehouse_id, demand_date as target_date, units as mart_units from marts.daily_demand").pl(),
        on=["product_id", "warehouse_id", "target_date"])
    assert check.height == 200 and (check["units"] == check["mart_units"]).all()
    # lags are the same weekday as the target and never after the origin (k >= horizon)
    assert train.filter(pl.col("target_date") - pl.duration(days=7) > pl.col("origin_date")).height == 0
    assert train["units_lag_7"].null_count() == 0
    # exact rows: per origin, every pair sold on/before the origin, one row per horizon step
    first_date = conn.execute("select min(demand_date) from marts.daily_demand").fetchone()[0]
    expected = conn.execute(f"""
        with pairs as (select product_id, warehouse_id, min(demand_date) as first_sale from marts.daily_demand
                       where units > 0 group by all),
             origins as (select distinct demand_date as o from marts.daily_demand
                         where demand_date >= DATE '{first_date}' + 27 and demand_date < DATE '{as_of}')
        select count(*) from pairs, origins, range(1, 8) h(h)
        where first_sale <= o and o + cast(h as integer) < DATE '{as_of}'""").fetchone()[0]
    assert train.height == expected
    # signal: the seasonal lag and the rolling mean correlate with the target
    corr = train.select(pl.corr("units", "units_mean_28d").alias("m28"), pl.corr("units", "units_lag_7").alias("l7"))
    assert corr["m28"][0] > 0.2 and corr["l7"][0] > 0.05
    score = F.demand_scoring_set(conn)
    assert (score["origin_date"] == END).all() and score["units"].null_count() == score.height
    assert sorted(score["horizon"].unique().to_list()) == list(range(1, 8))


def test_feature_set_registry():
    assert set(F.FEATURE_SETS) >= {"customer_activity", "supplier_performance", "warehouse_load",
                                   "regional_conditions", "demand_history"}
    for fs in F.FEATURE_SETS.values():
        assert fs.version and fs.description and fs.columns and fs.entity and fs.timestamp_column == "feature_date"
        assert "{spine}" in fs.sql


def test_small_feature_sets_on_a_spine(conn):
    day = END - timedelta(days=10)
    for name, _key, values in [
        ("supplier_performance", "supplier_id", "select distinct supplier_id from marts.fct_order_lines"),
        ("warehouse_load", "warehouse_id", "select distinct warehouse_id from marts.fct_order_lines"),
        ("regional_conditions", "region", "select distinct region from marts.calendar"),
    ]:
        spine = conn.execute(f"select *, DATE '{day}' as feature_date from ({values})").pl()
        out = F.build_feature_set(conn, name, spine)
        assert out.height == spine.height and set(F.FEATURE_SETS[name].columns) <= set(out.columns), name
    wl = F.build_feature_set(conn, "warehouse_load", conn.execute(
        f"select distinct warehouse_id, DATE '{day}' as feature_date from marts.fct_order_lines").pl())
    lines = conn.execute(f"select count(*) from marts.fct_order_lines where order_date = DATE '{day}'").fetchone()[0]
    assert wl["warehouse_lines"].sum() == lines


def test_feature_set_contracts_match_the_feature_set_definitions():
    from factory_assets.assembly.features import FEATURE_SETS
    from factory_assets.lib.contracts import feature_contract

    for name, feature_set in FEATURE_SETS.items():
        contract = feature_contract(name)
        assert contract.version == feature_set.version, name
        expected = [*feature_set.entity, feature_set.timestamp_column, *feature_set.columns]
        assert sorted(contract.column_names) == sorted(expected), name
        assert contract.unique_together == ((*feature_set.entity, feature_set.timestamp_column),)
        assert not contract.pii_columns


@pytest.mark.parametrize("name", ["late", "demand", "propensity"])
def test_max_rows_keeps_the_newest_whole_days_in_the_same_order(conn, name):
    full = _build_all(conn, END)[name]
    build = {"late": lambda m: F.late_delivery_training_set(conn, END, max_rows=m),
             "demand": lambda m: F.demand_training_set(conn, END, horizon=7, max_rows=m),
             "propensity": lambda m: F.propensity_training_set(conn, CUTOFFS, data_end=END - timedelta(days=1), max_rows=m)}[name]
    assert build(full.height).equals(full)  # under the limit: the very same frame, same row order
    limit = full.height // 3
    cut = build(limit)
    assert 0 < cut.height <= limit
    first_kept = cut["split_time"].min()
    newest = full.filter(pl.col("split_time") >= first_kept)
    assert cut.equals(newest)  # exactly the rows of the kept days, in the original order
    # whole days, as many as fit: one more day would break the limit
    day_before = full.filter(pl.col("split_time") < first_kept)["split_time"].max()
    assert full.filter(pl.col("split_time") >= day_before).height > limit
    assert build(1).height == full.filter(pl.col("split_time") == full["split_time"].max()).height  # at least a day
