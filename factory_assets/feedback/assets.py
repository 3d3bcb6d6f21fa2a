"""Feedback assets: per use case and day, Evidently drift and live quality of the champion's scores.

``feedback/<use_case>_monitoring`` (daily-partitioned) compares partition D's feature snapshot and
predictions with the scoring model's reference (stored with the model at training time), and the
predictions scored ``label_delay_days`` earlier with the outcomes known by the end of D. Each
partition records its numbers as materialization metadata (so the UI plots them) and links its
HTML reports; the retraining sensor reads only these recorded results.
"""

import datetime as dt
from datetime import date

import dagster as dg
import polars as pl

from factory_assets.assembly.specs import UseCaseSpec
from factory_assets.assembly.training import higher_is_better
from factory_assets.assembly.training_sets import TrainingSetBuilder
from factory_assets.assembly.templates import TEMPLATE_TASK
from factory_assets.distribution.assets import no_champion_reason, snapshot_path
from factory_assets.feedback import monitoring as mon
from factory_assets.feedback.outcomes import labelled_predictions, override_feedback
from factory_assets.keys import BREACHES, USAGE_KEY, monitoring_key, predictions_key, product_key
from factory_assets.lib.metadata import round_metadata
from factory_assets.lib.warehouse_sql import table_exists
from factory_assets.raw_material.assets import daily_partitions
from factory_assets.resources import FactoryStore
from factory_assets.settings import artifacts_url

#: Metadata key the retraining sensor reads: the list of thresholds a partition crossed.


def _report_links(name: str, path, artifacts) -> dict:
    """A report as a clickable URL (served by `factory ui`, see settings.artifacts_url) and a path."""
    if not path:
        return {name: dg.MetadataValue.text("not produced")}
    relative = path.relative_to(artifacts).as_posix()
    return {name: dg.MetadataValue.url(f"{artifacts_url()}/{relative}"), f"{name}_path": dg.MetadataValue.path(str(path))}


#: Dagster's tag for an asset's data version (what `MaterializeResult(data_version=...)` sets).
DATA_VERSION_TAG = "dagster/data_version"


def _metadata_version(metadata: dict) -> str:
    """A day's monitoring result is its numbers: their hash is its data version."""
    import hashlib

    text = repr(sorted((k, getattr(v, "value", v)) for k, v in metadata.items() if not k.endswith(("_report", "_report_path"))))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def monitor_day(conn, store: FactoryStore, spec: UseCaseSpec, builder: TrainingSetBuilder, day: date, registry,
                config: mon.MonitoringConfig) -> dict:
    """Drift, prediction drift and quality of one scored day; returns the metadata to record."""
    limits = config.tiers[spec.risk_tier]
    table = f"predictions.{spec.name}"
    reports = store.paths.artifacts / "reports" / spec.name / day.isoformat()
    metadata: dict = {"day": day.isoformat(), "risk_tier": spec.risk_tier,
                      "thresholds": dg.MetadataValue.json(limits.model_dump())}
    breaches: list[str] = []

    snapshot = snapshot_path(store, spec.name, day)
    versions = conn.execute(f"select distinct model_version from {table} where scored_date = ?", [day]).fetchall()
    if snapshot.is_file() and len(versions) == 1:
        model_version = versions[0][0]
        version = registry.get(spec.name, model_version)
        reference = pl.read_parquet(version.path / version.manifest["extra"]["reference"]["file"])
        current = pl.read_parquet(snapshot)
        features = [f for f in version.feature_names if f not in spec.drift_exclude]
        heading = mon.ReportContext(spec.name, day.isoformat(), spec.risk_tier, limits, model_version=model_version,
                                    reference=mon.drift_reference_text(model_version, version.manifest.get("extra", {})))
        drift = mon.data_drift(reference, current, features, config=config, report_path=reports / "data_drift.html",
                               context=heading, text_columns=spec.text_columns)
        drift.excluded.update({f: "calendar position of the batch (use case's drift_exclude)"
                               for f in version.feature_names if f in spec.drift_exclude})
        prediction = mon.data_drift(reference, current, ["prediction"], config=config,
                                    report_path=reports / "prediction_drift.html", context=heading,
                                    kind="prediction drift")
        prediction_score = prediction.scores.get("prediction", 0.0)
        metadata.update({
            "model_version": model_version,
            "drift_share": dg.MetadataValue.float(drift.share),
            "drifted_columns": ", ".join(drift.drifted_columns) or "none",
            "columns_monitored": dg.MetadataValue.int(len(drift.columns)),
            "columns_excluded": dg.MetadataValue.json(drift.excluded),
            "prediction_drift": dg.MetadataValue.float(prediction_score),
            "drift_method": drift.method,
            "sampling": drift.sampling,
            **_report_links("data_drift_report", drift.report_path, store.paths.artifacts),
            **_report_links("prediction_drift_report", prediction.report_path, store.paths.artifacts),
            "current_rows": dg.MetadataValue.int(current.height),
        })
        metadata.update({f"drift/{c}": dg.MetadataValue.float(s) for c, s in sorted(drift.scores.items())})
        if drift.share > limits.max_drift_share:
            breaches.append(f"drift share {drift.share:.2f} > {limits.max_drift_share}")
        if prediction_score > limits.max_prediction_drift:
            breaches.append(f"prediction drift {prediction_score:.3f} > {limits.max_prediction_drift}")
    else:
        metadata["drift_share"] = dg.MetadataValue.float(float("nan"))
        metadata["drift_status"] = "no scores for this day" if not versions else f"{len(versions)} model versions"

    scored = day - dt.timedelta(days=spec.label_delay_days)
    labelled = labelled_predictions(conn, spec, builder, table, scored, day)
    metadata["labelled_rows"] = dg.MetadataValue.int(labelled.height)
    metadata["labels_for_scored_date"] = scored.isoformat()
    if labelled.height >= limits.min_labelled_rows:
        scorers = {v: registry.get(spec.name, v) for v in labelled["model_version"].unique().to_list()}
        expected = [m.metrics.get(spec.metric) for m in scorers.values()]
        expected = [e for e in expected if e is not None]
        against = (mon.quality_reference_text(spec.metric, sum(expected) / len(expected),
                                              {v: m.manifest.get("extra", {}) for v, m in scorers.items()})
                   if expected else f"no test {spec.metric} recorded for {', '.join(sorted(scorers))}")
        quality = mon.model_quality(labelled, TEMPLATE_TASK[spec.template], report_path=reports / "quality.html",
                                    context=mon.ReportContext(spec.name, day.isoformat(), spec.risk_tier, limits,
                                                              reference=against),
                                    metric=spec.metric, scored=scored.isoformat())
        live = quality.metrics.get(spec.metric)
        if live is not None and expected:
            reference_metric = sum(expected) / len(expected)
            drop = mon.relative_drop(higher_is_better(spec.metric), reference_metric, live)
            metadata.update({
                f"quality/{spec.metric}": dg.MetadataValue.float(live),
                f"quality/expected_{spec.metric}": dg.MetadataValue.float(reference_metric),
                "quality_drop": dg.MetadataValue.float(drop),
                **_report_links("quality_report", quality.report_path, store.paths.artifacts),
            })
            metadata.update({f"quality/{k}": dg.MetadataValue.float(v) for k, v in quality.metrics.items() if k != spec.metric})
            if drop > limits.max_quality_drop:
                breaches.append(f"{spec.metric} {live:.3f} is {drop:.1%} below the expected {reference_metric:.3f} "
                                f"(limit {limits.max_quality_drop:.0%})")
    else:
        metadata["quality_status"] = f"{labelled.height} labelled rows (< {limits.min_labelled_rows}): quality not judged"
    overrides = override_feedback(conn, spec, labelled, day)
    if overrides:
        metadata.update({f"overrides/{k}": dg.MetadataValue.float(v) for k, v in overrides.items()})

    metadata[BREACHES] = dg.MetadataValue.json(breaches)
    metadata["retraining_recommended"] = bool(breaches)
    return metadata


def _scored(conn, spec: UseCaseSpec, day: date) -> bool:
    return table_exists(conn, f"predictions.{spec.name}") and conn.execute(
        f"select count(*) > 0 from predictions.{spec.name} where scored_date = ?", [day]).fetchone()[0]


def monitoring_asset(spec: UseCaseSpec, builder: TrainingSetBuilder) -> dg.AssetsDefinition:
    key = monitoring_key(spec.name)

    @dg.asset(
        key=key,
        group_name="feedback",
        partitions_def=daily_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        # the outcomes come from the use case's own products
        deps=[predictions_key(spec.name), *(product_key(p) for p in builder.products)],
        output_required=False,
        owners=[spec.owner],
        kinds={"evidently", "duckdb"},
        tags={"layer": "feedback", "use_case": spec.name, "risk_tier": spec.risk_tier,
              "business_unit": spec.business_unit},
        check_specs=[dg.AssetCheckSpec("within_thresholds", asset=key, description=(
            f"Warns when a day crosses the {spec.risk_tier}-tier limits of governance/policy.yaml "
            "(drift share, prediction drift, quality drop); the retraining sensor acts on it."))],
        description=f"Daily Evidently data drift (features vs the model's reference), prediction drift and live "
        f"{spec.metric} of {spec.name} once outcomes are known (scores of {spec.label_delay_days} days earlier). HTML reports "
        "under artifacts/reports; numbers as metadata.",
    )
    def _monitoring(context: dg.AssetExecutionContext, store: FactoryStore):
        registry = store.registry()
        config = mon.monitoring_config()
        breached = {}
        with store.warehouse(read_only=True) as conn:
            for day in sorted(date.fromisoformat(k) for k in context.partition_keys):
                if not _scored(conn, spec, day):
                    context.log.info(f"{spec.name} {day}: no scores, nothing to monitor "
                                     f"({no_champion_reason(context.instance, spec.name)}).")
                    continue
                metadata = monitor_day(conn, store, spec, builder, day, registry, config)
                if metadata[BREACHES].value:
                    breached[day.isoformat()] = metadata[BREACHES].value
                    context.log.warning(f"{spec.name} {day}: {'; '.join(metadata[BREACHES].value)}")
                yield dg.AssetMaterialization(asset_key=key, partition=day.isoformat(),
                                              metadata=round_metadata(metadata),
                                              tags={DATA_VERSION_TAG: _metadata_version(metadata)})
        yield dg.AssetCheckResult(
            check_name="within_thresholds", passed=not breached, severity=dg.AssetCheckSeverity.WARN,
            metadata={"breached_days": dg.MetadataValue.json(breached)},
        )

    return _monitoring




@dg.asset(
    key=USAGE_KEY,
    group_name="feedback",
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[product_key("stg_services__usage")],
    owners=["team:ai-platform"],
    kinds={"duckdb"},
    tags={"layer": "feedback"},
    description="Who called which of the factory's services (`factory services`) each day: calls, rows served, "
    "refusals, failures and p95 latency per service and caller, in feedback.service_usage_daily. The portfolio "
    "shows each use case's usage from it.",
)
def service_usage(context: dg.AssetExecutionContext, store: FactoryStore) -> dg.MaterializeResult:
    from factory_assets.feedback.usage import USAGE_TABLE, write_usage_days

    days = sorted(date.fromisoformat(k) for k in context.partition_keys)
    with store.warehouse() as conn:
        summary = write_usage_days(conn, days)
    if summary.is_empty():
        context.log.info(f"No service calls landed for {days[0]} .. {days[-1]}.")
        return dg.MaterializeResult(metadata={"calls": 0})
    by_service = summary.group_by("service").agg(pl.col("calls").sum(), pl.col("rows_served").sum(),
                                                 pl.col("caller").n_unique().alias("callers")).sort("service")
    table = "\n".join(["| service | calls | rows served | callers |", "|---|---|---|---|",
                       *(f"| {r['service']} | {r['calls']} | {r['rows_served']} | {r['callers']} |"
                         for r in by_service.iter_rows(named=True))])
    calls = int(summary["calls"].sum())
    return dg.MaterializeResult(metadata=round_metadata({
        "calls": calls,
        "failed_share": float((summary["calls"] - summary["ok_calls"]).sum() / calls),
        "callers": summary["caller"].n_unique(),
        "services": dg.MetadataValue.md(table),
        "table": USAGE_TABLE,
    }))
