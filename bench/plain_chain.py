"""The nightly chain's work done by a plain script: the baseline of the orchestration benchmark.

The same functions the assets wrap, called directly with no Dagster run, no events, no metadata:
ingestion of every landing file (same parsing, contract validation, raw store), the same dbt
project built by dbt's Python entry point in this process (same SQL and tests on the same DuckDB
file, the same kept parse), the products' contract and freshness checks, the feature-set
snapshots with their contract checks, the same training (templates, every engine a use case
names, drift reference, registry, promotion gate), scoring by the champions, and the same
Evidently drift and quality computation per use case and day.
Only the glue an asset adds (metadata, logs, check events) is left out.
"""

from __future__ import annotations

import datetime as dt
import json
import os

import polars as pl


def ingest(store, days: set[dt.date]) -> int:
    from factory_assets.raw_material.ingest import ingest_partitions
    from factory_assets.settings import RAW_SOURCES

    with store.warehouse() as conn:
        return sum(o.rows for source in RAW_SOURCES for o in ingest_partitions(conn, store.paths, source, days)
                   if o.status == "ingested")


def build_products(store, operations: bool = False) -> None:
    """dbt build of the products (or, after scoring, of the operations models that read predictions)."""
    from factory_assets.lib.prediction_tables import ensure_prediction_tables
    from factory_assets.processing.dbt_cli import (ORCHESTRATED_BUILD_EXCLUDES, build_args, keep_partial_parse,
                                                    partial_parse_args, partial_parse_file, run_build)
    from factory_assets.processing.dbt_manifest import load_manifest
    from factory_assets.raw_material.ingest import ensure_raw_tables
    from factory_assets.settings import DBT_PROJECT_DIR, RAW_SOURCES

    with store.warehouse() as conn:
        ensure_raw_tables(conn, list(RAW_SOURCES))
        ensure_prediction_tables(conn)
    os.environ["FACTORY_WAREHOUSE_PATH"] = str(store.paths.warehouse)
    target = store.paths.home / "plain_dbt_target"  # not the project's target/: its manifest is the code location's
    parsed = partial_parse_file(store.paths.dbt_state, None)
    args = ["build", "--select" if operations else "--exclude", "path:models/operations", *ORCHESTRATED_BUILD_EXCLUDES,
            *partial_parse_args(parsed)]
    build = run_build(build_args(args, DBT_PROJECT_DIR, DBT_PROJECT_DIR, target), target, load_manifest())
    keep_partial_parse(target, parsed)
    if build.returncode != 0:
        raise RuntimeError(f"{build.summary()}; see {build.log_path}")


def check_products(store) -> bool:
    from factory_assets.lib.contract_checks import evaluate_contract, evaluate_freshness
    from factory_assets.lib.contracts import product_contract, product_contract_names

    with store.warehouse(read_only=True) as conn:
        reports = [evaluate_contract(conn, product_contract(n)) for n in product_contract_names()]
        for name in product_contract_names():
            evaluate_freshness(conn, product_contract(name))
    return all(r.passed for r in reports)


def build_feature_sets(store) -> bool:
    from factory_assets.assembly import features as fs
    from factory_assets.lib.contract_checks import evaluate_contract
    from factory_assets.lib.contracts import feature_contract

    passed = True
    with store.warehouse() as conn:
        as_of = fs.data_end_date(conn)
        conn.execute("create schema if not exists features")
        for name in fs.FEATURE_SETS:
            conn.execute(f"create or replace table features.{name} as {fs.latest_snapshot_sql(name, as_of)}")
            passed &= evaluate_contract(conn, feature_contract(name), f"features.{name}").passed
    return passed


def train(store, as_of: dt.date) -> dict[str, str]:
    """Every use case: training set, each engine fitted, the best registered with its drift
    reference as challenger, then the gate against the champion on the same holdout."""
    from factory_assets.assembly.features import feature_set_versions
    from factory_assets.assembly.lifecycle import promotion_gate, train_and_register
    from factory_assets.assembly.specs import USE_CASES_DIR, load_use_cases
    from factory_assets.assembly.training_sets import resolve_training_set
    from factory_assets.governance.facts import approvals_log, current_policy

    policy, registry, decisions = current_policy(), store.registry(), {}
    for spec in load_use_cases(USE_CASES_DIR).values():
        builder = resolve_training_set(spec)
        with store.warehouse(read_only=True) as conn:
            frame = builder.build(conn, spec, as_of)
            train_and_register(spec, frame, {"as_of": as_of.isoformat()}, builder=builder, registry=registry,
                               policy=policy, conn=conn, feature_set_versions=feature_set_versions(spec.feature_sets),
                               reason="plain chain")
        frame.write_parquet(store.paths.artifacts / f"plain_{spec.name}_training_set.parquet")
        gate = promotion_gate(spec, frame, registry=registry, approvals=approvals_log(store.paths.artifacts),
                              policy=policy)
        decisions[spec.name] = gate.reason
    return decisions


def _parquet(frame: pl.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def score_and_monitor(store, days: list[dt.date]) -> dict[str, float]:
    """Champion scores of each day into the prediction products, then drift and quality per day;
    the drift share per ``use_case/day`` scored (a use case without a champion scores nothing)."""
    from factory_assets.assembly.registry import RegistryKeyError
    from factory_assets.assembly.specs import USE_CASES_DIR, load_use_cases
    from factory_assets.assembly.training_sets import resolve_training_set
    from factory_assets.distribution import scoring
    from factory_assets.feedback import monitoring as mon
    from factory_assets.feedback.assets import monitor_day
    from factory_assets.lib.contract_checks import evaluate_contract
    from factory_assets.lib.contracts import prediction_contract

    registry, shares = store.registry(), {}
    config = mon.monitoring_config()
    for spec in load_use_cases(USE_CASES_DIR).values():
        builder = resolve_training_set(spec)
        try:
            champion = registry.get(spec.name, "champion")
        except RegistryKeyError:
            continue
        contract = prediction_contract(spec.name)
        model = registry.load_model(spec.name, champion.version)
        categories = champion.manifest.get("extra", {}).get("categories", {})
        with store.warehouse() as conn:
            scoring.score_days(conn, spec, builder, model, categories, model_version=champion.version,
                               table=contract.physical_name, days=days,
                               snapshot_folder=store.paths.artifacts / "feature_snapshots" / spec.name)
            evaluate_contract(conn, contract)
        with store.warehouse(read_only=True) as conn:
            for day in days:
                metadata = monitor_day(conn, store, spec, builder, day, registry, config)
                shares[f"{spec.name}/{day}"] = metadata["drift_share"].value
    return shares


def run_days(store, first: dt.date, last: dt.date) -> None:
    """What one run of supply_chain_nightly does over first..last (scores only once a champion exists)."""
    days = {first + dt.timedelta(days=i) for i in range((last - first).days + 1)}
    ingest(store, days)
    build_products(store)
    check_products(store)
    build_feature_sets(store)
    scored = {key.split("/")[0] for key in score_and_monitor(store, sorted(days))}
    if scored & operations_inputs():  # as Dagster skips the step when none of its inputs was scored
        build_products(store, operations=True)


def operations_inputs() -> set[str]:
    """The prediction products the operations models read (their dbt sources in schema predictions)."""
    from factory_assets.processing.dbt_manifest import load_manifest

    return {s["name"] for s in load_manifest()["sources"].values() if s["source_name"] == "predictions"}


if __name__ == "__main__":
    print(json.dumps({"usage": "imported by bench_overhead.py"}))
