"""The sensor that closes the loop: a monitoring breach requests a retraining run for that use case.

It only reads what the monitoring assets recorded (materialization metadata); it never computes
drift itself, so a tick stays fast. Run keys make requests idempotent: at most one request per use
case, champion version and ISO week of the breaching day. The requested run retrains that use case
only (training set, model, promotion gate); a promoted champion scores the next nightly batch.
"""

import json
from datetime import date

import dagster as dg

from factory_assets.keys import BREACHES
from factory_assets.keys import monitoring_key, training_keys
from factory_assets.settings import ML_TEAM

RETRAINING_JOB = "assembly_training"


def retraining_requests(instance: dg.DagsterInstance, use_cases: list[str], cursor: dict[str, int]):
    """Run requests for the use cases whose new monitoring results breached, and the new cursor."""
    requests, cursor = [], dict(cursor)
    for use_case in use_cases:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=monitoring_key(use_case), after_storage_id=cursor.get(use_case)),
            limit=1000, ascending=True,
        ).records
        if not records:
            continue
        cursor[use_case] = records[-1].storage_id
        breaching = []
        for record in records:
            materialization = record.asset_materialization
            entry = materialization.metadata.get(BREACHES)
            if entry is not None and entry.value:
                breaching.append((materialization.partition, materialization.metadata, entry.value))
        if not breaching:
            continue
        day, metadata, reasons = max(breaching, key=lambda b: b[0] or "")
        version = metadata["model_version"].value if "model_version" in metadata else "unknown"
        year, week, _ = date.fromisoformat(day).isocalendar() if day else (0, 0, 0)
        requests.append(dg.RunRequest(
            run_key=f"retrain:{use_case}:{version}:{year}-W{week:02d}",
            asset_selection=training_keys(use_case),
            tags={"factory/trigger": "monitoring", "factory/use_case": use_case, "factory/breach_day": day or "",
                  "factory/breaches": json.dumps(reasons)[:1000], "factory/replaces_champion": version},
        ))
    return requests, cursor


def build_retraining_sensor(use_cases: list[str], job_name: str = RETRAINING_JOB,
                            name: str = "retraining_on_monitoring_breach") -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        owners=[ML_TEAM],
        metadata={"layer": "feedback", "reads": "monitoring metadata (breaches)"},
        description="Requests retraining of a use case when its monitoring records a drift or quality breach "
        "(reads recorded results only; one request per use case, champion version and week).",
        job_name=job_name,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def _sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        requests, cursor = retraining_requests(context.instance, use_cases, cursor)
        context.update_cursor(json.dumps(cursor))
        if not requests:
            return dg.SkipReason("no new monitoring breach")
        return requests

    return _sensor
